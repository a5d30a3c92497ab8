"""DeBERTa-v2/v3: the same outputs and AdamW losses as transformers' DebertaV2 (from the committed fixture), the
exact save layout, log-bucketed relative positions, the conv layer and gradients.

tests/fixtures/make_deberta_v2_fixture.py wrote tests/fixtures/deberta_v2/ with transformers 5.25 + torch 2.13:
three tiny float64 checkpoints with weights far from init ("v3": log buckets, share_att_key, norm_rel_ebd, conv,
legacy head; "v2": clipped positions, separate positional projections, absolute positions, legacy=false head;
"cls": a sequence classifier on the v3 configuration), HF's float64 logits (its float32 √(d·sf) patched to
float64) with and without padding, an AdamW loss trace and the keys, shapes and dtypes transformers saved.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.numpy
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytensor as tt
from models.deberta_v2 import (DebertaV2Config, DebertaV2ForMaskedLM, DebertaV2ForSequenceClassification,
                               DebertaV2Model, bucketed_relative_index, log_bucket_position)
from tinytensor.optim import AdamW

FIXTURE = Path(__file__).parent / "fixtures" / "deberta_v2"
REFERENCE = safetensors.numpy.load_file(FIXTURE / "reference.safetensors")
RECORD = json.loads((FIXTURE / "reference.json").read_text())
IDS, TYPES, MASK, LABELS = (REFERENCE[name] for name in ("input_ids", "token_type_ids", "attention_mask", "labels"))
REAL = MASK.astype(bool)
VARIANTS = {"v3": (DebertaV2ForMaskedLM, True), "v2": (DebertaV2ForMaskedLM, False),
            "cls": (DebertaV2ForSequenceClassification, True)}


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def logits_of(model, with_types: bool, padded: bool) -> np.ndarray:
    with tt.no_grad():
        return model(IDS, TYPES if with_types else None, MASK if padded else None).numpy()


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("variant", VARIANTS)
def test_float64_logits_match_transformers_deberta_v2(variant, padded):
    model_class, with_types = VARIANTS[variant]
    model = model_class.from_pretrained(FIXTURE / variant, dtype=tt.float64).eval()
    ours, theirs = logits_of(model, with_types, padded), REFERENCE[f"{variant}_logits{'_padded' if padded else ''}"]
    if padded and ours.ndim == 3:                    # compare real positions only (MODELS.md §0.3)
        ours, theirs = ours[REAL], theirs[REAL]
    assert relative_error(ours, theirs) <= 1e-12


def test_float32_logits_match_transformers_float64_to_float32_precision():
    model = DebertaV2ForMaskedLM.from_pretrained(FIXTURE / "v3").eval()
    assert relative_error(logits_of(model, True, False), REFERENCE["v3_logits"]) <= 1e-5


def test_adamw_loss_trace_matches_torch():
    """Three AdamW steps on the padded batch's MLM loss (labels -100 elsewhere): the same four losses."""
    model = DebertaV2ForMaskedLM.from_pretrained(FIXTURE / "v3", dtype=tt.float64).train()
    hyper = RECORD["adamw"]
    optimizer = AdamW(model.parameters(), lr=hyper["lr"], betas=tuple(hyper["betas"]), eps=hyper["eps"],
                      weight_decay=hyper["weight_decay"])
    losses = []
    for step in range(len(RECORD["adamw_losses"])):
        loss = model.loss(model(IDS, TYPES, MASK), LABELS)
        losses.append(loss.item())
        if step < len(RECORD["adamw_losses"]) - 1:
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    np.testing.assert_allclose(losses, RECORD["adamw_losses"], rtol=1e-10)


def saved_layout(path: Path) -> dict:
    with safetensors.safe_open(str(path), framework="numpy") as file:
        return {key: [list(file.get_slice(key).get_shape()), file.get_slice(key).get_dtype()] for key in file.keys()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_pretrained_writes_exactly_the_keys_shapes_dtypes_and_config_of_transformers(variant, tmp_path):
    model_class, _ = VARIANTS[variant]
    model_class.from_pretrained(FIXTURE / variant, dtype=tt.float64).save_pretrained(tmp_path)
    assert saved_layout(tmp_path / "model.safetensors") == RECORD["layout"][variant]
    config = json.loads((tmp_path / "config.json").read_text())
    hf_config = RECORD["config"][variant]
    assert config["model_type"] == "deberta-v2" and config["architectures"] == hf_config["architectures"]
    for key in ("position_buckets", "share_att_key", "norm_rel_ebd", "conv_kernel_size", "conv_act",
                "max_relative_positions", "pos_att_type", "layer_norm_eps", "legacy", "hidden_size"):
        if key in hf_config:
            assert config[key] == hf_config[key] and type(config[key]) is type(hf_config[key]), key


def test_trunk_loads_a_masked_lm_checkpoint_ignoring_the_head():
    trunk = DebertaV2Model.from_pretrained(FIXTURE / "v3", dtype=tt.float64).eval()
    full = DebertaV2ForMaskedLM.from_pretrained(FIXTURE / "v3", dtype=tt.float64).eval()
    with tt.no_grad():
        np.testing.assert_array_equal(trunk(IDS, TYPES, MASK).numpy(), full.deberta(IDS, TYPES, MASK).numpy())


def test_classifier_starts_fresh_from_a_masked_lm_checkpoint():
    model = DebertaV2ForSequenceClassification.from_pretrained(FIXTURE / "v3", dtype=tt.float64)
    assert logits_of(model.eval(), True, True).shape == (2, 2)


def test_log_buckets_keep_short_distances_and_compress_long_ones_symmetrically():
    relative = np.arange(-40, 41)
    buckets = log_bucket_position(relative, 8, 16)
    assert np.array_equal(buckets[np.abs(relative) <= 4], relative[np.abs(relative) <= 4])
    assert np.array_equal(buckets, -buckets[::-1]) and np.all(np.diff(buckets) >= 0)
    assert buckets[relative == 15] == 7 and buckets[relative == 5] == 5   # mrp − 1 → 2·mid − 1; past it, clipped:
    index = bucketed_relative_index(30, 8, 8, 16)
    assert index.min() == 0 and index.max() == 15 and np.array_equal(np.diag(index), np.full(30, 8))


def test_right_padding_does_not_change_real_positions():
    model = DebertaV2ForMaskedLM.from_pretrained(FIXTURE / "v3", dtype=tt.float64).eval()
    with tt.no_grad():
        short = model(IDS[1:, :10], TYPES[1:, :10]).numpy()
        padded = model(IDS[1:], TYPES[1:], MASK[1:]).numpy()[:, :10]
    assert relative_error(padded, short) <= 1e-12


@pytest.mark.parametrize("flag, value", [("conv_groups", 2), ("conv_kernel_size", 4), ("conv_act", "mish"),
                                         ("enhanced_mask_decoder", True)])
def test_unsupported_config_value_is_named(flag, value):
    settings = {"conv_kernel_size": 3, "position_biased_input": False, flag: value}
    with pytest.raises(ValueError, match=flag):
        DebertaV2Config(hidden_size=8, num_attention_heads=2, **settings)


@settings(max_examples=8, deadline=None)
@given(share=st.booleans(), buckets=st.sampled_from([-1, 4]), conv=st.sampled_from([0, 3]), legacy=st.booleans(),
       pos_att_type=st.sampled_from([["c2p"], ["p2c"], ["c2p", "p2c"]]), seed=st.integers(0, 2 ** 16))
def test_masked_lm_loss_gradient_matches_finite_differences(share, buckets, conv, legacy, pos_att_type, seed):
    """Every parameter in float64, weights far from init, a padded row: log buckets, shared keys, the conv layer."""
    config = DebertaV2Config(vocab_size=5, hidden_size=4, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=3, max_position_embeddings=6, hidden_dropout_prob=0.0,
                             attention_probs_dropout_prob=0.0, relative_attention=True, position_buckets=buckets,
                             max_relative_positions=5, pos_att_type=pos_att_type, share_att_key=share,
                             norm_rel_ebd="layer_norm", conv_kernel_size=conv, position_biased_input=False,
                             legacy=legacy, layer_norm_eps=1e-5, pad_token_id=None)
    rng = np.random.default_rng(seed)
    model = DebertaV2ForMaskedLM(config).to(tt.float64)
    params = list(model.parameters())
    for param in params:
        param.data = rng.normal(0, 0.5, param.shape)
    ids = rng.integers(0, 5, size=(2, 6))
    mask = np.ones_like(ids)
    mask[1, 4:] = 0
    labels = np.where(rng.random(ids.shape) < 0.5, ids, -100)
    labels[:, 1] = ids[:, 1]
    fast = sum(p.numel() for p in params) > 200
    assert tt.gradcheck(lambda *_: model.loss(model(ids, None, mask), labels), params, fast=fast)


# ---- the trainers' --model deberta-v2 ----------------------------------------------------------------------------
SMALL = ["--num-hidden-layers", "1", "--num-attention-heads", "2", "--hidden-size", "16", "--intermediate-size", "32",
         "--no-progress"]


def test_train_mlm_trains_deberta_v2_and_writes_a_checkpoint_it_loads(tmp_path):
    from train import mlm
    rng = np.random.default_rng(0)
    words = ["to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis", "nobler", "in", "mind"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words, rng.integers(3, 9))) for _ in range(300)))
    out = tmp_path / "run"
    assert mlm.main(["--model", "deberta-v2", "--data", str(corpus), "--out", str(out), "--seq-length", "24",
                     "--batch-size", "8", "--vocab-size", "70", "--eval-iters", "2", "--warmup-iters", "2",
                     "--eval-batches", "2", "--max-iters", "2", "--eval-interval", "2", *SMALL]) == 0
    config = json.loads((out / "hf" / "config.json").read_text())
    assert config["model_type"] == "deberta-v2" and config["share_att_key"] and config["position_buckets"] == 32
    model = DebertaV2ForMaskedLM.from_pretrained(out / "hf").eval()
    with tt.no_grad():
        assert model(np.array([[2, 3, 4, 5]])).shape == (1, 4, config["vocab_size"])


def test_train_finetune_trains_deberta_v2(tmp_path):
    from train import finetune
    out = tmp_path / "ft"
    assert finetune.main(["--out", str(out), "--model", "deberta-v2", "--max-iters", "2", "--eval-interval", "2",
                          "--batch-size", "8", "--eval-iters", "1", *SMALL]) == 0
    config = json.loads((out / "hf" / "config.json").read_text())
    assert config["architectures"] == ["DebertaV2ForSequenceClassification"] and config["model_type"] == "deberta-v2"
    DebertaV2ForSequenceClassification.from_pretrained(out / "hf")
