"""`tinytensor.backends`: the switches PyTorch programs set at start, so those programs run unchanged.

    torch.backends.cuda.matmul.allow_tf32 = True      # nanoGPT's train.py
    torch.backends.cudnn.benchmark = True
    device = "mps" if torch.backends.mps.is_available() else "cpu"

tinytensor has no TF32 matmul path, no cuDNN and no Apple-GPU backend, so these are plain settings that change
nothing (docs/pytorch.md says so), and `mps.is_available()` is False.
"""
from types import SimpleNamespace

cuda = SimpleNamespace(matmul=SimpleNamespace(allow_tf32=False, allow_fp16_reduced_precision_reduction=True,
                                              allow_bf16_reduced_precision_reduction=True))
cudnn = SimpleNamespace(enabled=True, benchmark=False, deterministic=False, allow_tf32=True,
                        is_available=lambda: False)
mps = SimpleNamespace(is_available=lambda: False, is_built=lambda: False)

__all__ = ["cuda", "cudnn", "mps"]
