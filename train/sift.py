"""SiFT: scale-invariant fine-tuning (He et al. 2020, "DeBERTa", §3.3 and §5.3), for train/finetune.py.

Virtual adversarial training (Miyato et al. 2018; Jiang et al. 2020's SMART) regularises fine-tuning: find a small
perturbation δ of the input embeddings that changes the model's prediction the most, and train the model to
predict the same there. The word embeddings of a large model have very different norms, so a perturbation of a
fixed size is tiny for some words and huge for others; DeBERTa's SiFT therefore perturbs the *normalised*
embeddings. For a batch with embeddings e [B, T, E] (the output of the model's embedding LayerNorm):

    x̂ = (e − mean(e)) / std(e)                         normalise each token's vector (a layer norm, no gain)
    δ₀ ~ N(0, σ²), clipped to ±2σ                        a small random start
    e(δ) = mean(e) + std(e)·(x̂ + δ)  = e + std(e)·δ      the perturbed vector, mapped back to e's scale
    g = ∇_δ symKL(f(e), f(e(δ₀)))                        one ascent step on the perturbation,
    δ₁ = δ₀ + ε·g / max|g|                               each token's step normalised by its largest entry
    loss = task loss + λ·symKL(f(e), f(e(δ₁)))           symKL(p, q) = KL(p‖q) + KL(q‖p)

with f(·) the rest of the network (embeddings → logits, `model.forward_embeddings`, models/classification.py).
σ, ε and λ default to the official code's `vat_init_perturbation` 1e-2, `vat_learning_rate` 1e-4 and `vat_lambda`
1 (microsoft/DeBERTa, DeBERTa/sift/sift.py). As there, the ascent step does not touch the weights' gradients, the
perturbed pass sees the embeddings detached (the adversarial term trains the layers above them), and the clean
logits are not detached in the final term.

One difference: the official code normalises with an extra parameter-free LayerNorm that stays in the model (the
clean forward goes through it too). Here the perturbed vector is mapped back to e's own mean and scale, so the
clean forward is the unchanged model and `save_pretrained` writes an ordinary checkpoint.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import tinytensor as tt
import tinytensor.nn.functional as F
from tinytensor import nn


@dataclass
class SiftConfig:
    """λ (`weight`), σ (`noise`, the random start's scale) and ε (`step_size`, the ascent step)."""

    weight: float = 1.0
    noise: float = 1e-2
    step_size: float = 1e-4


def symmetric_kl(logits_p: tt.Tensor, logits_q: tt.Tensor) -> tt.Tensor:
    """KL(p‖q) + KL(q‖p) = Σ (p − q)(log p − log q), averaged over the batch; logits [B, C] → a scalar."""
    log_p, log_q = F.log_softmax(logits_p, dim=-1), F.log_softmax(logits_q, dim=-1)
    return ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(dim=-1).mean()


def embedding_scale(embedded: tt.Tensor, eps: float = 1e-7) -> tt.Tensor:
    """std(e) per token [B, T, 1] (detached): the factor that maps a step in normalised space back to e's scale."""
    scale = embedded.xp.sqrt(embedded.data.var(axis=-1, keepdims=True) + eps)
    return tt.tensor(scale, dtype=embedded.dtype, device=embedded.device)


def perturb(embedded: tt.Tensor, delta: tt.Tensor) -> tt.Tensor:
    """e(δ) = mean(e) + std(e)·(x̂ + δ) = e + std(e)·δ, with e detached: [B, T, E]."""
    return embedded.detach() + delta * embedding_scale(embedded)


def random_start(embedded: tt.Tensor, noise: float) -> tt.Tensor:
    """δ₀ ~ N(0, σ²) clipped to ±2σ, shaped like the embeddings (from tinytensor's seeded stream)."""
    delta = tt.randn(*embedded.shape, dtype=embedded.dtype, device=embedded.device) * noise
    return tt.clamp(delta, -2 * noise, 2 * noise)


@contextmanager
def frozen(model: nn.Module):
    """Inside, the model's parameters do not require grad: a backward reaches only the perturbation."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad = False
    try:
        yield
    finally:
        for p in params:
            p.requires_grad = True


def perturbed_kl(model, embedded: tt.Tensor, attention_mask, clean_logits: tt.Tensor, delta: tt.Tensor) -> tt.Tensor:
    """symKL(f(e), f(e(δ))): how far the perturbation moves the prediction."""
    return symmetric_kl(clean_logits, model.forward_embeddings(perturb(embedded, delta), attention_mask))


def ascend(model, embedded: tt.Tensor, attention_mask, clean_logits: tt.Tensor, delta: tt.Tensor,
           step_size: float) -> tt.Tensor:
    """δ₁ = δ₀ + ε·g/max|g| with g = ∇_δ symKL at δ₀ (each token's step scaled by its largest gradient entry).
    The weights are frozen meanwhile, so their accumulated gradients stay as they were."""
    delta = delta.detach().requires_grad_()
    with frozen(model):
        perturbed_kl(model, embedded, attention_mask, clean_logits.detach(), delta).backward()
    grad = delta.grad.data
    step = grad / (delta.xp.abs(grad).max(axis=-1, keepdims=True) + 1e-6)
    return tt.tensor(delta.data + step_size * step, dtype=delta.dtype, device=delta.device)


def adversarial_loss(model, embedded: tt.Tensor, attention_mask, clean_logits: tt.Tensor,
                     config: SiftConfig) -> tt.Tensor:
    """λ·symKL(f(e), f(e(δ₁))): the term SiFT adds to the task loss (gradients reach the weights above the
    embeddings and, through the clean logits, the whole model)."""
    delta = ascend(model, embedded, attention_mask, clean_logits, random_start(embedded, config.noise),
                   config.step_size)
    return config.weight * perturbed_kl(model, embedded, attention_mask, clean_logits, delta)


def sift_loss(model, batch: tuple, config: SiftConfig) -> tt.Tensor:
    """Task loss + SiFT term for a batch (input_ids, token_type_ids, attention_mask, labels); in eval mode (the
    shared loop's loss estimates) only the task loss."""
    input_ids, token_type_ids, attention_mask, labels = batch
    embedded = model.embed(input_ids, token_type_ids, attention_mask)
    logits = model.forward_embeddings(embedded, attention_mask)
    loss = model.loss(logits, labels)
    if not model.training or config.weight == 0:
        return loss
    return loss + adversarial_loss(model, embedded, attention_mask, logits, config)
