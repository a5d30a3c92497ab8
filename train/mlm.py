"""`python -m train.mlm`: pre-train BERT, ALBERT or DeBERTa with masked language modelling, on the shared loop.

    python -m train.mlm --model bert --data my.txt                     # tiny preset: WordPiece of 1500 learned here
    python -m train.mlm --model albert --data my.txt --max-iters 300 --out runs/albert
    python -m train.mlm --model bert --data my.txt --tokenizer path/to/bert   # reuse a vocab.txt instead
    python -m train.mlm --out runs/mlm --resume                        # continue exactly where it stopped

The data pipeline, as in BERT (Devlin et al. 2018, §3.1 and appendix A.1) and ALBERT (Lan et al. 2019, §4.1):

- The text is split by lines, the first 90 % for training and the rest held out. Each line is cut into WordPiece
  ids, and consecutive lines are packed into *segments* of at most (seq_length - 3) / 2 ids.
- Every example is a pair `[CLS] A [SEP] B [SEP]` (token types 0 then 1), padded with `[PAD]` to seq_length.
  BERT (next-sentence prediction): A is a segment, B the segment after it (label 0) or, half the time, a random
  other segment (label 1: Hugging Face's `next_sentence_label`). ALBERT (sentence-order prediction): A and B are
  consecutive segments, swapped half the time (label 1). DeBERTa: masked LM only, on the same pairs, no label.
- Masking is dynamic: each batch is masked afresh from the Trainer's seeded generator (so a resumed run masks
  the same way). Of each example's non-special tokens, 15 % (rounded, at least one) are chosen as in Google's
  `create_pretraining_data.py`; of those 80 % become `[MASK]`, 10 % a random non-special token, 10 % stay.
  The labels are the original ids there and -100 elsewhere, and the loss is the model's own `loss`.

Every field of the model's config (`--num-hidden-layers`, `--hidden-size`, `--embedding-size`, …) and of
`TrainConfig` (`--lr`, `--max-iters`, …) is a flag that overrides the preset; `--help` after `--model NAME` lists
them. At the end the run measures masked-LM accuracy on held-out text (the fraction of masked positions whose
argmax is the original token), the unigram baseline (always guessing the training text's most frequent token) and,
for BERT and ALBERT, the pair-task accuracy; it prints them and writes `<out>/metrics/scores.json`.

The run directory gets `tokenizer/` (vocab.txt, tokenizer_config.json), `checkpoint/` (for --resume),
`metrics.jsonl`, `loss.png`, and at the end (also after Ctrl-C) `hf/`: config.json + model.safetensors +
vocab.txt, which `BertForPreTraining.from_pretrained` (or the ALBERT / DeBERTa class) and `transformers` load.
"""
from __future__ import annotations

import dataclasses
import inspect
import sys
from dataclasses import dataclass

import numpy as np

import tinytensor as tt
import tinytensor.distributed as dist
from models.tokenizers.wordpiece import CLS, MASK, SEP, SPECIAL_TOKENS, WordPieceTokenizer
from train.cli import CommandError, Run, Task, check_model_fits, export_hf, write_scores
from train.corpus import CorpusError, load_corpus
from train.settings import ANY, BOOL, NON_NEGATIVE, OPEN_UNIT, POSITIVE, at_least, setting
from train.wordpiece_trainer import train_tokenizer

IGNORE_INDEX = -100  # label of positions that are not predicted (F.cross_entropy's ignore_index)


@dataclass
class MLMSettings:
    """The data, the vocabulary, the masking and the final evaluation of a train.mlm run."""

    data: str | None = setting(None, ANY, "a UTF-8 text file (default: Shakespeare's plays, downloaded once)")
    tokenizer: str | None = setting(None, ANY, "directory with a vocab.txt to use instead of learning one")
    cased: bool = setting(False, BOOL, "learn a cased vocabulary (default: lowercase)")
    vocab_size: int = setting(1500, at_least(len(SPECIAL_TOKENS) + 1), "size of the WordPiece vocabulary learned "
                                                                        "from the data")
    seq_length: int = setting(64, at_least(5), "tokens per example, [CLS] and two [SEP]s included")
    batch_size: int = setting(32, POSITIVE, "examples per batch (per process with --ddp)", resumable=True)
    mask_prob: float = setting(0.15, OPEN_UNIT, "share of the tokens chosen for prediction")
    eval_batches: int = setting(20, NON_NEGATIVE, "held-out batches for the final accuracy", resumable=True)


# the sentence-pair task each model learns besides the masked LM
PAIR_TASKS = {"bert": "nsp", "albert": "sop", "deberta": None, "deberta-v2": None}
PRESETS = {
    # a CPU run of minutes: pairs of 64 WordPiece ids, batch 32, a 1500-token vocabulary learned from the data
    "tiny": {"*": dict(seq_length=64, batch_size=32, vocab_size=1500, mask_prob=0.15, max_iters=1200,
                       eval_interval=200, eval_iters=5, lr=1e-3, min_lr=1e-4, warmup_iters=100, beta2=0.99,
                       weight_decay=0.01, grad_clip=1.0),
             "bert": dict(num_hidden_layers=2, num_attention_heads=4, hidden_size=128, intermediate_size=512,
                          hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
             "albert": dict(num_hidden_layers=4, num_attention_heads=4, hidden_size=128, embedding_size=64,
                            intermediate_size=512, hidden_act="gelu_new", classifier_dropout_prob=0.0,
                            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
             # deberta-base's attention: disentangled content-to-position and position-to-content, no absolute
             # positions
             "deberta": dict(num_hidden_layers=2, num_attention_heads=4, hidden_size=128, intermediate_size=512,
                             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, relative_attention=True,
                             pos_att_type="c2p|p2c", position_biased_input=False),
             # deberta-v3-base's attention: log-bucketed positions, keys shared with the content projections,
             # LayerNorm'd relative embeddings
             "deberta-v2": dict(num_hidden_layers=2, num_attention_heads=4, hidden_size=128, intermediate_size=512,
                                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, relative_attention=True,
                                pos_att_type="p2c|c2p", position_biased_input=False, position_buckets=32,
                                max_relative_positions=64, share_att_key=True, norm_rel_ebd="layer_norm")},
}


# ---- data: lines → segments → pairs → masked batches --------------------------------------------------------------
def split_lines(text: str, train_fraction: float = 0.9) -> tuple[list[str], list[str]]:
    """The non-blank lines, the first 90 % for training and the rest held out."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    cut = int(len(lines) * train_fraction)
    if not 0 < cut < len(lines):
        raise CorpusError(f"the corpus has {len(lines)} non-blank lines, too few to split into training and "
                          "validation")
    return lines[:cut], lines[cut:]


def pack_segments(line_ids: list[list[int]], max_tokens: int) -> list[np.ndarray]:
    """Consecutive lines packed greedily into segments of at most `max_tokens` ids (a longer line is cut into
    several), in text order, so segment i+1 is what follows segment i."""
    segments, current = [], []
    for ids in line_ids:
        if current and len(current) + len(ids) > max_tokens:
            segments.append(current)
            current = []
        current = current + ids
        while len(current) > max_tokens:
            segments.append(current[:max_tokens])
            current = current[max_tokens:]
    if current:
        segments.append(current)
    return [np.asarray(segment, dtype=np.int64) for segment in segments]


def encode_segments(tokenizer: WordPieceTokenizer, lines: list[str], seq_length: int) -> list[np.ndarray]:
    """WordPiece ids of each line (without [CLS]/[SEP]) packed into segments that fit two to an example."""
    max_tokens = (seq_length - 3) // 2
    if max_tokens < 1:
        raise ValueError(f"--seq-length {seq_length} leaves no room for two segments and three special tokens")
    return pack_segments([tokenizer.encode(line)[1:-1] for line in lines], max_tokens)


def make_pairs(segments: list[np.ndarray], batch_size: int, pair_task: str | None,
               rng: np.random.Generator) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """`batch_size` (A, B) segment pairs and their labels [B].

    "nsp": B follows A (label 0) or, with probability 1/2, is a random segment other than A's successor (label 1).
    "sop": A and B consecutive (label 0) or, with probability 1/2, swapped (label 1). None: consecutive, labels 0.
    """
    if len(segments) < 2:
        raise CorpusError(f"only {len(segments)} segment(s) of text: too little to build sentence pairs")
    starts = rng.integers(0, len(segments) - 1, size=batch_size)
    flips = rng.random(batch_size) < 0.5 if pair_task else np.zeros(batch_size, dtype=bool)
    others = rng.integers(0, len(segments) - 1, size=batch_size)
    pairs = []
    for start, flip, other in zip(starts, flips, others):
        first, second = segments[start], segments[start + 1]
        if flip and pair_task == "nsp":
            second = segments[other if other < start + 1 else other + 1]  # any segment but the true next one
        elif flip:
            first, second = second, first
        pairs.append((first, second))
    return pairs, flips.astype(np.int64)


def pair_arrays(pairs: list[tuple[np.ndarray, np.ndarray]], seq_length: int,
                tokenizer: WordPieceTokenizer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids, token_type_ids, attention_mask), each int64 [B, T]: `[CLS] A [SEP] B [SEP]` then `[PAD]`s."""
    cls_id, sep_id = tokenizer.token_to_id(CLS), tokenizer.token_to_id(SEP)
    shape = (len(pairs), seq_length)
    input_ids = np.full(shape, tokenizer.pad_token_id, dtype=np.int64)
    token_type_ids, attention_mask = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
    for row, (first, second) in enumerate(pairs):
        ids = np.concatenate([[cls_id], first, [sep_id], second, [sep_id]])
        input_ids[row, :len(ids)] = ids
        token_type_ids[row, len(first) + 2:len(ids)] = 1
        attention_mask[row, :len(ids)] = 1
    return input_ids, token_type_ids, attention_mask


@dataclass(frozen=True)
class MaskingSpec:
    """What masking needs to know about the vocabulary."""

    mask_id: int
    special_ids: np.ndarray     # never chosen: [PAD] [UNK] [CLS] [SEP] [MASK]
    replacement_ids: np.ndarray  # the random-token replacements: every non-special id
    mask_prob: float = 0.15

    @classmethod
    def of(cls, tokenizer: WordPieceTokenizer, mask_prob: float = 0.15) -> MaskingSpec:
        special = np.asarray(sorted(tokenizer.token_to_id(token) for token in SPECIAL_TOKENS), dtype=np.int64)
        return cls(tokenizer.token_to_id(MASK), special,
                   np.setdiff1d(np.arange(tokenizer.vocab_size, dtype=np.int64), special), mask_prob)


def mask_tokens(input_ids: np.ndarray, spec: MaskingSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking of a batch [B, T] → (masked input_ids, labels), both int64 [B, T].

    In each row, round(mask_prob · n) of its n non-special tokens (at least one) are chosen uniformly; a chosen
    token becomes [MASK] with probability 0.8, a random non-special token with 0.1, and stays with 0.1. labels
    hold the original id at chosen positions and -100 elsewhere."""
    candidates = ~np.isin(input_ids, spec.special_ids)
    n_candidates = candidates.sum(axis=1)
    n_chosen = np.minimum(n_candidates, np.maximum(1, np.rint(spec.mask_prob * n_candidates))).astype(np.int64)
    keys = np.where(candidates, rng.random(input_ids.shape), np.inf)
    ranks = np.argsort(np.argsort(keys, axis=1), axis=1)          # a uniformly random order of each row's candidates
    chosen = ranks < n_chosen[:, None]
    action = rng.random(input_ids.shape)
    random_ids = rng.choice(spec.replacement_ids, size=input_ids.shape)
    masked = np.where(chosen & (action < 0.8), spec.mask_id, input_ids)
    masked = np.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, masked)
    labels = np.where(chosen, input_ids, IGNORE_INDEX)
    return masked.astype(np.int64), labels.astype(np.int64)


class PairBatches:
    """get_batch(split, rng) for the Trainer: (input_ids, token_type_ids, attention_mask, labels, pair_labels),
    each int64, [B, T] but pair_labels [B]; fresh pairs and fresh masking every call."""

    def __init__(self, splits: dict[str, list[np.ndarray]], tokenizer: WordPieceTokenizer, seq_length: int,
                 batch_size: int, pair_task: str | None, spec: MaskingSpec):
        self.splits, self.tokenizer, self.seq_length = splits, tokenizer, seq_length
        self.batch_size, self.pair_task, self.spec = batch_size, pair_task, spec

    def __call__(self, split: str, rng: np.random.Generator) -> tuple:
        pairs, pair_labels = make_pairs(self.splits[split], self.batch_size, self.pair_task, rng)
        input_ids, token_type_ids, attention_mask = pair_arrays(pairs, self.seq_length, self.tokenizer)
        masked, labels = mask_tokens(input_ids, self.spec, rng)
        return masked, token_type_ids, attention_mask, labels, pair_labels


def forward(model, pair_task: str | None, batch: tuple) -> tuple:
    """(mlm_logits [B, T, V], pair_logits [B, 2] or None) for a PairBatches batch."""
    input_ids, token_type_ids, attention_mask = batch[:3]
    if pair_task is None:  # DeBERTa: masked LM only
        return model(input_ids, attention_mask=attention_mask), None
    return model(input_ids, token_type_ids, attention_mask)


def loss_function(pair_task: str | None):
    """loss_fn(model, batch) for the Trainer: the model's own pre-training (or masked-LM) loss."""
    def loss(model, batch: tuple) -> tt.Tensor:
        mlm_logits, pair_logits = forward(model, pair_task, batch)
        labels, pair_labels = batch[3], batch[4]
        if pair_task is None:
            return model.loss(mlm_logits, labels)
        return model.loss(mlm_logits, pair_logits, labels, pair_labels)
    return loss


# ---- evaluation ---------------------------------------------------------------------------------------------------
def most_frequent_token(segments: list[np.ndarray], spec: MaskingSpec) -> int:
    """The commonest non-special id of the training segments: the unigram baseline's one guess."""
    counts = np.bincount(np.concatenate(segments), minlength=int(spec.replacement_ids.max()) + 1)
    counts[spec.special_ids[spec.special_ids < len(counts)]] = 0
    return int(counts.argmax())


@tt.no_grad()
def mlm_scores(model, batches: PairBatches, unigram_id: int, n_batches: int, seed: int) -> dict:
    """Masked-LM accuracy on `n_batches` held-out batches (a fixed stream, so runs compare), the unigram
    baseline's accuracy on the same masked positions, and the pair task's accuracy (when there is one)."""
    model.eval()
    rng = np.random.default_rng([seed, 2024])
    correct = unigram = total = pair_correct = pair_total = 0
    device = next(iter(model.parameters())).device
    for _ in range(n_batches):
        batch = batches("val", rng)
        mlm_logits, pair_logits = forward(model, batches.pair_task, [tt.tensor(a, device=device) for a in batch])
        labels, chosen = batch[3], batch[3] != IGNORE_INDEX
        predictions = mlm_logits.numpy().argmax(axis=-1)
        correct += int((predictions[chosen] == labels[chosen]).sum())
        unigram += int((labels[chosen] == unigram_id).sum())
        total += int(chosen.sum())
        if pair_logits is not None:
            pair_correct += int((pair_logits.numpy().argmax(axis=-1) == batch[4]).sum())
            pair_total += len(batch[4])
    model.train()
    scores = {"mlm_accuracy": correct / total, "unigram_baseline_accuracy": unigram / total,
              "masked_positions": total}
    if pair_total:
        scores[f"{batches.pair_task}_accuracy"] = pair_correct / pair_total
    return scores


# ---- the run ------------------------------------------------------------------------------------------------------
class MLMTask(Task):
    command = "mlm"
    doc = __doc__
    models = {"bert": ("models.bert", "BertConfig", "BertForPreTraining"),
              "albert": ("models.albert", "AlbertConfig", "AlbertForPreTraining"),
              "deberta": ("models.deberta", "DebertaConfig", "DebertaForMaskedLM"),
              "deberta-v2": ("models.deberta_v2", "DebertaV2Config", "DebertaV2ForMaskedLM")}
    default_model = "bert"
    settings_class = MLMSettings
    presets = PRESETS
    derived_fields = frozenset({"vocab_size", "pad_token_id", "bos_token_id", "eos_token_id",
                                "max_position_embeddings"})

    def tokenizer_from_dict(self, data: dict) -> WordPieceTokenizer:
        return WordPieceTokenizer.from_dict(data)

    def prepare(self, run: Run) -> None:
        train_lines, val_lines = split_lines(load_corpus(run.settings["data"]))
        run.tokenizer = self._tokenizer(run, train_lines)
        seq_length, pair_task = run.settings["seq_length"], PAIR_TASKS[run.model_name]
        splits = {"train": encode_segments(run.tokenizer, train_lines, seq_length),
                  "val": encode_segments(run.tokenizer, val_lines, seq_length)}
        spec = MaskingSpec.of(run.tokenizer, run.settings["mask_prob"])
        config = run.saved["model"] if run.saved else self._new_model_config(run)
        run.model = self.build_model(run.model_name, config).to(run.device)
        run.model_config = dataclasses.asdict(run.model.config)
        check_model_fits(run, "--seq-length", seq_length, run.model_config.get("max_position_embeddings", seq_length))
        batch_size = run.settings["batch_size"]
        run.batches = PairBatches(splits, run.tokenizer, seq_length, batch_size * run.world_size, pair_task, spec)
        run.loss_fn = loss_function(pair_task)
        run.scratch = {"eval": PairBatches(splits, run.tokenizer, seq_length, batch_size, pair_task, spec),
                       "unigram_id": most_frequent_token(splits["train"], spec)}
        run.description = (f"{run.model_name}: {run.model.num_parameters() / 1e6:.3f} M parameters, vocabulary of "
                           f"{run.tokenizer.vocab_size}, {len(splits['train']):,} training and "
                           f"{len(splits['val']):,} held-out segments")

    def _tokenizer(self, run: Run, train_lines: list[str]) -> WordPieceTokenizer:
        """The run's own on resume, a given one, or one learned from the training lines."""
        if run.saved is not None:
            return run.tokenizer
        if run.settings["tokenizer"] is not None:
            return WordPieceTokenizer.from_pretrained(run.settings["tokenizer"])
        if dist.is_main_process():
            print(f"learning a WordPiece vocabulary of {run.settings['vocab_size']} tokens from "
                  f"{len(train_lines):,} lines")
        try:
            return train_tokenizer(train_lines, run.settings["vocab_size"], lowercase=not run.settings["cased"])
        except ValueError as error:  # --vocab-size below the specials and the text's characters: it names the flag
            raise CommandError(str(error)) from error

    def _new_model_config(self, run: Run) -> dict:
        """Preset and flags for the config's fields; vocabulary and [PAD] from the tokenizer, positions from
        --seq-length."""
        names = set(inspect.signature(self.model_classes(run.model_name)[0]).parameters)
        derived = {"vocab_size": run.tokenizer.vocab_size, "pad_token_id": run.tokenizer.pad_token_id,
                   "max_position_embeddings": run.settings["seq_length"]}
        return {**run.model_flags, **{name: value for name, value in derived.items() if name in names}}

    def finish(self, run: Run, trainer) -> int:
        """Write <out>/hf (also after Ctrl-C), then score held-out masked-LM accuracy."""
        hf_dir = export_hf(run)
        print(f"saved {hf_dir}")
        if trainer.interrupted:
            return 130
        if run.settings["eval_batches"] > 0:
            unigram_id = run.scratch["unigram_id"]
            scores = mlm_scores(run.model, run.scratch["eval"], unigram_id, run.settings["eval_batches"], run.seed)
            scores = {"model": run.model_name, "unigram_token": run.tokenizer.id_to_token(unigram_id), **scores,
                      "iterations": trainer.iteration}
            report_scores(scores)
            write_scores(run, scores)
        return 0


def report_scores(scores: dict) -> None:
    """Print the held-out scores."""
    print(f"held-out masked-LM accuracy {scores['mlm_accuracy']:.3f} vs unigram baseline "
          f"{scores['unigram_baseline_accuracy']:.3f} (always {scores['unigram_token']!r}) over "
          f"{scores['masked_positions']:,} masked tokens")
    for task in ("nsp", "sop"):
        if f"{task}_accuracy" in scores:
            print(f"held-out {task.upper()} accuracy {scores[f'{task}_accuracy']:.3f} (chance 0.5)")


TASK = MLMTask()
main = TASK.main

if __name__ == "__main__":
    sys.exit(main())
