"""Run directories that never lose work: refuse to replace a run, one writer at a time, exports written whole.

Layer: `train/`, used by `train/cli.py`. A run directory (`--out`) holds

    checkpoint/     the commit record of the run (tinytensor.io's atomic checkpoint): weights, optimizer, the model
                    config, the settings, the tokenizer, and how much of metrics.jsonl it has seen
    metrics.jsonl   one strict-JSON line per iteration and per evaluation
    .lock           held (flock) by the process writing the run
    exports         loss.png, hf/, tokenizer/, scores.json, ... derived from the checkpoint, rewritten at the end

Everything that must agree (weights, config, tokenizer) is in the one checkpoint, which `tinytensor.io` replaces
atomically; a fresh run commits its initial state as checkpoint 0 before its first step. So a kill at any instant
leaves the old run or the new one, complete, never a mix; exports are conveniences, rebuilt from the checkpoint.

The lock is an advisory `flock` on `.lock`, whose text is the holder's pid: the kernel releases it when the holder
dies, even by kill -9, so a stale lock is simply taken over (POSIX only).
"""
from __future__ import annotations

import fcntl
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from train.loop import METRICS_FILE

CHECKPOINT_DIR = "checkpoint"
LOCK_FILE = ".lock"
EXPORTS = ("loss.png", "hf", "tokenizer", "tokenizer.json", "vocab.json", "scores.json", "metrics", "data.tsv")


class RunDirectoryError(ValueError):
    """--out cannot be used as asked: it holds another run, is locked by a running process, or is not a directory."""


class RunDirectory:
    """The run directory of one command: checks before anything is written, then the lock while training."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fd: int | None = None

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_DIR

    def holds_run(self) -> bool:
        """A committed checkpoint or logged metrics: work that a fresh run would replace."""
        return (self.checkpoint / "checkpoint.json").exists() or (self.path / METRICS_FILE).exists()

    def check_usable(self, resume: bool, overwrite: bool) -> None:
        """Read-only checks for --out, before any work: RunDirectoryError naming what to do instead."""
        self.check_state(resume, overwrite)
        self._check_not_locked()

    def check_state(self, resume: bool, overwrite: bool) -> None:
        """What --out holds against what was asked: a run to resume, or room for a fresh one."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirectoryError(f"--out {self.path} is a file, not a directory")
        if resume and overwrite:
            raise RunDirectoryError("--resume continues the run in --out and --overwrite replaces it: give one")
        if resume and not (self.checkpoint / "checkpoint.json").exists():
            raise RunDirectoryError(f"--resume: no checkpoint in {self.path} (start a run there without --resume)")
        if not resume and not overwrite and self.holds_run():
            raise RunDirectoryError(f"--out {self.path} already holds a run; continue it with --resume, or replace "
                                    "it with --overwrite (or choose another --out)")

    def lock(self) -> None:
        """Take the directory's lock (creating the directory); RunDirectoryError naming the holder's pid."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirectoryError(f"--out {self.path} is in use by another run (pid {self._holder()}); wait for "
                                    "it to finish or stop it") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _check_not_locked(self) -> None:
        """Fail early (before preparing data and models) when another process holds the lock."""
        if not (self.path / LOCK_FILE).exists():
            return
        fd = os.open(self.path / LOCK_FILE, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirectoryError(f"--out {self.path} is in use by another run (pid {self._holder()}); wait for "
                                    "it to finish or stop it") from None
        finally:
            os.close(fd)

    def _holder(self) -> str:
        try:
            return (self.path / LOCK_FILE).read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def clear_exports(self) -> None:
        """After a replacing run's first commit: remove the old run's derived files, which no longer match."""
        for name in EXPORTS:
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()

    def export_directory(self, name: str, write: Callable[[Path], None]) -> Path:
        """Write `<out>/<name>/` whole: `write(tmp)` fills a fresh directory beside it, which then replaces the old
        one (readers never see half of each; a kill in between leaves a stray hidden directory at worst)."""
        final = self.path / name
        staging = self.path / f".{name}.{secrets.token_hex(4)}.tmp"
        write(staging)
        retired = self.path / f".{name}.{secrets.token_hex(4)}.old"
        if final.exists():
            final.rename(retired)
        staging.rename(final)
        shutil.rmtree(retired, ignore_errors=True)
        return final
