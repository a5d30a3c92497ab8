"""`tinytensor.nn.functional` (imported as F): the stateless layer functions, with PyTorch's signatures.

The fused ones live with their analytic backward in `tinytensor.ops.nn` (softmax, cross_entropy, layer_norm, …),
`tinytensor.ops.attention` (attention) and `tinytensor.ops.linalg` (linear); activations live with the other
elementwise ops. This module only gathers them under PyTorch's names.
"""
from tinytensor.ops.attention import causal_keep_mask, packed_self_attention, scaled_dot_product_attention
from tinytensor.ops.activation import gelu, relu, silu
from tinytensor.ops.conv import (adaptive_avg_pool1d, adaptive_avg_pool2d, avg_pool1d, avg_pool2d, batch_norm, conv1d,
                                 conv2d, max_pool1d, max_pool2d)
from tinytensor.ops.elementwise import sigmoid, tanh
from tinytensor.ops.linalg import linear
from tinytensor.ops.nn import (cross_entropy, dropout, embedding, layer_norm, log_softmax, mse_loss, nll_loss,
                               normalize, one_hot, rms_norm, softmax)
from tinytensor.ops.shape import pad


__all__ = ["adaptive_avg_pool1d", "adaptive_avg_pool2d", "avg_pool1d", "avg_pool2d", "batch_norm", "causal_keep_mask",
           "conv1d", "conv2d", "cross_entropy", "dropout", "embedding", "gelu", "layer_norm", "linear", "log_softmax",
           "max_pool1d", "max_pool2d", "mse_loss", "nll_loss", "normalize", "one_hot", "packed_self_attention", "pad",
           "relu", "rms_norm", "scaled_dot_product_attention", "sigmoid", "silu", "softmax", "tanh"]
