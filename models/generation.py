"""Choosing the next token from logits: temperature, top-k and top-p (nucleus) sampling, shared by every causal LM.

Each model's `generate` loop calls `sample_next_token(last_logits, ...)` once per new token; sampling is seeded
through `tt.manual_seed`, so a generation is reproducible.
"""
from __future__ import annotations

import tinytensor as tt
import tinytensor.nn.functional as F


def sample_next_token(logits: tt.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None) -> tt.Tensor:
    """Draw one id per row from logits [B, V]; returns int64 ids [B, 1]. temperature 0 means greedy (argmax)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        logits = keep_top_k(logits, top_k)
    if top_p is not None:
        logits = keep_top_p(logits, top_p)
    return tt.multinomial(F.softmax(logits, dim=-1), num_samples=1)


def keep_top_k(logits: tt.Tensor, k: int) -> tt.Tensor:
    """Mask every logit below the k-th largest of its row to −inf."""
    k = min(int(k), logits.shape[-1])
    if k <= 0:
        raise ValueError(f"top_k must be positive, got {k}")
    xp = logits.xp
    kth_largest = xp.partition(logits.data, -k, axis=-1)[..., -k, None]
    return tt.Tensor(xp.where(logits.data < kth_largest, -xp.inf, logits.data))


def keep_top_p(logits: tt.Tensor, p: float) -> tt.Tensor:
    """Keep the smallest set of most likely tokens whose probabilities sum to at least p (Holtzman et al. 2019)."""
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    xp = logits.xp
    order = xp.argsort(-logits.data, axis=-1)
    sorted_probs = xp.take_along_axis(F.softmax(logits, dim=-1).data, order, axis=-1)
    mass_before = xp.cumsum(sorted_probs, axis=-1) - sorted_probs
    drop_sorted = mass_before >= p
    drop = xp.zeros_like(drop_sorted)
    xp.put_along_axis(drop, order, drop_sorted, axis=-1)
    return tt.Tensor(xp.where(drop, -xp.inf, logits.data))
