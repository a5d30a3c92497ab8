"""The encoder-decoder Transformer: gradients, masking properties, and greedy/beam/cached decoding."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytensor as tt
from models.transformer import Transformer, TransformerConfig, sinusoidal_positions

PAD, BOS, EOS = 0, 1, 2


def tiny_transformer(seed: int = 0, **overrides) -> Transformer:
    config = dict(src_vocab_size=9, tgt_vocab_size=9, d_model=8, n_heads=2, d_ff=12, n_encoder_layers=1,
                  n_decoder_layers=2, dropout=0.0)
    config.update(overrides)
    tt.manual_seed(seed)
    model = Transformer(TransformerConfig(**config)).to(tt.float64)
    rng = np.random.default_rng(seed)
    for p in model.parameters():  # larger weights than the init, so decoding is not one token repeated
        p.data = rng.normal(0, 0.5, p.shape)
    return model


def padded_batch(rng: np.random.Generator, vocab: int, batch: int, length: int) -> np.ndarray:
    """Random real tokens (ids ≥ 3) with a random amount of right padding per row (at least one real token)."""
    ids = rng.integers(3, vocab, (batch, length))
    for row, real in enumerate(rng.integers(1, length + 1, batch)):
        ids[row, real:] = PAD
    return ids


@st.composite
def transformer_configs(draw):
    n_heads = draw(st.sampled_from([1, 2]))
    share = draw(st.booleans())
    vocab = draw(st.integers(4, 7))
    return dict(src_vocab_size=vocab if share else draw(st.integers(4, 7)), tgt_vocab_size=vocab,
                d_model=2 * n_heads * draw(st.sampled_from([1, 2])), n_heads=n_heads, d_ff=draw(st.integers(2, 6)),
                n_encoder_layers=draw(st.integers(1, 2)), n_decoder_layers=draw(st.integers(1, 2)), dropout=0.0,
                share_embeddings=share)


@pytest.mark.parametrize("norm_first", [False, True])
@settings(max_examples=5, deadline=None)
@given(config=transformer_configs(), seed=st.integers(0, 2**16))
def test_transformer_loss_gradient_matches_finite_differences(norm_first, config, seed):
    """Padded sources and targets; every parameter in a random direction, the shared embedding entry by entry."""
    tt.manual_seed(seed)
    model = Transformer(TransformerConfig(**config, norm_first=norm_first)).to(tt.float64)
    rng = np.random.default_rng(seed)
    src = padded_batch(rng, config["src_vocab_size"], 2, 4)
    targets = padded_batch(rng, config["tgt_vocab_size"], 2, 3)
    tgt_in = np.concatenate([np.full((2, 1), BOS), targets[:, :-1]], axis=1)
    params = list(model.parameters())
    for p in params:
        p.data = rng.normal(0, 0.5, p.shape)
    assert tt.gradcheck(lambda *_: model.loss(model(src, tgt_in), targets), params, fast=True)
    embedding = model.embed_tokens.weight  # every entry of the shared embedding, one by one
    assert tt.gradcheck(lambda *_: model.loss(model(src, tgt_in), targets), [embedding])


def test_positional_encoding_interleaves_sin_and_cos():
    table = sinusoidal_positions(5, 6, offset=2)
    position, i = 4, 1  # row 2 is position 4; features 2 and 3 share the frequency 10000^(−2/6)
    angle = position / 10000 ** (2 * i / 6)
    assert table[2, 2 * i] == pytest.approx(np.sin(angle)) and table[2, 2 * i + 1] == pytest.approx(np.cos(angle))
    np.testing.assert_allclose(table[:, 0::2][:, 0], np.sin(np.arange(2, 7)))


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_output_at_t_ignores_target_tokens_after_t(norm_first):
    model = tiny_transformer(norm_first=norm_first)
    src = np.array([[3, 4, 5, 6]])
    tgt = np.array([[BOS, 3, 4, 5, 6, 7]])
    changed = tgt.copy()
    changed[0, 3:] = [8, 8, 3]
    before, after = model(src, tgt).numpy(), model(src, changed).numpy()
    np.testing.assert_array_equal(before[0, :3], after[0, :3])
    assert not np.allclose(before[0, 3:], after[0, 3:])


@pytest.mark.parametrize("norm_first", [False, True])
def test_extra_source_padding_leaves_outputs_unchanged(norm_first):
    model = tiny_transformer(norm_first=norm_first)
    rng = np.random.default_rng(1)
    src = padded_batch(rng, 9, 3, 4)
    padded = np.concatenate([src, np.full((3, 3), PAD)], axis=1)
    tgt = np.concatenate([np.full((3, 1), BOS), rng.integers(3, 9, (3, 4))], axis=1)
    np.testing.assert_allclose(model(padded, tgt).numpy(), model(src, tgt).numpy(), rtol=1e-12, atol=1e-12)
    assert model.greedy_decode(padded, max_new_tokens=6) == model.greedy_decode(src, max_new_tokens=6)


def test_cached_decoding_equals_uncached():
    model = tiny_transformer(norm_first=True)
    rng = np.random.default_rng(2)
    src = padded_batch(rng, 9, 2, 5)
    tgt = np.concatenate([np.full((2, 1), BOS), rng.integers(3, 9, (2, 5))], axis=1)
    full = model(src, tgt).numpy()
    memory, src_keep = model.encode(src)
    cache = model.new_cache()
    steps = [model.decode(tgt[:, t:t + 1], memory, src_keep, cache).numpy() for t in range(tgt.shape[1])]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-12, atol=1e-12)
    assert model.greedy_decode(src, max_new_tokens=8) == model.greedy_decode(src, max_new_tokens=8, use_cache=False)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_with_beam_one_equals_greedy(seed):
    model = tiny_transformer(seed)
    src = padded_batch(np.random.default_rng(seed), 9, 4, 5)
    assert model.beam_search(src, beam_size=1, max_new_tokens=8) == model.greedy_decode(src, max_new_tokens=8)


def sequence_log_prob(model: Transformer, src: np.ndarray, ids: list[int]) -> float:
    """log P(ids | src) under teacher forcing (ids as generated: EOS included if it ended)."""
    tgt_in = np.array([[BOS] + ids[:-1]])
    log_probs = tt.log_softmax(model(src, tgt_in), dim=-1).numpy()[0]
    return float(log_probs[np.arange(len(ids)), ids].sum())


def exhaustive_search(model: Transformer, src: np.ndarray, limit: int, alpha: float) -> list[int]:
    """The best hypothesis of at most `limit` tokens by log P / ((5 + |Y|)/6)^α, over every possible one:
    w + [EOS] for every w shorter than the limit, and every w of exactly `limit` tokens without EOS."""
    vocab = model.config.tgt_vocab_size
    others = [t for t in range(vocab) if t != EOS]
    candidates = [list(w) + [EOS] for n in range(limit) for w in itertools.product(others, repeat=n)]
    candidates += [list(w) for w in itertools.product(others, repeat=limit)]
    scores = [sequence_log_prob(model, src, c) / ((5 + len(c)) / 6) ** alpha for c in candidates]
    best = candidates[int(np.argmax(scores))]
    return [t for t in best if t not in (EOS, PAD)]


@pytest.mark.parametrize("seed, alpha", [(2, 0.0), (5, 0.6), (7, 1.0)])
def test_a_beam_wider_than_every_prefix_finds_the_exhaustive_best(seed, alpha):
    model = tiny_transformer(seed, src_vocab_size=5, tgt_vocab_size=5)
    src = np.array([[3, 4, 3]])
    limit = 3  # 5 + 25 prefixes before the last step: a beam of 25 keeps every one of them
    beam = model.beam_search(src, beam_size=25, length_penalty=alpha, max_new_tokens=limit)[0]
    assert beam == exhaustive_search(model, src, limit, alpha)


def test_decoding_stops_at_eos_and_strips_it():
    model = tiny_transformer()
    model.embed_tokens.weight.data[EOS] *= 100  # EOS wins every step
    assert model.greedy_decode(np.array([[3, 4]])) == [[]]
    assert model.beam_search(np.array([[3, 4]]), beam_size=3) == [[]]


def test_shared_embeddings_are_one_matrix_and_unshared_ones_are_two():
    shared = Transformer(TransformerConfig(src_vocab_size=9, tgt_vocab_size=9, d_model=8, n_heads=2, d_ff=8,
                                           n_encoder_layers=1, n_decoder_layers=1))
    separate = Transformer(TransformerConfig(src_vocab_size=7, tgt_vocab_size=9, d_model=8, n_heads=2, d_ff=8,
                                             n_encoder_layers=1, n_decoder_layers=1, share_embeddings=False))
    assert shared.num_parameters() + 7 * 8 == separate.num_parameters()
    with pytest.raises(ValueError, match="one vocabulary"):
        TransformerConfig(src_vocab_size=7, tgt_vocab_size=9)
