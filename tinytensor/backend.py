"""Where arrays live: NumPy on the CPU, CuPy on an NVIDIA GPU.

This is the bottom layer of tinytensor and the only file that imports CuPy (lazily, so CuPy stays optional).
Every op asks `array_module(...)` for the module `xp` that holds its inputs and writes its math once, against
`xp`, the way Chainer does. Moving data between devices happens only in `to_device`; mixing devices in one
op is an error that names both, never a silent copy.

It also owns the random generators (`manual_seed` seeds both backends) and the dtype vocabulary.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor

import numpy

float16 = numpy.dtype("float16")
float32 = numpy.dtype("float32")
float64 = numpy.dtype("float64")
uint8 = numpy.dtype("uint8")
int8 = numpy.dtype("int8")
int16 = numpy.dtype("int16")
int32 = numpy.dtype("int32")
int64 = numpy.dtype("int64")
bool_ = numpy.dtype("bool")
DEFAULT_FLOAT = float32  # what Python floats and new floating tensors become; `set_default_dtype` changes it


def set_default_dtype(dtype) -> None:
    """torch.set_default_dtype: the dtype of Python floats and of new floating tensors (float16, float32 or
    float64; float32 unless set)."""
    global DEFAULT_FLOAT
    chosen = as_dtype(dtype)
    if chosen not in (float16, float32, float64):
        raise TypeError(f"set_default_dtype: only float16, float32 or float64, got {dtype}")
    DEFAULT_FLOAT = chosen


def get_default_dtype() -> numpy.dtype:
    return DEFAULT_FLOAT


class StorageDtype:
    """A dtype that exists only in weight files. NumPy has no bfloat16, so bf16 weights are read into float32
    (exactly: a bf16 number is the top half of a float32) and written back by rounding (tinytensor.io);
    `as_dtype(tt.bfloat16)` is float32, so `from_pretrained(dir, dtype=tt.bfloat16)` and `x.to(tt.bfloat16)`
    compute in float32, and `save_pretrained(dir, dtype=tt.bfloat16)` stores bf16. Equal to its name as a string,
    so "bfloat16" works wherever tt.bfloat16 does; not a string, so `.to(tt.bfloat16)` is never taken for a device."""

    def __init__(self, name: str, computes_as: numpy.dtype) -> None:
        self.name, self.computes_as = name, computes_as

    def __eq__(self, other) -> bool:
        return other is self or (isinstance(other, str) and other == self.name)

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"tinytensor.{self.name}"


bfloat16 = StorageDtype("bfloat16", float32)

_cupy: types.ModuleType | None = None
_cpu_pool: ThreadPoolExecutor | None = None
SLICE = 1 << 17  # elements per slice in `map_slices`: big enough to amortise thread hand-offs, small enough for L2
_seed: int | None = None
_generators: dict[str, object] = {}
_deferred_checks: list[tuple[object, Exception]] = []  # (device 0-d bool "failed" flag, error to raise)
MAX_DEFERRED_CHECKS = 1024  # past this many unread flags, read them (one sync) rather than let them pile up
_device_seeds: dict[str, int] = {}  # seeds given to one device after manual_seed


class DeviceUnavailableError(RuntimeError):
    """A tensor or model was sent to 'cuda' on a machine without CuPy or without a GPU."""


def cupy_module() -> types.ModuleType:
    """Import CuPy on first use; say how to get it when it is missing."""
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as error:
            raise DeviceUnavailableError(
                "device 'cuda' needs CuPy: pip install -e '.[cuda]' (or the cupy-cudaXXx wheel for your CUDA)"
            ) from error
        _cupy = cupy
    return _cupy


def nccl_module() -> types.ModuleType:
    """CuPy's NCCL bindings (`cupy.cuda.nccl`), for multi-GPU collectives in `tinytensor.distributed`."""
    cupy_module()
    try:
        from cupy.cuda import nccl
    except ImportError as error:
        raise DeviceUnavailableError("NCCL collectives need CuPy built with NCCL (cupy-cudaXXx wheels include it)") \
            from error
    return nccl


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    return cuda_device_count() > 0


def cuda_device_count() -> int:
    """How many GPUs CuPy sees (0 without CuPy, driver or device)."""
    try:
        return int(cupy_module().cuda.runtime.getDeviceCount())
    except Exception:  # no CuPy, no driver, or no device: all mean "no GPU"
        return 0


def normalize_device(device: str) -> str:
    """Accept 'cpu', 'cuda' and 'cuda:0'; return 'cpu' or 'cuda'."""
    name = str(device).split(":")[0]
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")
    return name


class device(str):  # noqa: N801 - PyTorch's name
    """torch.device: a device name that is also the plain string ('cpu' or 'cuda') tinytensor uses everywhere, so
    `x.to(device)` and `x.device == device` work; `.type` gives the name. One GPU per process: the index is
    dropped."""

    def __new__(cls, type: str, index: int | None = None) -> device:  # noqa: A002 - PyTorch's argument name
        return super().__new__(cls, normalize_device(type))

    @property
    def type(self) -> str:
        return str(self)


def require_device(device: str) -> str:
    """Check up front that `device` can be used (for command lines): 'cuda' needs CuPy and a visible GPU."""
    device = normalize_device(device)
    if device == "cuda":
        cupy_module()
        if not cuda_is_available():
            raise DeviceUnavailableError("device 'cuda' asked for, but CuPy sees no GPU (check the driver and "
                                         "CUDA_VISIBLE_DEVICES), or run with --device cpu")
    return device


def module_for(device: str) -> types.ModuleType:
    """The array module (numpy or cupy) of a device."""
    return numpy if normalize_device(device) == "cpu" else cupy_module()


def is_cupy_array(value) -> bool:
    """Whether `value` is a CuPy array (CuPy is only looked up if something already imported it)."""
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(value, cupy.ndarray)


def device_of(array) -> str:
    """'cpu' for NumPy arrays and scalars, 'cuda' for CuPy arrays."""
    return "cpu" if isinstance(array, (numpy.ndarray, numpy.generic)) else "cuda"


def array_module(*arrays, op: str = "op") -> types.ModuleType:
    """The one place that decides `xp` for an op: all inputs must share a device."""
    for array in arrays:  # the common case, all NumPy, checked first: this runs for every op
        if type(array) is not numpy.ndarray:
            break
    else:
        return numpy
    device = device_of(arrays[0])
    for array in arrays[1:]:
        other = device_of(array)
        if other != device:
            raise RuntimeError(f"{op}: inputs are on different devices, {device} and {other}; move one with .to()")
    return numpy if device == "cpu" else cupy_module()


def to_device(array, device: str):
    """Copy an array to a device (no copy when it is already there)."""
    device = normalize_device(device)
    if device_of(array) == device:
        return array
    if device == "cpu":
        return _download(array)
    return cupy_module().asarray(array)


def check_later(failed, error: Exception) -> None:
    """Raise `error` if the device flag `failed` (a 0-d boolean array) is true, without a synchronisation of its
    own: the flag is read with the next device-to-host transfer (`.numpy()`, `.item()`, the logged loss). Checks
    of GPU inputs (token ids in range) use it; on the CPU they raise at once instead."""
    _deferred_checks.append((failed, error))
    if len(_deferred_checks) >= MAX_DEFERRED_CHECKS:
        _download(cupy_module().zeros(0))


def _download(array) -> numpy.ndarray:
    """Copy a device array to the host together with the pending check flags, in one transfer, and raise the
    first failed check's error."""
    if not _deferred_checks:
        return array.get()
    cupy = cupy_module()
    flags = cupy.stack([failed for failed, _ in _deferred_checks]).astype(bool_)
    errors = [error for _, error in _deferred_checks]
    _deferred_checks.clear()
    payload = cupy.ascontiguousarray(array).reshape(-1).view(numpy.uint8)
    host = cupy.concatenate([flags.view(numpy.uint8), payload]).get()
    for failed, error in zip(host[:len(errors)], errors):
        if failed:
            raise error
    return host[len(errors):].view(array.dtype).reshape(array.shape)


def to_numpy(array) -> numpy.ndarray:
    """A host NumPy array, copying from the GPU if needed (an explicit, visible transfer)."""
    return to_device(array, "cpu")


def manual_seed(seed: int) -> None:
    """Seed the random generators of every backend, like torch.manual_seed."""
    global _seed
    _seed = int(seed)
    _device_seeds.clear()
    _generators.clear()


def manual_seed_device(device: str, seed: int) -> None:
    """Seed one device's generator only (torch.cuda.manual_seed); safe to call when the device is absent."""
    device = normalize_device(device)
    _device_seeds[device] = int(seed)
    _generators.pop(device, None)


def generator(device: str = "cpu"):
    """The shared random generator of a device (a numpy/cupy `Generator`), created from the last seed."""
    device = normalize_device(device)
    if device not in _generators:
        xp = module_for(device)
        _generators[device] = xp.random.default_rng(_device_seeds.get(device, _seed))
    return _generators[device]


class Generator:
    """torch.Generator: a random stream of its own, for code that keeps its draws apart from the shared one
    (makemore's `g = torch.Generator().manual_seed(2147483647)`, then `torch.randn(..., generator=g)`). Every draw
    that takes `generator=` (randn, rand, randint, randperm, multinomial, normal_, uniform_, nn.init) reads from it.
    The same seed gives the same numbers on every run, but not PyTorch's numbers (NumPy's PCG64, not Philox or
    Mersenne Twister). Its state is what `get_state`/`set_state` pass around (a dict, not a byte tensor)."""

    DEFAULT_SEED = 67280421310721  # PyTorch's initial seed for a new Generator

    def __init__(self, device: str = "cpu") -> None:
        self.device = require_device(str(device))
        self.manual_seed(self.DEFAULT_SEED)

    def manual_seed(self, seed: int) -> Generator:
        """Restart the stream from `seed`; returns the generator, so it chains as in PyTorch."""
        self._seed = int(seed)
        self._rng = module_for(self.device).random.default_rng(self._seed)
        return self

    def seed(self) -> int:
        """Reseed from the operating system's entropy; returns the new seed."""
        self.manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
        return self._seed

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict:
        return {"seed": self._seed, "state": self._rng.bit_generator.state}

    def set_state(self, state: dict) -> Generator:
        self.manual_seed(state["seed"])
        self._rng.bit_generator.state = state["state"]
        return self

    def __repr__(self) -> str:
        return f"Generator(device={self.device!r}, initial_seed={self._seed})"


def draws(device: str, chosen: Generator | None = None):
    """Where a random draw on `device` comes from: the `generator=` a caller `chosen` (it must live on that
    device), else the device's shared generator."""
    if chosen is None:
        return generator(device)
    if not isinstance(chosen, Generator):
        raise TypeError(f"generator must be a tinytensor Generator, got {type(chosen).__name__}")
    if chosen.device != normalize_device(device):
        raise ValueError(f"a generator on {chosen.device} cannot draw a tensor on {normalize_device(device)}")
    return chosen._rng


def get_rng_state() -> dict:
    """The CPU generator's state, JSON-friendly, for checkpoints (the GPU stream is reseeded on resume)."""
    return {"seed": _seed, "cpu": generator("cpu").bit_generator.state}


def set_rng_state(state: dict) -> None:
    """Restore a state returned by `get_rng_state`."""
    global _seed
    _seed = state["seed"]
    _generators.clear()
    generator("cpu").bit_generator.state = state["cpu"]


def tune_host_allocator() -> bool:
    """Ask glibc to keep freed memory for reuse instead of handing big blocks back to the OS.

    Each large NumPy temporary is otherwise a fresh mmap whose pages fault in one by one, which costs 15–30% of
    a CPU training step (PyTorch avoids it with its own caching allocator). The price: the process's resident
    memory does not shrink after a peak. The trainers call this; custom loops may too. Returns False where the C
    library has no `mallopt` (not glibc), leaving everything as it was.
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def cpu_cores() -> int:
    """The cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


_worker_cores: int | None = None  # set by `fit_threads_to_free_cores`; None: every core in `cpu_cores()`


def worker_cores() -> int:
    """How many cores tinytensor spreads work over: `cpu_cores()`, or fewer after `fit_threads_to_free_cores`."""
    return _worker_cores or cpu_cores()


def free_cores(sample_seconds: float = 0.1) -> int:
    """Cores of this process's affinity set that other processes leave idle, measured over `sample_seconds`.

    Reads the busy time of each core from /proc/stat before and after a short sleep and subtracts this process's
    own CPU time (parked BLAS threads may spin meanwhile). Linux only; elsewhere it answers `cpu_cores()`.
    """
    cores = cpu_cores()
    try:
        before, own_before = _busy_seconds(), _own_cpu_seconds()
        started = time.monotonic()
        time.sleep(sample_seconds)
        others = (_busy_seconds() - before - (_own_cpu_seconds() - own_before)) / (time.monotonic() - started)
    except (OSError, ValueError, AttributeError):  # no /proc/stat, no sched_getaffinity
        return cores
    return max(1, min(cores, cores - int(others + 0.25)))  # a core is taken from 3/4 busy: noise is no process


def _busy_seconds() -> float:
    """Non-idle CPU seconds so far, summed over the cores this process may use (from /proc/stat)."""
    allowed = os.sched_getaffinity(0)
    busy_ticks = 0
    with open("/proc/stat") as stat:
        for line in stat:
            name, *ticks = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in allowed:
                busy_ticks += sum(int(ticks[i]) for i in (0, 1, 2, 5, 6))  # user nice system irq softirq; no steal
    return busy_ticks / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def set_blas_threads(count: int) -> bool:
    """Set the thread count of the OpenBLAS that NumPy loaded, through its own C function (what threadpoolctl
    does, without the dependency). Returns False where no OpenBLAS is loaded (MKL, Accelerate, not Linux)."""
    setter = _openblas_function("set_num_threads")
    if setter is not None:
        setter(count)
    return setter is not None


@contextlib.contextmanager
def one_blas_thread():
    """BLAS on one thread inside the block, for work that tinytensor already spreads over the cores itself
    (two BLAS threads per lane would fight over the same cores); yields False where that cannot be set."""
    getter = _openblas_function("get_num_threads")
    previous = getter() if getter is not None else None
    if previous is not None:
        set_blas_threads(1)
    try:
        yield previous is not None
    finally:
        if previous is not None:
            set_blas_threads(previous)


@functools.cache
def _openblas_function(name: str):
    """OpenBLAS's C function `openblas_<name>` (under the names NumPy's and other builds export), or None."""
    for library in _loaded_libraries("openblas"):
        for symbol in (f"scipy_openblas_{name}64_", f"scipy_openblas_{name}", f"openblas_{name}64_",
                       f"openblas_{name}"):
            function = getattr(ctypes.CDLL(library), symbol, None)
            if function is not None:
                return function
    return None


def _loaded_libraries(fragment: str) -> list[str]:
    """Paths of shared libraries mapped into this process whose file name contains `fragment` (Linux)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if ".so" in line and "/" in line}
    except OSError:
        return []
    return sorted(p for p in paths if fragment in os.path.basename(p).lower())


def fit_threads_to_free_cores(sample_seconds: float = 0.1) -> int:
    """Size BLAS threads and tinytensor's lanes to the cores other processes leave free; returns that count.

    A BLAS thread whose core is taken stalls every GEMM it shares (a busy 2-core machine made the tiny GPT step
    4× slower with two threads, 1.4× with one). The trainers call this at start; call it again if the load
    changes. Where OpenBLAS cannot be reached, only tinytensor's own lanes follow.
    """
    global _worker_cores
    _worker_cores = free_cores(sample_seconds)
    set_blas_threads(_worker_cores)
    return _worker_cores


def cpu_pool() -> ThreadPoolExecutor:
    """One worker thread per core, shared by everything that spreads NumPy passes over cores (NumPy's ufuncs
    release the GIL, but each runs on one core)."""
    global _cpu_pool
    if _cpu_pool is None:
        _cpu_pool = ThreadPoolExecutor(max_workers=cpu_cores(), thread_name_prefix="tinytensor")
    return _cpu_pool


def map_slices(function, *arrays):
    """function(*arrays) for an elementwise `function` of same-shaped arrays, returning one new array.

    On the CPU, large inputs are cut into slices of `SLICE` elements: a chain of NumPy passes over one slice
    keeps its temporaries in cache instead of streaming every pass through memory, and the slices are shared
    among the cores. On a GPU (or for small inputs) it is simply `function(*arrays)`. `function` must not call
    `map_slices` on anything bigger than a slice (the workers would wait on themselves).
    """
    first = arrays[0]
    flat = [a.reshape(-1) for a in arrays]  # 1-D, so in-place passes never meet NumPy's 0-d scalars
    if device_of(first) != "cpu" or first.size <= 2 * SLICE:
        return function(*flat).reshape(first.shape)
    out = numpy.empty(first.size, dtype=function(*[a[:1] for a in flat]).dtype)

    def run(start: int) -> None:
        out[start:start + SLICE] = function(*[a[start:start + SLICE] for a in flat])

    starts = range(0, first.size, SLICE)
    list(cpu_pool().map(run, starts) if worker_cores() > 1 else map(run, starts))
    return out.reshape(first.shape)


def as_dtype(dtype) -> numpy.dtype:
    """Normalise 'float32', numpy.float32, tt.float32 … to one dtype object; tt.bfloat16 computes as float32."""
    if isinstance(dtype, (str, StorageDtype)) and dtype == bfloat16:
        return bfloat16.computes_as
    return numpy.dtype(dtype)


def is_floating(dtype) -> bool:
    """True for float16/32/64."""
    return as_dtype(dtype).kind == "f"
