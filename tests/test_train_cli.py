"""The command layer (train/cli.py, train/settings.py, train/rundir.py): bad flags, run directories, non-finite loss.

Every trainer and both samplers go through the same `main`, so these tests speak of all of them: a value outside
a flag's domain is one line naming the flag and exit status 2 with nothing written; a fresh run never replaces a
run unless told to; a killed run always leaves a directory that loads and samples; two runs never share --out; a
NaN stops the run with the last good checkpoint kept.
"""
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytensor.io as tio
from train import finetune, gpt_char, lm, lm_sample, mlm, sample, translate, wordpiece_trainer
from train.cli import settings_flags
from train.sample import SampleSettings, load_run
from train.settings import ANY

REPO = Path(__file__).resolve().parents[1]
TASKS = [gpt_char.TASK, lm.TASK, mlm.TASK, finetune.TASK, translate.TASK]
SMALL = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4",
         "--eval-iters", "2", "--warmup-iters", "2", "--no-progress", "--sample-tokens", "20"]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    words = ["to", "be", "or", "not", "that", "is", "the", "question", "\n"]
    path = tmp_path_factory.mktemp("data") / "corpus.txt"
    path.write_text(" ".join(rng.choice(words, 3000)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, text_file):
    """A complete gpt_char run, never modified by the tests that use it (they copy it or only read it)."""
    out = tmp_path_factory.mktemp("runs") / "done"
    assert gpt_char.main(["--data", str(text_file), "--out", str(out), *SMALL, "--max-iters", "4",
                          "--eval-interval", "2"]) == 0
    return out


def snapshot(directory: Path) -> dict:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def call(main, argv: list[str]) -> tuple[int, str]:
    """(exit status, stderr) of a command's main, whether it returns or exits (argparse)."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(argv)
        except SystemExit as exit_:
            status = exit_.code
    return status, stderr.getvalue()


def strict_json_lines(path: Path) -> list[dict]:
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")
    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


# ---- every constrained flag of every command -------------------------------------------------------------------------
def invalid_texts(flag) -> st.SearchStrategy[str]:
    """Command-line texts that the flag must refuse: not of its type, or outside its domain."""
    domain = flag.domain
    if flag.kind is bool:
        words = {"1", "0", "true", "false", "yes", "no"}
        return st.text(max_size=8).filter(lambda text: text.lower() not in words)
    if flag.kind is int:
        outside = st.integers(-10**6, 10**6).filter(lambda value: not domain.accepts(value)).map(str)
        return st.one_of(st.sampled_from(["1.9", "two", "", "1e3", "nan", "0x10"]), outside)
    if flag.kind is float:
        outside = st.floats(-1e6, 1e6, allow_nan=False).filter(lambda value: not domain.accepts(value)).map(repr)
        return st.one_of(st.sampled_from(["nan", "inf", "-inf", "abc", "", "1,5"]), outside)
    return st.text(max_size=12).filter(lambda text: not domain.accepts(text))


def constrained_flags():
    """(command main, extra argv, flag) once per flag name of each command, samplers included."""
    cases = {}
    for task in TASKS:
        for model in task.models:
            choose_model = ["--model", model] if len(task.models) > 1 else []
            for flag in task.flags(model).values():
                if flag.domain is not ANY:
                    cases.setdefault((task.command, flag.name), (task.main, choose_model, flag))
    for command, main in (("sample", sample.main), ("lm_sample", lm_sample.main)):
        for flag in settings_flags(SampleSettings, "sample").values():
            if flag.domain is not ANY:
                cases[(command, flag.name)] = (main, None, flag)
    for flag in settings_flags(wordpiece_trainer.WordPieceSettings, "task").values():
        if flag.domain is not ANY:
            cases[("wordpiece_trainer", flag.name)] = (wordpiece_trainer.main, [], flag)
    return [pytest.param(*case, id=f"{command}--{name}") for (command, name), case in cases.items()]


@pytest.mark.parametrize("main, choose_model, flag", constrained_flags())
@settings(max_examples=6)
@given(data=st.data())
def test_a_value_outside_a_flags_domain_is_one_line_naming_the_flag_and_writes_nothing(finished_run, main,
                                                                                       choose_model, flag, data):
    text = data.draw(invalid_texts(flag), label="value")
    before = snapshot(finished_run)
    target = ["--ckpt", str(finished_run)] if choose_model is None else ["--out", str(finished_run), *choose_model]
    option = "--" + flag.name.replace("_", "-")
    status, error = call(main, [*target, f"{option}={text}"])
    assert status == 2
    assert error.count("\n") == 1 and error.startswith("error: ") and option in error
    assert "Traceback" not in error
    assert snapshot(finished_run) == before


@pytest.mark.parametrize("flag", ["--tie-word-embeddings", "--lr", "--n-layer"])
def test_a_double_dash_given_as_a_flags_value_is_refused_naming_the_flag(finished_run, flag):
    """Python 3.11's argparse would read `--flag=--` as a bare `--flag` (True for a bool)."""
    before = snapshot(finished_run)
    status, error = call(lm.main, ["--out", str(finished_run), f"{flag}=--"])
    assert status == 2 and error == f"error: argument {flag}: '--' is not a value (see --help)\n"
    assert snapshot(finished_run) == before


def test_every_flag_of_every_command_has_a_domain_and_help_shows_it():
    for task in TASKS:
        for model in task.models:
            flags = task.flags(model)
            assert all(flag.domain is not None for flag in flags.values()), task.command
            help_text = task.build_parser(model).format_help()
            assert "may change on --resume" in help_text and "--max-iters" in help_text.split("On --resume")[-1]


@pytest.mark.parametrize("argv, names", [
    (["--eval-interval", "0"], "--eval-interval"), (["--n-head", "0"], "--n-head"), (["--lr", "-1"], "--lr"),
    (["--lr", "nan"], "--lr"), (["--min-lr", "-5"], "--min-lr"), (["--dropout", "1.5"], "--dropout"),
    (["--block-size", "0"], "--block-size"), (["--grad-accum", "0"], "--grad-accum"),
    (["--activation", "sigmoidx"], "--activation"), (["--min-lr", "0.5", "--lr", "0.1"], "--min-lr"),
    (["--n-embd", "15", "--n-head", "2"], "n_embd"), (["--model", "transformer"], "--model"),
])
def test_the_issues_bad_flags_are_refused_before_anything_is_written(text_file, tmp_path, argv, names):
    out = tmp_path / "run"
    status, error = call(gpt_char.main, ["--data", str(text_file), "--out", str(out), *argv])
    assert status == 2 and names in error and error.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("main, argv, names", [
    (sample.main, ["--temperature", "-1"], "--temperature"), (sample.main, ["--max-new-tokens", "-5"],
                                                                "--max-new-tokens"),
    (lm_sample.main, ["--top-p", "2"], "--top-p"), (sample.main, ["--top-k", "0"], "--top-k"),
    (mlm.main, ["--mask-prob", "1.5"], "--mask-prob"), (translate.main, ["--beam-size", "0"], "--beam-size"),
    (finetune.main, ["--val-fraction", "1"], "--val-fraction"), (lm.main, ["--vocab-size", "100"], "--vocab-size"),
    (translate.main, ["--lr", "1"], "--lr"), (lm_sample.main, ["--ckpt", "missing"], "--ckpt missing"),
])
def test_the_issues_bad_sampler_and_trainer_values_are_refused(finished_run, main, argv, names):
    target = ["--ckpt", str(finished_run)] if main in (sample.main, lm_sample.main) else ["--out", str(finished_run)]
    status, error = call(main, [*target, *argv])
    assert status == 2 and names in error


# ---- run directories -------------------------------------------------------------------------------------------------
def test_a_fresh_run_into_a_directory_holding_a_run_refuses_and_leaves_it_untouched(finished_run, text_file):
    before = snapshot(finished_run)
    for main in (gpt_char.main, lm.main, mlm.main, finetune.main, translate.main):
        status, error = call(main, ["--data", str(text_file), "--out", str(finished_run), "--max-iters", "1"])
        assert status == 2 and "--resume" in error and "--overwrite" in error, error
    assert snapshot(finished_run) == before


def test_a_file_as_out_and_resume_without_a_run_are_one_line_errors(tmp_path, text_file):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    status, error = call(gpt_char.main, ["--data", str(text_file), "--out", str(a_file)])
    assert status == 2 and "is a file" in error
    status, error = call(gpt_char.main, ["--out", str(tmp_path / "none"), "--resume"])
    assert status == 2 and "no checkpoint" in error and not (tmp_path / "none").exists()


def test_overwrite_replaces_the_run_with_its_own_tokenizer_and_metrics(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    other = tmp_path / "other.txt"
    other.write_text("abcdefgh " * 400, encoding="utf-8")
    assert gpt_char.main(["--data", str(other), "--out", str(out), *SMALL, "--max-iters", "2", "--eval-interval",
                          "2", "--overwrite"]) == 0
    model, tokenizer = load_run(out)
    assert set(tokenizer.chars) == set("abcdefgh ") and model.config.vocab_size == tokenizer.vocab_size
    assert [r["iter"] for r in strict_json_lines(out / "metrics.jsonl") if "loss" in r] == [1, 2]


@pytest.mark.parametrize("flag, value", [("--n-layer", "3"), ("--model", "bigram"), ("--block-size", "16"),
                                         ("--preset", "lecture"), ("--seed", "1")])
def test_resume_with_a_flag_that_shapes_the_run_names_the_flag_and_both_values(finished_run, flag, value):
    before = snapshot(finished_run)
    status, error = call(gpt_char.main, ["--out", str(finished_run), "--resume", flag, value])
    assert status == 2 and flag in error and value in error
    assert snapshot(finished_run) == before


def test_resume_may_change_the_listed_flags(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    assert gpt_char.main(["--out", str(out), "--resume", "--max-iters", "6", "--lr", "2e-3", "--n-layer", "1",
                          "--no-progress", "--sample-tokens", "5"]) == 0
    assert tio.load_checkpoint(out / "checkpoint").step == 6


def test_a_tokenizer_that_does_not_fit_the_checkpoint_is_reported(finished_run, tmp_path, capsys):
    out = tmp_path / "run"
    checkpoint = tio.load_checkpoint(finished_run / "checkpoint")
    record = checkpoint.config
    record["tokenizer"]["chars"] = [*record["tokenizer"]["chars"], "X", "Y"]
    tio.save_checkpoint(out / "checkpoint", checkpoint.model, config=record, step=checkpoint.step)
    assert sample.main(["--ckpt", str(out)]) == 2
    assert "tokenizer has" in capsys.readouterr().err


# ---- concurrent runs and kill -9 (real processes) --------------------------------------------------------------------
def start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", *argv], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def saved_step(out: Path) -> int:
    """The step of the checkpoint.json a running trainer last committed (-1 before the first)."""
    try:
        return json.loads((out / "checkpoint" / "checkpoint.json").read_text())["step"]
    except (OSError, ValueError):
        return -1


def test_a_second_run_into_a_busy_directory_refuses_naming_the_holder(text_file, tmp_path):
    out = tmp_path / "run"
    first = start(["train.gpt_char", "--data", str(text_file), "--out", str(out), *SMALL, "--max-iters", "300",
                   "--eval-interval", "100"])
    try:
        wait_for(lambda: (out / "checkpoint" / "checkpoint.json").exists())
        status, error = call(gpt_char.main, ["--data", str(text_file), "--out", str(out), "--overwrite",
                                             "--max-iters", "1"])
        assert status == 2 and f"pid {first.pid}" in error
    finally:
        assert first.wait(timeout=120) == 0
    assert tio.load_checkpoint(out / "checkpoint").step == 300
    assert [r["iter"] for r in strict_json_lines(out / "metrics.jsonl") if "loss" in r] == list(range(1, 301))


def test_a_stale_lock_of_a_killed_run_is_taken_over(text_file, tmp_path):
    out = tmp_path / "run"
    child = start(["train.gpt_char", "--data", str(text_file), "--out", str(out), *SMALL, "--max-iters", "100000"])
    wait_for(lambda: (out / "checkpoint" / "checkpoint.json").exists())
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert gpt_char.main(["--out", str(out), "--resume", "--max-iters", "1", "--no-progress"]) == 0


@pytest.mark.parametrize("resume", [False, True], ids=["fresh-overwrite", "resume"])
def test_kill_9_at_any_instant_leaves_a_run_that_loads_and_samples(finished_run, text_file, tmp_path, resume):
    """A replacing run (or a resumed one) killed at random instants: the directory always holds a whole run."""
    rng = np.random.default_rng(7 + resume)
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    other = tmp_path / "other.txt"
    other.write_text("abcdefgh\n" * 400, encoding="utf-8")
    for _ in range(4):
        argv = (["train.gpt_char", "--out", str(out), "--resume", "--max-iters", "100000", "--eval-interval", "3"]
                if resume else ["train.gpt_char", "--data", str(other), "--out", str(out), *SMALL, "--max-iters",
                                "100000", "--eval-interval", "3", "--overwrite"])
        child = start(argv)
        time.sleep(float(rng.uniform(0.3, 2.5)))
        child.send_signal(signal.SIGKILL)
        child.wait()
        model, tokenizer = load_run(out)
        assert model.config.vocab_size == tokenizer.vocab_size
        assert sample.main(["--ckpt", str(out), "--max-new-tokens", "5", "--prompt", ""]) == 0
        strict_json_lines(out / "metrics.jsonl")


def test_resume_after_kill_9_logs_exactly_the_uninterrupted_runs_metrics(text_file, tmp_path):
    flags = ["--data", str(text_file), *SMALL, "--eval-interval", "5", "--dropout", "0.1", "--lr-decay-iters", "30"]
    assert gpt_char.main([*flags, "--out", str(tmp_path / "straight"), "--max-iters", "30"]) == 0
    out = tmp_path / "killed"
    child = start(["train.gpt_char", *flags, "--out", str(out), "--max-iters", "100000"])
    wait_for(lambda: saved_step(out) >= 10)
    wait_for(lambda: sum(1 for _ in (out / "metrics.jsonl").open()) > 14)  # lines past the checkpoint
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert gpt_char.main(["--out", str(out), "--resume", "--max-iters", "30", "--no-progress",
                          "--sample-tokens", "0"]) == 0

    def without_timing(path):
        return [{k: v for k, v in r.items() if k != "tokens_per_sec"} for r in strict_json_lines(path)]
    assert without_timing(out / "metrics.jsonl") == without_timing(tmp_path / "straight" / "metrics.jsonl")


# ---- non-finite loss -------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_a_nan_run_stops_naming_the_iteration_and_keeps_the_last_good_checkpoint(text_file, tmp_path, capsys):
    out = tmp_path / "run"
    status = gpt_char.main(["--data", str(text_file), "--out", str(out), *SMALL, "--max-iters", "50",
                            "--eval-interval", "2", "--lr", "1e6", "--min-lr", "1e6", "--grad-clip", "0"])
    error = capsys.readouterr().err
    assert status == 1 and "iteration" in error and "--max-nonfinite" in error
    checkpoint = tio.load_checkpoint(out / "checkpoint")
    assert checkpoint.step < 50
    assert all(np.isfinite(tensor.numpy()).all() for tensor in checkpoint.model.values())
    records = strict_json_lines(out / "metrics.jsonl")
    assert any(r.get("loss", 0) is None or r.get("val_loss", 0) is None for r in records)
    model, _ = load_run(out)
    assert all(np.isfinite(p.numpy()).all() for p in model.parameters())


def test_the_wordpiece_trainer_never_replaces_a_vocabulary_unless_told(text_file, tmp_path):
    out = tmp_path / "vocab"
    assert wordpiece_trainer.main(["--data", str(text_file), "--out", str(out), "--vocab-size", "60"]) == 0
    before = snapshot(out)
    status, error = call(wordpiece_trainer.main, ["--data", str(text_file), "--out", str(out)])
    assert status == 2 and "--overwrite" in error and snapshot(out) == before
    other = tmp_path / "other.txt"
    other.write_text("abc abd abe " * 50, encoding="utf-8")
    assert wordpiece_trainer.main(["--data", str(other), "--out", str(out), "--overwrite"]) == 0
    assert snapshot(out) != before


@pytest.mark.parametrize("key, value", [("n_layer", 1.5), ("lr", "0.1"), ("bias", 1), ("eval_iters", True),
                                        ("dropout", 2.0), ("lr", None), ("seed", -3)])
def test_a_hand_edited_saved_setting_of_the_wrong_type_or_domain_names_the_key_and_file(finished_run, tmp_path,
                                                                                         key, value):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    checkpoint = tio.load_checkpoint(out / "checkpoint")
    checkpoint.config["settings"][key] = value
    tio.save_checkpoint(out / "checkpoint", checkpoint.model, checkpoint.optimizer, rng_state=checkpoint.rng,
                        config=checkpoint.config, step=checkpoint.step, extra=checkpoint.extra)
    status, error = call(gpt_char.main, ["--out", str(out), "--resume", "--max-iters", "5"])
    assert status == 2 and key in error and "checkpoint.json" in error, error
