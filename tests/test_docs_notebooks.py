"""The tutorials in docs/ run from top to bottom without an error: CI executes every notebook here, in pytest.

Each notebook runs in a fresh Jupyter kernel (nbclient + ipykernel, from the `test` extra) with docs/ as its
working directory and this checkout first on the kernel's PYTHONPATH, so `import tinytensor, models, train`
finds the code under test. The outputs are not compared (the stored ones are for reading on a code-hosting
site); an exception in any cell fails the test and names the cell. Each tutorial must stay short: a few
seconds on a CPU, and the test fails past NOTEBOOK_LIMIT_S.
"""
import os
import re
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NOTEBOOKS = sorted(DOCS.glob("*.ipynb"))
CELL_TIMEOUT_S = 120
NOTEBOOK_LIMIT_S = 120  # a generous ceiling for a loaded CI machine; each runs in 1-7 s on a 2-core CPU


def test_the_tutorials_are_numbered_in_reading_order():
    numbers = [int(re.match(r"(\d\d)_", path.name).group(1)) for path in NOTEBOOKS]
    assert numbers == list(range(1, len(NOTEBOOKS) + 1)) and len(numbers) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_stored_with_its_outputs(path):
    """Readers see the outputs on a code-hosting site without running anything: every code cell has been run, in
    order, and none stored an error."""
    cells = [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1))
    assert not [out for cell in cells for out in cell.outputs if out.output_type == "error"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_without_error(path, monkeypatch, record_property):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    # The tutorials' matrices are small: one BLAS thread is as fast, and two threads spinning against another
    # busy process on a 2-core runner made the GPT's training steps 20x slower (181 ms vs 8 ms).
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(DOCS)}})
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the failing cell and its traceback
    seconds = time.perf_counter() - started
    record_property("seconds", round(seconds, 1))
    print(f"{path.name}: {seconds:.1f} s")
    assert seconds < NOTEBOOK_LIMIT_S, f"{path.name} took {seconds:.0f} s; tutorials must run in well under a minute"
