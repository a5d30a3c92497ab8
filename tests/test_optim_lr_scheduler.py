"""Learning-rate schedules: the pure functions at key steps, and schedulers that drive an optimizer's groups."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

import tinytensor as tt
from tinytensor.optim import SGD, lr_scheduler
from tinytensor.optim.lr_scheduler import ConstantLR, LambdaLR, NoamLR, WarmupCosineLR, constant, noam, warmup_cosine


def two_group_optimizer(lrs=(0.1, 0.01)):
    groups = [{"params": [tt.tensor(np.ones(2), requires_grad=True)], "lr": lr} for lr in lrs]
    return SGD(groups, lr=1.0)


def group_lrs(optimizer):
    return [group["lr"] for group in optimizer.param_groups]


# ---- pure functions -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("step", "expected"), [
    (0, 1 / 11),          # warmup starts at max_lr·1/(warmup+1), never at 0
    (4, 5 / 11),
    (9, 10 / 11),         # last warmup step
    (10, 1.0),            # = warmup_steps: cosine starts at max_lr
    (60, 0.55),           # halfway through the decay: min + (max − min)/2
    (35, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4))),
    (110, 0.1),           # = decay_steps: min_lr
    (500, 0.1),           # beyond: min_lr
])
def test_warmup_cosine_at_key_steps(step, expected):
    assert warmup_cosine(step, max_lr=1.0, warmup_steps=10, decay_steps=110, min_lr=0.1) == pytest.approx(expected,
                                                                                                          rel=1e-14)


def test_warmup_cosine_without_warmup_starts_at_max_lr():
    assert warmup_cosine(0, 3e-4, 0, 100, 3e-5) == 3e-4


def test_noam_peaks_at_warmup_steps():
    values = [noam(step, d_model=512, warmup_steps=4000) for step in range(1, 20001)]
    assert int(np.argmax(values)) + 1 == 4000
    assert max(values) == pytest.approx(512**-0.5 * 4000**-0.5, rel=1e-14)
    assert noam(1, 512, 4000) == pytest.approx(512**-0.5 * 4000**-1.5, rel=1e-14)
    assert noam(16000, 512, 4000, factor=2.0) == pytest.approx(2 * 512**-0.5 / 16000**0.5, rel=1e-14)


def test_noam_counts_steps_from_one():
    with pytest.raises(ValueError, match="from 1"):
        noam(0, 512, 4000)


def test_constant_is_constant():
    assert {constant(step, 0.3) for step in range(5)} == {0.3}


# ---- schedulers -----------------------------------------------------------------------------------------------
def test_warmup_cosine_scheduler_drives_every_groups_lr():
    optimizer = two_group_optimizer()
    scheduler = WarmupCosineLR(optimizer, warmup_steps=3, decay_steps=10, min_lr=[0.01, 0.001])
    for step in range(14):
        expected = [warmup_cosine(step, 0.1, 3, 10, 0.01), warmup_cosine(step, 0.01, 3, 10, 0.001)]
        assert group_lrs(optimizer) == expected == scheduler.get_last_lr()
        optimizer.step()
        scheduler.step()


def test_lambda_lr_scales_each_groups_initial_lr():
    optimizer = two_group_optimizer()
    scheduler = LambdaLR(optimizer, lambda step: 0.5**step)
    for _ in range(3):
        scheduler.step()
    assert group_lrs(optimizer) == [0.1 / 8, 0.01 / 8]
    assert [g["initial_lr"] for g in optimizer.param_groups] == [0.1, 0.01]


def test_noam_scheduler_reaches_its_peak_after_warmup_minus_one_steps():
    optimizer = two_group_optimizer()
    scheduler = NoamLR(optimizer, d_model=64, warmup_steps=5)
    assert group_lrs(optimizer) == [noam(1, 64, 5)] * 2
    for _ in range(4):
        scheduler.step()
    assert group_lrs(optimizer) == [noam(5, 64, 5)] * 2 == [64**-0.5 * 5**-0.5] * 2


def test_constant_lr_scales_for_total_iters_then_keeps_the_initial_lr():
    optimizer = two_group_optimizer()
    scheduler = ConstantLR(optimizer, factor=0.5, total_iters=2)
    seen = []
    for _ in range(4):
        seen.append(group_lrs(optimizer)[0])
        scheduler.step()
    assert seen == [0.05, 0.05, 0.1, 0.1]


def test_scheduler_state_round_trips_through_json_and_continues_identically():
    optimizer = two_group_optimizer()
    scheduler = WarmupCosineLR(optimizer, warmup_steps=3, decay_steps=20, min_lr=0.001)
    for _ in range(7):
        scheduler.step()
    saved = json.loads(json.dumps(scheduler.state_dict()))
    resumed_optimizer = two_group_optimizer(lrs=(0.5, 0.5))
    resumed = WarmupCosineLR(resumed_optimizer, warmup_steps=1, decay_steps=2)
    resumed.load_state_dict(saved)
    assert resumed.last_epoch == 7 and group_lrs(resumed_optimizer) == group_lrs(optimizer)
    for _ in range(5):
        scheduler.step()
        resumed.step()
        assert resumed.get_last_lr() == scheduler.get_last_lr()


def test_lambda_lr_state_dict_leaves_out_the_functions():
    scheduler = LambdaLR(two_group_optimizer(), [lambda s: 1.0, lambda s: 2.0])
    assert "lr_lambdas" not in scheduler.state_dict()
    json.dumps(scheduler.state_dict())


TORCH_SCHEDULES = json.loads((Path(__file__).parent / "fixtures" / "lr_schedulers_torch.json").read_text())


@pytest.mark.parametrize("name", sorted(TORCH_SCHEDULES["schedules"]))
def test_pytorch_schedulers_set_torchs_learning_rates_step_by_step(name):
    """StepLR, MultiStepLR, ExponentialLR, LinearLR, CosineAnnealingLR and ReduceLROnPlateau against the rates
    torch.optim.lr_scheduler set (tests/fixtures/make_lr_scheduler_fixture.py), on two parameter groups."""
    expected = TORCH_SCHEDULES["schedules"][name]
    groups = [{"params": [tt.zeros(1, requires_grad=True)], "lr": lr} for lr in TORCH_SCHEDULES["group_lrs"]]
    optimizer = tt.optim.SGD(groups, lr=0.1)
    scheduler = getattr(lr_scheduler, name)(optimizer, **expected["options"])
    lrs = []
    for step in range(len(expected["lrs"])):
        lrs.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step(TORCH_SCHEDULES["metrics"][step]) if name == "ReduceLROnPlateau" else scheduler.step()
    np.testing.assert_allclose(lrs, expected["lrs"], rtol=1e-12, atol=1e-15)
    assert scheduler.get_last_lr() == [group["lr"] for group in optimizer.param_groups]
