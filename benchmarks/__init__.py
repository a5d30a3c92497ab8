"""Side-by-side timings against PyTorch; not part of the test suite."""
