"""`python -m train.translate`: train the original Transformer to translate, then score it on held-out pairs.

    python -m train.translate                                  # number words → digits, generated; a few CPU minutes
    python -m train.translate --data pairs.tsv --out runs/mine # your own `source<TAB>target` sentence pairs
    python -m train.translate --out runs/mine --resume --max-iters 3000
    mpiexec -n 2 python -m train.translate --ddp               # data-parallel: --max-tokens per process

The recipe is the paper's (§5): teacher forcing, batches of similar-length pairs (`--max-tokens` padded tokens),
Adam(0.9, 0.98, 1e-9) with the Noam schedule lr = factor·d_model^−0.5·min(step^−0.5, step·warmup^−1.5), label
smoothing ε = 0.1 (PyTorch's convention: ε/V on every class), on the shared loop of `train/loop.py` (progress
bar, metrics.jsonl, atomic checkpoints, Ctrl-C and --resume). After training it decodes the held-out split greedily
and with beam search (beam 4, α = 0.6) and prints corpus BLEU, exact match and a few translations; `scores.json`
in the run directory keeps the numbers. `vocab.json` there is the shared word vocabulary.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import tinytensor as tt
import tinytensor.distributed as dist
import tinytensor.io as tio
from models.transformer import Transformer, TransformerConfig
from tinytensor.io import atomic_write_text
from tinytensor.optim import Adam
from tinytensor.optim.lr_scheduler import noam
from train.bleu import corpus_bleu, exact_match
from train.loop import Trainer, TrainConfig, init_distributed
from train.translation_data import (LengthBatches, Pair, WordVocabulary, number_pairs, pad_rows, read_tsv,
                                    split_pairs)

# A model and schedule that reach ≥ 95 % exact match on the number task in a few minutes on two CPU cores.
DEFAULTS = dict(d_model=64, n_heads=4, d_ff=256, n_layers=2, dropout=0.1, norm_first=False,
                max_iters=1500, max_tokens=1500, warmup=400, lr_factor=1.0, label_smoothing=0.1, grad_clip=1.0,
                eval_interval=500, eval_iters=5, seed=1337, device="cpu",
                num_train=20000, num_held_out=1000, held_out_fraction=0.1,
                beam_size=4, length_penalty=0.6, num_examples=5)
MODEL_KEYS = ("d_model", "n_heads", "d_ff", "n_layers", "dropout", "norm_first")
DATA_KEYS = ("data", "num_train", "num_held_out", "held_out_fraction", "max_tokens")
RECIPE_KEYS = ("warmup", "lr_factor", "label_smoothing")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.translate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--data", help="a UTF-8 TSV of source<TAB>target pairs (default: the generated number task)")
    add("--out", default="runs/translate", help="run directory for checkpoints, vocabulary and scores")
    add("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    add("--no-progress", action="store_true", help="no progress bar (for logs)")
    add("--ddp", action="store_true", help="data-parallel over the processes of `mpiexec -n N` (--max-tokens each)")
    add("--norm-first", action="store_true", default=None, help="pre-norm sublayers instead of the paper's post-norm")
    flags = {"d_model": int, "n_heads": int, "d_ff": int, "n_layers": int, "dropout": float, "max_iters": int,
             "max_tokens": int, "warmup": int, "lr_factor": float, "label_smoothing": float, "grad_clip": float,
             "eval_interval": int, "eval_iters": int, "seed": int, "device": str, "num_train": int,
             "num_held_out": int, "held_out_fraction": float, "beam_size": int, "length_penalty": float,
             "num_examples": int}
    for name, kind in flags.items():
        add("--" + name.replace("_", "-"), type=kind, default=None, help=f"default {DEFAULTS[name]}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; 0 on success, 2 on a bad file, corpus or checkpoint, 130 when interrupted."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (tio.CheckpointError, FileNotFoundError, ValueError, tt.backend.DeviceUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """Build (or restore) data, vocabulary and model, train on the shared loop, then score the held-out split."""
    out_dir = Path(args.out)
    explicit = {k: v for k, v in vars(args).items()
                if v is not None and k not in ("out", "resume", "no_progress", "ddp")}
    if args.resume:
        saved = tio.load_checkpoint(out_dir / "checkpoint").config["settings"]
        settings = {**saved, **explicit}
        vocab = WordVocabulary.load(out_dir / "vocab.json")
    else:
        settings = {**DEFAULTS, "data": None, **explicit}
    train_pairs, held_out_pairs = load_pairs(settings)
    if not args.resume:
        vocab = WordVocabulary.from_pairs(train_pairs)
    tt.backend.require_device(settings["device"])
    world_size = init_distributed(args.ddp, settings["device"])
    tt.manual_seed(settings["seed"])
    model = Transformer(model_config(settings, vocab)).to(settings["device"])
    out_dir.mkdir(parents=True, exist_ok=True)
    if dist.is_main_process():
        vocab.save(out_dir / "vocab.json")
        print(f"transformer: {model.num_parameters() / 1e6:.3f} M parameters, shared vocabulary of {vocab.size} "
              f"words, {len(train_pairs):,} training and {len(held_out_pairs):,} held-out pairs")

    trainer = build_trainer(model, settings, vocab, train_pairs, held_out_pairs, out_dir, not args.no_progress,
                            world_size)
    started = time.perf_counter()
    trainer.fit(resume=args.resume)
    if trainer.interrupted:
        return 130
    if not dist.is_main_process():  # only rank 0 scores the held-out split and writes scores.json
        return 0
    training_seconds = time.perf_counter() - started
    scores = evaluate(model, vocab, held_out_pairs, settings)
    scores["training_seconds"] = training_seconds
    atomic_write_text(out_dir / "scores.json", json.dumps(scores, indent=2))
    print(f"training took {training_seconds:.0f} s for {trainer.iteration} iterations")
    return 0


def load_pairs(settings: dict) -> tuple[list[Pair], list[Pair]]:
    """(train, held_out): the generated number task from the seed, or a TSV split by `held_out_fraction`."""
    if settings["data"]:
        return split_pairs(read_tsv(settings["data"]), settings["held_out_fraction"], settings["seed"])
    return number_pairs(settings["num_train"], settings["num_held_out"], settings["seed"])


def model_config(settings: dict, vocab: WordVocabulary) -> TransformerConfig:
    """The paper's architecture at the size the settings ask for, over one shared vocabulary."""
    return TransformerConfig(
        src_vocab_size=vocab.size, tgt_vocab_size=vocab.size, d_model=settings["d_model"],
        n_heads=settings["n_heads"], d_ff=settings["d_ff"], n_encoder_layers=settings["n_layers"],
        n_decoder_layers=settings["n_layers"], dropout=settings["dropout"], norm_first=bool(settings["norm_first"]),
        share_embeddings=True, pad_id=vocab.pad_id, bos_id=vocab.bos_id, eos_id=vocab.eos_id)


def build_trainer(model: Transformer, settings: dict, vocab: WordVocabulary, train_pairs: list[Pair],
                  held_out_pairs: list[Pair], out_dir: Path, progress: bool, world_size: int = 1) -> Trainer:
    """The shared loop with the paper's optimiser and schedule; the held-out pairs give the val loss. With
    `world_size` processes a batch holds world_size × max_tokens, and each process trains on its share of rows."""
    max_tokens = settings["max_tokens"] * world_size
    splits = {name: LengthBatches([(vocab.encode(s), vocab.encode(t)) for s, t in pairs], max_tokens, vocab)
              for name, pairs in (("train", train_pairs), ("val", held_out_pairs))}
    label_smoothing = settings["label_smoothing"]

    def loss_fn(model: Transformer, batch: tuple) -> tt.Tensor:
        src, tgt_in, tgt_out = batch
        return model.loss(model(src, tgt_in), tgt_out, label_smoothing)

    def lr_schedule(iteration: int) -> float:
        return noam(iteration + 1, settings["d_model"], settings["warmup"], settings["lr_factor"])

    train_config = TrainConfig.from_dict({**settings, "out_dir": str(out_dir), "progress": progress})
    optimizer = Adam(model.parameters(), lr=lr_schedule(0), betas=(0.9, 0.98), eps=1e-9)
    run_config = {"model": model.config.to_dict(), "settings": settings}
    return Trainer(model, train_config, lambda split, rng: splits[split].sample(rng), run_config, loss_fn,
                   optimizer=optimizer, lr_schedule=lr_schedule)


def evaluate(model: Transformer, vocab: WordVocabulary, pairs: list[Pair], settings: dict) -> dict:
    """Greedy and beam translations of `pairs`: BLEU and exact match of each, and printed examples."""
    references = [target.split() for _, target in pairs]
    scores, translations = {}, {}
    for name, decode in (("greedy", lambda src: model.greedy_decode(src)),
                         (f"beam {settings['beam_size']}", lambda src: model.beam_search(
                             src, settings["beam_size"], settings["length_penalty"]))):
        started = time.perf_counter()
        hypotheses = [vocab.decode(ids).split() for ids in translate_all(decode, vocab, pairs)]
        translations[name] = hypotheses
        scores[name] = {"bleu": corpus_bleu(hypotheses, references), "exact_match": exact_match(hypotheses, references),
                        "seconds": time.perf_counter() - started}
        print(f"held-out ({len(pairs)} pairs), {name:>7}: BLEU {scores[name]['bleu']:6.2f}, "
              f"exact match {100 * scores[name]['exact_match']:6.2f} %  ({scores[name]['seconds']:.1f} s)")
    print_examples(pairs, translations, settings["num_examples"])
    return scores


def translate_all(decode, vocab: WordVocabulary, pairs: list[Pair], batch_size: int = 250) -> list[list[int]]:
    """Decode every source in batches of similar length; results in the order of `pairs`."""
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0].split()))
    results: list[list[int]] = [[] for _ in pairs]
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        src = pad_rows([vocab.encode(pairs[i][0]) for i in chunk], vocab.pad_id)
        for index, ids in zip(chunk, decode(src)):
            results[index] = ids
    return results


def print_examples(pairs: list[Pair], translations: dict[str, list[list[str]]], count: int) -> None:
    for index in range(min(count, len(pairs))):
        source, target = pairs[index]
        print(f"\n  source:    {source}\n  reference: {target}")
        for name, hypotheses in translations.items():
            print(f"  {name + ':':<10} {' '.join(hypotheses[index])}")


if __name__ == "__main__":
    sys.exit(main())
