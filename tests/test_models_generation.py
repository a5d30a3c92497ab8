"""Sampling the next token: temperature, top-k, top-p and the multinomial draw itself."""
import numpy as np
import pytest

import tinytensor as tt
from models.generation import keep_top_k, keep_top_p, sample_next_token


def test_multinomial_frequencies_match_the_probabilities():
    probs = tt.tensor([[0.1, 0.2, 0.7], [0.5, 0.0, 0.5]])
    draws = tt.multinomial(probs, num_samples=20000).numpy()
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


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_left_padded_prompts_generate_what_each_prompt_generates_alone(family, use_cache):
    """attention_mask lets prompts of different lengths share a batch: each row continues as it would alone (pads
    masked out, positions counted from each row's first real token)."""
    import test_models_gpt2
    import test_models_llama

    model = {"gpt2": test_models_gpt2.tiny_model, "llama": test_models_llama.tiny_model}[family]()
    rng = np.random.default_rng(7)
    for _ in range(4):
        short, long_ = rng.integers(0, 20, 2).tolist(), rng.integers(0, 20, 5).tolist()
        batch = np.array([[9, 9, 9] + short, long_])  # the short prompt left-padded with an arbitrary id
        mask = np.array([[0, 0, 0, 1, 1], [1, 1, 1, 1, 1]])
        together = model.generate(batch, 5, temperature=0, attention_mask=mask, use_cache=use_cache).numpy()
        for row, prompt in enumerate([short, long_]):
            alone = model.generate(np.array([prompt]), 5, temperature=0, use_cache=use_cache).numpy()[0]
            np.testing.assert_array_equal(together[row, -5:], alone[-5:])
