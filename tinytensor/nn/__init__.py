"""`tinytensor.nn`: Module, Parameter, containers and layers, with PyTorch's names.

    import tinytensor.nn as nn, tinytensor.nn.functional as F
    layer = nn.Linear(4, 8); layer.to(tt.float64); layer.state_dict()

Files: module.py (Module, Parameter, ModuleList, ModuleDict, Sequential, ParameterList), layers.py (Linear,
Embedding, norms, Dropout, activations, Identity, SwiGLU), conv.py (Conv1d, Conv2d, pooling, BatchNorm1d,
BatchNorm2d), loss.py (CrossEntropyLoss, MSELoss), attention.py (RotaryEmbedding, KVCache, MultiHeadAttention),
init.py (weight initialisation), utils.py (clip_grad_norm_), functional.py (the stateless ops, F).
"""
from tinytensor.nn import functional, init, utils
from tinytensor.nn.attention import KVCache, MultiHeadAttention, RotaryEmbedding, rotate_half
from tinytensor.nn.conv import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, BatchNorm1d, BatchNorm2d,
                                Conv1d, Conv2d, MaxPool1d, MaxPool2d)
from tinytensor.nn.layers import (GELU, Dropout, Embedding, Identity, LayerNorm, Linear, ReLU, RMSNorm, SiLU, SwiGLU,
                                  Tanh)
from tinytensor.nn.loss import CrossEntropyLoss, MSELoss
from tinytensor.nn.module import (IncompatibleKeys, Module, ModuleDict, ModuleList, Parameter, ParameterList,
                                  Sequential)

__all__ = ["GELU", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AvgPool1d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d",
           "Conv1d", "Conv2d", "CrossEntropyLoss", "Dropout", "Embedding", "Identity", "IncompatibleKeys", "KVCache",
           "LayerNorm", "Linear", "MSELoss", "MaxPool1d", "MaxPool2d", "Module", "ModuleDict", "ModuleList",
           "MultiHeadAttention", "Parameter", "ParameterList", "RMSNorm", "ReLU", "RotaryEmbedding", "Sequential",
           "SiLU", "SwiGLU", "Tanh", "functional", "init", "rotate_half", "utils"]
