"""The gradient checker itself (tinytensor/gradcheck.py): it must catch wrong backwards, including the ones a
plain-sum check cannot see, point at the worst element, and refuse inputs too imprecise to prove anything."""
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import arrays, op_settings, shapes, tensor

import tinytensor as tt
import tinytensor.nn.functional as F
from tinytensor.autograd import Function
from tinytensor.gradcheck import GradcheckError


def _softmax(xp, x):
    exps = xp.exp(x - x.max(axis=-1, keepdims=True))
    return exps / exps.sum(axis=-1, keepdims=True)


class SoftmaxWithoutSubtraction(Function):
    """Wrong: returns p ⊙ g, forgetting the − p·(p·g) term of the softmax Jacobian."""

    def forward(self, x):
        self.save_for_backward(_softmax(self.xp, x))
        return self.saved[0]

    def backward(self, grad):
        return grad * self.saved[0]


class SoftmaxWithUnweightedMean(Function):
    """Wrong: p ⊙ (g − mean(g)) instead of p ⊙ (g − Σ p·g). Both are 0 for a constant g, so checking the gradient
    of sum(softmax(x)) (DeZero's all-ones output gradient) cannot tell them apart."""

    def forward(self, x):
        self.save_for_backward(_softmax(self.xp, x))
        return self.saved[0]

    def backward(self, grad):
        return self.saved[0] * (grad - grad.mean(axis=-1, keepdims=True))


class WrongAtOneElement(Function):
    """Identity whose backward adds `error` at `index`: the checker must name exactly that element."""

    def forward(self, x, index=(), error=0.0):
        self.index, self.error = index, error
        return x.copy()

    def backward(self, grad):
        wrong = grad.copy()
        wrong[self.index] += self.error
        return wrong


def _input(shape=(3, 4), seed=0, device="cpu"):
    values = np.random.default_rng(seed).standard_normal(shape)
    return tensor(values, device, tt.float64, requires_grad=True)


@pytest.mark.parametrize("fast", [False, True], ids=["full", "fast"])
def test_gradcheck_accepts_correct_backwards_and_returns_true(fast, device):
    x, w = _input((2, 3, 4), 0, device), _input((4,), 1, device)
    assert tt.gradcheck(lambda x, w: F.layer_norm(x, 4, w).tanh() * 2.0, [x, w], fast=fast) is True
    assert tt.gradcheck(lambda x: F.softmax(x, -1), x, fast=fast) is True


@pytest.mark.parametrize("fast", [False, True], ids=["full", "fast"])
def test_gradcheck_catches_a_softmax_backward_without_the_subtraction_term(fast, device):
    with pytest.raises(GradcheckError, match="wrong"):
        tt.gradcheck(SoftmaxWithoutSubtraction.apply, _input(device=device), fast=fast)


@pytest.mark.parametrize("fast", [False, True], ids=["full", "fast"])
def test_random_projection_catches_a_softmax_bug_that_a_plain_sum_check_misses(fast, device):
    x = _input(device=device)
    # The plain-sum check: the output is the scalar sum(softmax(x)) = 1, whose true gradient is 0, and the wrong
    # backward fed a constant gradient also returns 0; so this passes although the backward is wrong.
    assert tt.gradcheck(lambda x: SoftmaxWithUnweightedMean.apply(x).sum(), x, fast=fast)
    with pytest.raises(GradcheckError):
        tt.gradcheck(SoftmaxWithUnweightedMean.apply, x, fast=fast)


@op_settings
@given(data=st.data())
def test_gradcheck_reports_the_worst_index_with_both_values(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    index = tuple(data.draw(st.integers(0, n - 1), label="index") for n in shape)
    error = data.draw(st.sampled_from([-5.0, 0.5, 3.0]), label="error")
    x = tensor(data.draw(arrays(shape), label="x"), device, tt.float64, requires_grad=True)
    with pytest.raises(GradcheckError) as raised:
        tt.gradcheck(lambda x: WrongAtOneElement.apply(x, index=index, error=error), [x])
    message = str(raised.value)
    assert f"input 0 (shape {shape})" in message and f"at index {index}:" in message
    analytic, numeric = (float(v) for v in re.search(r"analytic (\S+), finite differences (\S+) ", message).groups())
    assert analytic - numeric == pytest.approx(error, abs=1e-6)
    assert "1 of" in message


def test_gradcheck_names_which_input_is_wrong():
    class WrongSecondInput(Function):
        def forward(self, a, b):
            return a * b

        def backward(self, grad):
            return grad * self.xp.ones_like(grad), grad  # right for a only when b is 1, wrong for b

    a, b = _input((2,), 0), tensor(np.ones(2), dtype=tt.float64, requires_grad=True)
    with pytest.raises(GradcheckError, match=r"gradient of input 1 \(shape \(2,\)\)"):
        tt.gradcheck(WrongSecondInput.apply, [a, b])


def test_gradcheck_refuses_float32_inputs_and_says_to_use_float64():
    x = tt.tensor(np.ones(3), dtype=tt.float32, requires_grad=True)
    with pytest.raises(TypeError, match="input 0 is float32; use float64"):
        tt.gradcheck(lambda x: x * 2, [x])


def test_gradcheck_refuses_when_no_input_requires_grad():
    with pytest.raises(ValueError, match="no input requires grad"):
        tt.gradcheck(lambda x: x * 2, [tt.tensor(np.ones(3))])


def test_gradcheck_skips_inputs_without_grad_and_handles_several_outputs():
    x, mask = _input((2, 4)), tt.tensor(np.array([True, False, True, False]))
    integer_ids = tt.tensor(np.array([1, 0]))
    assert tt.gradcheck(lambda x, mask, ids: (x.masked_fill(mask, 0.0), x.exp().sum(), ids), [x, mask, integer_ids])
    assert tt.gradcheck(lambda x: x.split(1, 0), [x])


def test_gradcheck_restores_the_input_values_after_perturbing_them():
    x = _input((3,))
    before = x.numpy().copy()
    tt.gradcheck(lambda x: x.exp(), [x])
    np.testing.assert_array_equal(x.numpy(), before)


def test_gradcheck_passes_for_an_output_that_does_not_depend_on_the_input():
    assert tt.gradcheck(lambda x: tt.ones(2, dtype=tt.float64) * 2.0, [_input((3,))])


def test_gradcheck_catches_an_output_that_was_cut_off_from_the_graph():
    x = _input((3,))
    with pytest.raises(GradcheckError, match="analytic 0, finite differences"):
        tt.gradcheck(lambda x: tt.tensor(x.numpy()) * x.detach() + x.detach().exp(), [x])


def test_gradcheck_refuses_an_input_made_by_an_op_whose_grad_backward_never_fills():
    leaf = tt.tensor([1.0, 2.0], dtype=tt.float64, requires_grad=True)
    with pytest.raises(ValueError, match="made by an op"):
        tt.gradcheck(lambda x: x * x, [leaf * 1.0])


@pytest.mark.parametrize("fast", [False, True])
def test_a_nan_gradient_or_objective_fails_instead_of_passing(fast):
    x = tt.tensor([0.5, -0.25], dtype=tt.float64, requires_grad=True)
    with pytest.raises(GradcheckError):
        tt.gradcheck(lambda x: (x * float("nan")).sum(), [x], fast=fast)
