"""Measurements behind the CPU levers of benchmarks/README.md that were dropped or found unnecessary.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=17179869184 python -m benchmarks.cpu_levers gemm      # pip install blis
    python -m benchmarks.cpu_levers handoff
    python -m benchmarks.cpu_levers faults
    python -m benchmarks.cpu_levers breakdown  # where the tiny GPT's step goes, op by op, in both frameworks
    python -m benchmarks.cpu_levers overhead   # the fixed cost of a step: the tiny GPT's graph on 2 tokens

gemm:    every GEMM of the tiny and small GPT's Linear layers (forward x·Wᵀ, dx = g·W, dW = gᵀ·x) through NumPy's
         OpenBLAS, the `blis` package (BLIS, as spaCy ships it) and PyTorch: µs, medians.
handoff: what it costs to give half of a NumPy pass to another thread (the pool `map_slices` and the optimizer
         lanes use): a no-op round trip, and one `exp` whole against split in two, at several sizes.
faults:  minor page faults per training step after warm-up (a fresh page is a fault), tinytensor and PyTorch:
         the difference between a 25-step and a 5-step child run of gpt_char_vs_torch, over 20. Whether reusing
         buffers across steps would save anything.
overhead: the tiny GPT's step (4 layers, 4 heads) shrunk to 16 wide on batch 1 × block 2: the same ops, next to no
         arithmetic, so what is left is each framework's fixed cost per op (dispatch, graph, optimizer loop).
breakdown: the tiny GPT's training step op by op: tinytensor's time per `Function` (forward and backward,
         measured around each call) and PyTorch's self time per aten op (torch.profiler), ms per step.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from benchmarks.common import machine

GEMM_SHAPES = {  # rows N (batch × block), then (in, out) of each Linear in a layer
    "tiny": (768, [(128, 384), (128, 128), (128, 512), (512, 128)]),
    "small": (1024, [(384, 1152), (384, 384), (384, 1536), (1536, 384)]),
}


def median_us(function, repeats: int = 60, warmup: int = 5) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def gemm() -> None:
    try:
        from blis.py import gemm as blis_gemm
    except ImportError:
        blis_gemm = None
    print("| GEMM | NumPy (OpenBLAS) µs | blis µs | PyTorch µs |\n|---|---|---|---|")
    rng = np.random.default_rng(0)
    for config, (rows, shapes) in GEMM_SHAPES.items():
        for fan_in, fan_out in shapes:
            x, w, g = (rng.random(shape, dtype=np.float32) for shape in
                       ((rows, fan_in), (fan_out, fan_in), (rows, fan_out)))
            for name, times in _gemm_forms(x, w, g, blis_gemm).items():
                print(f"| {config} {rows}×{fan_in}→{fan_out} {name} | " + " | ".join(times) + " |")


def _gemm_forms(x, w, g, blis_gemm) -> dict[str, list[str]]:
    """Median µs of the three GEMMs of one Linear in NumPy, blis (if installed) and PyTorch."""
    import torch

    tx, tw, tg = map(torch.from_numpy, (x, w, g))
    forms = {"x·Wᵀ": (lambda: x @ w.T, lambda: blis_gemm(x, w, trans2=True), lambda: tx @ tw.T),
             "g·W": (lambda: g @ w, lambda: blis_gemm(g, w), lambda: tg @ tw),
             "gᵀ·x": (lambda: g.T @ x, lambda: blis_gemm(g, x, trans1=True), lambda: tg.T @ tx)}
    return {name: [f"{median_us(ours):.0f}", f"{median_us(blis):.0f}" if blis_gemm else "not installed",
                   f"{median_us(theirs):.0f}"] for name, (ours, blis, theirs) in forms.items()}


def handoff() -> None:
    pool = ThreadPoolExecutor(2)
    print(f"no-op round trip to a pool thread: {median_us(lambda: pool.submit(lambda: None).result(), 2000):.1f} µs")
    print("| elements | exp on one thread µs | exp split over two threads µs |\n|---|---|---|")
    for size in (100_000, 200_000, 500_000, 2_000_000):
        a = np.random.default_rng(0).random(size, dtype=np.float32)
        whole, split = _exp_whole_and_split(pool, a, np.empty_like(a))
        print(f"| {size:,} | {whole:.0f} | {split:.0f} |")


def _exp_whole_and_split(pool: ThreadPoolExecutor, a: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    half = a.size // 2

    def split():
        job = pool.submit(np.exp, a[:half], out=out[:half])
        np.exp(a[half:], out=out[half:])
        job.result()

    return median_us(lambda: np.exp(a, out=out), 200), median_us(split, 200)


def faults() -> None:
    print("| config | framework | minor page faults per step after warm-up |\n|---|---|---|")
    for config in ("tiny", "small"):
        for framework in ("tinytensor", "torch"):
            short, long = (_child_faults(framework, config, steps) for steps in (5, 25))
            print(f"| {config} | {framework} | {(long - short) / 20:.0f} |")


def _child_faults(framework: str, config: str, steps: int) -> int:
    """Minor page faults of one benchmark child process (3 warm-up steps, then `steps` timed ones)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
    subprocess.run([sys.executable, "-m", "benchmarks.gpt_char_vs_torch", "--child", framework, config,
                    "--steps", str(steps), "--warmup", "3"], check=True, capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - before


def overhead() -> None:
    from benchmarks.gpt_char_vs_torch import run_tinytensor, run_torch

    config = dict(n_layer=4, n_head=4, n_embd=16, block_size=2, batch_size=1, dropout=0.0)
    ours, theirs = run_tinytensor(config, 200, 20), run_torch(config, 200, 20)
    print(f"fixed cost of a tiny-GPT step: tinytensor {ours * 1e3:.2f} ms, PyTorch {theirs * 1e3:.2f} ms")


def breakdown(steps: int = 30) -> None:
    import collections

    import tinytensor as tt
    from benchmarks.gpt_char_vs_torch import CONFIGS, batches, torch_gpt
    from models.gpt_char import GPT, GPTConfig
    from tinytensor.autograd import Function
    from train.loop import decay_groups

    config = CONFIGS["tiny"]
    tt.backend.tune_host_allocator()
    tt.backend.fit_threads_to_free_cores()
    model = GPT(GPTConfig(vocab_size=65, **{k: v for k, v in config.items() if k != "batch_size"}))
    optimizer = tt.optim.AdamW(decay_groups(model, 0.1), lr=1e-3)
    data = [(tt.tensor(x), tt.tensor(y)) for x, y in batches(config, 10)]
    spent = collections.Counter()
    run_backward, apply = Function._run_backward, Function.apply.__func__

    def timed_backward(fn, *args, **kwargs):
        started = time.perf_counter()
        result = run_backward(fn, *args, **kwargs)
        spent[f"{type(fn).__name__} backward"] += time.perf_counter() - started
        return result

    def timed_apply(cls, *args, **kwargs):
        started = time.perf_counter()
        result = apply(cls, *args, **kwargs)
        spent[f"{cls.__name__} forward"] += time.perf_counter() - started
        return result

    for index in range(steps + 3):
        if index == 3:  # warm-up done
            Function._run_backward, Function.apply = timed_backward, classmethod(timed_apply)
        _, loss = model(*data[index % 10])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    Function._run_backward, Function.apply = run_backward, classmethod(apply)
    print("tinytensor, ms per step:", ", ".join(f"{name} {seconds / steps * 1e3:.2f}"
                                                for name, seconds in spent.most_common(12)))

    import torch  # only now: its many objects would slow the garbage collector's passes in tinytensor's steps

    model = torch_gpt(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches(config, 10)]

    def torch_step(index: int) -> None:
        x, y = data[index % 10]
        torch.nn.functional.cross_entropy(model(x).view(-1, 65), y.view(-1)).backward()
        optimizer.step()
        optimizer.zero_grad()

    for index in range(3):
        torch_step(index)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        for index in range(steps):
            torch_step(index)
    events = sorted(profiler.key_averages(), key=lambda event: -event.self_cpu_time_total)[:12]
    print("PyTorch, ms per step:", ", ".join(f"{event.key} {event.self_cpu_time_total / steps / 1e3:.2f}"
                                             for event in events))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("measure", choices=["gemm", "handoff", "faults", "overhead", "breakdown"])
    args = parser.parse_args()
    print(f"machine: {machine()}\n")
    {"gemm": gemm, "handoff": handoff, "faults": faults, "overhead": overhead, "breakdown": breakdown}[args.measure]()


if __name__ == "__main__":
    main()
