"""SGD, Adam and AdamW against float64 NumPy transcriptions of the pseudo-code in PyTorch's documentation.

Each reference below is written from the algorithm box of the torch.optim docs page (torch.optim.SGD, .Adam,
.AdamW), line by line, independently of tinytensor's in-place implementation. Gradients come from a fixed
nonlinear function of the parameters, so both sides see the same gradient sequence only if their updates agree.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytensor as tt
from tinytensor.optim import SGD, Adam, AdamW

STEPS = 20


def gradient_of(theta: np.ndarray) -> np.ndarray:
    """The gradient both sides use: that of sum(-cos(3θ)/3 + θ²/4 − 0.3θ), a bumpy bowl."""
    return np.sin(3 * theta) + 0.5 * theta - 0.3


# ---- references, transcribed from the PyTorch docs' pseudo-code ------------------------------------------------
def reference_sgd(theta, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, steps=STEPS):
    theta, b = theta.copy(), None
    for t in range(1, steps + 1):
        g = gradient_of(theta)
        if weight_decay != 0:
            g = g + weight_decay * theta
        if momentum != 0:
            b = momentum * b + (1 - dampening) * g if t > 1 else g
            g = g + momentum * b if nesterov else b
        theta = theta - lr * g
    return theta


def reference_adam(theta, lr, betas, eps, weight_decay, decoupled: bool, steps=STEPS):
    """Adam (L2: g ← g + λθ) or AdamW (θ ← θ − γλθ), then the shared moment and bias-correction lines."""
    (beta1, beta2), theta = betas, theta.copy()
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    for t in range(1, steps + 1):
        g = gradient_of(theta)
        if decoupled:
            theta = theta - lr * weight_decay * theta
        elif weight_decay != 0:
            g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return theta


# ---- helpers --------------------------------------------------------------------------------------------------
def make_params(arrays):
    return [tt.tensor(np.array(a), requires_grad=True) for a in arrays]


def run(optimizer, params, steps=STEPS):
    for _ in range(steps):
        for p in params:
            p.grad = tt.tensor(gradient_of(p.data).astype(p.data.dtype))
        optimizer.step()
        optimizer.zero_grad()


starts = st.integers(1, 4).flatmap(
    lambda n: st.lists(st.floats(-2, 2), min_size=n, max_size=n).map(lambda xs: np.array(xs, dtype=np.float64)))
lrs = st.floats(1e-4, 0.2)
weight_decays = st.sampled_from([0.0, 0.01, 0.3])


# ---- agreement with the documentation ------------------------------------------------------------------------
@given(start=starts, lr=lrs, momentum=st.sampled_from([0.0, 0.5, 0.9]), dampening=st.sampled_from([0.0, 0.3]),
       weight_decay=weight_decays, nesterov=st.booleans())
def test_sgd_matches_the_documented_algorithm(start, lr, momentum, dampening, weight_decay, nesterov):
    if nesterov and (momentum == 0 or dampening != 0):
        nesterov = False
    params = make_params([start])
    run(SGD(params, lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov), params)
    expected = reference_sgd(start, lr, momentum, dampening, weight_decay, nesterov)
    np.testing.assert_allclose(params[0].data, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("optimizer_class", [Adam, AdamW])
@given(start=starts, lr=lrs, beta1=st.sampled_from([0.0, 0.8, 0.9]), beta2=st.sampled_from([0.9, 0.99, 0.999]),
       eps=st.sampled_from([1e-8, 1e-3]), weight_decay=weight_decays)
def test_adam_and_adamw_match_the_documented_algorithm(optimizer_class, start, lr, beta1, beta2, eps, weight_decay):
    params = make_params([start])
    run(optimizer_class(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay), params)
    expected = reference_adam(start, lr, (beta1, beta2), eps, weight_decay, decoupled=optimizer_class is AdamW)
    np.testing.assert_allclose(params[0].data, expected, rtol=1e-10, atol=1e-12)


def test_adamw_param_groups_use_their_own_lr_and_weight_decay():
    rng = np.random.default_rng(0)
    starts = [rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=(2, 2))]
    params = make_params(starts)
    groups = [{"params": params[:2], "weight_decay": 0.1, "lr": 0.01}, {"params": params[2:], "weight_decay": 0.0}]
    run(AdamW(groups, lr=0.05, betas=(0.9, 0.95)), params)
    for p, start in zip(params[:2], starts[:2]):
        np.testing.assert_allclose(p.data, reference_adam(start, 0.01, (0.9, 0.95), 1e-8, 0.1, True), rtol=1e-10)
    np.testing.assert_allclose(params[2].data, reference_adam(starts[2], 0.05, (0.9, 0.95), 1e-8, 0.0, True),
                               rtol=1e-10)


def test_sgd_param_groups_use_their_own_settings():
    starts = [np.linspace(-1, 1, 5), np.linspace(0, 2, 3)]
    params = make_params(starts)
    groups = [{"params": [params[0]], "momentum": 0.9, "nesterov": True}, {"params": [params[1]], "lr": 0.3}]
    run(SGD(groups, lr=0.05, weight_decay=0.01), params)
    np.testing.assert_allclose(params[0].data, reference_sgd(starts[0], 0.05, 0.9, 0, 0.01, True), rtol=1e-12)
    np.testing.assert_allclose(params[1].data, reference_sgd(starts[1], 0.3, 0, 0, 0.01, False), rtol=1e-12)


# ---- state dicts ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda ps: AdamW([{"params": ps[:1], "weight_decay": 0.2}, {"params": ps[1:]}], lr=0.03),
    lambda ps: Adam(ps, lr=0.02, weight_decay=0.1),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
])
def test_state_dict_then_load_state_dict_continues_identically(make):
    rng = np.random.default_rng(1)
    params = make_params([rng.normal(size=(4, 3)), rng.normal(size=3)])
    optimizer = make(params)
    run(optimizer, params, steps=10)
    copies = make_params([p.data for p in params])
    resumed = make(copies)
    for group in resumed.param_groups:
        group["lr"] = 123.0  # must be overwritten by the saved hyperparameters
    resumed.load_state_dict(optimizer.state_dict())
    run(optimizer, params, steps=10)
    run(resumed, copies, steps=10)
    for p, q in zip(params, copies):
        np.testing.assert_array_equal(p.data, q.data)


def test_loaded_state_is_a_private_copy():
    params = make_params([np.ones(3)])
    optimizer = Adam(params, lr=0.1)
    run(optimizer, params, steps=2)
    resumed = Adam(make_params([np.ones(3)]), lr=0.1)
    resumed.load_state_dict(optimizer.state_dict())
    mine, theirs = next(iter(resumed.state.values())), optimizer.state[params[0]]
    assert mine["exp_avg"] is not theirs["exp_avg"] and mine["step"] == theirs["step"] == 2


def test_state_dict_layout_is_pytorchs():
    params = make_params([np.ones(2), np.ones(3), np.ones(1)])
    optimizer = AdamW([{"params": params[:2]}, {"params": params[2:], "lr": 0.5}], lr=0.1)
    params[1].grad = tt.tensor(np.ones(3))
    optimizer.step()
    state = optimizer.state_dict()
    assert [g["params"] for g in state["param_groups"]] == [[0, 1], [2]]
    assert [g["lr"] for g in state["param_groups"]] == [0.1, 0.5]
    assert list(state["state"]) == [1] and state["state"][1]["step"] == 1
    assert set(state["state"][1]) == {"step", "exp_avg", "exp_avg_sq"}


def test_load_state_dict_rejects_a_state_for_different_parameters():
    optimizer = Adam(make_params([np.ones(2), np.ones(3)]), lr=0.1)
    run(optimizer, optimizer.param_groups[0]["params"], steps=1)
    with pytest.raises(ValueError, match="1 parameters here and 2 in the state dict"):
        Adam(make_params([np.ones(2)]), lr=0.1).load_state_dict(optimizer.state_dict())
    with pytest.raises(ValueError, match="shape"):
        Adam(make_params([np.ones(3), np.ones(2)]), lr=0.1).load_state_dict(optimizer.state_dict())


# ---- dtypes, missing gradients, zero_grad ---------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda ps: AdamW(ps, lr=0.1, weight_decay=0.1), lambda ps: Adam(ps, lr=0.1, weight_decay=0.1),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
])
def test_float32_parameters_and_state_stay_float32(make):
    params = make_params([np.ones((2, 3), np.float32)])
    optimizer = make(params)
    run(optimizer, params, steps=3)
    assert params[0].data.dtype == np.float32
    assert all(v.dtype == np.float32 for v in optimizer.state[params[0]].values() if hasattr(v, "dtype"))


def test_float32_adamw_agrees_with_the_float64_reference_to_float32_precision():
    start = np.linspace(-1, 1, 7)
    params = make_params([start.astype(np.float32)])
    run(AdamW(params, lr=0.01), params)
    np.testing.assert_allclose(params[0].data, reference_adam(start, 0.01, (0.9, 0.999), 1e-8, 0.01, True),
                               rtol=1e-5, atol=1e-6)


def test_parameters_without_gradient_are_left_alone():
    used, unused = make_params([np.ones(2), np.ones(2)])
    optimizer = AdamW([used, unused], lr=0.1)
    used.grad = tt.tensor(np.ones(2))
    optimizer.step()
    np.testing.assert_array_equal(unused.data, np.ones(2))
    assert unused not in optimizer.state and optimizer.state[used]["step"] == 1


def test_step_leaves_the_gradient_unchanged():
    params = make_params([np.ones(3)])
    for optimizer in (Adam(params, lr=0.1, weight_decay=0.5), SGD(params, lr=0.1, momentum=0.9, weight_decay=0.5)):
        params[0].grad = tt.tensor(np.full(3, 2.0))
        optimizer.step()
        optimizer.step()
        np.testing.assert_array_equal(params[0].grad.data, np.full(3, 2.0))


def test_zero_grad_sets_none_or_zeros_in_place():
    params = make_params([np.ones(3)])
    optimizer = SGD(params, lr=0.1)
    params[0].grad = tt.tensor(np.ones(3))
    grad_array = params[0].grad.data
    optimizer.zero_grad(set_to_none=False)
    assert params[0].grad.data is grad_array and not grad_array.any()
    optimizer.zero_grad()
    assert params[0].grad is None


def test_learning_rate_changes_between_steps_take_effect():
    params = make_params([np.zeros(1)])
    optimizer = SGD(params, lr=1.0)
    params[0].grad = tt.tensor(np.ones(1))
    optimizer.step()
    optimizer.param_groups[0]["lr"] = 0.5
    optimizer.step()
    np.testing.assert_array_equal(params[0].data, [-1.5])


def test_step_with_a_closure_returns_its_loss_computed_with_grad_enabled():
    params = make_params([np.ones(2)])
    optimizer = SGD(params, lr=0.5)

    def closure():
        optimizer.zero_grad()
        loss = (params[0] * params[0]).sum()
        loss.backward()
        return loss

    with tt.no_grad():
        loss = optimizer.step(closure)
    assert loss.item() == 2.0
    np.testing.assert_array_equal(params[0].data, [0.0, 0.0])


def test_bad_arguments_are_rejected_with_a_reason():
    p = tt.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(TypeError, match="single tensor"):
        AdamW(p)
    with pytest.raises(ValueError, match="empty"):
        AdamW([])
    with pytest.raises(ValueError, match="more than once"):
        AdamW([{"params": [p]}, {"params": [p]}])
    with pytest.raises(ValueError, match="betas"):
        Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Nesterov"):
        SGD([p], lr=0.1, nesterov=True)


# ---- gradient accumulation ------------------------------------------------------------------------------------
def test_accumulating_micro_batches_of_loss_over_k_equals_one_big_batch():
    """backward() adds into .grad until zero_grad, so k micro-batches of loss/k give the whole batch's gradient."""
    rng = np.random.default_rng(2)
    inputs, targets, start = rng.normal(size=(8, 3)), rng.normal(size=(8, 1)), rng.normal(size=(3, 1))

    def loss_of(weight, rows):
        return ((tt.tensor(inputs[rows]) @ weight - tt.tensor(targets[rows])) ** 2).mean()

    big, small = make_params([start, start])
    loss_of(big, slice(0, 8)).backward()
    k = 4
    for i in range(k):
        (loss_of(small, slice(2 * i, 2 * i + 2)) / k).backward()
    np.testing.assert_allclose(small.grad.data, big.grad.data, rtol=1e-13)
    for weight in (big, small):
        AdamW([weight], lr=0.1).step()
    np.testing.assert_allclose(small.data, big.data, rtol=1e-13)
