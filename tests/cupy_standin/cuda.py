"""`cupy.cuda` of the stand-in: one device, a stream that is always done, and NCCL with an in-process communicator.

The communicator's ranks are threads of this process: each joins the group of its unique id, and collectives
meet at a barrier, as NCCL's ranks meet on the wire. Buffers are named by device address (`array.data.ptr`), as in
NCCL; the stand-in finds the array behind an address among the arrays whose `.data` was asked for.
"""
from __future__ import annotations

import threading
import types
import weakref

import numpy

from .api import API
from .device_array import COUNTS, _MemoryPointer

NCCL_OPS = {"NCCL_SUM": 0, "NCCL_PROD": 1, "NCCL_MAX": 2, "NCCL_MIN": 3, "NCCL_AVG": 4}
NCCL_TYPES = {"NCCL_INT8": "int8", "NCCL_CHAR": "int8", "NCCL_UINT8": "uint8", "NCCL_INT32": "int32",
              "NCCL_INT": "int32", "NCCL_UINT32": "uint32", "NCCL_INT64": "int64", "NCCL_UINT64": "uint64",
              "NCCL_FLOAT16": "float16", "NCCL_HALF": "float16", "NCCL_FLOAT32": "float32",
              "NCCL_FLOAT": "float32", "NCCL_FLOAT64": "float64", "NCCL_DOUBLE": "float64"}
_TYPE_CODES = {name: code for code, name in enumerate(sorted(set(NCCL_TYPES.values())))}
_ADDRESSES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _remember_address(pointer_init):
    """Wrap `_MemoryPointer.__init__` so every address handed out can be resolved back to its array."""

    def init(self, memory):
        pointer_init(self, memory)
        _ADDRESSES[self.ptr] = memory

    return init


_MemoryPointer.__init__ = _remember_address(_MemoryPointer.__init__)


def _buffer(ptr: int, count: int, datatype: int) -> numpy.ndarray:
    memory = _ADDRESSES.get(ptr)
    if memory is None:
        raise RuntimeError(f"NCCL stand-in: no device array at address {ptr:#x}")
    dtype = next(name for name, code in _TYPE_CODES.items() if code == datatype)
    if memory.dtype != dtype or memory.size < count or not memory.flags.c_contiguous:
        raise RuntimeError(f"NCCL stand-in: buffer at {ptr:#x} is {memory.dtype}[{memory.size}], the call says "
                           f"{dtype}[{count}] (or it is not contiguous)")
    return memory.reshape(-1)[:count]


class Stream:
    """`cupy.cuda.Stream`: work is done as soon as it is queued; `synchronize` is counted as a sync."""

    ptr = 0
    done = True

    def synchronize(self):
        COUNTS["stream.synchronize"] += 1


class Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise RuntimeError(f"CUDA stand-in: device {self.id} asked for, but it has one device (0)")

    def use(self):
        return self

    def synchronize(self):
        COUNTS["device.synchronize"] += 1


class _Group:
    """The ranks of one communicator id: a barrier and a slot per rank for the data in flight."""

    def __init__(self, size: int):
        self.size, self.barrier, self.slots = size, threading.Barrier(size, timeout=30), [None] * size


_GROUPS: dict[tuple, _Group] = {}
_GROUPS_LOCK = threading.Lock()
_NEXT_ID = [0]


def get_unique_id() -> tuple:
    with _GROUPS_LOCK:
        _NEXT_ID[0] += 1
        return (_NEXT_ID[0],) + (0,) * 127


class NcclCommunicator:
    """`cupy.cuda.nccl.NcclCommunicator(ndev, commId, rank)`, the ranks being threads of this process."""

    def __init__(self, ndev: int, commId: tuple, rank: int):  # noqa: N803 - CuPy's names
        with _GROUPS_LOCK:
            self._group = _GROUPS.setdefault(tuple(commId), _Group(ndev))
        self._rank, self.aborted = rank, False

    def rank_id(self):
        return self._rank

    def size(self):
        return self._group.size

    def _exchange(self, contribution):
        """Every rank posts its data and gets everyone's, in rank order."""
        group = self._group
        group.slots[self._rank] = contribution
        group.barrier.wait()
        everyone = list(group.slots)
        group.barrier.wait()
        return everyone

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):  # noqa: N802 - CuPy's name
        send, receive = _buffer(sendbuf, count, datatype), _buffer(recvbuf, count, datatype)
        everyone = numpy.stack(self._exchange(send.copy()))
        reduce = {0: numpy.sum, 1: numpy.prod, 2: numpy.max, 3: numpy.min, 4: numpy.mean}[op]
        receive[...] = reduce(everyone, axis=0).astype(receive.dtype, copy=False)

    def bcast(self, buff, count, datatype, root, stream):
        buffer = _buffer(buff, count, datatype)
        everyone = self._exchange(buffer.copy() if self._rank == root else None)
        buffer[...] = everyone[root]

    def abort(self):
        self.aborted = True

    def destroy(self):
        pass


def build_module() -> types.ModuleType:
    """`cupy.cuda` with `runtime`, `nccl`, `Device`, `Stream` and `get_current_stream`."""
    cuda = types.ModuleType("cupy.cuda")
    cuda.runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, deviceSynchronize=Device().synchronize)
    cuda.Device, cuda.Stream = Device, Stream
    cuda.get_current_stream = lambda device_id=-1: Stream()
    nccl = types.ModuleType("cupy.cuda.nccl")
    nccl.get_unique_id, nccl.NcclCommunicator = get_unique_id, NcclCommunicator
    constants = set(API["cupy.cuda.nccl"]["constants"])
    for name, value in {**NCCL_OPS, **{n: _TYPE_CODES[t] for n, t in NCCL_TYPES.items()}}.items():
        if name in constants:
            setattr(nccl, name, value)
    cuda.nccl = nccl
    return cuda
