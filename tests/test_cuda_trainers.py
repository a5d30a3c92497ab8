"""Every trainer for a few iterations with `--device cuda`, and tinytensor.distributed's NCCL path: on a real GPU,
or on the strict CuPy stand-in (`pytest --cupy-standin`; its NCCL communicator's ranks are threads).

The trainers are driven through their public `main(argv)` entry points with tiny flags, as a user would run them.
"""
import threading

import numpy as np
import pytest
import test_train_finetune
import test_train_gpt_char
import test_train_lm
import test_train_mlm
import test_train_translate

import tinytensor as tt
import tinytensor.distributed as dist
from train import finetune, gpt_char, lm, mlm, translate

pytestmark = pytest.mark.gpu
FEW_ITERS = ["--device", "cuda", "--max-iters", "3", "--eval-interval", "3", "--no-progress"]
# each trainer's tiny flags come from its own test module, so they follow the trainers' flags as those change


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(test_train_mlm.generated_text(), encoding="utf-8")
    return path


def test_gpt_char_trains_on_cuda(text_file, tmp_path):
    assert gpt_char.main(["--data", str(text_file), "--out", str(tmp_path / "run"), *test_train_gpt_char.SMALL_MODEL,
                          *FEW_ITERS]) == 0


@pytest.mark.parametrize("model", ["gpt2", "llama"])
def test_lm_trains_on_cuda(model, text_file, tmp_path):
    assert lm.main(["--model", model, "--data", str(text_file), "--out", str(tmp_path / "run"),
                    *test_train_lm.COMMON, *test_train_lm.MODEL_FLAGS[model], *FEW_ITERS]) == 0


@pytest.mark.parametrize("model", ["bert", "albert", "deberta"])
def test_mlm_trains_on_cuda(model, text_file, tmp_path):
    assert mlm.main(["--model", model, "--data", str(text_file), "--out", str(tmp_path / "run"),
                     *test_train_mlm.COMMON, *test_train_mlm.MODEL_FLAGS[model], *FEW_ITERS]) == 0


def test_translate_trains_and_decodes_on_cuda(tmp_path):
    assert translate.main([*test_train_translate.TINY, "--out", str(tmp_path / "run"), *FEW_ITERS]) == 0


def test_finetune_trains_on_cuda(tmp_path):
    assert finetune.main(["--out", str(tmp_path / "run"), "--model", "bert", *test_train_finetune.TINY,
                          *FEW_ITERS]) == 0


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
