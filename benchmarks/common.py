"""Timing helpers shared by the benchmarks: medians of repeated runs, peak memory, machine description.

Benchmarks compare tinytensor with PyTorch eager on the same machine in the same process run; PyTorch is
installed only for them (`pip install torch==2.13.0`, the CPU build). Nothing here is part of the test suite.
"""
from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np


def median_time(step: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Median wall time of `step()` in seconds over `repeats` runs, after `warmup` untimed runs."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    blas = ""
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}, {i['num_threads']} threads)"
                         for i in threadpool_info() if i["user_api"] == "blas")
    except ImportError:
        pass
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}"
            + (f", {blas}" if blas else ""))


def ratio_row(name: str, ours: float, theirs: float, unit: str = "ms", scale: float = 1e3) -> str:
    return f"| {name} | {ours * scale:.3f} {unit} | {theirs * scale:.3f} {unit} | {ours / theirs:.2f}× |"
