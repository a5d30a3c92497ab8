"""Convolution, pooling and batch norm (tinytensor/ops/conv.py, tinytensor/nn/conv.py).

Each op's forward is checked against a direct NumPy loop over output positions (the textbook formula, no im2col),
its backward against central finite differences in float64, over drawn shapes, strides, paddings, dilations and
groups; second derivatives go through the plain twins in ops/composed.py. The modules are checked for PyTorch's
initialisation, names and train/eval behaviour, and a small CNN written in everyday PyTorch style must learn.
"""
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import arrays, check_op, distinct_arrays, op_settings, scaled_examples, tensor

import tinytensor as tt
import tinytensor.nn as nn
import tinytensor.nn.functional as F


# ---- NumPy references: loops over output positions -------------------------------------------------------------------
def np_conv2d(x, weight, bias=None, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    """out[n, o, y, x] = b[o] + Σ_{c, i, j} w[o, c, i, j]·xpad[n, g·C/G + c, y·sH + i·dH, x·sW + j·dW]."""
    padded = np.pad(x, ((0, 0), (0, 0), *padding))
    out_channels, group_width, k_h, k_w = weight.shape
    span_h, span_w = dilation[0] * (k_h - 1) + 1, dilation[1] * (k_w - 1) + 1
    out_h = (padded.shape[2] - span_h) // stride[0] + 1
    out_w = (padded.shape[3] - span_w) // stride[1] + 1
    out = np.zeros((x.shape[0], out_channels, out_h, out_w))
    for o in range(out_channels):
        group = o // (out_channels // groups)
        for y in range(out_h):
            for x_pos in range(out_w):
                top, left = y * stride[0], x_pos * stride[1]
                patch = padded[:, group * group_width:(group + 1) * group_width, top:top + span_h:dilation[0],
                               left:left + span_w:dilation[1]]
                out[:, o, y, x_pos] = (patch * weight[o]).sum(axis=(1, 2, 3))
    return out + bias[:, None, None] if bias is not None else out


def np_pool2d(x, kernel, stride, padding, reduce, pad_value, dilation=(1, 1)):
    """reduce(window) for each window of the input padded with pad_value on every side."""
    padded = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2), constant_values=pad_value)
    span_h, span_w = dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1
    out_h = (padded.shape[2] - span_h) // stride[0] + 1
    out_w = (padded.shape[3] - span_w) // stride[1] + 1
    out = np.zeros((*x.shape[:2], out_h, out_w))
    for y in range(out_h):
        for x_pos in range(out_w):
            top, left = y * stride[0], x_pos * stride[1]
            window = padded[:, :, top:top + span_h:dilation[0], left:left + span_w:dilation[1]]
            out[:, :, y, x_pos] = reduce(window.reshape(*x.shape[:2], -1))
    return out


def np_batch_norm(x, mean, var, weight=None, bias=None, eps=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    out = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    out = out * weight.reshape(shape) if weight is not None else out
    return out + bias.reshape(shape) if bias is not None else out


def batch_stats(x):
    axes = (0, *range(2, x.ndim))
    return x.mean(axis=axes), x.var(axis=axes)


# ---- convolution -----------------------------------------------------------------------------------------------------
@st.composite
def conv_cases(draw):
    """Small conv2d arguments: shapes, stride, padding (int, pair, 'same' or 'valid'), dilation, groups."""
    groups = draw(st.integers(1, 2))
    group_in, group_out = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from(["int", "pair", "valid"] + (["same"] if stride == (1, 1) else [])))
    if padding == "int":
        padding = draw(st.integers(0, 2))
    elif padding == "pair":
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    pads = _np_padding(padding, kernel, dilation)
    sides = [draw(st.integers(max(1, d * (k - 1) + 1 - sum(p)), d * (k - 1) + 3))
             for k, d, p in zip(kernel, dilation, pads)]
    x = draw(arrays((draw(st.integers(1, 2)), groups * group_in, *sides)), label="x")
    weight = draw(arrays((groups * group_out, group_in, *kernel)), label="weight")
    bias = draw(arrays((groups * group_out,)), label="bias")
    return x, weight, bias, dict(stride=stride, padding=padding, dilation=dilation, groups=groups), pads


def _np_padding(padding, kernel, dilation):
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation))
    pair = (padding, padding) if isinstance(padding, int) else padding
    return tuple((p, p) for p in pair)


@scaled_examples(0.6)
@given(case=conv_cases())
def test_conv2d_matches_numpy_loops_and_finite_differences(device, case):
    x, weight, bias, options, pads = case
    reference_options = dict(stride=options["stride"], padding=pads, dilation=options["dilation"],
                             groups=options["groups"])
    check_op(lambda x, w, b: F.conv2d(x, w, b, **options), lambda x, w, b: np_conv2d(x, w, b, **reference_options),
             x, weight, bias, device=device, atol32=1e-4)


@op_settings
@given(data=st.data())
def test_conv1d_is_conv2d_over_one_row(device, data):
    kernel, stride, dilation = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    padding = data.draw(st.integers(0, 2))
    length = data.draw(st.integers(max(1, dilation * (kernel - 1) + 1 - 2 * padding), 6))
    x = data.draw(arrays((2, 2, length)), label="x")
    weight = data.draw(arrays((3, 2, kernel)), label="weight")

    def reference(x, w):
        return np_conv2d(x[:, :, None], w[:, :, None], stride=(1, stride), padding=((0, 0), (padding, padding)),
                         dilation=(1, dilation))[:, :, 0]

    check_op(lambda x, w: F.conv1d(x, w, None, stride, padding, dilation), reference, x, weight, device=device)


def test_conv2d_same_padding_keeps_the_size_and_accepts_unbatched_input():
    x, weight = tt.randn(3, 7, 6), tt.randn(4, 3, 4, 3)
    assert F.conv2d(x, weight, padding="same").shape == (4, 7, 6)
    assert F.conv2d(x[None], weight, padding="same", dilation=2).shape == (1, 4, 7, 6)


@pytest.mark.parametrize("call, message", [
    (lambda: F.conv2d(tt.randn(2, 3), tt.randn(4, 3, 1, 1)), r"conv2d: input \(2, 3\) must be \[N, C, H, W\]"),
    (lambda: F.conv2d(tt.randn(1, 3, 5, 5), tt.randn(4, 2, 3, 3)), r"conv2d: input \(1, 3, 5, 5\) and weight"),
    (lambda: F.conv2d(tt.randn(1, 3, 2, 2), tt.randn(4, 3, 3, 3)), r"conv2d: input \(1, 3, 2, 2\) is smaller"),
    (lambda: F.conv2d(tt.randn(1, 3, 5, 5), tt.randn(4, 3, 3, 3), stride=2, padding="same"), "padding='same'"),
    (lambda: F.conv2d(tt.randn(1, 3, 5, 5), tt.randn(4, 3, 3, 3), tt.randn(3)), r"bias \(3,\) does not fit"),
    (lambda: F.conv1d(tt.randn(1, 3, 5), tt.randn(4, 3, 3, 3)), r"conv1d: weight \(4, 3, 3, 3\) must be"),
    (lambda: F.max_pool2d(tt.randn(1, 1, 4, 4), 2, padding=2), "at most half the kernel"),
])
def test_shape_errors_are_one_line_naming_the_op_and_shapes(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


# ---- pooling -------------------------------------------------------------------------------------------------------
@st.composite
def pool_cases(draw, with_dilation: bool):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if with_dilation else (1, 1)
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 2), st.integers(1, 2))))
    padding = tuple(draw(st.integers(0, (d * (k - 1) + 1) // 2)) for k, d in zip(kernel, dilation))
    sides = [draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), d * (k - 1) + 3))
             for k, d, p in zip(kernel, dilation, padding)]
    return (draw(st.integers(1, 2)), 2, *sides), kernel, stride, padding, dilation


@op_settings
@given(data=st.data())
def test_max_pool2d_matches_numpy_loops_and_finite_differences(device, data):
    shape, kernel, stride, padding, dilation = data.draw(pool_cases(with_dilation=True))
    x = data.draw(distinct_arrays(shape), label="x")  # no ties: the max is differentiable

    def reference(x):
        return np_pool2d(x, kernel, stride or kernel, padding, lambda w: w.max(-1), -np.inf, dilation)

    assume(np.isfinite(reference(x)).all())  # a dilated window may miss the input and hold only padding (−inf)
    check_op(lambda x: F.max_pool2d(x, kernel, stride, padding, dilation), reference, x, device=device)


@op_settings
@given(data=st.data(), count_include_pad=st.booleans())
def test_avg_pool2d_matches_numpy_loops_and_finite_differences(device, data, count_include_pad):
    shape, kernel, stride, padding, _ = data.draw(pool_cases(with_dilation=False))
    x = data.draw(arrays(shape), label="x")

    def reference(x):
        total = np_pool2d(x, kernel, stride or kernel, padding, lambda w: w.sum(-1), 0.0)
        if count_include_pad:
            return total / (kernel[0] * kernel[1])
        ones = np.ones((1, 1, *x.shape[2:]))
        return total / np_pool2d(ones, kernel, stride or kernel, padding, lambda w: w.sum(-1), 0.0)

    check_op(lambda x: F.avg_pool2d(x, kernel, stride, padding, count_include_pad=count_include_pad), reference, x,
             device=device)


def test_max_pool2d_sends_the_gradient_of_a_tie_to_the_first_maximum():
    x = tt.ones(1, 1, 2, 4, requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], [[1, 0, 1, 0], [0, 0, 0, 0]])


def test_one_dimensional_pools_are_the_two_dimensional_ones_over_one_row(device):
    x = tensor(np.random.default_rng(0).standard_normal((2, 3, 7)), device, tt.float64)
    np.testing.assert_allclose(F.max_pool1d(x, 3, 2, 1).numpy(), F.max_pool2d(x[:, :, None], (1, 3), (1, 2),
                                                                               (0, 1)).numpy()[:, :, 0])
    np.testing.assert_allclose(F.avg_pool1d(x, 2).numpy(), F.avg_pool2d(x[:, :, None], (1, 2)).numpy()[:, :, 0])
    np.testing.assert_allclose(F.adaptive_avg_pool1d(x, 3).numpy(),
                               F.adaptive_avg_pool2d(x[:, :, None], (1, 3)).numpy()[:, :, 0])


@op_settings
@given(data=st.data())
def test_adaptive_avg_pool2d_averages_pytorchs_windows_for_any_output_size(device, data):
    height, width = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    out_h, out_w = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    x = data.draw(arrays((2, 2, height, width)), label="x")

    def reference(x):
        out = np.zeros((2, 2, out_h, out_w))
        for i in range(out_h):
            for j in range(out_w):
                rows = slice(i * height // out_h, -(-(i + 1) * height // out_h))
                cols = slice(j * width // out_w, -(-(j + 1) * width // out_w))
                out[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
        return out

    check_op(lambda x: F.adaptive_avg_pool2d(x, (out_h, out_w)), reference, x, device=device)


def test_adaptive_avg_pool2d_to_one_is_the_global_mean_and_none_keeps_an_axis():
    x = tt.randn(2, 3, 5, 4, dtype=tt.float64)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, 1).numpy()[..., 0, 0], x.numpy().mean(axis=(2, 3)))
    assert F.adaptive_avg_pool2d(x, (None, 2)).shape == (2, 3, 5, 2)


# ---- batch norm ------------------------------------------------------------------------------------------------------
@op_settings
@given(data=st.data(), affine=st.sampled_from(["none", "weight", "both"]))
def test_batch_norm_training_matches_numpy_and_finite_differences(device, data, affine):
    spatial = data.draw(st.lists(st.integers(1, 3), max_size=2), label="spatial")
    shape = (data.draw(st.integers(2, 3)), data.draw(st.integers(1, 3)), *spatial)
    x = data.draw(arrays(shape), label="x")
    params = [data.draw(arrays((shape[1],), low=0.5), label=name) for name in ("weight", "bias")]
    params = {"none": [], "weight": params[:1], "both": params}[affine]

    def reference(x, *p):
        return np_batch_norm(x, *batch_stats(x), *p)

    check_op(lambda x, *p: F.batch_norm(x, None, None, *p, training=True), reference, x, *params, device=device,
             atol32=1e-4)


@op_settings
@given(data=st.data())
def test_batch_norm_eval_uses_the_running_statistics(device, data):
    shape = (data.draw(st.integers(1, 3)), 3, *data.draw(st.lists(st.integers(1, 3), max_size=2)))
    x, weight, bias = (data.draw(arrays(s), label=n) for n, s in (("x", shape), ("w", (3,)), ("b", (3,))))
    mean, var = data.draw(arrays((3,)), label="mean"), data.draw(arrays((3,), low=0.1), label="var")
    check_op(lambda x, w, b: F.batch_norm(x, tensor(mean, device, x.dtype), tensor(var, device, x.dtype), w, b),
             lambda x, w, b: np_batch_norm(x, mean, var, w, b), x, weight, bias, device=device)


def test_batch_norm_1d_trains_running_statistics_and_evaluates_with_them_as_pytorch_does(device):
    """Running stats: r ← 0.9·r + 0.1·batch statistic (variance unbiased); eval normalises with them."""
    rng = np.random.default_rng(0)
    layer = nn.BatchNorm1d(4, momentum=0.1).to(device).double()
    with tt.no_grad():
        layer.weight.data[...] = layer.weight.xp.asarray(rng.uniform(0.5, 2, 4))
        layer.bias.data[...] = layer.bias.xp.asarray(rng.uniform(-1, 1, 4))
    running_mean, running_var = np.zeros(4), np.ones(4)
    for _ in range(3):
        batch = rng.standard_normal((8, 4)) * 3 + 1
        out = layer(tensor(batch, device, tt.float64))
        mean, var = batch_stats(batch)
        np.testing.assert_allclose(out.numpy(), np_batch_norm(batch, mean, var, layer.weight.numpy(),
                                                              layer.bias.numpy()), atol=1e-12)
        running_mean = 0.9 * running_mean + 0.1 * mean
        running_var = 0.9 * running_var + 0.1 * var * 8 / 7
    np.testing.assert_allclose(layer.running_mean.numpy(), running_mean, atol=1e-12)
    np.testing.assert_allclose(layer.running_var.numpy(), running_var, atol=1e-12)
    assert int(layer.num_batches_tracked.item()) == 3
    layer.eval()
    batch = rng.standard_normal((5, 4))
    np.testing.assert_allclose(layer(tensor(batch, device, tt.float64)).numpy(),
                               np_batch_norm(batch, running_mean, running_var, layer.weight.numpy(),
                                             layer.bias.numpy()), atol=1e-12)
    assert int(layer.num_batches_tracked.item()) == 3


def test_batch_norm_with_momentum_none_keeps_the_cumulative_average():
    layer = nn.BatchNorm2d(2, momentum=None).double()
    batches = [tt.randn(3, 2, 2, 2, dtype=tt.float64) for _ in range(4)]
    for batch in batches:
        layer(batch)
    means = [batch_stats(batch.numpy())[0] for batch in batches]
    np.testing.assert_allclose(layer.running_mean.numpy(), np.mean(means, axis=0), atol=1e-12)


def test_batch_norm_without_running_stats_uses_batch_statistics_in_eval_too():
    layer = nn.BatchNorm1d(3, affine=False, track_running_stats=False).eval()
    x = tt.randn(6, 3, 2, dtype=tt.float64)
    np.testing.assert_allclose(layer(x).numpy(), np_batch_norm(x.numpy(), *batch_stats(x.numpy())), atol=1e-12)
    assert layer.state_dict() == {}
    with pytest.raises(ValueError, match="BatchNorm1d: expected 2D or 3D input"):
        layer(tt.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="batch_norm: input .* one value per channel"):
        nn.BatchNorm1d(3)(tt.randn(1, 3))


# ---- second derivatives (through the plain twins in ops/composed.py) ------------------------------------------------
def test_second_derivatives_of_conv_pool_and_batch_norm_match_finite_differences():
    rng = np.random.default_rng(1)

    def leaf(*shape):
        return tt.tensor(rng.standard_normal(shape), dtype=tt.float64, requires_grad=True)

    x, weight, bias = leaf(2, 2, 5, 4), leaf(4, 1, 2, 3), leaf(4)
    assert tt.gradgradcheck(lambda x, w, b: F.conv2d(x * x, w, b, stride=(2, 1), padding=1, groups=2) ** 2,
                            [x, weight, bias])
    distinct = tt.tensor(rng.permutation(40).reshape(2, 2, 5, 2) * 0.1, dtype=tt.float64, requires_grad=True)
    assert tt.gradgradcheck(lambda x: F.max_pool2d(x * x, 2, 1, 1) ** 2, [distinct])
    assert tt.gradgradcheck(lambda x: F.avg_pool2d(x * x, 3, 2, 1, count_include_pad=False) ** 2, [x])
    scale, shift = leaf(2), leaf(2)
    assert tt.gradgradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True) ** 2,
                            [x, scale, shift], fast=True)


# ---- modules -------------------------------------------------------------------------------------------------------
def test_conv2d_module_has_pytorchs_shapes_names_and_init_bounds():
    layer = nn.Conv2d(6, 8, (3, 2), stride=2, padding=1, groups=2)
    assert layer.weight.shape == (8, 3, 3, 2) and layer.bias.shape == (8,)
    assert list(layer.state_dict()) == ["weight", "bias"]
    bound = 1 / math.sqrt(3 * 3 * 2)
    assert np.abs(layer.weight.numpy()).max() <= bound and np.abs(layer.bias.numpy()).max() <= bound
    assert np.abs(layer.weight.numpy()).max() > bound / 2  # U(±bound), not something narrower
    assert layer(tt.randn(2, 6, 9, 8)).shape == (2, 8, 5, 5)
    assert repr(layer) == "Conv2d(6, 8, kernel_size=(3, 2), stride=(2, 2), padding=(1, 1), groups=2)"
    assert nn.Conv1d(2, 3, 5, bias=False, padding="same")(tt.randn(4, 2, 9)).shape == (4, 3, 9)
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)


def test_pool_modules_follow_their_functions():
    x = tt.randn(2, 3, 8, 6)
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 4, 3)
    assert nn.MaxPool2d(3, stride=1, padding=1)(x).shape == (2, 3, 8, 6)
    assert nn.AvgPool2d(2, stride=2)(x).shape == (2, 3, 4, 3)
    assert nn.AdaptiveAvgPool2d((1, 1))(x).shape == (2, 3, 1, 1)
    assert nn.MaxPool1d(2)(x[:, :, 0]).shape == nn.AvgPool1d(2)(x[:, :, 0]).shape == (2, 3, 3)
    assert nn.AdaptiveAvgPool1d(2)(x[:, :, 0]).shape == (2, 3, 2)
    with pytest.raises(NotImplementedError, match="ceil_mode"):
        nn.MaxPool2d(2, ceil_mode=True)(x)


def test_a_small_cnn_in_everyday_pytorch_style_learns(device):
    """The 60-minute blitz's network, scaled down: conv → relu → pool, twice, flatten, linear; SGD with momentum
    on three classes of 8×8 images (a horizontal bar, a vertical bar, a diagonal) with noise."""
    torch = tt
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(6)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 8, 3)
            self.fc = nn.Linear(8 * 1 * 1, 3)

        def forward(self, x):
            x = self.pool(F.relu(self.bn1(self.conv1(x))))
            x = self.pool(F.relu(self.conv2(x)))
            x = torch.flatten(x, 1)
            return self.fc(x)

    rng = np.random.default_rng(0)
    patterns = np.zeros((3, 8, 8), dtype=np.float32)
    patterns[0, 3:5, :], patterns[1, :, 3:5] = 1, 1
    patterns[2][np.eye(8, dtype=bool)] = 1
    labels = rng.integers(0, 3, 48)
    images = patterns[labels][:, None] + 0.3 * rng.standard_normal((48, 1, 8, 8)).astype(np.float32)

    net = Net().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _epoch in range(8):
        for start in range(0, 48, 12):
            inputs = torch.tensor(images[start:start + 12]).to(device)
            targets = torch.tensor(labels[start:start + 12]).to(device)
            optimizer.zero_grad()
            loss = criterion(net(inputs), targets)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4])
    net.eval()
    with torch.no_grad():
        predicted = net(torch.tensor(images).to(device)).argmax(1).numpy()
    assert (predicted == labels).mean() > 0.8
