"""The standard layers: Linear, Embedding, LayerNorm, RMSNorm, Dropout, activations, Flatten/Unflatten, Identity and
LLaMA's gated MLP.

Each layer is a `Module` (tinytensor.nn.module) that owns its Parameters, initialises them with PyTorch's default
scheme (tinytensor.nn.init) and computes with one call into `tinytensor.nn.functional`, whose fused ops carry the
analytic backward. Parameter names and shapes are PyTorch's/Hugging Face's (`weight` [out, in], `bias`), so
checkpoints map by name. Attention and rotary embeddings live next door, in tinytensor.nn.attention.
"""
from __future__ import annotations

import math

from tinytensor import backend
from tinytensor.nn import functional as F
from tinytensor.nn import init
from tinytensor.nn.module import Module, Parameter
from tinytensor.tensor import Tensor


def _new_parameter(shape: tuple, dtype=None, device: str | None = None) -> Parameter:
    """An uninitialised Parameter of `shape` (dtype defaults to float32, device to the CPU); fill it with init."""
    dtype = backend.DEFAULT_FLOAT if dtype is None else backend.as_dtype(dtype)
    return Parameter(backend.module_for(device or "cpu").empty(shape, dtype=dtype))


class Linear(Module):
    """y = x·Wᵀ + b on the last axis: [..., in_features] → [..., out_features], with W stored [out, in].

    Init (PyTorch's): W ~ kaiming_uniform_(a=√5), i.e. U(±1/√in_features); b ~ U(±1/√in_features).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None,
                 device: str | None = None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _new_parameter((out_features, in_features), dtype, device)
        self.register_parameter("bias", _new_parameter((out_features,), dtype, device) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table: integer ids of any shape [...] → vectors [..., embedding_dim].

    Init N(0, 1), as PyTorch. The `padding_idx` row starts at zero and never receives gradient.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, dtype=None,
                 device: str | None = None):
        super().__init__()
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(f"padding_idx {padding_idx} is out of range for {num_embeddings} embeddings")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx % num_embeddings if padding_idx is not None else None
        self.weight = _new_parameter((num_embeddings, embedding_dim), dtype, device)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, ids) -> Tensor:
        return F.embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        padding = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"


def _as_shape(normalized_shape: int | tuple) -> tuple:
    return (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)


class LayerNorm(Module):
    """(x − mean)/√(var + eps)·weight + bias over the last len(normalized_shape) axes (Ba et al. 2016), variance
    biased, as PyTorch; weight and bias have normalized_shape (an int n means (n,), the last axis).

    weight starts at ones, bias at zeros; `elementwise_affine=False` drops both, `bias=False` only the bias.
    """

    def __init__(self, normalized_shape: int | tuple, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype=None, device: str | None = None):
        super().__init__()
        self.normalized_shape, self.eps, self.elementwise_affine = _as_shape(normalized_shape), eps, elementwise_affine
        affine, with_bias = elementwise_affine, elementwise_affine and bias
        self.register_parameter("weight", _new_parameter(self.normalized_shape, dtype, device) if affine else None)
        self.register_parameter("bias", _new_parameter(self.normalized_shape, dtype, device) if with_bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class RMSNorm(Module):
    """x/√(mean(x²) + eps)·weight over the last len(normalized_shape) axes (Zhang & Sennrich 2019), LLaMA's norm.
    weight has normalized_shape and starts at ones."""

    def __init__(self, normalized_shape: int | tuple, eps: float = 1e-6, dtype=None, device: str | None = None):
        super().__init__()
        self.normalized_shape, self.eps = _as_shape(normalized_shape), eps
        self.weight = _new_parameter(self.normalized_shape, dtype, device)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.ones_(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class Dropout(Module):
    """Zero each element with probability p and scale the rest by 1/(1 − p) while training; identity in eval."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class GELU(Module):
    """x·Φ(x), exact (erf) or with GPT-2's tanh approximation (`approximate='tanh'`)."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class ReLU(Module):
    """max(x, 0)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class SiLU(Module):
    """x·σ(x) (swish)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x)


class Tanh(Module):
    """tanh(x)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Sigmoid(Module):
    """σ(x) = 1/(1 + e^(−x))."""

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Softmax(Module):
    """softmax along `dim`. PyTorch lets `dim` default to a guess that depends on the input's ndim (deprecated);
    here it must be given."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """log softmax along `dim` (which must be given, as for Softmax)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, self.dim)


class LeakyReLU(Module):
    """x where x > 0, else negative_slope·x."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Softplus(Module):
    """log(1 + e^(βx))/β, x itself where βx > threshold."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class ELU(Module):
    """x where x > 0, else α(eˣ − 1)."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Hardtanh(Module):
    """x clipped to [min_val, max_val]."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0):
        super().__init__()
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val {min_val} is greater than max_val {max_val}")
        self.min_val, self.max_val = min_val, max_val

    def forward(self, x: Tensor) -> Tensor:
        return F.hardtanh(x, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}"


class Flatten(Module):
    """Merge axes start_dim … end_dim into one; by default every axis but the batch axis: [B, C, H, W] → [B, C·H·W]."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split axis `dim` into `unflattened_size` (one entry may be -1), undoing Flatten: [B, 12] → [B, 3, 4]."""

    def __init__(self, dim: int, unflattened_size: tuple):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Tensor) -> Tensor:
        return x.unflatten(self.dim, self.unflattened_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Identity(Module):
    """Returns its input: a placeholder where a layer is switched off (arguments are accepted and ignored)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


class SwiGLU(Module):
    """LLaMA's gated MLP (Shazeer 2020): down_proj(silu(gate_proj(x)) ⊙ up_proj(x)), [..., dim] → [..., dim].

    Names match Hugging Face's LlamaMLP (`gate_proj`, `up_proj` [hidden, dim]; `down_proj` [dim, hidden]).
    """

    def __init__(self, dim: int, hidden_dim: int, bias: bool = False, dtype=None, device: str | None = None):
        super().__init__()
        self.gate_proj = Linear(dim, hidden_dim, bias=bias, dtype=dtype, device=device)
        self.up_proj = Linear(dim, hidden_dim, bias=bias, dtype=dtype, device=device)
        self.down_proj = Linear(hidden_dim, dim, bias=bias, dtype=dtype, device=device)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
