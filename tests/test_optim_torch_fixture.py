"""tinytensor's AdamW and RMSprop reproduce torch.optim's: the same losses, step by step, and the same final weights.

The numbers come from tests/fixtures/make_adamw_fixture.py and make_rmsprop_fixture.py (run once with torch; these
tests do not need torch): a float64 2-layer MLP trained for 25 steps, with two parameter groups (weights decayed,
biases not) for AdamW, and RMSprop's defaults and its momentum + centered + weight decay options.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import tinytensor as tt
from tinytensor.optim import AdamW, RMSprop

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "adamw_torch.json").read_text(encoding="utf-8"))


def test_adamw_reproduces_torch_losses_and_final_weights():
    params = {name: tt.tensor(np.array(value), requires_grad=True) for name, value in FIXTURE["initial"].items()}
    x, y = (tt.tensor(np.array(FIXTURE["data"][k])) for k in ("x", "y"))
    decay = FIXTURE["weight_decay"]
    hyper = FIXTURE["hyperparameters"]
    optimizer = AdamW([{"params": [params["w1"], params["w2"]], "weight_decay": decay["weights"]},
                       {"params": [params["b1"], params["b2"]], "weight_decay": decay["biases"]}],
                      lr=hyper["lr"], betas=tuple(hyper["betas"]), eps=hyper["eps"])
    losses = []
    for _ in range(FIXTURE["steps"]):
        pred = (x @ params["w1"] + params["b1"]).tanh() @ params["w2"] + params["b2"]
        loss = ((pred - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    np.testing.assert_allclose(losses, FIXTURE["losses"], rtol=1e-10, atol=0)
    for name, expected in FIXTURE["final"].items():
        np.testing.assert_allclose(params[name].data, np.array(expected), rtol=1e-10, atol=1e-14)


RMSPROP = json.loads((Path(__file__).parent / "fixtures" / "rmsprop_torch.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("run", sorted(RMSPROP["runs"]))
def test_rmsprop_reproduces_torch_losses_and_final_weights(run):
    expected = RMSPROP["runs"][run]
    params = {name: tt.tensor(np.array(value), requires_grad=True) for name, value in RMSPROP["init"].items()}
    x, y = (tt.tensor(np.array(RMSPROP["data"][k])) for k in ("x", "y"))
    optimizer = RMSprop(params.values(), **expected["options"])
    losses = []
    for _ in range(RMSPROP["steps"]):
        pred = (x @ params["w1"] + params["b1"]).tanh() @ params["w2"] + params["b2"]
        loss = ((pred - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    np.testing.assert_allclose(losses, expected["losses"], rtol=1e-10, atol=0)
    for name, final in expected["final"].items():
        np.testing.assert_allclose(params[name].data, np.array(final), rtol=1e-10, atol=1e-14)
    assert optimizer.state_dict()["state"][0]["step"] == RMSPROP["steps"]
