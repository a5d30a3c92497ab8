"""GPT-2 and LLaMA on your own text end to end, on generated text: `python -m train.lm` and `train.lm_sample`."""
import importlib.util
import json
import signal

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.io as tio
from models.gpt2 import GPT2LMHeadModel
from models.tokenizers import ByteLevelBPETokenizer
from train import lm, lm_sample
from train.sample import load_run
from train.loop import Trainer

COMMON = ["--block-size", "8", "--batch-size", "4", "--eval-iters", "2", "--warmup-iters", "2", "--vocab-size", "300",
          "--no-progress", "--sample-tokens", "5"]
MODEL_FLAGS = {
    "gpt2": ["--n-layer", "1", "--n-head", "2", "--n-embd", "16"],
    "llama": ["--num-hidden-layers", "1", "--num-attention-heads", "2", "--num-key-value-heads", "1",
              "--hidden-size", "16", "--intermediate-size", "32", "--rope-theta", "500000"],
}
LLAMA_MISSING = importlib.util.find_spec("models.llama") is None
MODEL_NAMES = ["gpt2", pytest.param("llama", marks=pytest.mark.skipif(
    LLAMA_MISSING, reason="models/llama.py is not written yet (LlamaForCausalLM)"))]


@pytest.fixture
def text_file(tmp_path):
    rng = np.random.default_rng(0)
    words = ["to", "be", "or", "not", "that", "is", "the", "question", "\n"]
    path = tmp_path / "corpus.txt"
    path.write_text(" ".join(rng.choice(words, 3000)), encoding="utf-8")
    return path


def run_cli(text_file, out, *flags, model="gpt2"):
    return lm.main(["--model", model, "--data", str(text_file), "--out", str(out), *COMMON, *MODEL_FLAGS[model],
                    *flags])


def read_metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def logits_of(model, ids):
    with tt.no_grad():
        return model(ids).numpy()


@pytest.mark.parametrize("model_name", MODEL_NAMES)
def test_a_short_run_writes_metrics_a_checkpoint_and_an_hf_directory_with_the_same_logits(
        text_file, tmp_path, model_name):
    out = tmp_path / "run"
    assert run_cli(text_file, out, "--max-iters", "4", "--eval-interval", "2", model=model_name) == 0
    records = read_metrics(out)
    assert [r["iter"] for r in records if "loss" in r] == [1, 2, 3, 4]
    assert [r["iter"] for r in records if "val_loss" in r] == [2, 4]
    assert tio.load_checkpoint(out / "checkpoint").step == 4
    hf_dir = out / "hf"
    assert {p.name for p in hf_dir.iterdir()} >= {"config.json", "model.safetensors", "vocab.json", "merges.txt"}
    config = json.loads((hf_dir / "config.json").read_text())
    assert config["model_type"] == model_name and config["vocab_size"] <= 300
    if model_name == "llama":  # the flag of an init-only config argument (the legacy top-level rope_theta) works
        assert config["rope_parameters"]["rope_theta"] == 500000.0 and config["num_key_value_heads"] == 1

    trained = load_run(out)[0]
    loaded = lm.TASK.model_classes(model_name)[1].from_pretrained(hf_dir).eval()
    ids = np.asarray([ByteLevelBPETokenizer.from_pretrained(hf_dir).encode("to be or not to be, that is")[:8]])
    np.testing.assert_array_equal(logits_of(loaded, ids), logits_of(trained, ids))


def test_the_hf_directory_loads_as_gpt2_with_the_trained_logits(text_file, tmp_path):
    out = tmp_path / "run"
    assert run_cli(text_file, out, "--max-iters", "3", "--eval-interval", "3") == 0
    trained = load_run(out)[0]
    loaded = GPT2LMHeadModel.from_pretrained(out / "hf").eval()
    ids = np.random.default_rng(1).integers(0, loaded.config.vocab_size, size=(2, 8))
    np.testing.assert_array_equal(logits_of(loaded, ids), logits_of(trained, ids))
    assert loaded.config.n_positions == 8 and loaded.config.n_layer == 1


def test_training_lowers_the_loss(text_file, tmp_path):
    out = tmp_path / "run"
    assert run_cli(text_file, out, "--max-iters", "40", "--eval-interval", "40", "--lr", "3e-3") == 0
    losses = [r["loss"] for r in read_metrics(out) if "loss" in r]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5


def test_resume_after_ctrl_c_reproduces_the_uninterrupted_run(text_file, tmp_path, monkeypatch):
    flags = ["--max-iters", "6", "--eval-interval", "3", "--resid-pdrop", "0.1"]
    assert run_cli(text_file, tmp_path / "straight", *flags) == 0

    original_step = Trainer._train_step

    def step_then_interrupt(self, bar):
        original_step(self, bar)
        if self.iteration == 2:
            signal.raise_signal(signal.SIGINT)  # the handler lets this step finish, then the loop stops

    monkeypatch.setattr(Trainer, "_train_step", step_then_interrupt)
    assert run_cli(text_file, tmp_path / "resumed", *flags) == 130
    assert tio.load_checkpoint(tmp_path / "resumed" / "checkpoint").step == 2
    assert (tmp_path / "resumed" / "hf" / "model.safetensors").is_file()  # sampling works from a stopped run
    monkeypatch.setattr(Trainer, "_train_step", original_step)
    assert lm.main(["--out", str(tmp_path / "resumed"), "--data", str(text_file), "--resume", "--no-progress",
                    "--sample-tokens", "0"]) == 0

    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "resumed")
    assert [r["loss"] for r in straight if "loss" in r] == [r["loss"] for r in resumed if "loss" in r]
    assert [r["val_loss"] for r in straight if "val_loss" in r] == [r["val_loss"] for r in resumed if "val_loss" in r]
    final_a = tio.load_checkpoint(tmp_path / "straight" / "checkpoint").model
    final_b = tio.load_checkpoint(tmp_path / "resumed" / "checkpoint").model
    for name in final_a:
        np.testing.assert_array_equal(final_a[name].numpy(), final_b[name].numpy())


def test_the_learned_tokenizer_is_saved_and_reused(text_file, tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    assert run_cli(text_file, first, "--max-iters", "1", "--eval-interval", "1") == 0
    assert "learning a byte-level BPE" in capsys.readouterr().out
    tokenizer = ByteLevelBPETokenizer.from_pretrained(first / "hf")
    assert 257 < tokenizer.vocab_size <= 300 and len(tokenizer.encode("to be or not")) < len("to be or not")

    assert run_cli(text_file, second, "--max-iters", "1", "--eval-interval", "1", "--tokenizer",
                   str(first / "hf")) == 0
    assert "learning" not in capsys.readouterr().out
    for name in ("vocab.json", "merges.txt"):
        assert (second / "hf" / name).read_bytes() == (first / "hf" / name).read_bytes()


def test_init_from_fine_tunes_a_saved_checkpoint(text_file, tmp_path):
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    assert run_cli(text_file, base, "--max-iters", "30", "--eval-interval", "30", "--lr", "3e-3") == 0
    assert lm.main(["--init-from", str(base / "hf"), "--data", str(text_file), "--out", str(tuned), *COMMON,
                    "--max-iters", "2", "--eval-interval", "2", "--lr", "1e-4"]) == 0
    base_losses = [r["loss"] for r in read_metrics(base) if "loss" in r]
    tuned_losses = [r["loss"] for r in read_metrics(tuned) if "loss" in r]
    assert tuned_losses[0] < base_losses[0] - 0.5  # it starts from the trained weights, not from scratch
    assert json.loads((tuned / "hf" / "config.json").read_text())["n_embd"] == 16


def test_init_from_with_a_config_flag_that_changes_shapes_is_a_clear_error(text_file, tmp_path, capsys):
    base = tmp_path / "base"
    assert run_cli(text_file, base, "--max-iters", "1", "--eval-interval", "1") == 0
    assert lm.main(["--init-from", str(base / "hf"), "--data", str(text_file), "--out", str(tmp_path / "tuned"),
                    "--n-embd", "32", "--no-progress"]) == 2
    assert "--n-embd" in capsys.readouterr().err


def test_sample_command_continues_a_prompt(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(text_file, out, "--max-iters", "2", "--eval-interval", "2") == 0
    capsys.readouterr()
    for ckpt in (out, out / "hf"):  # a run directory or the Hugging Face directory itself
        assert lm_sample.main(["--ckpt", str(ckpt), "--prompt", "to be", "--max-new-tokens", "6", "--top-k", "5",
                               "--top-p", "0.9", "--temperature", "0.8", "--seed", "3"]) == 0
        printed = capsys.readouterr().out.split("--- sample 1 ---\n", 1)[1]
        assert printed.startswith("to be") and len(printed.rstrip("\n")) > len("to be")


def test_sampling_is_seeded(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(text_file, out, "--max-iters", "1", "--eval-interval", "1") == 0
    capsys.readouterr()
    texts = []
    for _ in range(2):
        assert lm_sample.main(["--ckpt", str(out), "--max-new-tokens", "8", "--seed", "7"]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] and "<|endoftext|>" not in texts[0].split("--- sample 1 ---\n")[1][:13]


@pytest.mark.parametrize("content, message", [(b"", "empty"), (b"ab\xffcd", "offset 2"), (None, "does not exist")])
def test_bad_data_files_give_a_clear_error(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.txt"
    if content is not None:
        bad.write_bytes(content)
    assert lm.main(["--data", str(bad), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert message in error and str(bad) in error


def test_text_shorter_than_a_window_is_a_clear_error(tmp_path, capsys):
    short = tmp_path / "short.txt"
    short.write_text("to be or not to be " * 3, encoding="utf-8")
    assert lm.main(["--data", str(short), "--out", str(tmp_path / "run"), "--no-progress", "--vocab-size", "260"]) == 2
    assert "--block-size" in capsys.readouterr().err


def test_an_unavailable_model_is_a_clear_error(text_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(lm.TASK.models, "llama", ("models.no_such_module", "LlamaConfig", "LlamaForCausalLM"))
    assert lm.main(["--model", "llama", "--data", str(text_file), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "--model llama" in error and "models.no_such_module" in error


def test_resume_without_a_checkpoint_and_sampling_without_a_model_say_so(text_file, tmp_path, capsys):
    assert lm.main(["--out", str(tmp_path / "none"), "--data", str(text_file), "--resume"]) == 2
    assert "checkpoint" in capsys.readouterr().err
    assert lm_sample.main(["--ckpt", str(tmp_path / "none")]) == 2
    assert "config.json" in capsys.readouterr().err
