"""tinytensor's AdamW, RMSprop and Adagrad reproduce torch.optim's: the same losses, step by step, and the same
final weights.

The numbers come from tests/fixtures/make_adamw_fixture.py and make_optimizers_fixture.py (run once with torch;
these tests do not need torch): a float64 2-layer MLP trained for 25 steps, with two parameter groups (weights
decayed, biases not) for AdamW, and each of RMSprop's and Adagrad's defaults and other options.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import tinytensor as tt
from tinytensor import optim
from tinytensor.optim import AdamW

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "adamw_torch.json").read_text(encoding="utf-8"))


def test_adamw_reproduces_torch_losses_and_final_weights():
    params, x, y = fixture_problem(FIXTURE["initial"], FIXTURE["data"])
    decay = FIXTURE["weight_decay"]
    hyper = FIXTURE["hyperparameters"]
    optimizer = AdamW([{"params": [params["w1"], params["w2"]], "weight_decay": decay["weights"]},
                       {"params": [params["b1"], params["b2"]], "weight_decay": decay["biases"]}],
                      lr=hyper["lr"], betas=tuple(hyper["betas"]), eps=hyper["eps"])
    losses = train_mlp(params, x, y, optimizer, FIXTURE["steps"])
    assert_same_run(losses, params, FIXTURE["losses"], FIXTURE["final"])


OPTIMIZERS = json.loads((Path(__file__).parent / "fixtures" / "optimizers_torch.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("run", sorted(OPTIMIZERS["runs"]))
def test_rmsprop_and_adagrad_reproduce_torch_losses_and_final_weights(run):
    expected = OPTIMIZERS["runs"][run]
    params, x, y = fixture_problem(OPTIMIZERS["init"], OPTIMIZERS["data"])
    optimizer = getattr(optim, run.split("/")[0])(params.values(), **expected["options"])
    losses = train_mlp(params, x, y, optimizer, OPTIMIZERS["steps"])
    assert_same_run(losses, params, expected["losses"], expected["final"])
    assert optimizer.state_dict()["state"][0]["step"] == OPTIMIZERS["steps"]


def fixture_problem(initial: dict, data: dict) -> tuple[dict, tt.Tensor, tt.Tensor]:
    """The fixture's float64 parameters (leaves) and data as tensors."""
    params = {name: tt.tensor(np.array(value), requires_grad=True) for name, value in initial.items()}
    x, y = (tt.tensor(np.array(data[k])) for k in ("x", "y"))
    return params, x, y


def train_mlp(params: dict, x, y, optimizer, steps: int) -> list[float]:
    """The fixture scripts' loop: the 2-layer MLP's mean squared error, one optimizer step per iteration."""
    losses = []
    for _ in range(steps):
        pred = (x @ params["w1"] + params["b1"]).tanh() @ params["w2"] + params["b2"]
        loss = ((pred - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def assert_same_run(losses: list, params: dict, expected_losses: list, expected_final: dict) -> None:
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-10, atol=0)
    for name, expected in expected_final.items():
        np.testing.assert_allclose(params[name].data, np.array(expected), rtol=1e-10, atol=1e-14)
