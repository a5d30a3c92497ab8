"""Every op of tinytensor, one module per family; `tinytensor` and `Tensor`'s methods re-export them."""
from tinytensor.ops.creation import (arange, full, full_like, multinomial, ones, ones_like, rand, randint, randn,
                                     tensor, zeros, zeros_like)
from tinytensor.ops.elementwise import (abs, add, cast, clamp, clone, div, eq, exp, ge, gt, isfinite, le, log,
                                        logical_and, logical_not, logical_or, lt, masked_fill, maximum, minimum,
                                        mul, ne, neg, pow, rsqrt, sigmoid, sqrt, sub, tanh, to_device,
                                        where)
from tinytensor.ops.activation import gelu, relu, silu
from tinytensor.ops.attention import packed_self_attention, scaled_dot_product_attention
from tinytensor.ops.linalg import linear, matmul
from tinytensor.ops.nn import (cross_entropy, dropout, embedding, layer_norm, log_softmax, mse_loss, nll_loss,
                               rms_norm, softmax)
from tinytensor.ops.reduce import argmax, logsumexp, max, mean, min, sum, var
from tinytensor.ops.shape import (cat, chunk, expand, flatten, gather, getitem, index_arrays, pad, permute, reshape,
                                  split, squeeze, stack, transpose, tril, triu, unsqueeze)

__all__ = [name for name, value in globals().items() if not name.startswith("_") and callable(value)]
