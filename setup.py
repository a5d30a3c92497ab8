"""Packaging for tinytensor: the engine (`tinytensor`), the model zoo (`models`) and the trainers (`train`)."""
from setuptools import find_packages, setup

setup(
    name="tinytensor",
    version="0.1.0",
    description="A small reverse-mode autograd framework on NumPy/CuPy, with a transformer model zoo",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tinytensor", "tinytensor.*", "models", "models.*", "train", "train.*"]),
    install_requires=["numpy>=1.26", "safetensors>=0.4", "tqdm>=4.60"],
    extras_require={
        "cuda": ["cupy-cuda12x>=13"],
        "plot": ["matplotlib>=3.7"],
        "viz": ["graphviz>=0.20"],  # tinytensor.viz.render_svg; also needs Graphviz's `dot` program
        # tinytensor.distributed over MPI: mpi4py, and MPICH's library and `mpiexec` as a wheel (no system MPI needed)
        "distributed": ["mpi4py>=4.0", "mpich>=4.2"],
        # the docs/ notebooks run inside pytest (tests/test_docs_notebooks.py) and draw with matplotlib
        # and tests/test_distributed.py runs real `mpiexec -n 2` jobs; .ci/run checks the tree with ruff first
        "test": ["pytest>=7", "hypothesis>=6.80", "matplotlib>=3.7", "nbclient>=0.9", "nbformat>=5.9",
                 "ipykernel>=6.25", "mpi4py>=4.0", "mpich>=4.2", "ruff>=0.6"],
    },
)
