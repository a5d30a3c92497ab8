"""Training utilities: corpora, batching and training loops."""
