"""Shared Hypothesis strategies and the one helper every op test uses (tinygrad's `helper_test_op`, in spirit).

An op test is one lambda and one NumPy reference:

    check_op(lambda a, b: a * b, np.multiply, a_array, b_array, device=device)

`check_op` proves three things: the float64 forward equals the NumPy reference, the float32 forward stays float32
and agrees with it to float32 precision, and the backward agrees with central finite differences (`tt.gradcheck`,
float64, random projection of the output). Shapes stay tiny (≤ 4 per axis, ≤ 4 axes) because a full gradient
check costs two forward passes per input element. Values are drawn away from the points where an op is not
differentiable (relu and abs at 0, ties of max/min, the bounds of clamp), so finite differences are meaningful.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinytensor as tt

MAX_SIDE = 4
MAX_DIMS = 4
FLOAT_DTYPES = (tt.float32, tt.float64)

# The `device` fixture is a plain string that is safe to share between generated examples, so the
# function-scoped-fixture health check does not apply to it. Use `@op_settings` (or `settings(op_settings, ...)`)
# on every `@given` test that takes `device`; it keeps the active profile's other settings.
op_settings = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                              HealthCheck.data_too_large])


def scaled_examples(factor: float) -> settings:
    """`op_settings` with `factor` times the active profile's examples: below 1 for checks that are slow per
    example, above 1 for ones whose input space (index kinds, mask layouts) is wide. Scales with
    `--hypothesis-profile`."""
    return settings(op_settings, max_examples=max(1, math.ceil(settings.default.max_examples * factor)))


# ---- shapes and axes ---------------------------------------------------------------------------------------------
def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = MAX_SIDE):
    """Array shapes with tiny sides (0-size axes excluded unless min_side=0)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(count: int = 2, min_dims: int = 0, max_dims: int = 3, max_side: int = MAX_SIDE):
    """`count` shapes that broadcast together under NumPy's rules, e.g. ((3, 1), (2, 1, 4))."""
    return hnp.mutually_broadcastable_shapes(num_shapes=count, min_dims=min_dims, max_dims=max_dims,
                                             max_side=max_side).map(lambda drawn: drawn.input_shapes)


@st.composite
def axes(draw, ndim: int, allow_none: bool = True, allow_tuple: bool = True):
    """A reduction axis argument for an ndim-array: None, one axis (maybe negative), or a tuple of distinct axes."""
    options = [st.none()] if allow_none or ndim == 0 else []
    if ndim:
        options.append(st.integers(-ndim, ndim - 1))
        if allow_tuple:
            options.append(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True)
                           .flatmap(lambda chosen: st.tuples(*[st.sampled_from([a, a - ndim]) for a in chosen])))
    return draw(st.one_of(*options))


@st.composite
def axis(draw, ndim: int):
    """One axis of an ndim-array (ndim ≥ 1), negative half of the time."""
    chosen = draw(st.integers(0, ndim - 1))
    return draw(st.sampled_from([chosen, chosen - ndim]))


def reduced_size(shape: tuple, axis_arg) -> int:
    """How many elements a reduction over `axis_arg` folds into each output element."""
    if axis_arg is None:
        return math.prod(shape)
    chosen = axis_arg if isinstance(axis_arg, tuple) else (axis_arg,)
    return math.prod(shape[a] for a in chosen)


# ---- values ------------------------------------------------------------------------------------------------------
@st.composite
def arrays(draw, shape, low: float = -2.0, high: float = 2.0, away_from: tuple = (), margin: float = 0.05):
    """float64 values in [low, high], each at least `margin` from every point in `away_from`."""
    values = draw(hnp.arrays(np.float64, shape, elements=st.floats(low, high, allow_nan=False,
                                                                       allow_infinity=False, allow_subnormal=False)))
    for point in away_from:
        too_close = np.abs(values - point) < margin
        values = np.where(too_close, np.where(values >= point, point + margin, point - margin), values)
    return values


@st.composite
def distinct_arrays(draw, shape, spacing: float = 0.25, center: float = 0.0):
    """float64 values whose pairwise gaps are at least `spacing` / 2 (so max/min never tie, even after ±eps)."""
    size = math.prod(shape)
    order = np.asarray(draw(st.permutations(range(size))), dtype=np.float64)
    jitter = draw(hnp.arrays(np.float64, size, elements=st.floats(-spacing / 4, spacing / 4)))
    return ((order - (size - 1) / 2) * spacing + jitter + center).reshape(shape)


@st.composite
def grid_arrays(draw, shape, offset: float = 0.0, step: float = 0.25, span: int = 8):
    """Values k·step + offset with |k| ≤ span: two grids with different offsets never come closer than the offset."""
    ticks = draw(hnp.arrays(np.int64, shape, elements=st.integers(-span, span)))
    return ticks * step + offset


def bool_masks(shape):
    return hnp.arrays(np.bool_, shape)


def index_arrays(shape, side: int):
    """Integer ids in [0, side) with repeats."""
    return hnp.arrays(np.int64, shape, elements=st.integers(0, side - 1))


# ---- tensors and the op-test helper ------------------------------------------------------------------------------
def tensor(array, device: str = "cpu", dtype=None, requires_grad: bool = False) -> tt.Tensor:
    """A leaf tensor from a NumPy array, moved to `device` with .to() before it starts requiring grad."""
    moved = tt.tensor(np.asarray(array), dtype=dtype).to(device)
    return moved.requires_grad_() if requires_grad else moved


def _as_list(result) -> list:
    return list(result) if isinstance(result, (list, tuple)) else [result]


def _host(result) -> list:
    return [np.asarray(out.numpy()) for out in _as_list(result)]


def check_forward(fn, reference, *arrays, device: str = "cpu", rtol64: float = 1e-10, atol64: float = 1e-12,
                  rtol32: float = 1e-4, atol32: float = 1e-5) -> None:
    """fn on float64 tensors equals `reference` on the arrays; on float32 tensors it stays float32 and agrees."""
    expected = [np.asarray(e, dtype=np.float64) for e in _as_list(reference(*arrays))]
    for dtype, rtol, atol in ((tt.float64, rtol64, atol64), (tt.float32, rtol32, atol32)):
        outputs = _as_list(fn(*[tensor(a, device, dtype) for a in arrays]))
        assert len(outputs) == len(expected)
        for out, want in zip(outputs, expected):
            assert out.device == tt.tensor(0.0).to(device).device
            assert out.dtype == dtype, f"{dtype} input gave a {out.dtype} output"
            assert out.shape == want.shape
            np.testing.assert_allclose(np.asarray(out.numpy(), dtype=np.float64), want, rtol=rtol, atol=atol)


def check_gradient(fn, *arrays, device: str = "cpu", fast: bool = False, **gradcheck_options) -> None:
    """Every array becomes a float64 leaf that requires grad; fn's backward must match finite differences."""
    inputs = [tensor(a, device, tt.float64, requires_grad=True) for a in arrays]
    assert tt.gradcheck(fn, inputs, fast=fast, **gradcheck_options)


def check_op(fn, reference, *arrays, device: str = "cpu", **forward_tolerances) -> None:
    """Forward against NumPy (float64 and float32) and backward against finite differences, for one op."""
    check_forward(fn, reference, *arrays, device=device, **forward_tolerances)
    check_gradient(fn, *arrays, device=device)
