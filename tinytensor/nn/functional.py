"""`tinytensor.nn.functional` (imported as F): the stateless layer functions, with PyTorch's signatures.

The fused ones live with their analytic backward in `tinytensor.ops.nn` (softmax, cross_entropy, layer_norm, …),
`tinytensor.ops.attention` (attention) and `tinytensor.ops.linalg` (linear); activations live in
`tinytensor.ops.activation`, the losses between same-shaped tensors in `tinytensor.ops.losses`. This module
only gathers them under PyTorch's names.
"""
from tinytensor.ops.attention import causal_keep_mask, packed_self_attention, scaled_dot_product_attention
from tinytensor.ops.activation import elu, gelu, hardtanh, leaky_relu, logsigmoid, relu, silu, softplus
from tinytensor.ops.conv import (adaptive_avg_pool1d, adaptive_avg_pool2d, avg_pool1d, avg_pool2d, batch_norm, conv1d,
                                 conv2d, max_pool1d, max_pool2d)
from tinytensor.ops.elementwise import sigmoid, tanh
from tinytensor.ops.linalg import linear
from tinytensor.ops.losses import (binary_cross_entropy, binary_cross_entropy_with_logits, huber_loss, kl_div, l1_loss,
                                   mse_loss, smooth_l1_loss)
from tinytensor.ops.nn import (cosine_similarity, cross_entropy, dropout, embedding, layer_norm, log_softmax, nll_loss,
                               normalize, one_hot, rms_norm, softmax)
from tinytensor.ops.shape import pad


__all__ = ["adaptive_avg_pool1d", "adaptive_avg_pool2d", "avg_pool1d", "avg_pool2d", "batch_norm",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "causal_keep_mask", "conv1d", "conv2d",
           "cosine_similarity", "cross_entropy", "dropout", "elu", "embedding", "gelu", "hardtanh", "huber_loss",
           "kl_div", "l1_loss", "layer_norm", "leaky_relu", "linear", "log_softmax", "logsigmoid", "max_pool1d",
           "max_pool2d", "mse_loss", "nll_loss", "normalize", "one_hot", "packed_self_attention", "pad", "relu",
           "rms_norm", "scaled_dot_product_attention", "sigmoid", "silu", "smooth_l1_loss", "softmax", "softplus",
           "tanh"]
