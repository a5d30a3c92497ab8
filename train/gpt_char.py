"""`python -m train.gpt_char`: train the lecture's character-level GPT (or the bigram baseline) and print samples.

    python -m train.gpt_char                       # tiny preset on the default Shakespeare corpus, a few CPU minutes
    python -m train.gpt_char --preset lecture --device cuda
    python -m train.gpt_char --data my_text.txt --n-layer 2 --max-iters 500 --out runs/mine
    python -m train.gpt_char --out runs/mine --resume --max-iters 4000
    mpiexec -n 2 python -m train.gpt_char --ddp --out runs/ddp    # data-parallel: 2 processes, batch 2 × --batch-size

Every field of `GPTConfig` and `TrainConfig` is a flag (`--n-embd 256`, `--lr 3e-4`, …) that overrides the preset;
`--help` shows each one's domain. The run directory (docs/commands.md, "Run directories") gets `checkpoint/` (the
weights, settings and tokenizer, committed together), `metrics.jsonl` and `loss.png`; `python -m train.sample`
writes more text from it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

import tinytensor as tt
from models.gpt_char import BigramLanguageModel
from models.tokenizers import CharTokenizer
from train.cli import CommandError, Run, Task
from train.corpus import get_batch, load_corpus, require_windows, split_train_val
from train.settings import ANY, NON_NEGATIVE, POSITIVE, setting


@dataclass
class CharSettings:
    """The data and the samples of a character-level run."""

    data: str | None = setting(None, ANY, "a UTF-8 text file (default: Shakespeare's plays, downloaded once)")
    block_size: int = setting(64, POSITIVE, "characters of context (the GPT's block_size)")
    batch_size: int = setting(12, POSITIVE, "sequences per batch (per process with --ddp)", resumable=True)
    num_samples: int = setting(1, NON_NEGATIVE, "samples printed at the end", resumable=True)
    sample_tokens: int = setting(500, NON_NEGATIVE, "characters per sample", resumable=True)


TRAIN_TINY = dict(block_size=64, batch_size=12, max_iters=2000, eval_interval=250, eval_iters=20, lr=1e-3,
                  min_lr=1e-4, warmup_iters=100, beta2=0.99, weight_decay=0.1, grad_clip=1.0)
BIGRAM = dict(block_size=8, batch_size=32, lr=1e-2, min_lr=1e-2, warmup_iters=0, max_iters=3000, eval_interval=300,
              weight_decay=0.0, grad_clip=0.0)
PRESETS = {
    # nanoGPT's shakespeare-char CPU run: minutes on a laptop, val loss ≈ 1.9 on Tiny Shakespeare
    "tiny": {"*": TRAIN_TINY, "gpt": dict(n_layer=4, n_head=4, n_embd=128, dropout=0.0), "bigram": BIGRAM},
    # the lecture's final model: AdamW at a constant 3e-4, no clipping (hours on a CPU; use --device cuda)
    "lecture": {"*": dict(block_size=256, batch_size=64, max_iters=5000, eval_interval=500, eval_iters=200,
                          lr=3e-4, min_lr=3e-4, warmup_iters=0, beta2=0.999, weight_decay=0.01, grad_clip=0.0),
                "gpt": dict(n_layer=6, n_head=6, n_embd=384, dropout=0.2), "bigram": BIGRAM},
}


class GPTCharTask(Task):
    command = "gpt_char"
    doc = __doc__
    models = {"gpt": ("models.gpt_char", "GPTConfig", "GPT"), "bigram": ("models.gpt_char", "", "BigramLanguageModel")}
    default_model = "gpt"
    settings_class = CharSettings
    presets = PRESETS
    derived_fields = frozenset({"vocab_size", "block_size"})

    def build_model(self, model_name: str, model_config: dict):
        if model_name == "bigram":
            return BigramLanguageModel(model_config["vocab_size"])
        return super().build_model(model_name, model_config)

    def tokenizer_from_dict(self, data: dict) -> CharTokenizer:
        return CharTokenizer.from_dict(data)

    def prepare(self, run: Run) -> None:
        text = load_corpus(run.settings["data"])
        if run.saved is not None:
            run.model_config = run.saved["model"]
        else:
            run.tokenizer = CharTokenizer.from_text(text)
            run.model_config = {"vocab_size": run.tokenizer.vocab_size}
            if run.model_name == "gpt":
                run.model_config.update(run.model_flags, block_size=run.settings["block_size"])
        try:
            ids = np.asarray(run.tokenizer.encode(text), dtype=np.int64)
        except ValueError as error:
            raise CommandError(f"--data {run.settings['data']}: {error} of the saved run") from error
        train_ids, val_ids = split_train_val(ids) if len(ids) >= 2 else (ids, ids[:0])
        splits = {"train": train_ids, "val": val_ids}
        block_size, batch_size = run.settings["block_size"], run.settings["batch_size"] * run.world_size
        require_windows(splits, block_size, unit="characters")
        run.model = self.build_model(run.model_name, run.model_config).to(run.device)
        run.batches = lambda split, rng: get_batch(splits[split], batch_size, block_size, rng)
        run.description = (f"{run.model_name}: {run.model.num_parameters() / 1e6:.3f} M parameters, vocabulary of "
                           f"{run.tokenizer.vocab_size}, {len(splits['train']):,} training and "
                           f"{len(splits['val']):,} validation characters")

    def finish(self, run: Run, trainer) -> int:
        if trainer.interrupted:
            return 130
        print_samples(run.model, run.tokenizer, run.settings["num_samples"], run.settings["sample_tokens"])
        return 0


def print_samples(model, tokenizer: CharTokenizer, count: int, length: int) -> None:
    """Generate from a newline (the start of a speech), like the lecture."""
    start = tokenizer.encode("\n") if "\n" in tokenizer.chars else [0]
    device = next(iter(model.parameters())).device
    for index in range(count):
        ids = model.generate(tt.tensor([start], device=device), max_new_tokens=length)
        print(f"\n--- sample {index + 1} ---\n{tokenizer.decode(ids.numpy()[0].tolist())}")


TASK = GPTCharTask()
main = TASK.main

if __name__ == "__main__":
    sys.exit(main())
