"""`tinytensor.nn.utils.rnn`: batching sequences of different lengths, as torch.nn.utils.rnn."""
from __future__ import annotations

from collections.abc import Sequence

from tinytensor import ops
from tinytensor.tensor import Tensor


def pad_sequence(sequences: Sequence[Tensor], batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack tensors [Lᵢ, *] into [L_max, B, *] (or [B, L_max, *] with batch_first), padding each with
    `padding_value` on the right (or the left); differentiable in the sequences."""
    if not sequences:
        raise ValueError("pad_sequence: no sequences given")
    if padding_side not in ("right", "left"):
        raise ValueError(f"pad_sequence: padding_side must be 'right' or 'left', got {padding_side!r}")
    trailing = sequences[0].shape[1:]
    if any(s.shape[1:] != trailing for s in sequences):
        raise ValueError(f"pad_sequence: sequences must agree after their first axis, got "
                         f"{[tuple(s.shape) for s in sequences]}")
    longest = max(s.shape[0] for s in sequences)
    padded = [ops.pad(s, _pad_widths(len(trailing), longest - s.shape[0], padding_side), value=padding_value)
              for s in sequences]
    return ops.stack(padded, 0 if batch_first else 1)


def _pad_widths(trailing_dims: int, missing: int, side: str) -> tuple:
    """F.pad's widths (last axis first) that add `missing` rows to the first axis on `side`."""
    return (0, 0) * trailing_dims + ((missing, 0) if side == "left" else (0, missing))
