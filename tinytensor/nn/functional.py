"""`tinytensor.nn.functional` (imported as F): the stateless layer functions, with PyTorch's signatures.

The fused ones live with their analytic backward in `tinytensor.ops.nn` (softmax, cross_entropy, layer_norm, …),
`tinytensor.ops.attention` (attention) and `tinytensor.ops.linalg` (linear); activations live with the other
elementwise ops. This module only gathers them under PyTorch's names.
"""
from tinytensor.ops.attention import causal_keep_mask, packed_self_attention, scaled_dot_product_attention
from tinytensor.ops.activation import gelu, relu, silu
from tinytensor.ops.elementwise import sigmoid, tanh
from tinytensor.ops.linalg import linear
from tinytensor.ops.nn import (cross_entropy, dropout, embedding, layer_norm, log_softmax, mse_loss, nll_loss,
                               normalize, one_hot, rms_norm, softmax)
from tinytensor.ops.shape import pad


__all__ = ["causal_keep_mask", "cross_entropy", "dropout", "embedding", "gelu", "layer_norm", "linear",
           "log_softmax", "mse_loss", "nll_loss", "normalize", "one_hot", "packed_self_attention", "pad", "relu",
           "rms_norm", "scaled_dot_product_attention", "sigmoid", "silu", "softmax", "tanh"]
