"""The rank side of tests/test_distributed.py: `mpiexec -n 2 python tests/distributed_worker.py OUT_DIR`.

Each rank runs the checks below and writes what it saw to OUT_DIR/rank<r>.json; the test reads both files. The
training helpers (`tiny_model`, `tiny_trainer`) are imported by the test as well, to train the single-process
reference on the same examples.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, when run as a script

import tinytensor as tt  # noqa: E402
import tinytensor.distributed as dist  # noqa: E402
from models.gpt_char import GPT, GPTConfig  # noqa: E402
from train.corpus import get_batch  # noqa: E402
from train.loop import Trainer, TrainConfig  # noqa: E402

VOCAB, BLOCK = 11, 6
DATA = np.random.default_rng(42).integers(0, VOCAB, 2000)


def tiny_model(n_embd: int = 8) -> GPT:
    """A float64 one-layer GPT; every rank seeds alike, but the trainer broadcasts rank 0's weights anyway."""
    tt.manual_seed(0)
    config = GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layer=1, n_head=2, n_embd=n_embd, dropout=0.0)
    return GPT(config).to(tt.float64)


def tiny_trainer(out_dir: Path, batch_per_rank: int, max_iters: int = 4) -> Trainer:
    """Trainer over random windows of DATA; the batch function returns the global batch (all ranks' rows)."""
    config = TrainConfig(max_iters=max_iters, eval_interval=2, eval_iters=2, lr=3e-2, min_lr=3e-3, warmup_iters=1,
                         grad_clip=0.05, grad_accum=2, seed=7, out_dir=str(out_dir), progress=False)
    world_size = dist.get_world_size()

    def batches(split: str, rng: np.random.Generator):
        return get_batch(DATA, batch_per_rank * world_size, BLOCK, rng)

    return Trainer(tiny_model(), config, batches, run_config={"model": "tiny"})


def check_collectives(rank: int) -> dict:
    """all_reduce (sum, mean, max; arrays and Tensors), broadcast and all_gather_object."""
    values = np.arange(4.0) + 10 * rank
    tensor = tt.tensor(np.full((2, 3), rank + 1.0))
    ints = np.array([rank, 5 - rank], dtype=np.int64)
    return {"sum": dist.all_reduce(values.copy(), "sum").tolist(),
            "mean": dist.all_reduce(tensor, "mean").numpy().tolist(),
            "max": dist.all_reduce(ints, "max").tolist(),
            "broadcast": dist.broadcast(np.full(3, float(rank)), src=1).tolist(),
            "gathered": dist.all_gather_object({"rank": rank})}


def check_gradients(rank: int) -> dict:
    """Each rank backpropagates its own rows; after averaging every rank must hold the same gradients, equal to
    the mean of the ranks' own gradients."""
    model = tiny_model()
    dist.broadcast_parameters(model)
    x, y = get_batch(DATA, 3, BLOCK, np.random.default_rng(100 + rank))
    model(tt.tensor(x), tt.tensor(y))[1].backward()
    params = list(model.parameters())
    own = np.concatenate([p.grad.numpy().ravel() for p in params])
    dist.all_reduce_gradients(params, bucket_bytes=2048)  # small buckets: several calls
    averaged = np.concatenate([p.grad.numpy().ravel() for p in params])
    all_own = np.asarray(dist.all_gather_object(own.tolist()))
    all_averaged = np.asarray(dist.all_gather_object(averaged.tolist()))
    return {"identical_on_every_rank": all(np.array_equal(all_averaged[0], a) for a in all_averaged),
            "error_vs_mean": float(np.max(np.abs(averaged - np.mean(all_own, axis=0)))),
            "buckets": len(dist.plan_buckets(params, 2048))}


def check_mismatches(rank: int) -> dict:
    """Different parameter shapes, then different configs: every rank must raise, naming both."""
    messages = {}
    for case, model, config in (("shapes", tiny_model(8 if rank == 0 else 12), {}),
                                ("config", tiny_model(), {"lr": 0.1 * (rank + 1)})):
        try:
            dist.check_consistency(model, config)
            messages[case] = None
        except dist.RankMismatchError as error:
            messages[case] = str(error)
    return messages


def train_data_parallel(out_dir: Path) -> dict:
    trainer = tiny_trainer(out_dir / "ddp", batch_per_rank=3)
    trainer.fit()
    return {"iteration": trainer.iteration}


def check_timeout(rank: int) -> dict:
    """Rank 1 arrives 1.5 s late to an all_reduce that rank 0 gives 0.3 s: rank 0 raises, then both go on."""
    if rank == 1:
        time.sleep(1.5)
        dist.all_reduce(np.zeros(1))
        return {}
    started = time.monotonic()
    try:
        dist.all_reduce(np.zeros(1), timeout=0.3)
        return {"timeout_error": None}
    except dist.CollectiveTimeoutError as error:
        waited = time.monotonic() - started
        error.request.Wait()  # rank 1 does arrive: let the abandoned call complete
        return {"timeout_error": str(error), "waited": waited}


def main(out_dir: Path) -> None:
    dist.init(timeout=60)
    rank = dist.get_rank()
    results = {"rank": rank, "world_size": dist.get_world_size(), "collectives": check_collectives(rank),
               "gradients": check_gradients(rank), "mismatches": check_mismatches(rank),
               "training": train_data_parallel(out_dir)}
    results["timeout"] = check_timeout(rank)
    (out_dir / f"rank{rank}.json").write_text(json.dumps(results), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
