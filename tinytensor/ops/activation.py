"""Activation functions: ReLU, SiLU, GELU (exact, through erf, and GPT-2's tanh approximation), `erf`, softplus and
log-sigmoid, and the piecewise ones composed from other ops: leaky ReLU, ELU, hardtanh.

SiLU and GELU are fused; their plain versions (`ops/composed.py`) are what create_graph=True differentiates.
Softplus is one op for precision (log1p, which no Tensor op offers); its backward, σ(βx), runs on Tensors too.

NumPy has no erf, so this file carries two: Hart's rational fits for float64 (exact to rounding, for parity with
Hugging Face in float64) and Abramowitz & Stegun 7.1.26 for float32 (five times fewer passes). GELU's chains of
passes run slice by slice through `backend.map_slices`, so their temporaries stay in cache.
"""
from __future__ import annotations

import math

from tinytensor import backend
from tinytensor.autograd import Function
from tinytensor.ops._util import require_floating
from tinytensor.ops.elementwise import clamp, stable_sigmoid, where
from tinytensor.ops.unary import expm1
from tinytensor.tensor import Tensor


class Relu(Function):
    def forward(self, a):
        out = self.xp.maximum(a, 0)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        return grad * (self.saved[0] > 0)


class Silu(Function):
    """x·σ(x) (swish), used by LLaMA's gated MLP. d/dx = σ(x)·(1 + x·(1 − σ(x)))."""

    def forward(self, a):
        sig = stable_sigmoid(self.xp, a)
        self.save_for_backward(a, sig)
        return a * sig

    def backward(self, grad):
        a, sig = self.saved
        return grad * (sig * (1 + a * (1 - sig)))

    def composed(self, a):
        from tinytensor.ops import composed

        return composed.silu(a)


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


class Gelu(Function):
    """GELU (Hendrycks & Gimpel 2016): x·Φ(x) exactly via erf, or the tanh approximation GPT-2 uses.

    Both run their chains of passes slice by slice (`backend.map_slices`), so the temporaries stay in cache.
    """

    def forward(self, a, approximate="none"):
        self.approximate = approximate
        cdf = backend.map_slices(_tanh_cdf if approximate == "tanh" else _normal_cdf, a)
        self.save_for_backward(a, cdf)
        return a * cdf

    def backward(self, grad):
        a, cdf = self.saved
        derivative = _tanh_gelu_derivative if self.approximate == "tanh" else _gelu_derivative
        return backend.map_slices(derivative, grad, a, cdf)

    def composed(self, a):
        from tinytensor.ops import composed

        return composed.gelu(a, self.approximate)


class Erf(Function):
    """The error function; d/dx erf(x) = 2/√π·e^(−x²)."""

    def forward(self, a):
        self.save_for_backward(a)
        return erf_array(self.xp, a)

    def backward(self, grad):
        a = self.saved[0]
        return grad * (2 / math.sqrt(math.pi)) * self.xp.exp(-(a * a))


def _normal_cdf(x):
    """Φ(x) = (1 + erf(x/√2))/2."""
    out = erf_array(backend.array_module(x), x * _INV_SQRT_2)
    out += 1
    out *= 0.5
    return out


def _gelu_derivative(grad, x, cdf):
    """grad · (Φ(x) + x·φ(x)), φ the standard normal density."""
    xp = backend.array_module(x)
    out = x * x
    out *= -0.5
    xp.exp(out, out=out)
    out *= _INV_SQRT_2PI
    out *= x
    out += cdf
    out *= grad
    return out


def _tanh_cdf(x):
    """(1 + tanh(√(2/π)·(x + 0.044715·x³)))/2, GPT-2's stand-in for Φ(x)."""
    xp = backend.array_module(x)
    out = x * x
    out *= 0.044715
    out += 1
    out *= x
    out *= _SQRT_2_OVER_PI
    xp.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


def _tanh_gelu_derivative(grad, x, cdf):
    """d/dx x·c(x) = c + x·c′, with c′ = ½(1 − tanh²)·√(2/π)·(1 + 3·0.044715·x²) and tanh = 2c − 1."""
    tanh_inner = 2 * cdf - 1
    slope = x * x
    slope *= 3 * 0.044715
    slope += 1
    slope *= _SQRT_2_OVER_PI
    tanh_inner *= tanh_inner
    xp = backend.array_module(x)
    xp.subtract(1, tanh_inner, out=tanh_inner)
    slope *= tanh_inner
    slope *= 0.5
    slope *= x
    slope += cdf
    slope *= grad
    return slope


class Softplus(Function):
    """log(1 + e^(βx))/β written as (max(βx, 0) + log1p(e^(−|βx|)))/β: no exponential overflows (logits of ±1e4 are
    fine) and tiny results keep full precision. Where βx > threshold it is x itself (PyTorch's linear region; None:
    nowhere). d/dx = σ(βx), computed by `stable_sigmoid`, whose xp calls GraphXp offers, so it differentiates again.
    """

    def forward(self, x, beta=1.0, threshold=None):
        xp = self.xp
        scaled = x * beta
        out = (xp.maximum(scaled, 0) + xp.log1p(xp.exp(-xp.abs(scaled)))) / beta
        self.beta, self.threshold = beta, threshold
        self.save_for_backward(x)
        return out if threshold is None else xp.where(scaled > threshold, x, out)

    def backward(self, grad):
        x = self.saved[0]
        scaled = x * self.beta
        slope_grad = grad * stable_sigmoid(self.xp, scaled)
        return slope_grad if self.threshold is None else self.xp.where(scaled > self.threshold, grad, slope_grad)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:  # noqa: A002 - PyTorch's name
    """log(1 + e^(βx))/β, a smooth ReLU; x itself where βx > threshold (torch.nn.functional.softplus)."""
    require_floating("softplus", input)
    return Softplus.apply(input, beta=beta, threshold=threshold)


def logsigmoid(input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
    """log σ(x) = −softplus(−x), exact for every x (no linear region): −1e4 gives −1e4, not −inf."""
    require_floating("logsigmoid", input)
    return -Softplus.apply(-input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:  # noqa: A002 - PyTorch's name
    """x where x > 0, else negative_slope·x (the gradient at 0 is negative_slope, as in PyTorch)."""
    return where(input > 0, input, input * negative_slope)


def elu(input: Tensor, alpha: float = 1.0) -> Tensor:  # noqa: A002 - PyTorch's name
    """x where x > 0, else α(eˣ − 1) (Clevert et al. 2016), eˣ − 1 by expm1 (exact near 0). The exponential sees
    min(x, 0): on the branch not taken e^x could overflow, and its zero gradient times ∞ would be NaN."""
    return where(input > 0, input, alpha * expm1(clamp(input, max=0)))


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:  # noqa: A002 - PyTorch's name
    """x clipped to [min_val, max_val]. Gradient 1 strictly inside and 0 elsewhere, at the bounds too, as PyTorch's
    hardtanh (its clamp passes the gradient at the bounds): the clipped values enter as constants."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val {min_val} is greater than max_val {max_val}")
    inside = (input > min_val) & (input < max_val)
    return where(inside, input, clamp(input, min_val, max_val).detach())


def relu(a: Tensor) -> Tensor:
    return Relu.apply(a)


def silu(a: Tensor) -> Tensor:
    require_floating("silu", a)
    return Silu.apply(a)


def erf(a: Tensor) -> Tensor:
    require_floating("erf", a)
    return Erf.apply(a)


def gelu(a: Tensor, approximate: str = "none") -> Tensor:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    require_floating("gelu", a)
    return Gelu.apply(a, approximate=approximate)


# Rational approximations of erf from Hart et al., "Computer Approximations" (1968), #5667 and its companion:
# relative error below 1e-17, so float64 GELU matches math.erf to rounding.
_ERF_SMALL_P = (8.04373630960840172832162e4, 7.40407142710151470082064e3, 3.01782788536507577809226e3,
                3.80140318123903008244444e1, 1.43383842191748205576712e1, -2.88805137207594084924010e-1,
                7.547728033418631287834e-3)
_ERF_SMALL_Q = (8.04373630960840172826266e4, 3.42165257924628539769006e4, 6.37960017324428279487120e3,
                6.58070155459240506326937e2, 3.80190713951939403753468e1, 1.0)
_ERFC_P = (1.8263348842295112592168999e3, 2.8980293292167655611275846e3, 2.320439590251635247384768711e3,
           1.143262070703886173606073338e3, 3.685196154710010637133875746e2, 7.708161730368428609781633646e1,
           9.675807882987265400604202961e0, 5.641877825507397413087057563e-1)
_ERFC_Q = (1.8263348842295112595576438e3, 4.95882756472114071495438422e3, 6.0895424232724435504633068e3,
           4.429612803883682726711528526e3, 2.094384367789539593790281779e3, 6.617361207107653469211984771e2,
           1.371255960500622202878443578e2, 1.714980943627607849376131193e1, 1.0)
# Abramowitz & Stegun 7.1.26: erf(x) ≈ 1 − t·(a1 + a2·t + … + a5·t⁴)·e^(−x²), t = 1/(1 + p·x), |error| ≤ 1.5e-7:
# below float32's resolution of erf, in five times fewer passes than the rational fits.
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _polynomial(xp, coefficients, x):
    """c0 + c1·x + c2·x² + … by Horner's rule, in place in one new array."""
    result = xp.full_like(x, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        result *= x
        result += c
    return result


def erf_array(xp, x):
    """The error function on an array (NumPy has none). float64 takes the rational fits (exact to rounding);
    float32 and float16 (computed in float32) take Abramowitz & Stegun 7.1.26 (within 1.5e-7 + 4 float32 ulps of 1),
    slice by slice on the CPU."""
    if x.ndim == 0:  # ufuncs return scalars, not arrays, for 0-d inputs
        return erf_array(xp, x.reshape(1)).reshape(())
    if x.dtype == backend.float64:
        return _erf_rational(xp, x)
    single = x.astype(backend.float32, copy=False)
    return backend.map_slices(lambda part: _erf_abramowitz_stegun(xp, part), single).astype(x.dtype, copy=False)


def _erf_rational(xp, x):
    """Hart's fits: x·P(x²)/Q(x²) for |x| < 0.5, else 1 − e^(−x²)·P(|x|)/Q(|x|)."""
    magnitude = xp.minimum(xp.abs(x), 10)
    squared = magnitude * magnitude
    near_zero = _polynomial(xp, _ERF_SMALL_P, squared)
    near_zero /= _polynomial(xp, _ERF_SMALL_Q, squared)
    near_zero *= magnitude
    near_zero *= 2 / math.sqrt(math.pi)
    far = _polynomial(xp, _ERFC_P, magnitude)
    far /= _polynomial(xp, _ERFC_Q, magnitude)
    far *= xp.exp(-squared)
    xp.subtract(1, far, out=far)
    xp.copyto(far, near_zero, where=magnitude < 0.5)
    return xp.copysign(far, x, out=far)


def _erf_abramowitz_stegun(xp, x):
    magnitude = xp.abs(x)
    t = magnitude * _AS_P
    t += 1
    xp.reciprocal(t, out=t)
    series = _polynomial(xp, _AS_A, t)
    series *= t
    xp.multiply(magnitude, magnitude, out=magnitude)
    xp.negative(magnitude, out=magnitude)
    series *= xp.exp(magnitude, out=magnitude)
    xp.subtract(1, series, out=series)
    return xp.copysign(series, x, out=series)
