"""The main job end to end on generated text: `python -m train.gpt_char` and `python -m train.sample`."""
import importlib.util
import json
import signal

import numpy as np
import pytest

import tinytensor.io as tio
from train import gpt_char, sample
from train.loop import Trainer

SMALL_MODEL = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4",
               "--eval-iters", "2", "--warmup-iters", "2", "--no-progress", "--sample-tokens", "30"]


@pytest.fixture
def text_file(tmp_path):
    rng = np.random.default_rng(0)
    words = ["to", "be", "or", "not", "that", "is", "the", "question", "\n"]
    path = tmp_path / "corpus.txt"
    path.write_text(" ".join(rng.choice(words, 3000)), encoding="utf-8")
    return path


def run_cli(text_file, out, *flags):
    return gpt_char.main(["--data", str(text_file), "--out", str(out), *SMALL_MODEL, *flags])


def read_metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_short_run_writes_metrics_a_checkpoint_and_samples(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(text_file, out, "--max-iters", "4", "--eval-interval", "2") == 0
    records = read_metrics(out)
    assert [r["iter"] for r in records if "loss" in r] == [1, 2, 3, 4]
    assert [r["iter"] for r in records if "val_loss" in r] == [2, 4]
    assert tio.load_checkpoint(out / "checkpoint").step == 4
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "loss.png").read_bytes().startswith(b"\x89PNG")
    printed = capsys.readouterr().out
    sample_text = printed.split("--- sample 1 ---\n", 1)[1]
    assert len(sample_text.rstrip("\n")) >= 30 and set(sample_text) <= set(text_file.read_text()) | {"\n"}


def test_training_lowers_the_loss(text_file, tmp_path):
    out = tmp_path / "run"
    assert run_cli(text_file, out, "--max-iters", "40", "--eval-interval", "40", "--lr", "3e-3") == 0
    losses = [r["loss"] for r in read_metrics(out) if "loss" in r]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5


def test_resume_after_ctrl_c_reproduces_the_uninterrupted_run(text_file, tmp_path, monkeypatch):
    flags = ["--max-iters", "6", "--eval-interval", "3", "--dropout", "0.1"]
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
    assert gpt_char.main(["--out", str(tmp_path / "resumed"), "--data", str(text_file), "--resume",
                          "--no-progress", "--sample-tokens", "5"]) == 0

    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "resumed")
    assert [r["loss"] for r in straight if "loss" in r] == [r["loss"] for r in resumed if "loss" in r]
    assert [r["val_loss"] for r in straight if "val_loss" in r] == [r["val_loss"] for r in resumed if "val_loss" in r]
    final_a = tio.load_checkpoint(tmp_path / "straight" / "checkpoint").model
    final_b = tio.load_checkpoint(tmp_path / "resumed" / "checkpoint").model
    for name in final_a:
        np.testing.assert_array_equal(final_a[name].numpy(), final_b[name].numpy())


def test_bigram_baseline_trains_from_the_same_command(text_file, tmp_path):
    out = tmp_path / "bigram"
    assert gpt_char.main(["--model", "bigram", "--data", str(text_file), "--out", str(out), "--max-iters", "30",
                          "--eval-interval", "30", "--eval-iters", "2", "--no-progress", "--sample-tokens", "5"]) == 0
    losses = [r["loss"] for r in read_metrics(out) if "loss" in r]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("content, message", [(b"", "empty"), (b"ab\xffcd", "offset 2")])
def test_bad_data_files_give_a_clear_error(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    assert gpt_char.main(["--data", str(bad), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert message in error and str(bad) in error


def test_a_corrupted_checkpoint_is_reported_and_left_as_it_was(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(text_file, out, "--max-iters", "2", "--eval-interval", "2") == 0
    tensors_file = next((out / "checkpoint").glob("*.safetensors"))
    corrupted = bytearray(tensors_file.read_bytes())
    corrupted[len(corrupted) // 2] ^= 0xFF
    tensors_file.write_bytes(bytes(corrupted))
    files_before = {p.name: p.read_bytes() for p in (out / "checkpoint").iterdir()}

    assert gpt_char.main(["--out", str(out), "--data", str(text_file), "--resume", "--no-progress"]) == 2
    assert tensors_file.name in capsys.readouterr().err
    assert sample.main(["--ckpt", str(out)]) == 2
    assert tensors_file.name in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (out / "checkpoint").iterdir()} == files_before


def test_resume_without_a_checkpoint_says_so(text_file, tmp_path, capsys):
    assert gpt_char.main(["--out", str(tmp_path / "none"), "--data", str(text_file), "--resume"]) == 2
    assert "checkpoint" in capsys.readouterr().err


def test_sample_command_continues_a_prompt(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(text_file, out, "--max-iters", "2", "--eval-interval", "2") == 0
    capsys.readouterr()
    assert sample.main(["--ckpt", str(out), "--prompt", "to be", "--max-new-tokens", "12", "--top-k", "3",
                        "--temperature", "0.8"]) == 0
    printed = capsys.readouterr().out.split("--- sample 1 ---\n", 1)[1]
    assert printed.startswith("to be") and len(printed.rstrip("\n")) >= 17


def test_asking_for_cuda_without_a_gpu_is_a_clear_error(text_file, tmp_path, capsys, monkeypatch):
    from tinytensor import backend

    monkeypatch.setattr(backend, "cuda_is_available", lambda: False)
    monkeypatch.setattr(backend, "cupy_module", lambda: object())  # CuPy "installed", but no device visible
    assert run_cli(text_file, tmp_path / "run", "--device", "cuda", "--max-iters", "1") == 2
    assert "--device cpu" in capsys.readouterr().err
