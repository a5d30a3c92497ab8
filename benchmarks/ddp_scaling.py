"""Data-parallel scaling: tokens/s of the shared training loop on 1 process and on N (mpiexec), same global batch.

    python -m benchmarks.ddp_scaling --steps 20                       # CPU, MPI: 1 vs 2 processes
    python -m benchmarks.ddp_scaling --device cuda --procs 1 2 4      # one process per GPU, NCCL (needs N GPUs)

Every configuration is a fresh `mpiexec` job training the tiny GPT preset (4 layers, 4 heads, 128 wide, block 64)
with `train.loop.Trainer` on random tokens, global batch = procs × --batch-per-rank rows. It reports the median
tokens/s of rank 0's metrics.jsonl after the warm-up steps (global tokens per step / wall time of the step), and,
with several processes, the median time of one `all_reduce_gradients` of the whole model. On the CPU each
multi-process job runs one BLAS thread per process, bound to its own core (`-bind-to core`); the single process
is shown both with all cores' BLAS threads (the fair baseline) and with one.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODEL = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0)
VOCAB = 65


def worker(out: Path, batch_per_rank: int, steps: int, warmup: int, device: str) -> None:
    """One rank: train, then time the gradient all-reduce; rank 0 writes result.json."""
    import tinytensor as tt
    import tinytensor.distributed as dist
    from models.gpt_char import GPT, GPTConfig
    from train.corpus import get_batch
    from train.loop import Trainer, TrainConfig, init_distributed

    world_size = init_distributed(True, device)
    tt.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, **MODEL)).to(device)
    data = np.random.default_rng(0).integers(0, VOCAB, 200_000)
    config = TrainConfig(max_iters=warmup + steps, eval_interval=10**9, eval_iters=1, warmup_iters=0,
                         device=device, out_dir=str(out), progress=False)
    trainer = Trainer(model, config, lambda split, rng: get_batch(data, batch_per_rank * world_size,
                                                                  MODEL["block_size"], rng))
    trainer.fit()
    allreduce_ms = time_all_reduce(trainer, dist) if world_size > 1 else None
    if dist.is_main_process():
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        rates = [r["tokens_per_sec"] for r in records if "tokens_per_sec" in r][warmup:]
        result = {"procs": world_size, "tokens_per_sec": statistics.median(rates), "allreduce_ms": allreduce_ms,
                  "parameters": model.num_parameters(), "backend": dist.get_backend() or "none"}
        (out / "result.json").write_text(json.dumps(result))


def time_all_reduce(trainer, dist, repeats: int = 10) -> float:
    """Median ms of one all_reduce_gradients over the whole model (gradients from one more backward)."""
    batch, _ = trainer._local_batch("train", trainer.batch_rng)
    trainer.loss_fn(trainer.model, batch).backward()
    times = []
    for _ in range(repeats):
        dist.barrier()
        started = time.perf_counter()
        dist.all_reduce_gradients(trainer.model.parameters())
        times.append(time.perf_counter() - started)
    return 1e3 * statistics.median(times)


def launch(procs: int, blas_threads: int, args: argparse.Namespace) -> dict:
    """Run one configuration as an mpiexec job; its rank 0's result."""
    mpiexec = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit("no mpiexec: pip install -e '.[distributed]'")
    with tempfile.TemporaryDirectory() as out:
        bind = ["-bind-to", "core"] if procs > 1 and args.device == "cpu" else []
        command = [mpiexec, *bind, "-n", str(procs), sys.executable, "-m", "benchmarks.ddp_scaling", "--worker",
                   "--out", out, "--batch-per-rank", str(args.batch_per_rank * (args.procs[-1] // procs)),
                   "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device]
        env = {**os.environ, "OPENBLAS_NUM_THREADS": str(blas_threads), "OMP_NUM_THREADS": str(blas_threads)}
        subprocess.run(command, check=True, env=env, cwd=Path(__file__).resolve().parents[1])
        return {**json.loads((Path(out) / "result.json").read_text()), "blas_threads": blas_threads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="process counts to compare")
    parser.add_argument("--batch-per-rank", type=int, default=12, help="rows per process at the largest count")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(Path(args.out), args.batch_per_rank, args.steps, args.warmup, args.device)
        return
    cores = os.cpu_count() or 1
    runs = []
    for procs in args.procs:
        threads = [cores, 1] if procs == 1 and args.device == "cpu" else [max(1, cores // procs)]
        runs.extend(launch(procs, count, args) for count in threads)
    global_batch = args.batch_per_rank * args.procs[-1]
    print(f"\nGPT {MODEL}, global batch {global_batch} × {MODEL['block_size']} tokens, {args.device}, {cores} CPUs")
    print("| processes | BLAS threads each | backend | tokens/s | vs 1 process (all threads) | all-reduce of "
          "all gradients |")
    print("|---|---|---|---|---|---|")
    baseline = runs[0]["tokens_per_sec"]
    for run in runs:
        allreduce = f"{run['allreduce_ms']:.2f} ms" if run["allreduce_ms"] is not None else "-"
        print(f"| {run['procs']} | {run['blas_threads']} | {run['backend']} | {run['tokens_per_sec']:,.0f} | "
              f"{run['tokens_per_sec'] / baseline:.2f}× | {allreduce} |")


if __name__ == "__main__":
    main()
