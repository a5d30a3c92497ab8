"""`tinytensor.cuda`: the few `torch.cuda` calls that device-agnostic programs make, answered through CuPy.

    device = 'cuda' if tt.cuda.is_available() else 'cpu'
    tt.cuda.manual_seed_all(1337)      # seeds the GPU generator; silently nothing without a GPU, as PyTorch

tinytensor drives one GPU per process, so "all" devices and "the current" device are the same one.
"""
from __future__ import annotations

from tinytensor import amp, backend

__all__ = ["amp", "current_device", "device_count", "empty_cache", "get_device_name", "is_available",
           "is_bf16_supported", "manual_seed", "manual_seed_all", "memory_allocated", "set_device", "synchronize"]


def is_available() -> bool:
    """True when CuPy imports and sees a GPU."""
    return backend.cuda_is_available()


def device_count() -> int:
    return backend.cuda_device_count()


def manual_seed(seed: int) -> None:
    """Seed the GPU's random generator only (the CPU's keeps its stream)."""
    backend.manual_seed_device("cuda", seed)


def manual_seed_all(seed: int) -> None:
    """Seed every GPU's generator: one, here."""
    manual_seed(seed)


def is_bf16_supported() -> bool:
    """False: NumPy and CuPy have no bfloat16 (programs ask this to choose their dtype)."""
    return False


def synchronize() -> None:
    """Wait for the GPU to finish its queued work (timing code calls this)."""
    backend.cupy_module().cuda.Device().synchronize()


def empty_cache() -> None:
    """Hand CuPy's cached, unused GPU memory back to the driver; nothing without CuPy."""
    if backend.cuda_is_available():
        backend.cupy_module().get_default_memory_pool().free_all_blocks()


def current_device() -> int:
    return 0


def set_device(device) -> None:
    """One GPU per process: only device 0 (or 'cuda', 'cuda:0') is accepted."""
    index = device if isinstance(device, int) else int(str(device).partition(":")[2] or 0)
    if index != 0:
        raise ValueError(f"set_device: tinytensor drives one GPU per process (device 0), got {device!r}; choose the "
                         "GPU with CUDA_VISIBLE_DEVICES")


def get_device_name(device=None) -> str:
    cupy = backend.cupy_module()
    return cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()


def memory_allocated(device=None) -> int:
    """Bytes of GPU memory held by tensors (CuPy's memory pool in use); 0 without CuPy."""
    return backend.cupy_module().get_default_memory_pool().used_bytes() if backend.cuda_is_available() else 0
