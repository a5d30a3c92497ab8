"""SiFT (train/sift.py): DeBERTa's scale-invariant adversarial fine-tuning, on tiny classifiers."""
import json

import numpy as np
import pytest

import tinytensor as tt
from models.classification import CLASSIFIERS
from train import finetune, sift

SIZES = dict(vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
             max_position_embeddings=16, id2label={0: "a", 1: "b", 2: "c"},
             initializer_range=0.3)  # larger than HF's 0.02, so an untrained model's prediction depends on its input
EXTRA = {"bert": {}, "albert": dict(embedding_size=8),
         "deberta": dict(relative_attention=True, pos_att_type=["c2p", "p2c"], type_vocab_size=2)}
IDS = np.array([[2, 5, 6, 7, 3, 0], [2, 8, 9, 3, 10, 3], [2, 11, 12, 13, 14, 3]])
TYPES = np.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0]])
MASK = (IDS != 0).astype(np.int64)


def tiny_classifier(name, seed=0):
    tt.manual_seed(seed)
    config_class, model_class = CLASSIFIERS[name]
    return model_class(config_class(**SIZES, **EXTRA[name])).to(tt.float64)  # KL differences far above rounding


def embedded_and_logits(model):
    embedded = model.embed(IDS, TYPES, MASK)
    return embedded, model.forward_embeddings(embedded, MASK)


@pytest.mark.parametrize("name", ["deberta", "bert", "albert"])
def test_the_ascent_step_increases_the_symmetric_kl_over_the_random_start(name):
    model = tiny_classifier(name).eval()  # no dropout: both losses see the same network
    embedded, logits = embedded_and_logits(model)
    config = sift.SiftConfig()
    tt.manual_seed(1)
    start = sift.random_start(embedded, config.noise)
    moved = sift.ascend(model, embedded, MASK, logits, start, config.step_size)
    with tt.no_grad():
        before = sift.perturbed_kl(model, embedded, MASK, logits, start).item()
        after = sift.perturbed_kl(model, embedded, MASK, logits, moved).item()
    assert 0 < before < after
    step = (moved - start).numpy()
    largest_entry = np.abs(step).max(axis=-1)[MASK == 1]  # each real token moves by ε in its largest entry
    assert np.all(largest_entry <= config.step_size) and np.all(largest_entry > 0.9 * config.step_size)


def test_the_ascent_step_leaves_the_weights_gradients_and_requires_grad_as_they_were():
    model = tiny_classifier("deberta")
    embedded, logits = embedded_and_logits(model)
    model.loss(logits, np.array([0, 1, 2])).backward(retain_graph=True)
    grads = {name: p.grad.numpy().copy() for name, p in model.named_parameters() if p.grad is not None}
    sift.ascend(model, embedded, MASK, logits, sift.random_start(embedded, 1e-2), 1e-4)
    for name, p in model.named_parameters():
        assert p.requires_grad
        if name in grads:
            np.testing.assert_array_equal(p.grad.numpy(), grads[name])


def test_the_perturbation_is_applied_to_the_normalised_embeddings():
    rng = np.random.default_rng(0)
    embedded = tt.tensor((rng.normal(size=(2, 3, 8)) * np.array([[[1.0]], [[100.0]]]) + 5).astype(np.float32))
    delta = tt.tensor(rng.normal(scale=0.01, size=(2, 3, 8)).astype(np.float32))
    normalise = tt.nn.functional.layer_norm
    normalised_then_moved = normalise(embedded, (8,), eps=1e-7) + delta
    # layer norm cannot tell e(δ) from x̂ + δ: the same step in normalised space for a small and a large vector
    np.testing.assert_allclose(normalise(sift.perturb(embedded, delta), (8,), eps=1e-7).numpy(),
                               normalise(normalised_then_moved, (8,), eps=1e-7).numpy(), atol=1e-4)


def test_symmetric_kl_is_zero_for_equal_predictions_and_symmetric():
    p, q = tt.tensor([[1.0, 2.0, 0.5]]), tt.tensor([[0.0, 1.0, 3.0]])
    assert sift.symmetric_kl(p, p).item() == pytest.approx(0.0, abs=1e-7)
    assert sift.symmetric_kl(p, q).item() == pytest.approx(sift.symmetric_kl(q, p).item())
    log_p, log_q = np.log(tt.softmax(p, -1).numpy()), np.log(tt.softmax(q, -1).numpy())
    kl = lambda a, b: (np.exp(a) * (a - b)).sum()  # noqa: E731
    assert sift.symmetric_kl(p, q).item() == pytest.approx(kl(log_p, log_q) + kl(log_q, log_p), rel=1e-5)


def test_in_eval_mode_sift_loss_is_the_task_loss():
    model = tiny_classifier("deberta").eval()
    batch = (IDS, TYPES, MASK, np.array([0, 1, 2]))
    with tt.no_grad():
        assert sift.sift_loss(model, batch, sift.SiftConfig()).item() == pytest.approx(
            finetune.classification_loss(model, batch).item())


def test_in_training_sift_adds_a_positive_adversarial_term():
    model = tiny_classifier("deberta").train()
    batch = (IDS, TYPES, MASK, np.array([0, 1, 2]))
    tt.manual_seed(3)
    with_sift = sift.sift_loss(model, batch, sift.SiftConfig(weight=1.0))
    tt.manual_seed(3)
    without = sift.sift_loss(model, batch, sift.SiftConfig(weight=0.0))
    assert with_sift.item() > without.item()
    with_sift.backward()
    assert all(p.grad is not None for name, p in model.named_parameters() if name.startswith("classifier."))


def test_training_deberta_with_sift_still_converges(tmp_path):
    out = tmp_path / "sift"
    assert finetune.main(["--model", "deberta", "--sift", "--out", str(out), "--no-progress"]) == 0
    losses = [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.2
    assert json.loads((out / "scores.json").read_text())["val_accuracy"] > 0.75
