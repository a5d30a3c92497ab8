"""The backend (tinytensor/backend.py): ops do their math through `xp`, devices, transfers, seeds, dtypes.

GPU tests are marked `gpu` and skip without CuPy and a device; the rest cover the same code paths on the CPU.
"""
import ast
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from strategies import arrays, op_settings, shapes

import tinytensor as tt
from tinytensor import backend

PACKAGE = Path(tt.__file__).parent
OPS_FILES = sorted((PACKAGE / "ops").glob("*.py"))


def numpy_uses(source: str) -> list[str]:
    """Each place a module imports NumPy or reaches it by name (`np.` / `numpy.`), as 'line N: what'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] == "numpy"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "numpy":
            found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("np", "numpy"):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


def cupy_imports(source: str) -> list[int]:
    return [node.lineno for node in ast.walk(ast.parse(source))
            if (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "cupy" for a in node.names))
            or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "cupy")]


def test_the_numpy_detector_flags_imports_and_attribute_use():
    assert numpy_uses("import numpy as np\nx = np.exp(1)\n") == ["line 1: import numpy", "line 2: np.exp"]
    assert numpy_uses("from numpy.linalg import norm\n") == ["line 1: from numpy.linalg import ..."]
    assert numpy_uses("y = numpy.zeros(3)\n") == ["line 1: numpy.zeros"]
    assert numpy_uses("y = xp.exp(x)\nz = self.xp.sum(y)\n") == []


@pytest.mark.parametrize("path", OPS_FILES, ids=lambda p: p.name)
def test_ops_modules_do_array_math_through_xp_not_numpy(path):
    uses = numpy_uses(path.read_text())
    assert not uses, f"{path.name} uses NumPy directly (get `xp` from the inputs instead): {uses}"


def test_ops_folder_is_the_one_checked():
    assert {p.name for p in OPS_FILES} >= {"elementwise.py", "reduce.py", "shape.py", "linalg.py", "nn.py"}


def test_only_backend_imports_cupy():
    importers = {str(p.relative_to(PACKAGE)): cupy_imports(p.read_text()) for p in PACKAGE.rglob("*.py")}
    assert importers.pop("backend.py"), "backend.py should import cupy (lazily)"
    assert not any(importers.values()), {name: lines for name, lines in importers.items() if lines}


# ---- array modules and devices -----------------------------------------------------------------------------------
def test_array_module_of_numpy_arrays_and_scalars_is_numpy():
    assert backend.array_module(np.zeros(2), np.float64(1.0), np.ones((2, 2), dtype=bool)) is np
    assert backend.device_of(np.zeros(1)) == "cpu" and backend.device_of(np.int64(3)) == "cpu"
    assert backend.module_for("cpu") is np


@pytest.mark.parametrize("name, expected", [("cpu", "cpu"), ("cuda", "cuda"), ("cuda:0", "cuda"), ("cuda:1", "cuda")])
def test_normalize_device_accepts_pytorch_spellings(name, expected):
    assert backend.normalize_device(name) == expected


def test_normalize_device_rejects_unknown_names_and_quotes_them():
    with pytest.raises(ValueError, match=r"unknown device 'mps': expected 'cpu' or 'cuda'"):
        backend.normalize_device("mps")


def test_to_device_on_the_same_device_does_not_copy():
    array = np.arange(3.0)
    assert backend.to_device(array, "cpu") is array and backend.to_numpy(array) is array
    t = tt.tensor(array)
    assert t.to("cpu") is t and t.cpu() is t


def test_missing_cupy_says_how_to_install_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_cupy(name, *args, **kwargs):
        if name == "cupy":
            raise ImportError("no cupy here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(builtins, "__import__", no_cupy)
    with pytest.raises(RuntimeError, match=r"needs CuPy: pip install"):
        backend.cupy_module()
    assert backend.cuda_is_available() is False


def test_cuda_is_available_answers_a_bool():
    assert isinstance(tt.cuda_is_available(), bool)


# ---- random generators -------------------------------------------------------------------------------------------
def test_manual_seed_makes_every_random_draw_repeat():
    def draws():
        return (tt.randn(3, 2).numpy(), tt.rand(4).numpy(), tt.randint(0, 10, (5,)).numpy(),
                tt.dropout(tt.ones(8), 0.5).numpy(),
                tt.multinomial(tt.tensor([[0.2, 0.8]]), 3, replacement=True).numpy())

    tt.manual_seed(42)
    first = draws()
    tt.manual_seed(42)
    second = draws()
    tt.manual_seed(43)
    third = draws()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], third[0])


def test_rng_state_round_trips_through_get_and_set():
    tt.manual_seed(7)
    tt.randn(5)
    state = tt.get_rng_state()
    expected = tt.randn(5).numpy()
    tt.randn(3)
    tt.set_rng_state(state)
    np.testing.assert_array_equal(tt.randn(5).numpy(), expected)


@pytest.mark.parametrize("dtype", [tt.float16, tt.float32, tt.float64], ids=str)
def test_random_draws_come_in_the_requested_dtype(dtype):
    assert tt.randn(2, 3, dtype=dtype).dtype == dtype and tt.rand(2, dtype=dtype).dtype == dtype
    assert tt.randn(2, requires_grad=True).requires_grad


def test_multinomial_draws_only_classes_with_probability():
    probs = tt.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    ids = tt.multinomial(probs, 200, replacement=True).numpy()
    assert ids.dtype == np.int64 and ids.shape == (2, 200)
    assert (ids[0] == 1).all() and set(ids[1]) == {0, 2}


def test_multinomial_without_replacement_draws_each_class_at_most_once_and_follows_the_weights(device):
    probs = tt.tensor([[0.0, 0.7, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]]).to(device)
    ids = tt.multinomial(probs, 3).numpy()  # replacement=False, PyTorch's default
    assert ids.shape == (2, 3) and sorted(ids[0]) == [1, 2, 3] and len(set(ids[1])) == 3
    firsts = tt.multinomial(tt.tensor([0.0, 0.7, 0.2, 0.1]).to(device).expand(4000, 4), 2)[:, 0].numpy()
    assert abs((firsts == 1).mean() - 0.7) < 0.03
    with pytest.raises(RuntimeError, match="without replacement"):
        tt.multinomial(probs, 4)


def test_random_creation_follows_pytorchs_signatures_on_every_device(device):
    assert tt.randint(10, (2, 3), device=device).device == device
    assert tt.randint(3, 5, (4,), device=device).numpy().min() >= 3
    assert sorted(tt.randperm(5, device=device).numpy().tolist()) == [0, 1, 2, 3, 4]
    assert tt.empty(2, 3, device=device).shape == (2, 3)
    assert tt.zeros(3, device=device).normal_().device == device


# ---- the same tensor code on every backend -----------------------------------------------------------------------
@op_settings
@given(values=shapes(max_dims=3).flatmap(arrays))
def test_moving_to_a_device_and_back_keeps_values_and_carries_the_gradient_home(device, values):
    x = tt.tensor(values, dtype=tt.float64, requires_grad=True)
    moved = x.to(device)
    assert moved.device == device and moved.dtype == tt.float64
    (moved * moved).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), 2 * values, rtol=1e-15)
    np.testing.assert_array_equal(moved.cpu().numpy(), values)


@pytest.mark.gpu
def test_cuda_tensors_compute_with_cupy_and_report_their_device():
    x = tt.randn(3, 4, device="cuda")
    assert x.device == "cuda" and type(x.data).__module__.startswith("cupy")
    assert (x @ x.T).device == "cuda" and "device='cuda'" in repr(x)
    np.testing.assert_allclose((x @ x.T).numpy(), x.numpy() @ x.numpy().T, rtol=1e-5, atol=1e-5)


def test_map_slices_equals_the_whole_array_computation_for_any_shape_and_ragged_tail():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, backend.SLICE + 7, 2))  # several slices, the last one short
    b = rng.standard_normal(a.shape)
    out = backend.map_slices(lambda x, y: np.tanh(x) * y + 1, a, b)
    assert out.shape == a.shape
    np.testing.assert_array_equal(out, np.tanh(a) * b + 1)
    scalar = backend.map_slices(lambda x: x * 2, np.array(3.0))
    assert scalar.shape == () and scalar == 6.0


def test_tune_host_allocator_takes_effect_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is a glibc interface")
    assert backend.tune_host_allocator() is True


def test_free_cores_counts_between_one_and_the_cores_this_process_may_use():
    assert 1 <= backend.free_cores(sample_seconds=0.02) <= backend.cpu_cores()


def test_one_blas_thread_holds_openblas_to_one_thread_and_restores_the_count():
    get_threads = backend._openblas_function("get_num_threads")
    if get_threads is None:
        pytest.skip("NumPy here is not built on OpenBLAS")
    before = get_threads()
    with backend.one_blas_thread() as held:
        assert held and get_threads() == 1
    assert get_threads() == before


def test_fit_threads_to_free_cores_sets_the_lanes_tinytensor_spreads_work_over(monkeypatch):
    monkeypatch.setattr(backend, "_worker_cores", None)
    monkeypatch.setattr(backend, "free_cores", lambda sample_seconds: 1)
    monkeypatch.setattr(backend, "set_blas_threads", lambda count: True)
    assert backend.fit_threads_to_free_cores() == 1 and backend.worker_cores() == 1
