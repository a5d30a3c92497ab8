"""Every op of tinytensor, one module per family; `tinytensor` and `Tensor`'s methods re-export them.

In-place ops (`add_`, `zero_`, …) live in `ops.inplace` and are reached as Tensor methods, as in PyTorch.
"""
from tinytensor.ops.creation import (arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like, linspace,
                                     logspace, multinomial, ones, ones_like, rand, rand_like, randint, randint_like,
                                     randn, randn_like, randperm, tensor, zeros, zeros_like)
from tinytensor.ops.elementwise import (abs, add, addcdiv, addcmul, cast, clamp, clone, div, eq, exp, ge, gt,
                                        isfinite, le, lerp, log, logical_and, logical_not, logical_or, logical_xor,
                                        lt, masked_fill, maximum, minimum, mul, ne, neg, pow, rsqrt, sigmoid, sqrt,
                                        sub, tanh, to_device, where)
from tinytensor.ops.unary import (acos, allclose, asin, atan, atan2, ceil, clamp_max, clamp_min, cos, cosh, equal,
                                  expm1, floor, frac, hypot, isclose, isinf, isnan, log1p, log2, log10, logaddexp,
                                  logit, reciprocal, round, sign, sin, sinh, square, tan, trunc)
from tinytensor.ops.activation import erf, gelu, relu, silu
from tinytensor.ops.conv import (adaptive_avg_pool1d, adaptive_avg_pool2d, avg_pool1d, avg_pool2d, conv1d, conv2d,
                                 max_pool1d, max_pool2d)
from tinytensor.ops.attention import packed_self_attention, scaled_dot_product_attention
from tinytensor.ops.linalg import (addmm, baddbmm, bmm, cdist, cross, dot, einsum, kron, linear, matmul, mm, mv,
                                   outer)
from tinytensor.ops.reduce import (all, amax, amin, any, argmax, argmin, bincount, count_nonzero, cumprod,
                                   cumsum, histc, histogram, HistogramBins, logsumexp, max, mean, min,
                                   nanmean, nansum, norm, prod, std, std_mean, sum, unique, ValuesIndices,
                                   var, var_mean)
from tinytensor.ops.nn import (cosine_similarity, cross_entropy, dropout, embedding, layer_norm, log_softmax, nll_loss,
                               rms_norm, softmax)
from tinytensor.ops.losses import mse_loss
from tinytensor.ops.shape import (argwhere, cartesian_prod, cat, chunk, contiguous, diag, diagonal, expand, flatten,
                                  flip, fliplr, flipud, gather, getitem, index_arrays, masked_select, meshgrid,
                                  moveaxis, movedim, narrow, nonzero, pad, permute, repeat, reshape, roll, select,
                                  split, squeeze, stack, swapaxes, swapdims, take_along_dim, trace, transpose, tril,
                                  tril_indices, triu, triu_indices, unbind, unflatten, unsqueeze, view)
from tinytensor.ops.sort import argsort, bucketize, cummax, median, quantile, searchsorted, sort, topk
from tinytensor.ops.rounding import floor_divide, fmod, remainder
from tinytensor.ops.scatter import index_select, scatter, scatter_add
from tinytensor.ops import inplace  # noqa: I001 - after the families it builds on

clip = clamp  # torch.clip, PyTorch's alias

__all__ = [name for name, value in globals().items() if not name.startswith("_") and callable(value)]
