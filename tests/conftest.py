"""Shared test setup: Hypothesis profiles and the backend parametrization used by every op test.

`pytest` uses the quick "default" profile; `pytest --hypothesis-profile=ci` draws many more examples.
Tests that take the `xp_device` fixture run once on the CPU and once on CuPy (marked `gpu`, skipped without one).
"""
import pytest
from hypothesis import HealthCheck, settings

import tinytensor as tt

settings.register_profile("default", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("default")

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


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
