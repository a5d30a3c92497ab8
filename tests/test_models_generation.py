"""Sampling the next token: temperature, top-k, top-p and the multinomial draw itself."""
import numpy as np
import pytest

import tinytensor as tt
from models.generation import keep_top_k, keep_top_p, sample_next_token


def test_multinomial_frequencies_match_the_probabilities():
    probs = tt.tensor([[0.1, 0.2, 0.7], [0.5, 0.0, 0.5]])
    draws = tt.multinomial(probs, num_samples=20000, replacement=True).numpy()
    for row, expected in zip(draws, probs.numpy()):
        frequencies = np.bincount(row, minlength=3) / row.size
        np.testing.assert_allclose(frequencies, expected, atol=0.015)
    assert (draws[1] != 1).all()


def test_top_k_keeps_exactly_the_k_largest_logits():
    logits = tt.tensor([[0.5, 3.0, -1.0, 2.0, 1.0]])
    kept = np.isfinite(keep_top_k(logits, 2).numpy()[0])
    assert kept.tolist() == [False, True, False, True, False]


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = np.array([0.05, 0.5, 0.15, 0.3])
    logits = tt.tensor(np.log(probs)[None])
    assert np.isfinite(keep_top_p(logits, 0.75).numpy()[0]).tolist() == [False, True, False, True]
    assert np.isfinite(keep_top_p(logits, 0.85).numpy()[0]).tolist() == [False, True, True, True]
    assert np.isfinite(keep_top_p(logits, 0.4).numpy()[0]).tolist() == [False, True, False, False]


def test_temperature_zero_is_greedy():
    logits = tt.tensor([[0.1, 0.9, 0.3], [2.0, -1.0, 0.0]])
    assert sample_next_token(logits, temperature=0).numpy()[:, 0].tolist() == [1, 0]


def test_sampling_never_picks_a_token_outside_top_k():
    logits = tt.tensor(np.tile([[0.0, 1.0, 2.0, 3.0]], (500, 1)))
    picks = sample_next_token(logits, temperature=1.0, top_k=2).numpy()
    assert set(np.unique(picks)) <= {2, 3}


def test_bad_sampling_settings_are_rejected():
    logits = tt.tensor([[0.0, 1.0]])
    with pytest.raises(ValueError, match="temperature"):
        sample_next_token(logits, temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        keep_top_p(logits, 1.5)


# ---- CausalLM (models/generation.py): the decoding loop GPT-2 and LLaMA share ---------------------------------------
FAMILIES = ["gpt2", "llama"]


def tiny_causal_lm(family: str):
    """A float64 model with large random weights (greedy choices are not near-ties) and 12 positions."""
    import test_models_gpt2
    import test_models_llama

    return {"gpt2": test_models_gpt2.tiny_model, "llama": test_models_llama.tiny_model}[family]()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("max_new_tokens", [5, 14])  # 14 runs past the 12 positions: the context slides
def test_cached_greedy_generation_equals_uncached(family, max_new_tokens):
    model = tiny_causal_lm(family)
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    cached = model.generate(prompt, max_new_tokens, temperature=0)
    uncached = model.generate(prompt, max_new_tokens, temperature=0, use_cache=False)
    assert cached.shape == (2, 3 + max_new_tokens)
    np.testing.assert_array_equal(cached.numpy(), uncached.numpy())


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_sampling_equals_uncached_with_the_same_seed(family):
    model = tiny_causal_lm(family)
    prompt = np.array([[1, 2, 3]])
    tt.manual_seed(7)
    cached = model.generate(prompt, 6, temperature=0.8, top_k=10, top_p=0.9)
    tt.manual_seed(7)
    uncached = model.generate(prompt, 6, temperature=0.8, top_k=10, top_p=0.9, use_cache=False)
    np.testing.assert_array_equal(cached.numpy(), uncached.numpy())


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_forward_equals_full_forward_with_padding(family):
    """Feeding a left-padded batch one token at a time through the cache gives the full forward's logits."""
    from tinytensor.nn import KVCache

    model = tiny_causal_lm(family).eval()
    ids = np.array([[0, 0, 7, 8, 9], [3, 4, 5, 6, 7]])
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    full = model(ids, attention_mask=mask).numpy()
    caches = [KVCache() for _ in range(model.num_layers)]
    steps = [model(ids[:, t:t + 1], attention_mask=mask[:, :t + 1], caches=caches).numpy() for t in range(5)]
    real = mask.astype(bool)
    np.testing.assert_allclose(np.concatenate(steps, axis=1)[real], full[real], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_generation_stops_at_eos_and_pads_finished_rows(family):
    model = tiny_causal_lm(family)
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    greedy = model.generate(prompt, 8, temperature=0).numpy()
    eos = int(greedy[0, 3])  # row 0's first new token
    stopped = model.generate(prompt, 8, temperature=0, eos_token_id=eos).numpy()
    assert (stopped[0, 3:] == eos).all()
    if not (greedy[1, 3:] == eos).any():
        assert stopped.shape[1] == greedy.shape[1]


@pytest.mark.parametrize("family", FAMILIES)
def test_padding_does_not_change_real_positions_with_right_padding(family):
    model = tiny_causal_lm(family).eval()
    ids = np.array([[5, 6, 7, 8, 0, 0]])
    mask = np.array([[1, 1, 1, 1, 0, 0]])
    padded = model(ids, attention_mask=mask).numpy()
    np.testing.assert_allclose(padded[0, :4], model(ids[:, :4]).numpy()[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("family", FAMILIES)
def test_left_padded_prompts_generate_what_each_prompt_generates_alone(family, use_cache):
    """attention_mask lets prompts of different lengths share a batch: each row continues as it would alone (pads
    masked out, positions counted from each row's first real token)."""
    model = tiny_causal_lm(family)
    rng = np.random.default_rng(7)
    for _ in range(4):
        short, long_ = rng.integers(0, 20, 2).tolist(), rng.integers(0, 20, 5).tolist()
        batch = np.array([[9, 9, 9] + short, long_])  # the short prompt left-padded with an arbitrary id
        mask = np.array([[0, 0, 0, 1, 1], [1, 1, 1, 1, 1]])
        together = model.generate(batch, 5, temperature=0, attention_mask=mask, use_cache=use_cache).numpy()
        for row, prompt in enumerate([short, long_]):
            alone = model.generate(np.array([prompt]), 5, temperature=0, use_cache=use_cache).numpy()[0]
            np.testing.assert_array_equal(together[row, -5:], alone[-5:])
