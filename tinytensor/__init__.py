"""tinytensor: a small reverse-mode autograd framework on NumPy, with CuPy as a drop-in GPU backend.

    import tinytensor as tt
    x = tt.tensor([[1.0, 2.0]], requires_grad=True)
    (x * x).sum().backward()
    x.grad          # tensor([[2. 4.]])

Layers, bottom to top: backend (numpy | cupy), autograd (Function, graph walk), tensor (Tensor), ops (forward and
backward side by side), nn, optim, gradcheck, io.
"""
import os

# OpenBLAS's worker threads spin for ~2^28 cycles after each matrix product, holding both cores while the next
# (single-threaded) NumPy passes run; AdamW after backward ran at half speed. 2^20 cycles (~0.4 ms) still bridges
# the gaps between consecutive products. Effective only when tinytensor is imported before NumPy.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

from tinytensor import autograd, backend  # noqa: E402
from tinytensor.autograd import detect_anomaly, enable_grad, is_grad_enabled, no_grad  # noqa: E402
from tinytensor.backend import (bool_, cuda_is_available, float16, float32, float64, get_rng_state,  # noqa: E402
                                int32, int64, manual_seed, set_rng_state)
from tinytensor.ops import *  # noqa: E402,F403 - the op functions are the top-level API, as in torch
from tinytensor.tensor import Tensor  # noqa: E402
from tinytensor.gradcheck import gradcheck  # noqa: E402,I001 - gradcheck builds on the ops above

__version__ = "0.1.0"
