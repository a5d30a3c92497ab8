"""`tinytensor.nn.init`: fill parameters in place with PyTorch's initialisation schemes.

Layers (`tinytensor.nn.layers`, models) call these in their constructors; users call them to re-initialise.
Every function writes into `tensor.data` in place (the array keeps its identity), draws from the seeded generator
of the tensor's device (`backend.generator`, or the `generator=` given) directly in the tensor's dtype, records no
graph, and returns the tensor. The formulas are PyTorch's, so bounds and standard deviations match `torch.nn.init`
exactly.
"""
from __future__ import annotations

import math

from tinytensor import backend
from tinytensor.tensor import Tensor

_MIN_TRUNCATED_MASS = 1e-4


def _draw_dtype(tensor: Tensor):
    """Generators draw float32 or float64; float16 tensors are drawn in float32 and cast on assignment."""
    return backend.float32 if tensor.dtype == backend.float16 else tensor.dtype


def _fill(tensor: Tensor, values) -> Tensor:
    """Write `values` (an array or scalar) into the tensor's array in place."""
    tensor.data[...] = values
    return tensor


def _uniform_array(tensor: Tensor, low: float, high: float, generator=None):
    draw = backend.draws(tensor.device, generator).random(tensor.shape, dtype=_draw_dtype(tensor))
    return draw * (high - low) + low


def _normal_array(tensor: Tensor, mean: float, std: float, shape: tuple | None = None, generator=None):
    shape = tensor.shape if shape is None else shape
    draw = backend.draws(tensor.device, generator).standard_normal(shape, dtype=_draw_dtype(tensor))
    return draw * std + mean


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """Fill with U(a, b) (from `generator` if given, as every initialiser here)."""
    return _fill(tensor, _uniform_array(tensor, a, b, generator))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """Fill with N(mean, std²)."""
    return _fill(tensor, _normal_array(tensor, mean, std, generator=generator))


def constant_(tensor: Tensor, value: float) -> Tensor:
    return _fill(tensor, value)


def zeros_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 1)


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator=None) -> Tensor:
    """Fill with N(mean, std²) conditioned on [a, b] (absolute bounds, as in PyTorch), by rejection sampling.

    Each round draws enough candidates for the still-empty slots given the probability mass inside [a, b], so a
    few rounds suffice; bounds that hold almost no mass are refused rather than looped on.
    """
    mass = _normal_cdf((b - mean) / std) - _normal_cdf((a - mean) / std)
    if mass < _MIN_TRUNCATED_MASS:
        raise ValueError(f"trunc_normal_: [{a}, {b}] holds only {mass:.3g} of N({mean}, {std}²); move the bounds")
    xp = tensor.xp
    flat = xp.empty(tensor.numel(), dtype=_draw_dtype(tensor))
    filled = 0
    while filled < flat.size:
        wanted = flat.size - filled
        candidates = _normal_array(tensor, mean, std, (int(wanted / mass * 1.1) + 16,), generator)
        accepted = candidates[(candidates >= a) & (candidates <= b)][:wanted]
        flat[filled:filled + accepted.size] = accepted
        filled += accepted.size
    return _fill(tensor, flat.reshape(tensor.shape))


def _normal_cdf(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """PyTorch's recommended gain for a nonlinearity: √2 for relu, √(2/(1+a²)) for leaky_relu with slope a, …"""
    if nonlinearity in ("linear", "identity", "sigmoid") or nonlinearity.startswith("conv"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight stored [out, in, *kernel], as PyTorch computes them."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dimensions, got shape {tensor.shape}")
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot & Bengio (2010): U(−bound, bound) with bound = gain·√(6/(fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot & Bengio (2010): N(0, std²) with std = gain·√(2/(fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    """gain/√fan of He et al. (2015), gain = calculate_gain(nonlinearity, a), fan by `mode` (0 for an empty fan)."""
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """He et al. (2015): U(−bound, bound) with bound = √3·gain/√fan (the uniform law with that std).

    `Linear` uses a=√5, which gives bound = 1/√fan_in.
    """
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    """He et al. (2015): N(0, std²) with std = gain/√fan."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), generator)
