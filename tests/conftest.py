"""Shared test setup: Hypothesis profiles and the backend parametrization used by every op test.

`pytest` uses the quick "default" profile; `pytest --hypothesis-profile=ci` draws many more examples.
Tests that take the `device` fixture run once on the CPU and once on CuPy (marked `gpu`, skipped without one).
`pytest --cupy-standin` runs the `gpu` tests without a GPU, on the strict CuPy stand-in of tests/cupy_standin
(docs/cuda.md); tests/test_cuda_standin.py starts such a run inside the default `pytest`, so CI covers it.
"""
import sys

import pytest
from hypothesis import HealthCheck, settings

import tinytensor as tt

settings.register_profile("default", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("default")

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def pytest_addoption(parser):
    parser.addoption("--cupy-standin", action="store_true",
                     help="run the cuda side on the strict CuPy stand-in (tests/cupy_standin) instead of CuPy")


def pytest_configure(config):
    """Under --cupy-standin, `import cupy` (in tinytensor.backend.cupy_module) finds the stand-in."""
    if not config.getoption("--cupy-standin"):
        return
    import cupy_standin

    cupy = cupy_standin.build()
    sys.modules.update({"cupy": cupy, "cupy.cuda": cupy.cuda, "cupy.cuda.nccl": cupy.cuda.nccl,
                        "cupy.random": cupy.random, "cupy.linalg": cupy.linalg})
    tt.backend._cupy = None


def pytest_collection_modifyitems(config, items):
    if tt.cuda_is_available():
        return
    skip_gpu = pytest.mark.skip(reason="no CUDA device with CuPy")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(params=DEVICES)
def device(request):
    """Run a test on every backend: 'cpu' always, 'cuda' when a GPU is present."""
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    tt.manual_seed(0)
    tt.backend._deferred_checks.clear()  # a failed device check left unread by one test must not fail the next


@pytest.fixture
def cupy_counts(request):
    """The stand-in's synchronisation and upload counters, zeroed (skips on real CuPy, which cannot count)."""
    if not request.config.getoption("--cupy-standin"):
        pytest.skip("counting synchronisations needs the CuPy stand-in (--cupy-standin)")
    import cupy_standin

    return cupy_standin.reset_counts()
