"""`tinytensor.cuda`: the few `torch.cuda` calls that device-agnostic programs make, answered through CuPy.

    device = 'cuda' if tt.cuda.is_available() else 'cpu'
    tt.cuda.manual_seed_all(1337)      # seeds the GPU generator; silently nothing without a GPU, as PyTorch

tinytensor drives one GPU per process, so "all" devices and "the current" device are the same one.
"""
from __future__ import annotations

from tinytensor import backend


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
