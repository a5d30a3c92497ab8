"""Data-parallel training over processes: MPI for NumPy tensors, NCCL for CuPy tensors (one process per GPU).

    mpiexec -n 2 python -m train.gpt_char --ddp          # every trainer; or, in your own loop:

    import tinytensor.distributed as dist
    dist.init()                                          # an MPI launch is detected; without one: 1 process
    dist.check_consistency(model, config)                # same parameters and config on every rank, or an error
    dist.broadcast_parameters(model)                     # rank 0's weights everywhere
    loss_of_my_rows.backward()
    dist.all_reduce_gradients(model.parameters())        # .grad = the mean over ranks, a few flat buffers per call

Names follow `torch.distributed` where it has one (`init_process_group` → `init`, `get_rank`, `get_world_size`,
`all_reduce`, `broadcast`, `barrier`, `all_gather_object`). Every collective takes `timeout` (seconds; default set
by `init`): MPI collectives cannot time out themselves, so they are started non-blocking (`Iallreduce`, `Ibcast`,
…) and polled until the deadline, and a rank that waits too long raises `CollectiveTimeoutError` instead of hanging.

Sits above `nn` (it reads a Module's parameters) and below `train/`. `mpi4py` is imported only when an MPI launch
is found (pip install -e '.[distributed]' brings mpi4py and the MPICH wheel with its `mpiexec`), and CuPy's NCCL
only for the NCCL backend. The NCCL backend (`_NcclBackend`, at the end of this file) has not been run here: the
machine this was written on has no GPU.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy

from tinytensor import backend
from tinytensor.tensor import Tensor

DEFAULT_TIMEOUT = 300.0  # seconds a rank waits in one collective before raising
BUCKET_BYTES = 25 * 2**20  # gradient bucket size (PyTorch DDP's default bucket_cap_mb)
LAUNCH_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")
REDUCE_OPS = ("sum", "mean", "max", "min")


class CollectiveTimeoutError(TimeoutError):
    """A collective did not complete in time: another rank is stuck, crashed or never called it. `request` is the
    MPI request still pending (wait on it if the other ranks may yet arrive; otherwise end the job)."""

    def __init__(self, message: str, request=None):
        super().__init__(message)
        self.request = request


class RankMismatchError(RuntimeError):
    """Ranks disagree on something that must be identical (parameter names, shapes, counts, configs)."""


@dataclass
class _World:
    rank: int = 0
    world_size: int = 1
    backend: str | None = None  # None: single process; "mpi"; "nccl"
    timeout: float | None = DEFAULT_TIMEOUT
    comm: object = None  # mpi4py communicator
    nccl: object = None  # _NcclBackend


_world = _World()


# ---- setup --------------------------------------------------------------------------------------------------------
def launch_world_size() -> int:
    """The number of processes the launcher (mpiexec, srun) started, from its environment; 1 when none did."""
    for name in LAUNCH_SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def launched() -> bool:
    """True when this process is one of several started by an MPI launcher."""
    return launch_world_size() > 1


def init(backend_name: str | None = None, timeout: float | None = DEFAULT_TIMEOUT) -> None:
    """Join the process group of an MPI launch (`mpiexec -n N python ...`); without one, stay a single process
    (nothing is imported then, so `init()` costs nothing in a plain run).

    `backend_name`: "mpi" (NumPy tensors; CuPy tensors are staged through host memory) or "nccl" (CuPy tensors on
    one GPU per process, chosen by the local rank; MPI still starts the group and hands out NCCL's id). Default:
    "mpi". `timeout` (seconds, None for none) bounds every collective that does not pass its own.
    """
    if backend_name not in (None, "mpi", "nccl"):
        raise ValueError(f"unknown backend {backend_name!r}: expected 'mpi' or 'nccl'")
    if _world.backend is not None:
        return
    _world.timeout = timeout
    if not launched():
        return
    comm = _mpi_world()
    _world.comm, _world.rank, _world.world_size, _world.backend = comm, comm.Get_rank(), comm.Get_size(), "mpi"
    if backend_name == "nccl":
        _world.nccl = _NcclBackend(comm)
        _world.backend = "nccl"


def _mpi_world():
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise RuntimeError(f"this process was started by an MPI launcher ({launch_world_size()} processes) but "
                           "mpi4py is missing: pip install -e '.[distributed]'") from error
    return MPI.COMM_WORLD


def is_initialized() -> bool:
    """True after `init` joined a process group (of any size)."""
    return _world.backend is not None


def get_rank() -> int:
    """This process's index, 0 … world_size-1 (0 when single-process)."""
    return _world.rank


def get_world_size() -> int:
    """How many processes train together (1 when single-process)."""
    return _world.world_size


def is_main_process() -> bool:
    """Rank 0: the one process that prints, logs and writes files."""
    return _world.rank == 0


def get_backend() -> str | None:
    return _world.backend


# ---- collectives on arrays and tensors ----------------------------------------------------------------------------
def all_reduce(tensor, op: str = "sum", timeout: float | None = None):
    """Reduce `tensor` (a Tensor or an array) over all ranks, in place, like `torch.distributed.all_reduce`; returns
    it. op: "sum", "mean" (the sum divided by world_size, for floating tensors), "max" or "min"."""
    if op not in REDUCE_OPS:
        raise ValueError(f"unknown reduce op {op!r}: expected one of {', '.join(REDUCE_OPS)}")
    if _world.world_size == 1:
        return tensor
    array = tensor.data if isinstance(tensor, Tensor) else tensor
    if op == "mean" and not backend.is_floating(array.dtype):
        raise TypeError(f"all_reduce(op='mean') needs a floating tensor, got {array.dtype}")
    _transport(array).all_reduce(array, "sum" if op == "mean" else op, _timeout(timeout))
    if op == "mean":
        array /= _world.world_size
    return tensor


def broadcast(tensor, src: int = 0, timeout: float | None = None):
    """Copy rank `src`'s values of `tensor` (a Tensor or an array) into every rank's, in place; returns it."""
    if _world.world_size == 1:
        return tensor
    array = tensor.data if isinstance(tensor, Tensor) else tensor
    _transport(array).broadcast(array, src, _timeout(timeout))
    return tensor


def barrier(timeout: float | None = None) -> None:
    """Wait until every rank reaches this call."""
    if _world.world_size > 1:
        _wait(_world.comm.Ibarrier(), "barrier", _timeout(timeout))


def all_gather_object(value, timeout: float | None = None) -> list:
    """[value of rank 0, value of rank 1, …] on every rank, for small JSON-serialisable values (sent as JSON text:
    floats round-trip exactly, and nothing received is ever executed as code)."""
    if _world.world_size == 1:
        return [value]
    payload = numpy.frombuffer(json.dumps(value).encode("utf-8"), dtype=numpy.uint8)
    sizes = numpy.zeros(_world.world_size, dtype=numpy.int64)
    sizes[_world.rank] = payload.size
    _mpi.all_reduce(sizes, "sum", _timeout(timeout))
    gathered = numpy.zeros(int(sizes.sum()), dtype=numpy.uint8)
    offsets = numpy.concatenate([[0], numpy.cumsum(sizes)])
    gathered[offsets[_world.rank]:offsets[_world.rank + 1]] = payload
    _mpi.all_reduce(gathered, "sum", _timeout(timeout))  # each rank fills its own slot; the rest stay 0
    return [json.loads(gathered[offsets[i]:offsets[i + 1]].tobytes()) for i in range(_world.world_size)]


def _timeout(timeout: float | None) -> float | None:
    return _world.timeout if timeout is None else timeout


def _transport(array):
    """NCCL for device arrays when that backend is on; MPI (through host memory for device arrays) otherwise."""
    if _world.nccl is not None and backend.device_of(array) == "cuda":
        return _world.nccl
    return _mpi if backend.device_of(array) == "cpu" else _HostStaged


class _mpi:  # noqa: N801 - a namespace of the MPI transport's two operations
    """MPI collectives on contiguous NumPy arrays, non-blocking and polled so that they can time out."""

    @staticmethod
    def all_reduce(array: numpy.ndarray, op: str, timeout: float | None) -> None:
        from mpi4py import MPI

        mpi_op = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
        _wait(_world.comm.Iallreduce(MPI.IN_PLACE, _contiguous(array), op=mpi_op), f"all_reduce({op})", timeout)

    @staticmethod
    def broadcast(array: numpy.ndarray, src: int, timeout: float | None) -> None:
        _wait(_world.comm.Ibcast(_contiguous(array), root=src), f"broadcast from rank {src}", timeout)


class _HostStaged:
    """CuPy arrays over plain MPI: copy to the host, reduce there, copy back."""

    @staticmethod
    def all_reduce(array, op: str, timeout: float | None) -> None:
        host = backend.to_numpy(array)
        _mpi.all_reduce(host, op, timeout)
        array.set(host)

    @staticmethod
    def broadcast(array, src: int, timeout: float | None) -> None:
        host = backend.to_numpy(array)
        _mpi.broadcast(host, src, timeout)
        array.set(host)


def _contiguous(array: numpy.ndarray) -> numpy.ndarray:
    if not array.flags.c_contiguous:
        raise ValueError("collectives work in place on C-contiguous arrays; pass a contiguous copy")
    return array


def _wait(request, what: str, timeout: float | None) -> None:
    """Poll an MPI request until it completes; after `timeout` seconds raise instead of waiting for ever."""
    if timeout is None:
        request.Wait()
        return
    deadline = time.monotonic() + timeout
    polls = 0
    while not request.Test():
        polls += 1
        if polls > 200:  # spin briefly (a collective is usually quick), then yield the core to the other ranks
            if time.monotonic() > deadline:
                raise CollectiveTimeoutError(
                    f"rank {_world.rank}: {what} did not complete within {timeout:g} s; another of the "
                    f"{_world.world_size} ranks is stuck, crashed or took a different path (see its output)", request)
            time.sleep(0.0002)


# ---- model-level helpers ------------------------------------------------------------------------------------------
def broadcast_parameters(module, src: int = 0, timeout: float | None = None) -> None:
    """Give every rank rank `src`'s parameters and buffers (the whole state dict), a few flat buffers at a time."""
    if _world.world_size == 1:
        return
    tensors = list(module.state_dict().values())
    for bucket in plan_buckets(tensors):
        flat = _flatten([tensors[i].data for i in bucket])
        broadcast(flat, src, timeout)
        _unflatten(flat, [tensors[i] for i in bucket], in_place=True)


def all_reduce_gradients(parameters: Iterable[Tensor], timeout: float | None = None,
                         bucket_bytes: int = BUCKET_BYTES) -> None:
    """Replace every `.grad` with its mean over the ranks: the gradient of the mean of the ranks' losses.

    Gradients go in a few flat buffers (per dtype and device, up to `bucket_bytes` each) rather than one call per
    parameter. A parameter keeps `grad=None` only when it has none on every rank; where some ranks have one, the
    others count zeros. Call it once per optimizer step, after the last micro-batch's backward and before clipping.
    """
    if _world.world_size == 1:
        return
    params = [p for p in parameters if p.requires_grad]
    has_grad = numpy.array([p.grad is not None for p in params], dtype=numpy.int32)
    all_reduce(has_grad, "max", timeout)
    params = [p for p, present in zip(params, has_grad) if present]
    for p in params:
        if p.grad is None:
            p.grad = Tensor._wrap(p.xp.zeros_like(p.data))
    grads = [p.grad for p in params]
    for bucket in plan_buckets(grads, bucket_bytes):
        flat = _flatten([grads[i].data for i in bucket])
        all_reduce(flat, "mean", timeout)
        _unflatten(flat, [grads[i] for i in bucket], in_place=False)


def plan_buckets(tensors: list, bucket_bytes: int = BUCKET_BYTES) -> list[list[int]]:
    """Indices of `tensors` grouped into buckets of one dtype and device, each at most `bucket_bytes` (a tensor
    bigger than that gets a bucket of its own), in the tensors' order."""
    buckets: list[list[int]] = []
    open_bucket: dict[tuple, tuple[list[int], int]] = {}
    for index, tensor in enumerate(tensors):
        key = (str(tensor.dtype), backend.device_of(tensor.data))
        members, size = open_bucket.get(key, ([], 0))
        if members and size + tensor.data.nbytes > bucket_bytes:
            buckets.append(members)
            members, size = [], 0
        open_bucket[key] = (members + [index], size + tensor.data.nbytes)
    buckets.extend(members for members, _ in open_bucket.values() if members)
    return sorted(buckets)


def _flatten(arrays: list):
    xp = backend.array_module(*arrays, op="flatten")
    return xp.concatenate([array.reshape(-1) for array in arrays])


def _unflatten(flat, tensors: list[Tensor], in_place: bool) -> None:
    """Give each tensor its slice of `flat`: copied into its array (`in_place`, for parameters, whose arrays the
    model and any tied aliases share) or as a view (for gradients: no copy)."""
    offset = 0
    for tensor in tensors:
        values = flat[offset:offset + tensor.data.size].reshape(tensor.data.shape)
        if in_place:
            tensor.data[...] = values
        else:
            tensor.data = values
        offset += values.size


def shard(batch: tuple) -> tuple:
    """This rank's rows of a global batch: rows [r·n/W, (r+1)·n/W) of every array (the whole batch on 1 process).

    Every rank draws the same global batch from the same seeded stream and keeps its own rows, so the shards are
    disjoint and together are exactly the batch one process would draw.
    """
    if _world.world_size == 1:
        return batch
    rows = len(batch[0])
    if rows < _world.world_size:
        raise ValueError(f"a batch of {rows} rows cannot be shared by {_world.world_size} processes")
    start, stop = shard_bounds(rows)
    return tuple(array[start:stop] for array in batch)


def shard_bounds(rows: int) -> tuple[int, int]:
    """[start, stop) of this rank's rows in a global batch of `rows`."""
    rank, size = _world.rank, _world.world_size
    return rank * rows // size, (rank + 1) * rows // size


# ---- agreement between ranks ---------------------------------------------------------------------------------------
def describe_model(module) -> dict[str, str]:
    """name → "shape dtype" of every parameter and buffer, what must match across ranks."""
    return {name: f"{list(t.shape)} {t.dtype}" for name, t in module.state_dict().items()}


def check_consistency(module, config: dict | None = None, timeout: float | None = None) -> None:
    """Raise `RankMismatchError` on every rank when ranks differ in parameter names, shapes or dtypes, or in
    `config` (any JSON-able dict, such as the run's settings). Call before the first collective on gradients:
    buffers of different sizes would otherwise make MPI fail obscurely or wait for ever."""
    if _world.world_size == 1:
        return
    description = {"parameters": describe_model(module), "config": json.loads(json.dumps(config or {}, default=str))}
    digest = numpy.frombuffer(hashlib.sha256(json.dumps(description, sort_keys=True).encode()).digest(),
                              dtype=numpy.uint8).astype(numpy.int32)
    lowest, highest = digest.copy(), digest.copy()
    all_reduce(lowest, "min", timeout)
    all_reduce(highest, "max", timeout)
    if not numpy.array_equal(lowest, highest):
        descriptions = all_gather_object(description, timeout)
        raise RankMismatchError(_mismatch_message(descriptions))


def _mismatch_message(descriptions: list[dict]) -> str:
    """The first difference between rank 0 and each other rank, in words."""
    reference, lines = descriptions[0], []
    for rank, other in enumerate(descriptions[1:], start=1):
        for section in ("parameters", "config"):
            ours, theirs = reference[section], other[section]
            if len(ours) != len(theirs):
                lines.append(f"rank 0 has {len(ours)} {section} entries, rank {rank} has {len(theirs)}")
            for name in sorted(set(ours) | set(theirs)):
                if ours.get(name) != theirs.get(name):
                    lines.append(f"{section} {name!r}: rank 0 has {ours.get(name, '(missing)')}, rank {rank} has "
                                 f"{theirs.get(name, '(missing)')}")
                    break
    return "ranks disagree, so they cannot train together: " + "; ".join(lines)


# ---- NCCL (CuPy tensors, one GPU per process); untested here: no GPU on the machine this was written on ----------
class _NcclBackend:
    """All-reduce and broadcast of CuPy arrays with `cupy.cuda.nccl`, on the current stream, polled for timeouts.

    MPI starts the processes and broadcasts NCCL's unique id from rank 0; each process takes GPU
    (local rank mod GPU count) before creating its communicator.
    """

    def __init__(self, comm):
        cupy, nccl = backend.cupy_module(), backend.nccl_module()

        local_rank = int(os.environ.get("MPI_LOCALRANKID", os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", "0")))
        cupy.cuda.Device(local_rank % cupy.cuda.runtime.getDeviceCount()).use()
        unique_id = comm.bcast(nccl.get_unique_id() if comm.Get_rank() == 0 else None, root=0)
        self.cupy, self.nccl = cupy, nccl
        self.comm = nccl.NcclCommunicator(comm.Get_size(), unique_id, comm.Get_rank())

    def _dtype(self, array) -> int:
        names = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
                 "int32": "NCCL_INT32", "int64": "NCCL_INT64"}
        return getattr(self.nccl, names[str(array.dtype)])

    def all_reduce(self, array, op: str, timeout: float | None) -> None:
        nccl_op = {"sum": self.nccl.NCCL_SUM, "max": self.nccl.NCCL_MAX, "min": self.nccl.NCCL_MIN}[op]
        stream = self.cupy.cuda.get_current_stream()
        self.comm.allReduce(array.data.ptr, array.data.ptr, array.size, self._dtype(array), nccl_op, stream.ptr)
        self._wait(stream, f"NCCL all_reduce({op})", timeout)

    def broadcast(self, array, src: int, timeout: float | None) -> None:
        stream = self.cupy.cuda.get_current_stream()
        self.comm.bcast(array.data.ptr, array.size, self._dtype(array), src, stream.ptr)
        self._wait(stream, f"NCCL broadcast from rank {src}", timeout)

    def _wait(self, stream, what: str, timeout: float | None) -> None:
        """Wait for the stream; on timeout abort the communicator (NCCL cannot cancel one call) and raise."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not stream.done:
            if deadline is not None and time.monotonic() > deadline:
                self.comm.abort()
                raise CollectiveTimeoutError(f"rank {_world.rank}: {what} did not complete within {timeout:g} s")
            time.sleep(0.0002)
