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
in the run directory keeps the numbers. Every scalar field of `TransformerConfig` (`--d-model`, `--n-encoder-layers`,
…) is a flag.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import tinytensor as tt
from models.transformer import Transformer
from tinytensor.optim import Adam
from tinytensor.optim.lr_scheduler import noam
from train.bleu import corpus_bleu, exact_match
from train.cli import CommandError, Run, Task, write_scores
from train.settings import ANY, FRACTION, NON_NEGATIVE, OPEN_UNIT, POSITIVE, setting
from train.translation_data import (MAX_NUMBER, LengthBatches, Pair, WordVocabulary, number_pairs, pad_rows, read_tsv,
                                    split_pairs)


@dataclass
class TranslateSettings:
    """The pairs, the paper's recipe and the final decoding of a translation run."""

    data: str | None = setting(None, ANY, "a UTF-8 TSV of source<TAB>target pairs (default: the number task)")
    num_train: int = setting(20000, POSITIVE, "generated training pairs (without --data)")
    num_held_out: int = setting(1000, POSITIVE, "generated held-out pairs (without --data)")
    held_out_fraction: float = setting(0.1, OPEN_UNIT, "share of --data's pairs held out")
    max_tokens: int = setting(1500, POSITIVE, "padded tokens per batch (per process with --ddp)", resumable=True)
    warmup: int = setting(400, POSITIVE, "Noam schedule's warmup steps")
    lr_factor: float = setting(1.0, POSITIVE, "Noam schedule's factor")
    label_smoothing: float = setting(0.1, FRACTION, "label smoothing ε")
    beam_size: int = setting(4, POSITIVE, "beam width of the final evaluation", resumable=True)
    length_penalty: float = setting(0.6, NON_NEGATIVE, "beam search's length penalty α", resumable=True)
    num_examples: int = setting(5, NON_NEGATIVE, "translations printed at the end", resumable=True)


# A model and schedule that reach ≥ 95 % exact match on the number task in a few minutes on two CPU cores.
PRESETS = {"tiny": {"*": dict(max_iters=1500, grad_clip=1.0, eval_interval=500, eval_iters=5),
                    "transformer": dict(d_model=64, n_heads=4, d_ff=256, n_encoder_layers=2, n_decoder_layers=2,
                                        dropout=0.1, norm_first=False)}}


class TranslateTask(Task):
    command = "translate"
    doc = __doc__
    models = {"transformer": ("models.transformer", "TransformerConfig", "Transformer")}
    default_model = "transformer"
    settings_class = TranslateSettings
    presets = PRESETS
    derived_fields = frozenset({"src_vocab_size", "tgt_vocab_size", "share_embeddings", "pad_id", "bos_id",
                                "eos_id"})
    unused_train_fields = frozenset({"lr", "min_lr", "warmup_iters", "lr_decay_iters", "weight_decay", "beta1",
                                     "beta2"})  # the paper's Adam(0.9, 0.98) on the Noam schedule instead

    def tokenizer_from_dict(self, data: dict) -> WordVocabulary:
        return WordVocabulary.from_dict(data)

    def prepare(self, run: Run) -> None:
        train_pairs, held_out_pairs = load_pairs(run.settings)
        vocab = run.tokenizer if run.saved else WordVocabulary.from_pairs(train_pairs)
        config = run.saved["model"] if run.saved else {
            **run.model_flags, "src_vocab_size": vocab.size, "tgt_vocab_size": vocab.size, "share_embeddings": True,
            "pad_id": vocab.pad_id, "bos_id": vocab.bos_id, "eos_id": vocab.eos_id}
        run.tokenizer, run.model = vocab, self.build_model(run.model_name, config).to(run.device)
        run.model_config = run.model.config.to_dict()
        max_tokens = run.settings["max_tokens"] * run.world_size
        splits = {name: LengthBatches([(vocab.encode(s), vocab.encode(t)) for s, t in pairs], max_tokens, vocab)
                  for name, pairs in (("train", train_pairs), ("val", held_out_pairs))}
        run.batches = lambda split, rng: splits[split].sample(rng)
        run.loss_fn = translation_loss(run.settings["label_smoothing"])
        d_model, warmup, factor = run.model_config["d_model"], run.settings["warmup"], run.settings["lr_factor"]
        run.lr_schedule = lambda iteration: noam(iteration + 1, d_model, warmup, factor)
        run.optimizer = Adam(run.model.parameters(), lr=run.lr_schedule(0), betas=(0.9, 0.98), eps=1e-9)
        run.scratch = {"held_out": held_out_pairs}
        run.description = (f"transformer: {run.model.num_parameters() / 1e6:.3f} M parameters, shared vocabulary of "
                           f"{vocab.size} words, {len(train_pairs):,} training and {len(held_out_pairs):,} held-out "
                           "pairs")

    def finish(self, run: Run, trainer) -> int:
        """Score the held-out split greedily and with beam search; scores.json keeps the numbers."""
        if trainer.interrupted:
            return 130
        scores = evaluate(run.model, run.tokenizer, run.scratch["held_out"], run.settings)
        write_scores(run, {**scores, "iterations": trainer.iteration})
        return 0


def translation_loss(label_smoothing: float):
    """loss_fn(model, batch) for the Trainer: teacher-forced cross-entropy with label smoothing."""
    def loss_fn(model: Transformer, batch: tuple) -> tt.Tensor:
        src, tgt_in, tgt_out = batch
        return model.loss(model(src, tgt_in), tgt_out, label_smoothing)
    return loss_fn


def load_pairs(settings: dict) -> tuple[list[Pair], list[Pair]]:
    """(train, held_out): the generated number task from the seed, or a TSV split by `held_out_fraction`."""
    if settings["data"]:
        return split_pairs(read_tsv(settings["data"]), settings["held_out_fraction"], settings["seed"])
    if settings["num_train"] + settings["num_held_out"] > MAX_NUMBER + 1:
        raise CommandError(f"--num-train {settings['num_train']} + --num-held-out {settings['num_held_out']}: only "
                           f"{MAX_NUMBER + 1:,} distinct numbers exist")
    return number_pairs(settings["num_train"], settings["num_held_out"], settings["seed"])


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


TASK = TranslateTask()
main = TASK.main

if __name__ == "__main__":
    sys.exit(main())
