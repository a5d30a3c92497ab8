"""Side-by-side timings against PyTorch; not part of the test suite.

tinytensor is imported first, as in `train/`, so that its BLAS thread setting is in place before NumPy loads.
"""
import tinytensor  # noqa: F401
