"""Every trainer for a few iterations with `--device cuda`, and tinytensor.distributed's NCCL path: on a real GPU,
or on the strict CuPy stand-in (`pytest --cupy-standin`; its NCCL communicator's ranks are threads).

The trainers are driven through their public `main(argv)` entry points with tiny flags, as a user would run them.
"""
import threading

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.distributed as dist
from train import finetune, gpt_char, lm, mlm, translate

pytestmark = pytest.mark.gpu
WORDS = ["to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis", "nobler", "in", "mind"]
FEW_ITERS = ["--device", "cuda", "--max-iters", "3", "--eval-interval", "3", "--no-progress"]


@pytest.fixture
def text_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(" ".join(rng.choice(WORDS, rng.integers(3, 9))) for _ in range(300)), encoding="utf-8")
    return path


def test_gpt_char_trains_on_cuda(text_file, tmp_path):
    assert gpt_char.main(["--data", str(text_file), "--out", str(tmp_path / "run"), "--n-layer", "1", "--n-head",
                          "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4", "--eval-iters", "2",
                          "--sample-tokens", "5", *FEW_ITERS]) == 0


@pytest.mark.parametrize("model, flags", [
    ("gpt2", ["--n-layer", "1", "--n-head", "2", "--n-embd", "16"]),
    ("llama", ["--num-hidden-layers", "1", "--num-attention-heads", "2", "--num-key-value-heads", "1",
               "--hidden-size", "16", "--intermediate-size", "32"]),
])
def test_lm_trains_on_cuda(model, flags, text_file, tmp_path):
    assert lm.main(["--model", model, "--data", str(text_file), "--out", str(tmp_path / "run"), "--block-size", "8",
                    "--batch-size", "4", "--eval-iters", "2", "--vocab-size", "300", "--sample-tokens", "5",
                    *flags, *FEW_ITERS]) == 0


@pytest.mark.parametrize("model", ["bert", "albert", "deberta"])
def test_mlm_trains_on_cuda(model, text_file, tmp_path):
    extra = ["--embedding-size", "8"] if model == "albert" else []
    assert mlm.main(["--model", model, "--data", str(text_file), "--out", str(tmp_path / "run"), "--seq-length",
                     "24", "--batch-size", "8", "--vocab-size", "70", "--eval-iters", "2", "--eval-batches", "2",
                     "--num-hidden-layers", "1", "--num-attention-heads", "2", "--hidden-size", "16",
                     "--intermediate-size", "32", *extra, *FEW_ITERS]) == 0


def test_translate_trains_and_decodes_on_cuda(tmp_path):
    assert translate.main(["--d-model", "8", "--n-heads", "2", "--d-ff", "16", "--n-layers", "1", "--eval-iters",
                           "1", "--max-tokens", "120", "--num-train", "300", "--num-held-out", "4", "--beam-size",
                           "2", "--out", str(tmp_path / "run"), *FEW_ITERS]) == 0


def test_finetune_trains_on_cuda(tmp_path):
    assert finetune.main(["--out", str(tmp_path / "run"), "--model", "bert", "--hidden-size", "16",
                          "--num-hidden-layers", "1", "--num-attention-heads", "2", "--intermediate-size", "32",
                          "--eval-iters", "1", *FEW_ITERS]) == 0


# ---- NCCL, two ranks as two threads of this process --------------------------------------------------------------
class _FakeMpi:
    """The MPI communicator `_NcclBackend` uses to hand NCCL's unique id from rank 0 to the others."""

    def __init__(self, rank: int, size: int, shared: dict, barrier: threading.Barrier):
        self.rank, self.size, self.shared, self.barrier = rank, size, shared, barrier

    def Get_rank(self):  # noqa: N802 - mpi4py's names
        return self.rank

    def Get_size(self):  # noqa: N802
        return self.size

    def bcast(self, value, root=0):
        if self.rank == root:
            self.shared["id"] = value
        self.barrier.wait()
        return self.shared["id"]


class _PerThread(threading.local):
    """`dist._world.nccl` for the current thread's rank."""

    backend = None

    def __getattr__(self, name):
        return getattr(self.backend, name)


def test_nccl_all_reduce_and_broadcast_of_device_gradients(monkeypatch, cupy_counts):
    per_thread, size = _PerThread(), 2
    monkeypatch.setattr(dist._world, "nccl", per_thread)
    monkeypatch.setattr(dist._world, "world_size", size)
    shared, barrier, results, errors = {}, threading.Barrier(size), {}, []

    def rank(index: int) -> None:
        try:
            per_thread.backend = dist._NcclBackend(_FakeMpi(index, size, shared, barrier))
            weight = tt.full((3, 2), float(index + 1), device="cuda", requires_grad=True)
            (weight * weight).sum().backward()            # grad = 2·(rank + 1)
            dist.all_reduce(weight.grad, "mean")
            flags = tt.tensor(np.arange(4) * (index + 1), device="cuda")
            dist.broadcast(flags.data, src=1)
            results[index] = (weight.grad.numpy(), flags.numpy())
        except Exception as error:  # surfaced in the main thread below
            errors.append(error)

    threads = [threading.Thread(target=rank, args=(i,)) for i in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    for index in range(size):
        np.testing.assert_allclose(results[index][0], np.full((3, 2), 3.0))  # mean of 2 and 4
        np.testing.assert_array_equal(results[index][1], np.arange(4) * 2)
