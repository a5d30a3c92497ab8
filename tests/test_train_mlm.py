"""BERT / ALBERT / DeBERTa masked-LM pre-training end to end on generated text: `python -m train.mlm`."""
import importlib
import json
import signal

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.io as tio
from train import mlm
from train.cli import CommandError
from train.loop import Trainer
from train.wordpiece_trainer import train_tokenizer

WORDS = ["to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis", "nobler", "in", "mind"]
COMMON = ["--seq-length", "24", "--batch-size", "8", "--vocab-size", "70", "--eval-iters", "2", "--warmup-iters", "2",
          "--eval-batches", "2", "--no-progress"]
SMALL = ["--num-hidden-layers", "1", "--num-attention-heads", "2", "--hidden-size", "16", "--intermediate-size", "32"]
MODEL_FLAGS = {"bert": SMALL, "albert": [*SMALL, "--embedding-size", "8"], "deberta": SMALL}


def _deberta_importable() -> bool:
    try:
        mlm.TASK.model_classes("deberta")
    except CommandError:
        return False
    return True


DEBERTA_READY = _deberta_importable()


def generated_text(lines: int = 300, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return "\n".join(" ".join(rng.choice(WORDS, rng.integers(3, 9))) for _ in range(lines))


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(generated_text(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(generated_text(), 70)


def run_cli(text_file, out, *flags, model="bert"):
    return mlm.main(["--model", model, "--data", str(text_file), "--out", str(out), *COMMON, *MODEL_FLAGS[model],
                     *flags])


def read_metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# ---- masking ------------------------------------------------------------------------------------------------------
def masked_sample(tokenizer, rows=2000, seed=0):
    rng = np.random.default_rng(seed)
    segments = mlm.encode_segments(tokenizer, generated_text(400, seed=1).split("\n"), 24)
    pairs, _ = mlm.make_pairs(segments, rows, "nsp", rng)
    input_ids, _, attention_mask = mlm.pair_arrays(pairs, 24, tokenizer)
    spec = mlm.MaskingSpec.of(tokenizer)
    masked, labels = mlm.mask_tokens(input_ids, spec, rng)
    return input_ids, attention_mask, masked, labels, spec


def test_masking_chooses_15_percent_of_ordinary_tokens_and_splits_them_80_10_10(tokenizer):
    input_ids, _, masked, labels, spec = masked_sample(tokenizer)
    ordinary = ~np.isin(input_ids, spec.special_ids)
    chosen = labels != mlm.IGNORE_INDEX
    np.testing.assert_array_equal(chosen.sum(axis=1), np.maximum(1, np.rint(0.15 * ordinary.sum(axis=1))))
    assert abs(chosen.sum() / ordinary.sum() - 0.15) < 0.01
    became_mask = (masked[chosen] == spec.mask_id).mean()
    unchanged = (masked[chosen] == input_ids[chosen]).mean()
    random_other = 1 - became_mask - unchanged
    assert abs(became_mask - 0.8) < 0.015 and abs(unchanged - 0.1) < 0.015 and abs(random_other - 0.1) < 0.015
    assert not np.isin(masked[chosen & (masked != spec.mask_id)], spec.special_ids).any()


def test_specials_and_pads_are_never_chosen_and_labels_hold_the_original_ids(tokenizer):
    input_ids, attention_mask, masked, labels, spec = masked_sample(tokenizer, rows=300)
    special = np.isin(input_ids, spec.special_ids)
    assert (attention_mask == 0).any() and special.any()
    assert (labels[special] == mlm.IGNORE_INDEX).all() and (masked[special] == input_ids[special]).all()
    chosen = labels != mlm.IGNORE_INDEX
    np.testing.assert_array_equal(labels[chosen], input_ids[chosen])
    assert (masked[~chosen] == input_ids[~chosen]).all()
    assert set(np.unique(labels[~chosen])) == {-100}


def test_masking_is_a_function_of_the_generator_state(tokenizer):
    first, second = masked_sample(tokenizer, rows=50, seed=3), masked_sample(tokenizer, rows=50, seed=3)
    for a, b in zip(first[:4], second[:4]):
        np.testing.assert_array_equal(a, b)


# ---- sentence pairs -----------------------------------------------------------------------------------------------
SEGMENTS = [np.asarray([index]) for index in range(100)]  # segment i holds the single id i: order is visible


def test_nsp_pairs_are_the_true_next_segment_for_label_0_and_another_segment_for_label_1():
    pairs, labels = mlm.make_pairs(SEGMENTS, 4000, "nsp", np.random.default_rng(0))
    follows = np.array([second[0] == first[0] + 1 for first, second in pairs])
    np.testing.assert_array_equal(follows, labels == 0)
    assert abs(labels.mean() - 0.5) < 0.03


def test_sop_pairs_are_in_order_for_label_0_and_swapped_for_label_1():
    pairs, labels = mlm.make_pairs(SEGMENTS, 4000, "sop", np.random.default_rng(0))
    in_order = np.array([second[0] == first[0] + 1 for first, second in pairs])
    swapped = np.array([first[0] == second[0] + 1 for first, second in pairs])
    np.testing.assert_array_equal(in_order, labels == 0)
    np.testing.assert_array_equal(swapped, labels == 1)
    assert abs(labels.mean() - 0.5) < 0.03


def test_pair_arrays_lay_out_cls_a_sep_b_sep_with_token_types_and_padding(tokenizer):
    first, second = np.asarray([10, 11]), np.asarray([12, 13, 14])
    input_ids, token_types, attention = mlm.pair_arrays([(first, second)], 10, tokenizer)
    cls_id, sep_id, pad_id = (tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]"))
    assert input_ids[0].tolist() == [cls_id, 10, 11, sep_id, 12, 13, 14, sep_id, pad_id, pad_id]
    assert token_types[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    assert attention[0].tolist() == [1] * 8 + [0, 0]


def test_segments_pack_consecutive_lines_and_fit_two_to_an_example(tokenizer):
    segments = mlm.pack_segments([[1, 2], [3], [4, 5, 6], [7] * 9], max_tokens=4)
    assert [s.tolist() for s in segments] == [[1, 2, 3], [4, 5, 6], [7] * 4, [7] * 4, [7]]
    lines = generated_text(50).split("\n")
    assert all(len(s) <= (24 - 3) // 2 for s in mlm.encode_segments(tokenizer, lines, 24))


# ---- the command --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model_name, model_class", [("bert", "BertForPreTraining"),
                                                     ("albert", "AlbertForPreTraining")])
def test_a_short_run_writes_metrics_scores_a_checkpoint_and_an_hf_directory_with_the_same_outputs(
        text_file, tmp_path, capsys, model_name, model_class):
    out = tmp_path / "run"
    assert run_cli(text_file, out, "--max-iters", "4", "--eval-interval", "2", model=model_name) == 0
    assert [r["iter"] for r in read_metrics(out) if "val_loss" in r] == [2, 4]
    checkpoint = tio.load_checkpoint(out / "checkpoint")
    assert checkpoint.step == 4
    scores = json.loads((out / "scores.json").read_text())
    assert 0 <= scores["mlm_accuracy"] <= 1 and 0 <= scores["unigram_baseline_accuracy"] <= 1
    assert f"{mlm.PAIR_TASKS[model_name]}_accuracy" in scores
    assert "masked-LM accuracy" in capsys.readouterr().out

    trained = mlm.TASK.build_model(model_name, checkpoint.config["model"])
    trained.load_state_dict(checkpoint.model)
    loaded = getattr(importlib.import_module(f"models.{model_name}"), model_class).from_pretrained(out / "hf")
    tokenizer = mlm.WordPieceTokenizer.from_pretrained(out / "hf")
    batch = tokenizer(["to be or not", "that is the question"], ["whether tis", "nobler in mind"], padding=True)
    with tt.no_grad():
        expected = trained.eval()(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        got = loaded.eval()(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_training_lowers_the_masked_lm_loss(text_file, tmp_path):
    """The logged loss is MLM + NSP; on words drawn independently NSP cannot be learned (it stays near ln 2), so
    the fall is the masked LM's."""
    out = tmp_path / "run"
    assert run_cli(text_file, out, "--max-iters", "40", "--eval-interval", "40", "--lr", "3e-3") == 0
    losses = [r["loss"] for r in read_metrics(out) if "loss" in r]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5


def test_resume_after_ctrl_c_reproduces_the_uninterrupted_run(text_file, tmp_path, monkeypatch):
    flags = ["--max-iters", "6", "--eval-interval", "3", "--hidden-dropout-prob", "0.1"]
    assert run_cli(text_file, tmp_path / "straight", *flags) == 0

    original_step = Trainer._train_step

    def step_then_interrupt(self, bar):
        original_step(self, bar)
        if self.iteration == 2:
            signal.raise_signal(signal.SIGINT)  # the handler lets this step finish, then the loop stops

    monkeypatch.setattr(Trainer, "_train_step", step_then_interrupt)
    assert run_cli(text_file, tmp_path / "resumed", *flags) == 130
    assert tio.load_checkpoint(tmp_path / "resumed" / "checkpoint").step == 2
    monkeypatch.setattr(Trainer, "_train_step", original_step)
    assert mlm.main(["--out", str(tmp_path / "resumed"), "--data", str(text_file), "--resume", "--no-progress",
                     "--eval-batches", "2"]) == 0

    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "resumed")
    assert [r["loss"] for r in straight if "loss" in r] == [r["loss"] for r in resumed if "loss" in r]
    assert [r["val_loss"] for r in straight if "val_loss" in r] == [r["val_loss"] for r in resumed if "val_loss" in r]
    final_a = tio.load_checkpoint(tmp_path / "straight" / "checkpoint").model
    final_b = tio.load_checkpoint(tmp_path / "resumed" / "checkpoint").model
    for name in final_a:
        np.testing.assert_array_equal(final_a[name].numpy(), final_b[name].numpy())
    scores = [json.loads((tmp_path / run / "scores.json").read_text()) for run in ("straight", "resumed")]
    assert scores[0]["mlm_accuracy"] == scores[1]["mlm_accuracy"]


def test_a_given_vocabulary_is_used_instead_of_learning_one(text_file, tmp_path, tokenizer):
    tokenizer.save_pretrained(tmp_path / "vocab")
    assert run_cli(text_file, tmp_path / "run", "--tokenizer", str(tmp_path / "vocab"), "--max-iters", "1",
                   "--eval-interval", "1") == 0
    assert (tmp_path / "run" / "hf" / "vocab.txt").read_text() == (tmp_path / "vocab" / "vocab.txt").read_text()


@pytest.mark.parametrize("content, message", [(b"", "empty"), (b"ab\xffcd", "offset 2"), (b"one line", "lines")])
def test_bad_data_files_give_a_clear_error(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    assert mlm.main(["--data", str(bad), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_data_file_and_a_missing_checkpoint_give_exit_code_2(tmp_path, text_file, capsys):
    assert mlm.main(["--data", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "run")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert mlm.main(["--data", str(text_file), "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "checkpoint" in capsys.readouterr().err


@pytest.mark.skipif(DEBERTA_READY, reason="models/deberta.py is importable: the run test below covers it")
def test_deberta_before_its_model_exists_is_a_clear_error(text_file, tmp_path, capsys):
    assert mlm.main(["--model", "deberta", "--data", str(text_file), "--out", str(tmp_path / "run")]) == 2
    assert "models.deberta" in capsys.readouterr().err


@pytest.mark.skipif(not DEBERTA_READY, reason="models/deberta.py (DebertaForMaskedLM) is not written yet")
def test_deberta_trains_with_the_masked_lm_loss_only(text_file, tmp_path):
    out = tmp_path / "run"
    assert run_cli(text_file, out, "--max-iters", "2", "--eval-interval", "2", model="deberta") == 0
    scores = json.loads((out / "scores.json").read_text())
    assert "mlm_accuracy" in scores and "nsp_accuracy" not in scores and "sop_accuracy" not in scores
    checkpoint = tio.load_checkpoint(out / "checkpoint")
    trained = mlm.TASK.build_model("deberta", checkpoint.config["model"])
    trained.load_state_dict(checkpoint.model)
    loaded = importlib.import_module("models.deberta").DebertaForMaskedLM.from_pretrained(out / "hf")
    ids = mlm.WordPieceTokenizer.from_pretrained(out / "hf")(["to be or not", "that is"], padding=True)
    with tt.no_grad():
        expected = trained.eval()(ids["input_ids"], attention_mask=ids["attention_mask"]).numpy()
        np.testing.assert_array_equal(loaded.eval()(ids["input_ids"], attention_mask=ids["attention_mask"]).numpy(),
                                      expected)

