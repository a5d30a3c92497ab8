"""`python -m train.sample`: write text with a model trained by `python -m train.gpt_char` or `python -m train.lm`.

    python -m train.sample --ckpt runs/gpt_char --prompt "ROMEO:" --max-new-tokens 500 --temperature 0.8 --top-k 50
    python -m train.sample --ckpt runs/lm --top-p 0.9

--ckpt is a run directory: its checkpoint holds the weights, the model config and the tokenizer together, so what is
sampled is always one consistent run (the one --resume would continue). `python -m train.lm_sample` is the same
sampler that also reads Hugging Face directories (GPT-2, LLaMA). An empty prompt starts from the tokenizer's
`<|endoftext|>` when it has one (GPT-2's unconditional start), else from a newline.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import tinytensor as tt
import tinytensor.io as tio
from models.tokenizers import DEFAULT_SPECIAL_TOKEN
from train.cli import (USER_ERRORS, CommandError, OneLineErrorParser, add_flag, check_tokenizer_fits, run_record,
                       settings_flags)
from train.settings import ANY, DEVICES, NON_NEGATIVE, POSITIVE, PROBABILITY_MASS, setting

CAUSAL_LM_COMMANDS = ("gpt_char", "lm")


@dataclass
class SampleSettings:
    """How to sample; the defaults are train.sample's (train.lm_sample changes the prompt and the length)."""

    prompt: str = setting("\n", ANY, "text to continue (empty: start from <|endoftext|> or a newline)")
    max_new_tokens: int = setting(500, NON_NEGATIVE, "tokens to add to the prompt")
    temperature: float = setting(1.0, NON_NEGATIVE, "softmax temperature (0: greedy)")
    top_k: int | None = setting(None, POSITIVE, "sample among the k most likely tokens only")
    top_p: float | None = setting(None, PROBABILITY_MASS, "sample among the most likely tokens whose probabilities "
                                                          "sum to p (nucleus sampling)")
    num_samples: int = setting(1, POSITIVE, "samples to print")
    seed: int = setting(1337, NON_NEGATIVE, "random seed")
    device: str = setting("cpu", DEVICES, "where to run the model")


def load_run(run_dir: str | Path, device: str = "cpu"):
    """(model in eval mode, tokenizer) of a causal-LM run directory, both from its one checkpoint."""
    directory = Path(run_dir) / "checkpoint"
    if not (directory / tio.CHECKPOINT_FILE).exists():
        raise FileNotFoundError(f"--ckpt {run_dir}: no checkpoint/ (expected a run directory of train.gpt_char or "
                                "train.lm)")
    record = run_record(directory)
    if record["command"] not in CAUSAL_LM_COMMANDS:
        raise CommandError(f"--ckpt {run_dir}: a run of train.{record['command']}, not of a language model "
                           f"({', '.join('train.' + c for c in CAUSAL_LM_COMMANDS)})")
    task = importlib.import_module(f"train.{record['command']}").TASK
    tokenizer = task.load_tokenizer(record, directory)
    check_tokenizer_fits(tokenizer, record["model"].get("vocab_size"), directory)
    model = task.build_model(record["model_name"], record["model"])
    model.load_state_dict(tio.load_checkpoint(directory).model)
    return model.to(device).eval(), tokenizer


def prompt_ids(tokenizer, prompt: str) -> tuple[list[int], int]:
    """(ids to start from, how many leading ids to leave out of the printed text)."""
    try:
        ids = tokenizer.encode(prompt)
    except ValueError as error:  # a character-level vocabulary lacks one of the prompt's characters
        raise CommandError(f"--prompt: {error}") from error
    if ids:
        return ids, 0
    if DEFAULT_SPECIAL_TOKEN in getattr(tokenizer, "special_tokens", ()):
        return [tokenizer.token_to_id(DEFAULT_SPECIAL_TOKEN)], 1
    return tokenizer.encode("\n") if "\n" in getattr(tokenizer, "chars", ()) else [0], 1


def run_sampler(argv: list[str] | None, prog: str, description: str, load=load_run, **defaults) -> int:
    """Parse the sampling flags (with `defaults` replacing SampleSettings'), load the model, print the samples;
    a mistake the user can fix is one line and exit status 2."""
    parser = OneLineErrorParser(prog=prog, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="run directory (or, for train.lm_sample, Hugging Face dir)")
    for flag in settings_flags(SampleSettings, "sample").values():
        add_flag(parser, flag)
    args = parser.parse_args(argv)
    settings = {f.name: f.default for f in fields(SampleSettings)} | defaults
    settings |= {name: value for name, value in vars(args).items() if value is not None and name in settings}
    try:
        tt.backend.require_device(settings["device"])
        model, tokenizer = load(args.ckpt, settings["device"])
        start, hidden = prompt_ids(tokenizer, settings["prompt"])
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    tt.manual_seed(settings["seed"])
    for index in range(settings["num_samples"]):
        ids = model.generate(tt.tensor([start], device=settings["device"]), settings["max_new_tokens"],
                             temperature=settings["temperature"], top_k=settings["top_k"], top_p=settings["top_p"])
        print(f"--- sample {index + 1} ---\n{tokenizer.decode(ids.numpy()[0, hidden:].tolist())}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_sampler(argv, "python -m train.sample", __doc__)


if __name__ == "__main__":
    sys.exit(main())
