"""tinytensor: a small reverse-mode autograd framework on NumPy, with CuPy as a drop-in GPU backend.

    import tinytensor as tt
    x = tt.tensor([[1.0, 2.0]], requires_grad=True)
    (x * x).sum().backward()
    x.grad          # tensor([[2. 4.]])

Layers, bottom to top: backend (numpy | cupy), autograd (Function, graph walk), tensor (Tensor), ops (forward and
backward side by side), nn, optim, gradcheck, io.

`import tinytensor as torch` is meant to work for everyday PyTorch programs: `nn`, `optim`, `autograd`, `linalg`
and `cuda` are reachable after one import, and PyTorch's dtype names (`long`, `float`, `double`, …) are here.
docs/pytorch.md lists what carries over and what differs.
"""
import os

# OpenBLAS's worker threads spin for ~2^28 cycles after each matrix product, holding both cores while the next
# (single-threaded) NumPy passes run; AdamW after backward ran at half speed. 2^20 cycles (~0.4 ms) still bridges
# the gaps between consecutive products. Effective only when tinytensor is imported before NumPy.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

from tinytensor import amp, autograd, backend, backends, cuda  # noqa: E402
from tinytensor.amp import compile  # noqa: E402,A004 - torch.compile (eager here: returns the model)
from tinytensor.autograd import (detect_anomaly, enable_grad, inference_mode, is_grad_enabled, no_grad,  # noqa: E402
                                 set_grad_enabled)
from tinytensor.backend import (Generator, bfloat16, bool_, cuda_is_available, device, float16,  # noqa: E402
                                float32, float64, get_default_dtype, get_rng_state, int8, int16, int32, int64,
                                manual_seed, set_default_dtype, set_rng_state, uint8)
from tinytensor.ops import *  # noqa: E402,F403 - the op functions are the top-level API, as in torch
from tinytensor.tensor import Tensor  # noqa: E402
from tinytensor.gradcheck import gradcheck, gradgradcheck  # noqa: E402,I001 - gradcheck builds on the ops above
from tinytensor import linalg, nn, optim, utils  # noqa: E402,I001 - `import torch` reaches torch.nn, .linalg, ...
from tinytensor.serialization import load, save  # noqa: E402

finfo, iinfo = backend.numpy.finfo, backend.numpy.iinfo  # .eps, .min, .max, .tiny of a dtype, as torch.finfo


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(tensor: Tensor) -> bool:
    return tensor.is_floating_point()


def numel(tensor: Tensor) -> int:
    return tensor.numel()


# PyTorch's dtype names (they shadow Python's builtins only inside this namespace: tt.float, tt.int, tt.bool)
long = int64
float = float32  # noqa: A001
double = float64
half = float16
int = int32  # noqa: A001
bool = bool_  # noqa: A001

__version__ = "0.1.0"
