"""`tinytensor.nn.functional` (imported as F): the stateless layer functions, with PyTorch's signatures.

The fused ones (softmax, cross_entropy, layer_norm, attention, …) live in `tinytensor.ops.nn` with their analytic
backward; activations live with the other elementwise ops. This module only gathers them under PyTorch's names.
"""
from tinytensor.ops.elementwise import gelu, relu, sigmoid, silu, tanh
from tinytensor.ops.linalg import linear
from tinytensor.ops.nn import (causal_keep_mask, cross_entropy, dropout, embedding, layer_norm, log_softmax,
                               mse_loss, nll_loss, packed_self_attention, rms_norm,
                               scaled_dot_product_attention, softmax)
from tinytensor.ops.shape import pad


__all__ = ["causal_keep_mask", "cross_entropy", "dropout", "embedding", "gelu", "layer_norm", "linear",
           "log_softmax", "mse_loss", "nll_loss", "packed_self_attention", "pad", "relu", "rms_norm",
           "scaled_dot_product_attention", "sigmoid", "silu", "softmax", "tanh"]
