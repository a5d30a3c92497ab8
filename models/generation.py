"""Generating text, shared by every causal LM: next-token sampling (temperature, top-k, top-p) and `CausalLM`,
the Hugging Face-style models' loss and key/value-cached decoding loop.

Sampling is seeded through `tt.manual_seed`, so a generation is reproducible.
"""
from __future__ import annotations

import numpy

import tinytensor as tt
import tinytensor.nn as nn
import tinytensor.nn.functional as F
from models.hf import as_attention_mask, as_ids, as_input_ids, model_device


class CausalLM:
    """Mixin for decoder-only language models (GPT-2, LLaMA): Hugging Face's shifted loss and `generate`.

    The model provides `forward(input_ids, caches=...) -> logits [B, T, V]`, `context_window` (its maximum
    number of positions) and `num_layers` (one `nn.KVCache` per layer).
    """

    context_window: int
    num_layers: int

    @staticmethod
    def loss(logits: tt.Tensor, labels) -> tt.Tensor:
        """Hugging Face's causal-LM loss: mean cross entropy of logits[:, t] against labels[:, t+1], skipping
        labels equal to -100 (pass labels = input_ids with pads set to -100)."""
        vocab = logits.shape[-1]
        targets = as_ids(labels, logits.device)[:, 1:]
        return F.cross_entropy(logits[:, :-1].reshape(-1, vocab), targets.reshape(-1), ignore_index=-100)

    @tt.no_grad()
    def generate(self, input_ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, eos_token_id: int | None = None, use_cache: bool = True,
                 attention_mask=None) -> tt.Tensor:
        """Append up to max_new_tokens ids to input_ids [B, T] (temperature 0: greedy).

        attention_mask [B, T] (1 = token, 0 = pad) lets prompts of different lengths share a batch: pad them on
        the left; each row's positions then count its real tokens only (cumsum(mask) − 1, as Hugging Face's
        generate), so a padded row continues exactly as it would alone. With the cache each step feeds only the
        newest token; once the context fills `context_window`, both ways re-read the last `context_window` tokens
        from position 0, so cached and uncached decoding choose the same tokens. Stops early when every row has
        produced eos_token_id; finished rows keep receiving eos_token_id.
        """
        ids = as_input_ids(input_ids, model_device(self))
        check_max_new_tokens(max_new_tokens)
        mask = numpy.ones(ids.shape, dtype=numpy.int64) if attention_mask is None \
            else as_attention_mask(attention_mask, ids).numpy()
        was_training, window = self.training, self.context_window
        self.eval()
        caches, start, finished = None, 0, numpy.zeros(ids.shape[0], dtype=bool)
        for _ in range(max_new_tokens):
            if use_cache and caches is not None and caches[0].length < window:
                logits = self._step(ids[:, -1:], mask[:, start:], caches)
            else:
                start = max(0, ids.shape[1] - window)
                caches = [nn.KVCache() for _ in range(self.num_layers)] if use_cache else None
                logits = self._step(ids[:, start:], mask[:, start:], caches)
            next_id = sample_next_token(logits[:, -1, :], temperature, top_k, top_p)
            if eos_token_id is not None:
                chosen = next_id.numpy()
                chosen[finished] = eos_token_id
                finished |= chosen[:, 0] == eos_token_id
                next_id = tt.tensor(chosen, device=ids.device)
            ids = tt.cat([ids, next_id], dim=1)
            mask = numpy.concatenate([mask, numpy.ones((mask.shape[0], 1), dtype=mask.dtype)], axis=1)
            if finished.all():
                break
        self.train(was_training)
        return ids

    def _step(self, new_ids: tt.Tensor, window_mask, caches):
        """Logits for new_ids, the last tokens of a window whose mask is window_mask [B, Tk]; positions count
        each row's real tokens within the window."""
        positions = numpy.maximum(numpy.cumsum(window_mask, axis=1) - 1, 0)[:, -new_ids.shape[1]:]
        mask = None if window_mask.all() else window_mask
        return self(new_ids, attention_mask=mask, caches=caches, position_ids=positions)


def check_max_new_tokens(max_new_tokens: int) -> None:
    """ValueError for a negative count (which would otherwise return the prompt silently)."""
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")


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
