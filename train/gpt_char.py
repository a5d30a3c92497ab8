"""`python -m train.gpt_char`: train the lecture's character-level GPT (or the bigram baseline) and print samples.

    python -m train.gpt_char                       # tiny preset on the default Shakespeare corpus, a few CPU minutes
    python -m train.gpt_char --preset lecture --device cuda
    python -m train.gpt_char --data my_text.txt --n-layer 2 --max-iters 500 --out runs/mine
    python -m train.gpt_char --out runs/mine --resume
    mpiexec -n 2 python -m train.gpt_char --ddp --out runs/ddp    # data-parallel: 2 processes, batch 2 × --batch-size

Every field of `GPTConfig` and `TrainConfig` is a flag (`--n-embd 256`, `--lr 3e-4`, …) that overrides the preset.
The run directory gets `checkpoint/`, `tokenizer.json`, `metrics.jsonl` and `loss.png`; `python -m train.sample`
writes more text from it.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np

import tinytensor as tt
import tinytensor.distributed as dist
import tinytensor.io as tio
from models.gpt_char import GPT, BigramLanguageModel, GPTConfig
from models.tokenizers import CharTokenizer
from train.corpus import CorpusError, CorpusUnavailableError, get_batch, load_corpus, split_train_val
from train.flags import explicit_flags, flag_type
from train.loop import Trainer, TrainConfig, init_distributed

PRESETS = {
    # nanoGPT's shakespeare-char CPU run: minutes on a laptop, val loss ≈ 1.9 on Tiny Shakespeare
    "tiny": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0, max_iters=2000,
                 eval_interval=250, eval_iters=20, lr=1e-3, min_lr=1e-4, warmup_iters=100, beta2=0.99,
                 weight_decay=0.1, grad_clip=1.0),
    # the lecture's final model: AdamW at a constant 3e-4, no clipping (hours on a CPU; use --device cuda)
    "lecture": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, dropout=0.2, max_iters=5000,
                    eval_interval=500, eval_iters=200, lr=3e-4, min_lr=3e-4, warmup_iters=0, beta2=0.999,
                    weight_decay=0.01, grad_clip=0.0),
}
BIGRAM_DEFAULTS = dict(block_size=8, batch_size=32, lr=1e-2, min_lr=1e-2, warmup_iters=0, max_iters=3000,
                       eval_interval=300, weight_decay=0.0, grad_clip=0.0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.gpt_char", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--model", choices=["gpt", "bigram"], default="gpt")
    parser.add_argument("--data", help="a UTF-8 text file (default: Shakespeare's plays, downloaded once)")
    parser.add_argument("--out", default="runs/gpt_char", help="run directory for checkpoints and metrics")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--num-samples", type=int, default=1, help="samples printed at the end")
    parser.add_argument("--sample-tokens", type=int, default=500, help="characters per sample")
    skip = {"out_dir", "progress", "vocab_size"}
    for field in [*fields(GPTConfig), *fields(TrainConfig)]:
        if field.name not in skip:
            kind = flag_type(field.type)
            parser.add_argument("--" + field.name.replace("_", "-"), type=kind, default=None)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    parser.add_argument("--ddp", action="store_true",
                        help="data-parallel over the processes of `mpiexec -n N` (--batch-size per process)")
    return parser


def resolve_settings(args: argparse.Namespace) -> dict:
    """Preset, then the bigram's own defaults, then every flag the user gave."""
    settings = dict(PRESETS[args.preset])
    if args.model == "bigram":
        settings.update(BIGRAM_DEFAULTS)
    settings.update(explicit_flags(args))
    return settings


def build_model(model_name: str, model_config: dict):
    """A fresh GPT or bigram model from the config dict stored in every checkpoint."""
    if model_name == "bigram":
        return BigramLanguageModel(model_config["vocab_size"])
    return GPT(GPTConfig(**model_config))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (CorpusError, CorpusUnavailableError, tio.CheckpointError, FileNotFoundError,
            tt.backend.DeviceUnavailableError, dist.RankMismatchError, dist.CollectiveTimeoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """Load the corpus, build (or restore) the model, train, print samples."""
    settings = resolve_settings(args)
    tt.backend.require_device(settings.get("device", "cpu"))
    world_size = init_distributed(args.ddp, settings.get("device", "cpu"))
    out_dir = Path(args.out)
    text = load_corpus(args.data)
    if args.resume:
        saved = tio.load_checkpoint(out_dir / "checkpoint").config
        model_name, model_config = saved["model_name"], saved["model"]
        settings = {**saved["train"], **saved["data"], **explicit_flags(args)}
        tokenizer = CharTokenizer.load(out_dir / "tokenizer.json")
    else:
        model_name = args.model
        model_config = {f.name: settings[f.name] for f in fields(GPTConfig) if f.name in settings}
        tokenizer = CharTokenizer.from_text(text)
        model_config["vocab_size"] = tokenizer.vocab_size
    ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
    train_ids, val_ids = split_train_val(ids)
    tt.manual_seed(settings.get("seed", 1337))
    model = build_model(model_name, model_config).to(settings.get("device", "cpu"))
    out_dir.mkdir(parents=True, exist_ok=True)
    if dist.is_main_process():
        tokenizer.save(out_dir / "tokenizer.json")
        print(f"{model_name}: {model.num_parameters() / 1e6:.3f} M parameters, vocabulary of "
              f"{tokenizer.vocab_size}, {len(train_ids):,} training and {len(val_ids):,} validation characters")

    block_size, batch_size = model_config.get("block_size", settings["block_size"]), settings["batch_size"]
    splits = {"train": train_ids, "val": val_ids}

    def batches(split: str, rng: np.random.Generator):  # the global batch: each process keeps its batch_size rows
        return get_batch(splits[split], batch_size * world_size, block_size, rng)

    train_config = TrainConfig.from_dict({**settings, "out_dir": str(out_dir), "progress": not args.no_progress})
    trainer = Trainer(model, train_config, batches, run_config={
        "model_name": model_name, "model": model_config, "data": {"block_size": block_size, "batch_size": batch_size}})
    trainer.fit(resume=args.resume)
    if trainer.interrupted:
        return 130
    if dist.is_main_process():
        print_samples(model, tokenizer, args.num_samples, args.sample_tokens)
    return 0


def print_samples(model, tokenizer: CharTokenizer, count: int, length: int) -> None:
    """Generate from a newline (the start of a speech), like the lecture."""
    start = tokenizer.encode("\n") if "\n" in tokenizer.chars else [0]
    for index in range(count):
        ids = model.generate(tt.tensor([start], device=model_device(model)), max_new_tokens=length)
        print(f"\n--- sample {index + 1} ---\n{tokenizer.decode(ids.numpy()[0].tolist())}")


def model_device(model) -> str:
    return next(iter(model.parameters())).device


if __name__ == "__main__":
    sys.exit(main())
