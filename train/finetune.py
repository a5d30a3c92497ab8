"""`python -m train.finetune`: fine-tune BERT, ALBERT or DeBERTa with a classification head, on the shared loop.

    python -m train.finetune --model bert                            # the built-in example task, a tiny encoder
    python -m train.finetune --model deberta --sift                  # the same with DeBERTa's SiFT (train/sift.py)
    python -m train.finetune --model albert --data my.tsv --out runs/ft
    python -m train.finetune --from runs/mlm/hf --data my.tsv        # a pre-trained (or HF) encoder and its vocab.txt
    python -m train.finetune --out runs/ft --resume                  # continue exactly where it stopped
    python -m train.finetune --write-example task.tsv                # the built-in task as a file, to look at

--data is a UTF-8 TSV with one example per line: `text<TAB>label`, or `text_a<TAB>text_b<TAB>label` for
sentence pairs (token type 0 for A, 1 for B); every line has the same number of fields, blank lines are skipped,
labels are any strings. The rows are shuffled (--seed) and --val-fraction of them held out. Without --data the
built-in task is used: template sentences about a movie, a meal, a book … whose label is their sentiment, flipped
by a negation ("the food was not bad" is positive), so no bag of words solves it and the encoder must combine
tokens.

Without --from, a WordPiece vocabulary (the training rows' words, plus single characters so any word can be
spelled) and a small encoder of the `tiny` preset are made from scratch; with --from DIR the encoder comes from
DIR's config.json + model.safetensors (any checkpoint of the family: pre-training, masked LM, base or classifier)
via from_pretrained's loading, with a fresh classifier head, and the tokenizer from DIR's vocab.txt. Every scalar
field of the model's config (`--hidden-dropout-prob`, …) and of TrainConfig (`--lr`, `--max-iters`, `--device`, …)
is a flag; `--help` after `--model NAME` lists them.

The run directory gets data.tsv (the built-in task, when used), tokenizer/, checkpoint/ (for --resume),
metrics.jsonl, loss.png, scores.json (held-out accuracy) and hf/ (config.json with id2label, model.safetensors,
vocab.txt), which `*ForSequenceClassification.from_pretrained` (models/classification.py) and transformers load.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from collections import Counter
from pathlib import Path

import numpy as np

import tinytensor as tt
import tinytensor.io as tio
from models.classification import CLASSIFIERS as FAMILY_CLASSIFIERS
from models.deberta_v2 import DebertaV2Config, DebertaV2ForSequenceClassification
from models.hf import read_config, read_weights
from models.tokenizers.wordpiece import SPECIAL_TOKENS, WordPieceTokenizer, basic_tokenize
from train.cli import CommandError, Run, Task, export_hf, write_scores
from train.corpus import CorpusError
from train.settings import ANY, BOOL, NON_NEGATIVE, OPEN_UNIT, POSITIVE, at_least, setting
from train.sift import SiftConfig, sift_loss


@dataclasses.dataclass
class FinetuneSettings:
    """The data, the batches and the optional SiFT loss of a fine-tuning run."""

    data: str | None = setting(None, ANY, "TSV of text<TAB>label or text_a<TAB>text_b<TAB>label (default: built-in)")
    val_fraction: float = setting(0.2, OPEN_UNIT, "share of the rows held out")
    batch_size: int = setting(32, POSITIVE, "rows per batch (per process with --ddp)", resumable=True)
    max_length: int = setting(64, at_least(3), "tokens per example (longer ones are truncated)")
    sift: bool = setting(False, BOOL, "add DeBERTa's scale-invariant adversarial loss")
    sift_weight: float = setting(SiftConfig.weight, NON_NEGATIVE, "λ, the adversarial loss's weight")
    sift_noise: float = setting(SiftConfig.noise, POSITIVE, "σ of the random start")
    sift_step: float = setting(SiftConfig.step_size, POSITIVE, "ε, the ascent step size")


TRAIN_PRESET = dict(max_iters=200, eval_interval=50, eval_iters=4, batch_size=32, max_length=64, lr=1e-3,
                    min_lr=1e-4, warmup_iters=10, weight_decay=0.01, beta2=0.999, grad_clip=1.0)
FROM_PRESET = dict(lr=5e-5, min_lr=5e-6)  # a pre-trained encoder wants a small step (BERT's paper: 2e-5 … 5e-5)
MODEL_PRESETS = {  # a CPU-minute encoder: 2 layers, 64 wide, 4 heads
    "bert": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                 hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=64),
    "albert": dict(embedding_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                   intermediate_size=128, max_position_embeddings=64, classifier_dropout_prob=0.1),
    "deberta": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                    hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=64,
                    relative_attention=True, pos_att_type=["c2p", "p2c"], position_biased_input=True,
                    type_vocab_size=2),
    "deberta-v2": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                       hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=64,
                       relative_attention=True, pos_att_type=["p2c", "c2p"], position_biased_input=False,
                       position_buckets=16, max_relative_positions=64, share_att_key=True,
                       norm_rel_ebd="layer_norm", type_vocab_size=2),
}
# name → (config class, classifier class): models/classification.py's families and DeBERTa-v2
CLASSIFIERS = {**FAMILY_CLASSIFIERS, "deberta-v2": (DebertaV2Config, DebertaV2ForSequenceClassification)}
DERIVED_FIELDS = {"vocab_size", "num_labels", "pad_token_id"}
EXAMPLE_ROWS = 1200


class DataError(CorpusError):
    """The --data file cannot be used (a malformed line, too few rows or labels)."""


# ---- data ---------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Example:
    """One row: text (and text_pair for sentence pairs) with its label string."""

    text: str
    text_pair: str | None
    label: str


def read_tsv(path: str | Path) -> list[Example]:
    """Rows of `text<TAB>label` or `text_a<TAB>text_b<TAB>label`; DataError naming the line of a bad row."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--data {path}: no such file")
    examples, n_fields = [], None
    for number, line in enumerate(tio.read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split("\t")]
        n_fields = n_fields or len(fields)
        if len(fields) not in (2, 3) or len(fields) != n_fields or not all(fields):
            raise DataError(f"{path} line {number}: expected {n_fields if n_fields in (2, 3) else '2 or 3'} "
                            f"non-empty tab-separated fields (text<TAB>label or text_a<TAB>text_b<TAB>label), "
                            f"got {len(fields)}: {line[:80]!r}")
        examples.append(Example(fields[0], fields[1] if len(fields) == 3 else None, fields[-1]))
    return examples


def example_task(n_rows: int = EXAMPLE_ROWS, seed: int = 0) -> list[Example]:
    """The built-in task: "<subject> <verb> [not|never] [adverb] <adjective>", labelled by the adjective's
    sentiment, flipped when negated (half the rows are). Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    subjects = ["the movie", "the food", "this book", "the service", "our trip", "the show", "the hotel",
                "that song", "the weather", "my day"]
    verbs = ["was", "is", "seemed", "felt", "looked"]
    adverbs = ["", "very", "really", "quite", "truly", "so"]
    positive = ["good", "great", "wonderful", "pleasant", "excellent", "lovely", "fun", "nice"]
    negative = ["bad", "awful", "terrible", "boring", "poor", "dull", "sad", "ugly"]
    examples = []
    for _ in range(n_rows):
        is_positive, negated = rng.random() < 0.5, rng.random() < 0.5
        words = [rng.choice(subjects), rng.choice(verbs), rng.choice(["not", "never"]) if negated else "",
                 rng.choice(adverbs), rng.choice(positive if is_positive else negative)]
        label = "positive" if is_positive != negated else "negative"
        examples.append(Example(" ".join(word for word in words if word), None, label))
    return examples


def write_tsv(examples: list[Example], path: str | Path) -> None:
    rows = [f"{e.text}\t{e.text_pair}\t{e.label}" if e.text_pair is not None else f"{e.text}\t{e.label}"
            for e in examples]
    tio.atomic_write_text(Path(path), "".join(row + "\n" for row in rows))


def split_examples(examples: list[Example], val_fraction: float, seed: int) -> dict[str, list[Example]]:
    """Shuffle with `seed`, hold out the last `val_fraction`; each split needs at least one row."""
    order = np.random.default_rng(seed).permutation(len(examples))
    n_val = int(round(len(examples) * val_fraction))
    if not 0 < n_val < len(examples):
        raise DataError(f"{len(examples)} rows cannot be split with --val-fraction {val_fraction}: "
                        "both the training and the held-out split need rows")
    shuffled = [examples[i] for i in order]
    return {"train": shuffled[:-n_val], "val": shuffled[-n_val:]}


def label_names(examples: list[Example]) -> list[str]:
    """The sorted label strings (their index is the class id); at least two."""
    labels = sorted({e.label for e in examples})
    if len(labels) < 2:
        raise DataError(f"the data has only the label {labels}; classification needs at least two")
    return labels


def build_vocab(examples: list[Example], max_words: int = 8000) -> list[str]:
    """A WordPiece vocabulary for training from scratch: the special tokens, every character seen (alone and as
    a `##` continuation, so unseen words are spelled out rather than [UNK]) and the most frequent words."""
    words = Counter(word for e in examples for text in (e.text, e.text_pair) if text
                    for word in basic_tokenize(text, lowercase=True))
    chars = sorted({char for word in words for char in word})
    vocab = [*SPECIAL_TOKENS, *chars, *(f"##{char}" for char in chars)]
    taken = set(vocab)
    vocab += [word for word, _ in words.most_common(max_words) if word not in taken]
    return vocab


def encode(tokenizer: WordPieceTokenizer, examples: list[Example], labels: list[str], max_length: int) -> dict:
    """input_ids, token_type_ids, attention_mask [N, T] (padded to the longest, truncated to max_length) and
    labels [N] as int64 arrays."""
    pairs = [e.text_pair for e in examples] if examples[0].text_pair is not None else None
    arrays = tokenizer([e.text for e in examples], pairs, padding=True, truncation=True, max_length=max_length)
    index = {label: i for i, label in enumerate(labels)}
    arrays["labels"] = np.array([index.get(e.label, -100) for e in examples], dtype=np.int64)
    return arrays


BATCH_KEYS = ("input_ids", "token_type_ids", "attention_mask", "labels")


def take_rows(arrays: dict, rows: np.ndarray) -> tuple:
    """(input_ids, token_type_ids, attention_mask, labels) of `rows`, cut to the longest of them."""
    width = int(arrays["attention_mask"][rows].sum(axis=1).max())
    return tuple(arrays[key][rows] if key == "labels" else arrays[key][rows, :width] for key in BATCH_KEYS)


def random_batches(splits: dict, batch_size: int):
    """get_batch(split, rng) for the Trainer: batch_size random rows of the split."""
    def batches(split: str, rng: np.random.Generator) -> tuple:
        return take_rows(splits[split], rng.integers(0, len(splits[split]["labels"]), batch_size))
    return batches


def classification_loss(model, batch: tuple) -> tt.Tensor:
    input_ids, token_type_ids, attention_mask, labels = batch
    return model.loss(model(input_ids, token_type_ids, attention_mask), labels)


@tt.no_grad()
def accuracy(model, arrays: dict, batch_size: int = 64, device: str = "cpu") -> float:
    """The fraction of rows whose arg-max logit is the label, in eval mode (rows with an unknown label count
    as wrong)."""
    was_training = model.training
    model.eval()
    correct, n_rows = 0, len(arrays["labels"])
    for start in range(0, n_rows, batch_size):
        *inputs, labels = take_rows(arrays, np.arange(start, min(start + batch_size, n_rows)))
        logits = model(*(tt.tensor(array, device=device) for array in inputs))
        correct += int((logits.numpy().argmax(axis=-1) == labels).sum())
    model.train(was_training)
    return correct / n_rows


# ---- model --------------------------------------------------------------------------------------------------------
def new_classifier(model_name: str, settings: dict, vocab_size: int, labels: list[str]):
    """A fresh classifier from the preset and flags, sized for the vocabulary and labels."""
    config_class, model_class = CLASSIFIERS[model_name]
    names = {field.name for field in dataclasses.fields(config_class)}
    config = {name: value for name, value in settings.items() if name in names and name not in DERIVED_FIELDS}
    config.setdefault("max_position_embeddings", settings["max_length"])
    return model_class(config_class(**config, vocab_size=vocab_size, id2label=dict(enumerate(labels))))


def load_classifier(model_name: str, directory: str | Path, labels: list[str], overrides: dict):
    """The classifier over a Hugging Face directory's encoder: its config (with `overrides` and our labels) and
    weights, read by models/hf.py; a head the file lacks starts fresh (`hf_fresh`)."""
    config_class, model_class = CLASSIFIERS[model_name]
    config = dataclasses.replace(read_config(config_class, Path(directory)), **overrides,
                                 id2label=dict(enumerate(labels)), num_labels=len(labels))
    model = model_class(config)
    try:
        model.load_hf_state_dict(read_weights(Path(directory)), source=str(directory))
    except (RuntimeError, ValueError) as error:  # e.g. a classifier for another number of labels
        raise CommandError(f"--from {directory} cannot be fine-tuned for {len(labels)} labels: {error}") from error
    return model


# ---- the run ------------------------------------------------------------------------------------------------------
class FinetuneTask(Task):
    command = "finetune"
    doc = __doc__
    models = {name: (model_class.__module__, config_class.__name__, model_class.__name__)
              for name, (config_class, model_class) in CLASSIFIERS.items()}
    default_model = "bert"
    settings_class = FinetuneSettings
    presets = {"tiny": {"*": TRAIN_PRESET, **MODEL_PRESETS}}
    derived_fields = frozenset(DERIVED_FIELDS)
    init_from_flag = "--from"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--write-example", metavar="FILE", help="write the built-in task as a TSV and exit")

    def before_run(self, args: argparse.Namespace) -> int | None:
        if not args.write_example:
            return None
        write_tsv(example_task(seed=0), args.write_example)
        print(f"wrote {EXAMPLE_ROWS} rows of the built-in task to {args.write_example}")
        return 0

    def preset_settings(self, preset_name: str, model_name: str, args) -> dict:
        """With --from the encoder is pre-trained: no architecture from the preset, and a small learning rate."""
        if args.init_from:
            return {**TRAIN_PRESET, **FROM_PRESET}
        return super().preset_settings(preset_name, model_name, args)

    def tokenizer_from_dict(self, data: dict) -> WordPieceTokenizer:
        return WordPieceTokenizer.from_dict(data)

    def prepare(self, run: Run) -> None:
        data = run.settings["data"]
        examples = read_tsv(data) if data else example_task(seed=0)
        splits = split_examples(examples, run.settings["val_fraction"], run.seed)
        labels = run.saved["task"]["labels"] if run.saved else label_names(splits["train"])
        run.tokenizer = self._tokenizer(run, splits)
        run.model = self._model(run, labels).to(run.device)
        run.model_config = dataclasses.asdict(run.model.config)
        max_length = min(run.settings["max_length"], run.model.config.max_position_embeddings)
        arrays = {split: encode(run.tokenizer, rows, labels, max_length) for split, rows in splits.items()}
        run.batches = random_batches(arrays, run.settings["batch_size"] * run.world_size)
        sift = self.sift_config(run.settings)
        run.loss_fn = classification_loss if sift is None else (lambda model, batch: sift_loss(model, batch, sift))
        run.record_extra = {"labels": labels}
        run.scratch = {"arrays": arrays, "examples": None if data else examples}
        pairs = " (sentence pairs)" if examples[0].text_pair is not None else ""
        source = f"from {run.args.init_from}" if run.args.init_from else "from scratch"
        run.description = (f"{run.model_name} {source}: {run.model.num_parameters() / 1e6:.3f} M parameters, "
                           f"vocabulary of {run.tokenizer.vocab_size}; {len(splits['train'])} training and "
                           f"{len(splits['val'])} held-out rows{pairs}, labels {labels}{', SiFT' if sift else ''}")

    def _tokenizer(self, run: Run, splits: dict) -> WordPieceTokenizer:
        if run.saved is not None:
            return run.tokenizer
        if run.args.init_from:
            return WordPieceTokenizer.from_pretrained(run.args.init_from)
        return WordPieceTokenizer(build_vocab(splits["train"]))

    def _model(self, run: Run, labels: list[str]):
        if run.saved is not None:
            return self.build_model(run.model_name, run.saved["model"])
        if run.args.init_from:
            return load_classifier(run.model_name, run.args.init_from, labels, run.model_flags)
        settings = {**run.model_flags, "max_length": run.settings["max_length"]}
        try:
            return new_classifier(run.model_name, settings, run.tokenizer.vocab_size, labels)
        except ValueError as error:
            raise CommandError(f"model config: {error}") from error

    @staticmethod
    def sift_config(settings: dict) -> SiftConfig | None:
        if not settings["sift"]:
            return None
        return SiftConfig(settings["sift_weight"], settings["sift_noise"], settings["sift_step"])

    def finish(self, run: Run, trainer) -> int:
        """Write hf/, scores.json (also after Ctrl-C) and, for the built-in task, data.tsv; print the accuracy."""
        hf_dir = export_hf(run)
        if run.scratch["examples"] is not None:
            write_tsv(run.scratch["examples"], run.directory.path / "data.tsv")
        arrays, batch_size = run.scratch["arrays"], run.settings["batch_size"]
        scores = {"val_accuracy": accuracy(run.model, arrays["val"], batch_size, run.device),
                  "train_accuracy": accuracy(run.model, arrays["train"], batch_size, run.device),
                  "val_rows": len(arrays["val"]["labels"]), "labels": run.record_extra["labels"],
                  "iterations": trainer.iteration}
        write_scores(run, scores)
        print(f"held-out accuracy {scores['val_accuracy']:.3f} on {scores['val_rows']} rows "
              f"(training rows {scores['train_accuracy']:.3f}); saved {hf_dir}")
        return 130 if trainer.interrupted else 0


TASK = FinetuneTask()
main = TASK.main


if __name__ == "__main__":
    sys.exit(main())
