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
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

import tinytensor as tt
import tinytensor.distributed as dist
import tinytensor.io as tio
from models.classification import CLASSIFIERS
from models.hf import read_config, read_weights
from models.tokenizers.wordpiece import SPECIAL_TOKENS, WordPieceTokenizer, basic_tokenize
from train.flags import config_fields, flag_type
from train.loop import Trainer, TrainConfig, init_distributed
from train.sift import SiftConfig, sift_loss

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
}
DERIVED_FIELDS = {"vocab_size", "num_labels", "pad_token_id"}
EXAMPLE_ROWS = 1200


class DataError(ValueError):
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
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
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
def model_name_of_directory(directory: str | Path) -> str:
    """The --model name for a Hugging Face directory, from its config.json's model_type."""
    config_file = Path(directory) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"--from {directory}: no config.json (expected a Hugging Face checkpoint directory)")
    model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    if model_type not in CLASSIFIERS:
        raise ValueError(f"{config_file} has model_type {model_type!r}; train.finetune knows {', '.join(CLASSIFIERS)}")
    return model_type


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
        raise ValueError(f"--from {directory} cannot be fine-tuned for {len(labels)} labels: {error}") from error
    return model


# ---- command line -------------------------------------------------------------------------------------------------
def build_parser(config_class: type | None = None, add_help: bool = True) -> argparse.ArgumentParser:
    """Common flags, TrainConfig's fields and (when known) every scalar field of the model's config."""
    parser = argparse.ArgumentParser(prog="python -m train.finetune", description=__doc__, add_help=add_help,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(CLASSIFIERS), default=None, help="architecture (default bert)")
    parser.add_argument("--from", dest="from_dir", help="Hugging Face directory with the encoder and vocab.txt")
    parser.add_argument("--data", help="TSV of text<TAB>label or text_a<TAB>text_b<TAB>label (default: built-in)")
    parser.add_argument("--out", default="runs/finetune", help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--val-fraction", type=float, default=None, help="share of rows held out (default 0.2)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--max-length", type=int, help="tokens per example (longer ones are truncated)")
    parser.add_argument("--sift", action="store_true", help="add DeBERTa's scale-invariant adversarial loss")
    parser.add_argument("--sift-weight", type=float, help="λ, the adversarial loss's weight (default 1)")
    parser.add_argument("--sift-noise", type=float, help="σ of the random start (default 1e-2)")
    parser.add_argument("--sift-step", type=float, help="ε, the ascent step size (default 1e-4)")
    parser.add_argument("--write-example", metavar="FILE", help="write the built-in task as a TSV and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    parser.add_argument("--ddp", action="store_true",
                        help="data-parallel over the processes of `mpiexec -n N` (--batch-size per process)")
    train_fields = [f for f in dataclasses.fields(TrainConfig) if f.name not in {"out_dir", "progress"}]
    model_fields = config_fields(config_class) if config_class else {}
    taken = {action.dest for action in parser._actions}
    for name, kind in [*((f.name, flag_type(f.type)) for f in train_fields), *model_fields.items()]:
        if name not in taken and name not in DERIVED_FIELDS:
            parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None, dest=name)
    return parser


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, str]:
    """Find the model first (--model, the --from directory or the run being resumed), then parse every flag."""
    known, _ = build_parser(add_help=False).parse_known_args(argv)
    if known.resume:
        found, source = _saved_run(known.out)["model_name"], f"the checkpoint in {known.out}"
    elif known.from_dir:
        found, source = model_name_of_directory(known.from_dir), known.from_dir
    else:
        found, source = known.model or "bert", None
    if known.model and known.model != found:
        raise ValueError(f"--model {known.model} does not match {source}, which holds {found}")
    return build_parser(CLASSIFIERS[found][0]).parse_args(argv), found


def _saved_run(out: str | Path) -> dict:
    return tio.load_checkpoint(Path(out) / "checkpoint").config


# ---- the run ------------------------------------------------------------------------------------------------------
class Run:
    """Everything `train` needs, prepared and checked before training starts."""

    def __init__(self, args: argparse.Namespace, model_name: str):
        self.args, self.model_name, self.out_dir = args, model_name, Path(args.out)
        flags = {name: value for name, value in vars(args).items() if value is not None and value is not False}
        saved = _saved_run(self.out_dir) if args.resume else None
        if saved:
            self.settings = {**saved["train"], **saved["data"], **flags}
        else:
            self.settings = {**TRAIN_PRESET, **(FROM_PRESET if args.from_dir else MODEL_PRESETS[model_name]),
                             "val_fraction": 0.2, **flags}
        tt.backend.require_device(self.device)
        self.world_size = init_distributed(args.ddp, self.device)
        self.examples = self._examples()
        self.splits = split_examples(self.examples, self.settings["val_fraction"], self.settings.get("seed", 1337))
        self.labels = saved["labels"] if saved else label_names(self.splits["train"])
        self.tokenizer = self._tokenizer()
        tt.manual_seed(self.settings.get("seed", 1337))
        self.model = self._model(saved, flags).to(self.device)
        max_length = min(self.settings["max_length"], self.model.config.max_position_embeddings)
        self.arrays = {split: encode(self.tokenizer, rows, self.labels, max_length)
                       for split, rows in self.splits.items()}

    @property
    def device(self) -> str:
        return self.settings.get("device", "cpu")

    def _examples(self) -> list[Example]:
        data = self.args.data or self.settings.get("data")
        return read_tsv(data) if data else example_task(seed=0)

    def _tokenizer(self) -> WordPieceTokenizer:
        source = self.out_dir / "tokenizer" if self.args.resume else self.args.from_dir
        if source is not None:
            return WordPieceTokenizer.from_pretrained(source)
        return WordPieceTokenizer(build_vocab(self.splits["train"]))

    def _model(self, saved: dict | None, flags: dict):
        config_class, model_class = CLASSIFIERS[self.model_name]
        if saved:
            return model_class(config_class(**saved["model"]))
        if self.args.from_dir:
            overrides = {k: v for k, v in flags.items() if k in config_fields(config_class)}
            return load_classifier(self.model_name, self.args.from_dir, self.labels, overrides)
        return new_classifier(self.model_name, self.settings, self.tokenizer.vocab_size, self.labels)

    def sift_config(self) -> SiftConfig | None:
        if not (self.args.sift or self.settings.get("sift")):
            return None
        given = {"weight": self.settings.get("sift_weight"), "noise": self.settings.get("sift_noise"),
                 "step_size": self.settings.get("sift_step")}
        return SiftConfig(**{k: v for k, v in given.items() if v is not None})

    def trainer(self) -> Trainer:
        config = TrainConfig.from_dict({**self.settings, "out_dir": str(self.out_dir),
                                        "progress": not self.args.no_progress})
        sift = self.sift_config()
        data = {key: self.settings.get(key) for key in ("batch_size", "max_length", "val_fraction", "sift_weight",
                                                        "sift_noise", "sift_step")}
        data.update(data=str(self.args.data or self.settings.get("data") or "") or None, sift=sift is not None)
        run_config = {"model_name": self.model_name, "model": dataclasses.asdict(self.model.config),
                      "labels": self.labels, "data": data}
        loss_fn = classification_loss if sift is None else (lambda model, batch: sift_loss(model, batch, sift))
        global_batch = self.settings["batch_size"] * self.world_size  # each process keeps batch_size rows
        return Trainer(self.model, config, random_batches(self.arrays, global_batch),
                       run_config=run_config, loss_fn=loss_fn)

    def describe(self) -> str:
        pairs = " (sentence pairs)" if self.examples[0].text_pair is not None else ""
        source = f"from {self.args.from_dir}" if self.args.from_dir else "from scratch"
        return (f"{self.model_name} {source}: {self.model.num_parameters() / 1e6:.3f} M parameters, vocabulary "
                f"of {self.tokenizer.vocab_size}; {len(self.splits['train'])} training and "
                f"{len(self.splits['val'])} held-out rows{pairs}, labels {self.labels}"
                f"{', SiFT' if self.sift_config() else ''}")

    def scores(self) -> dict:
        """Accuracy on the held-out and training rows, written to <out>/scores.json."""
        batch_size = self.settings["batch_size"]
        return {"val_accuracy": accuracy(self.model, self.arrays["val"], batch_size, self.device),
                "train_accuracy": accuracy(self.model, self.arrays["train"], batch_size, self.device),
                "val_rows": len(self.splits["val"]), "labels": self.labels}


USER_ERRORS = (DataError, tio.CheckpointError, OSError, ValueError, KeyError, tt.backend.DeviceUnavailableError,
               dist.RankMismatchError)


def main(argv: list[str] | None = None) -> int:
    try:
        args, model_name = parse_args(argv)
        if args.write_example:
            write_tsv(example_task(seed=0), args.write_example)
            print(f"wrote {EXAMPLE_ROWS} rows of the built-in task to {args.write_example}")
            return 0
        run = Run(args, model_name)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return train(run)


def train(run: Run) -> int:
    """Fit on the shared loop, then write hf/ and scores.json (also after Ctrl-C) and print the accuracy (files
    and prints from rank 0 only, in DDP)."""
    run.out_dir.mkdir(parents=True, exist_ok=True)
    if dist.is_main_process():
        run.tokenizer.save_pretrained(run.out_dir / "tokenizer")
        if not (run.args.data or run.settings.get("data")):
            write_tsv(run.examples, run.out_dir / "data.tsv")
        print(run.describe())
    trainer = run.trainer()
    trainer.fit(resume=run.args.resume)
    if not dist.is_main_process():
        return 130 if trainer.interrupted else 0
    hf_dir = run.out_dir / "hf"
    run.model.save_pretrained(hf_dir)
    run.tokenizer.save_pretrained(hf_dir)
    scores = {**run.scores(), "iterations": trainer.iteration}
    tio.atomic_write_text(run.out_dir / "scores.json", json.dumps(scores, indent=2) + "\n")
    print(f"held-out accuracy {scores['val_accuracy']:.3f} on {scores['val_rows']} rows "
          f"(training rows {scores['train_accuracy']:.3f}); saved {hf_dir}")
    return 130 if trainer.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
