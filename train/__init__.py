"""Training utilities: corpora, batching, the shared training loop and the command lines.

tinytensor is imported first so that its BLAS thread setting is in place before NumPy loads.
"""
import tinytensor  # noqa: F401
