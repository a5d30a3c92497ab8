"""The lecture GPT and the bigram baseline: gradients, causality, learning, and generation."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytensor as tt
from models.gpt_char import GPT, BigramLanguageModel, GPTConfig
from tinytensor.optim import AdamW


def tiny_gpt(dtype=tt.float32, **overrides) -> GPT:
    config = dict(vocab_size=7, block_size=6, n_layer=1, n_head=2, n_embd=8, dropout=0.0)
    config.update(overrides)
    return GPT(GPTConfig(**config)).to(dtype)


@st.composite
def gpt_configs(draw):
    n_head = draw(st.sampled_from([1, 2]))
    return dict(vocab_size=draw(st.integers(3, 6)), block_size=draw(st.integers(2, 4)),
                n_layer=draw(st.integers(1, 2)), n_head=n_head, n_embd=n_head * draw(st.sampled_from([2, 3])),
                dropout=0.0, bias=draw(st.booleans()), activation=draw(st.sampled_from(["relu", "gelu"])))


@settings(max_examples=6)
@given(config=gpt_configs(), seed=st.integers(0, 2**16))
def test_gpt_loss_gradient_matches_finite_differences(config, seed):
    tt.manual_seed(seed)
    model = GPT(GPTConfig(**config)).to(tt.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, config["vocab_size"], (2, config["block_size"]))
    targets = rng.integers(0, config["vocab_size"], (2, config["block_size"]))
    params = list(model.parameters())
    for p in params:  # larger weights than the 0.02 init, so every term of the gradient matters
        p.data = rng.normal(0, 0.5, p.shape)
    assert tt.gradcheck(lambda *_: model(idx, targets)[1], params)


def test_gpt_logits_at_t_ignore_tokens_after_t():
    model = tiny_gpt(tt.float64)
    idx = np.array([[1, 2, 3, 4, 5, 6]])
    changed = idx.copy()
    changed[0, 4:] = [0, 0]
    before, _ = model(idx)
    after, _ = model(changed)
    np.testing.assert_array_equal(before.numpy()[0, :4], after.numpy()[0, :4])
    assert not np.allclose(before.numpy()[0, 4:], after.numpy()[0, 4:])


def final_loss_after_training(model, idx, targets, lr: float, steps: int) -> float:
    optimizer = AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    for _ in range(steps):
        _, loss = model(idx, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return loss.item()


def test_gpt_overfits_one_small_batch():
    tt.manual_seed(0)
    model = tiny_gpt(n_layer=2, n_embd=32, n_head=4, block_size=8, vocab_size=10)
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, 10, (4, 8)), rng.integers(0, 10, (4, 8))
    assert final_loss_after_training(model, idx, targets, lr=1e-2, steps=300) < 0.1


def test_bigram_overfits_its_table():
    tt.manual_seed(0)
    idx = np.array([[0, 1, 2, 3, 4]])
    targets = np.array([[1, 2, 3, 4, 0]])  # a deterministic successor for each character
    assert final_loss_after_training(BigramLanguageModel(5), idx, targets, lr=0.1, steps=200) < 0.05


def test_gpt_parameter_count_matches_the_lecture():
    """The lecture prints 10.788929 M parameters for its final model with 65 characters."""
    assert GPT(GPTConfig(vocab_size=65)).num_parameters() == 10_788_929


def test_generate_crops_the_context_to_block_size():
    model = tiny_gpt()
    seen_lengths = []
    original_forward = model.forward

    def recording_forward(idx, targets=None):
        seen_lengths.append(idx.shape[1])
        return original_forward(idx, targets)

    model.forward = recording_forward
    out = model.generate(tt.tensor([[1, 2]]), max_new_tokens=10)
    assert out.shape == (1, 12)
    assert max(seen_lengths) == model.config.block_size
    assert seen_lengths[:5] == [2, 3, 4, 5, 6]


def test_generate_is_reproducible_with_a_seed_and_varies_without():
    model = tiny_gpt()
    start = tt.tensor([[0]])
    tt.manual_seed(123)
    first = model.generate(start, 30).numpy()
    tt.manual_seed(123)
    second = model.generate(start, 30).numpy()
    third = model.generate(start, 30).numpy()
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, third)


def test_generate_with_top_k_one_is_greedy():
    model = tiny_gpt(tt.float64)
    out = model.generate(tt.tensor([[3]]), 5, top_k=1).numpy()[0]
    idx = [3]
    for _ in range(5):
        logits, _ = model(np.array([idx[-6:]]))
        idx.append(int(np.argmax(logits.numpy()[0, -1])))
    assert out.tolist() == idx


def test_forward_rejects_sequences_longer_than_block_size():
    with pytest.raises(ValueError, match="block_size"):
        tiny_gpt()(np.zeros((1, 7), dtype=np.int64))


def test_token_id_out_of_range_names_the_id_and_vocabulary():
    with pytest.raises(IndexError, match="9.*size 7"):
        tiny_gpt()(np.array([[1, 9]]))
