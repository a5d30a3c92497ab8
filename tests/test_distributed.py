"""Data-parallel training: `tinytensor.distributed` on one process here, and real 2-process runs under `mpiexec`.

The multi-process tests launch `mpiexec -n 2` (MPICH's, from the `mpich` wheel that the `test` extra installs) on
tests/distributed_worker.py and on `python -m train.gpt_char --ddp`. They are skipped only when mpi4py is not
installed at all; with mpi4py but no `mpiexec` they fail, saying so.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.distributed as dist
import tinytensor.io as tio
from train import gpt_char

REPO = Path(__file__).resolve().parents[1]
needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None,
                               reason="mpi4py is not installed (pip install -e '.[distributed]')")


# ---- one process ----------------------------------------------------------------------------------------------------
def test_without_an_mpi_launch_init_stays_a_single_process():
    dist.init()
    assert (dist.get_rank(), dist.get_world_size(), dist.is_main_process()) == (0, 1, True)
    values = np.arange(3.0)
    assert dist.all_reduce(values, "mean") is values and values.tolist() == [0.0, 1.0, 2.0]
    batch = (np.arange(8).reshape(4, 2),)
    assert dist.shard(batch) is batch


def test_launchers_are_detected_from_their_environment(monkeypatch):
    for name in dist.LAUNCH_SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not dist.launched()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert dist.launched() and dist.launch_world_size() == 4


def test_shards_are_disjoint_and_cover_the_global_batch(monkeypatch):
    rows = np.arange(7)
    monkeypatch.setattr(dist._world, "world_size", 3)
    seen = []
    for rank in range(3):
        monkeypatch.setattr(dist._world, "rank", rank)
        seen.extend(dist.shard((rows,))[0].tolist())
    assert seen == rows.tolist()


def test_gradient_buckets_keep_one_dtype_and_stay_under_the_cap():
    tensors = [tt.zeros(100, dtype=tt.float32), tt.zeros(100, dtype=tt.float64), tt.zeros(100, dtype=tt.float32),
               tt.zeros(300, dtype=tt.float32), tt.zeros(10, dtype=tt.float64)]
    buckets = dist.plan_buckets(tensors, bucket_bytes=1000)
    assert sorted(i for bucket in buckets for i in bucket) == list(range(5))
    for bucket in buckets:
        assert len({tensors[i].dtype for i in bucket}) == 1
        assert len(bucket) == 1 or sum(tensors[i].data.nbytes for i in bucket) <= 1000
    assert [0, 2] in buckets and [1, 4] in buckets and [3] in buckets


# ---- two processes --------------------------------------------------------------------------------------------------
def mpiexec() -> str:
    """MPICH's launcher next to this Python (the pip wheel puts it there), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.fail(f"mpi4py is installed but no mpiexec was found next to {sys.executable} or on PATH: "
                    "pip install mpich (or pip install -e '.[test]')")
    return found


def run_two_processes(*command: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run([mpiexec(), "-n", "2", sys.executable, *command], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"mpiexec failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    """Both ranks' results from one `mpiexec -n 2 python tests/distributed_worker.py` run."""
    out = tmp_path_factory.mktemp("worker")
    run_two_processes(str(REPO / "tests" / "distributed_worker.py"), str(out))
    return out, [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]


@needs_mpi
def test_collectives_reduce_broadcast_and_gather_across_two_processes(worker):
    _, ranks = worker
    for result in ranks:
        assert result["world_size"] == 2
        collectives = result["collectives"]
        assert collectives["sum"] == [10.0, 12.0, 14.0, 16.0]
        assert collectives["mean"] == [[1.5] * 3] * 2
        assert collectives["max"] == [1, 5]
        assert collectives["broadcast"] == [1.0] * 3
        assert collectives["gathered"] == [{"rank": 0}, {"rank": 1}]


@needs_mpi
def test_gradients_are_identical_on_every_rank_after_averaging(worker):
    _, ranks = worker
    for result in ranks:
        assert result["gradients"]["identical_on_every_rank"]
        assert result["gradients"]["error_vs_mean"] <= 1e-15
        assert result["gradients"]["buckets"] > 1


@needs_mpi
def test_ranks_that_disagree_raise_naming_both_instead_of_hanging(worker):
    _, ranks = worker
    for result in ranks:
        shapes, config = result["mismatches"]["shapes"], result["mismatches"]["config"]
        assert "rank 0 has [32] float64, rank 1 has [48] float64" in shapes
        assert "'lr': rank 0 has 0.1, rank 1 has 0.2" in config


@needs_mpi
def test_a_collective_that_a_rank_misses_times_out_with_a_clear_error(worker):
    _, ranks = worker
    timeout = ranks[0]["timeout"]
    assert "did not complete within 0.3 s" in timeout["timeout_error"]
    assert 0.3 <= timeout["waited"] < 1.4


@needs_mpi
def test_two_processes_with_batch_b_take_the_steps_of_one_process_with_batch_2b(worker, tmp_path):
    from tests.distributed_worker import tiny_trainer

    out, _ = worker
    reference = tiny_trainer(tmp_path / "single", batch_per_rank=6)
    reference.fit()
    data_parallel = tio.load_checkpoint(out / "ddp" / "checkpoint")
    assert data_parallel.step == reference.iteration == 4
    for name, expected in reference.model.state_dict().items():
        got, want = data_parallel.model[name].numpy(), expected.numpy()
        assert want.dtype == np.float64
        assert np.max(np.abs(got - want)) <= 1e-10 * np.max(np.abs(want)), name
    logged = [json.loads(line) for line in (out / "ddp" / "metrics.jsonl").read_text().splitlines()]
    expected_log = [json.loads(line) for line in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in logged] == [r["iter"] for r in expected_log]  # rank 0 alone wrote the log
    for got, want in zip(logged, expected_log):
        for key in ("loss", "val_loss", "train_loss"):
            if key in want:
                assert got[key] == pytest.approx(want[key], rel=1e-12)


GPT_FLAGS = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4",
             "--eval-iters", "2", "--eval-interval", "2", "--warmup-iters", "2", "--no-progress",
             "--sample-tokens", "20"]


@pytest.fixture(scope="module")
def gpt_char_ddp_run(tmp_path_factory):
    """`mpiexec -n 2 python -m train.gpt_char --ddp` for 4 iterations on a generated text."""
    root = tmp_path_factory.mktemp("gpt_char_ddp")
    words = ["to", "be", "or", "not", "that", "is", "the", "question", "\n"]
    text = root / "corpus.txt"
    text.write_text(" ".join(np.random.default_rng(0).choice(words, 3000)), encoding="utf-8")
    result = run_two_processes("-m", "train.gpt_char", "--ddp", "--data", str(text), "--out", str(root / "run"),
                               "--max-iters", "4", *GPT_FLAGS)
    return root, text, result.stdout


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@needs_mpi
def test_gpt_char_ddp_logs_prints_and_checkpoints_from_rank_0_only(gpt_char_ddp_run):
    root, _, stdout = gpt_char_ddp_run
    assert [r["iter"] for r in read_metrics(root / "run") if "loss" in r] == [1, 2, 3, 4]
    assert tio.load_checkpoint(root / "run" / "checkpoint").step == 4
    assert stdout.count("M parameters") == 1 and stdout.count("--- sample 1 ---") == 1


@needs_mpi
def test_a_ddp_checkpoint_resumes_on_two_processes_and_on_one(gpt_char_ddp_run):
    root, text, _ = gpt_char_ddp_run
    for copy in ("on_two", "on_one"):
        shutil.copytree(root / "run", root / copy)
    run_two_processes("-m", "train.gpt_char", "--ddp", "--resume", "--data", str(text), "--out",
                      str(root / "on_two"), "--max-iters", "6", "--no-progress", "--sample-tokens", "5")
    # one process with batch 2·4 continues the same stream of global batches
    assert gpt_char.main(["--resume", "--data", str(text), "--out", str(root / "on_one"), "--max-iters", "6",
                          "--batch-size", "8", "--no-progress", "--sample-tokens", "5"]) == 0
    on_two, on_one = read_metrics(root / "on_two"), read_metrics(root / "on_one")
    assert [r["iter"] for r in on_two if "loss" in r] == [1, 2, 3, 4, 5, 6]
    for key in ("loss", "val_loss"):
        two, one = [r[key] for r in on_two if key in r], [r[key] for r in on_one if key in r]
        np.testing.assert_allclose(two, one, rtol=1e-4)  # float32: only the order of the sums differs
    assert tio.load_checkpoint(root / "on_two" / "checkpoint").step == 6
    assert tio.load_checkpoint(root / "on_one" / "checkpoint").step == 6
