"""The strict CuPy stand-in (tests/cupy_standin): that it is as strict as CuPy, that it catches what it is for,
and the CI hook that runs every `gpu` test on it inside the default `pytest`."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinytensor as tt
from tinytensor.ops import elementwise

REPO = Path(__file__).resolve().parents[1]
standin_only = pytest.mark.usefixtures("cupy_counts")  # skips on real CuPy


def test_the_cuda_side_passes_under_the_strict_cupy_standin():
    """CI hook: `python -m pytest` (the README's and .ci/run's command) runs every `gpu` test on the stand-in in
    a child pytest, so the cuda path is exercised on machines without a GPU. A child process keeps the stand-in
    out of this session, where `import cupy` must keep meaning "no GPU"."""
    command = [sys.executable, "-m", "pytest", "-q", "--cupy-standin", "-m", "gpu", "-p", "no:randomly"]
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=environment, timeout=900)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and " skipped" not in done.stdout.splitlines()[-1], done.stdout[-2000:]


# ---- the stand-in is as strict as CuPy (these run in the child session) -------------------------------------------
@pytest.mark.gpu
@standin_only
def test_device_arrays_refuse_implicit_conversion_and_numpy_operands():
    cupy = tt.backend.cupy_module()
    device = cupy.arange(3.0)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(device)
    with pytest.raises(TypeError, match="Implicit conversion"):
        device.__array__()
    with pytest.raises(TypeError):
        memoryview(device)
    with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
        device + np.ones(3)
    with pytest.raises(TypeError, match="Unsupported type"):
        cupy.maximum(device, np.ones(3))
    assert isinstance(np.exp(device), cupy.ndarray)            # __array_ufunc__
    assert isinstance(np.concatenate([device, device]), cupy.ndarray)  # __array_function__


@pytest.mark.gpu
@standin_only
def test_only_cupy_names_and_signatures_exist():
    cupy = tt.backend.cupy_module()
    with pytest.raises(TypeError, match="sparse"):
        cupy.indices((2, 3), sparse=True)
    with pytest.raises(AttributeError, match="has no attribute"):
        cupy.nanargmax_or_something  # noqa: B018
    with pytest.raises(AttributeError):
        cupy.random.default_rng(0).choice  # noqa: B018 - NumPy's Generator has it, CuPy's does not
    with pytest.raises(AttributeError):
        cupy.random.default_rng(0).bit_generator  # noqa: B018


@pytest.mark.gpu
def test_every_synchronisation_is_counted(cupy_counts):
    cupy = tt.backend.cupy_module()
    device = cupy.arange(4.0)
    device.get(), cupy.asnumpy(device), device[0].item(), float(device[1]), int(device[1]), bool(device[1])
    assert {kind: cupy_counts[kind] for kind in ("get", "asnumpy", "item", "float", "int", "bool")} == \
        dict.fromkeys(("get", "asnumpy", "item", "float", "int", "bool"), 1)


@pytest.mark.gpu
@standin_only
def test_a_planted_host_conversion_inside_an_op_is_caught(monkeypatch):
    """An op that slips `numpy.asarray(device_array)` into its forward (the bug a GPU would show as a TypeError,
    or, with a silent copy, as a slow step) fails under the stand-in."""
    honest_forward = elementwise.Exp.forward

    def planted(self, x):
        return honest_forward(self, self.xp.asarray(np.asarray(x)))

    monkeypatch.setattr(elementwise.Exp, "forward", planted)
    x = tt.tensor([0.0, 1.0], device="cpu")
    assert np.allclose(x.exp().numpy(), np.exp([0.0, 1.0]))  # NumPy does not mind
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        x.to("cuda").exp()
