"""Fine-tuning BERT, ALBERT and DeBERTa end to end on generated data: `python -m train.finetune`."""
import json
import signal

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.io as tio
from models.bert import BertConfig, BertForPreTraining
from models.classification import CLASSIFIERS
from models.tokenizers.wordpiece import WordPieceTokenizer
from train import finetune
from train.loop import Trainer

TINY = ["--hidden-size", "16", "--num-hidden-layers", "1", "--num-attention-heads", "2", "--intermediate-size", "32",
        "--eval-iters", "1", "--no-progress"]


def run_cli(out, *flags):
    return finetune.main(["--out", str(out), *flags])


def read_metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory):
    """One honest short run of the default BERT preset on the built-in task (shared by the tests below)."""
    out = tmp_path_factory.mktemp("bert")
    assert run_cli(out, "--model", "bert", "--max-iters", "200", "--eval-interval", "100", "--no-progress") == 0
    return out


def test_a_short_run_on_the_built_in_task_is_far_above_chance(bert_run):
    scores = json.loads((bert_run / "scores.json").read_text())
    assert scores["labels"] == ["negative", "positive"] and scores["val_rows"] == 240
    assert scores["val_accuracy"] > 0.8  # chance is 0.5; ignoring the negation gives about 0.5 too
    losses = [r["loss"] for r in read_metrics(bert_run) if "loss" in r]
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.2


def test_the_hf_directory_reloads_with_the_same_held_out_accuracy(bert_run):
    model = CLASSIFIERS["bert"][1].from_pretrained(bert_run / "hf")
    tokenizer = WordPieceTokenizer.from_pretrained(bert_run / "hf")
    assert model.config.id2label == {"0": "negative", "1": "positive"} and model.config.num_labels == 2
    rows = finetune.read_tsv(bert_run / "data.tsv")
    val = finetune.split_examples(rows, 0.2, 1337)["val"]
    arrays = finetune.encode(tokenizer, val, ["negative", "positive"], 64)
    scores = json.loads((bert_run / "scores.json").read_text())
    assert finetune.accuracy(model, arrays) == pytest.approx(scores["val_accuracy"])


def test_the_example_task_needs_the_negation():
    rows = finetune.example_task(200)
    negated = [r for r in rows if " not " in r.text or " never " in r.text]
    assert 60 < len(negated) < 140
    assert finetune.example_task(5) == finetune.example_task(5)  # deterministic
    flipped = [r for r in negated if "good" in r.text.split()]
    assert flipped and all(r.label == "negative" for r in flipped)


@pytest.fixture
def pairs_file(tmp_path):
    """Sentence pairs: is B about the same subject as A?"""
    rng = np.random.default_rng(0)
    subjects = ["cats", "dogs", "birds", "fish"]
    lines = []
    for _ in range(80):
        a, b = rng.choice(subjects), rng.choice(subjects)
        lines.append(f"i like {a}\t{b} are nice\t{'same' if a == b else 'other'}")
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_sentence_pairs_get_token_types_and_train(pairs_file, tmp_path, capsys):
    examples = finetune.read_tsv(pairs_file)
    assert examples[0].text.startswith("i like ") and examples[0].text_pair.endswith(" are nice")
    tokenizer = WordPieceTokenizer(finetune.build_vocab(examples))
    arrays = finetune.encode(tokenizer, examples, ["other", "same"], 32)
    assert arrays["token_type_ids"].max() == 1 and (arrays["token_type_ids"][0] == 1).sum() == 4  # "X are nice [SEP]"
    out = tmp_path / "pairs"
    assert run_cli(out, "--data", str(pairs_file), "--model", "albert", "--embedding-size", "8", "--max-iters", "3",
                   "--eval-interval", "3", *TINY) == 0
    assert "sentence pairs" in capsys.readouterr().out
    assert json.loads((out / "scores.json").read_text())["val_rows"] == 16


def save_pretrained_bert(directory, tokenizer):
    tt.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    pretrained = BertForPreTraining(config)
    pretrained.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return pretrained


def test_from_a_pretraining_checkpoint_loads_the_encoder_and_adds_a_fresh_head(tmp_path):
    tokenizer = WordPieceTokenizer(finetune.build_vocab(finetune.example_task()))
    pretrained = save_pretrained_bert(tmp_path / "pre", tokenizer)
    model = finetune.load_classifier("bert", tmp_path / "pre", ["a", "b", "c"], {"hidden_dropout_prob": 0.0})
    source = pretrained.state_dict()
    for name, value in model.state_dict().items():
        if name.startswith("bert."):
            np.testing.assert_array_equal(value.numpy(), source[name].numpy())
    assert model.classifier.weight.shape == (3, 16) and model.config.hidden_dropout_prob == 0.0
    out = tmp_path / "ft"
    assert run_cli(out, "--from", str(tmp_path / "pre"), "--max-iters", "2", "--eval-interval", "2",
                   "--eval-iters", "1", "--no-progress") == 0
    assert WordPieceTokenizer.from_pretrained(out / "hf").vocab_size == tokenizer.vocab_size
    assert json.loads((out / "hf" / "config.json").read_text())["architectures"] == ["BertForSequenceClassification"]


def test_from_with_a_mismatched_model_is_a_clear_error(tmp_path, capsys):
    tokenizer = WordPieceTokenizer(finetune.build_vocab(finetune.example_task(50)))
    save_pretrained_bert(tmp_path / "pre", tokenizer)
    assert run_cli(tmp_path / "ft", "--model", "albert", "--from", str(tmp_path / "pre")) == 2
    assert "does not match" in capsys.readouterr().err


def test_resume_after_ctrl_c_reproduces_the_uninterrupted_run(tmp_path, monkeypatch):
    flags = ["--model", "deberta", "--max-iters", "4", "--eval-interval", "2", "--batch-size", "8", "--sift", *TINY]
    assert run_cli(tmp_path / "straight", *flags) == 0
    original_step = Trainer._train_step

    def step_then_interrupt(self, bar):
        original_step(self, bar)
        if self.iteration == 1:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(Trainer, "_train_step", step_then_interrupt)
    assert run_cli(tmp_path / "resumed", *flags) == 130
    monkeypatch.setattr(Trainer, "_train_step", original_step)
    assert run_cli(tmp_path / "resumed", "--resume", "--no-progress") == 0
    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "resumed")
    assert [r["loss"] for r in straight if "loss" in r] == [r["loss"] for r in resumed if "loss" in r]
    final_a = tio.load_checkpoint(tmp_path / "straight" / "checkpoint").model
    final_b = tio.load_checkpoint(tmp_path / "resumed" / "checkpoint").model
    for name in final_a:
        np.testing.assert_array_equal(final_a[name].numpy(), final_b[name].numpy())


@pytest.mark.parametrize("content, message", [
    ("good movie\tpositive\nbad movie\n", "line 2"),
    ("good movie\tpositive\nbad\tmovie\tnegative\n", "line 2"),
    ("a\tx\n\n\tpositive\n", "line 3"),
    ("a\tx\nb\tx\nc\tx\n", "only the label"),
])
def test_bad_tsv_rows_give_a_clear_error_naming_the_line(tmp_path, capsys, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content, encoding="utf-8")
    assert run_cli(tmp_path / "run", "--data", str(path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err


def test_write_example_writes_the_built_in_task(tmp_path):
    assert finetune.main(["--write-example", str(tmp_path / "task.tsv")]) == 0
    rows = finetune.read_tsv(tmp_path / "task.tsv")
    assert rows == finetune.example_task()
