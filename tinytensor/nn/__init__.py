"""`tinytensor.nn`: Module, Parameter, containers and layers, with PyTorch's names.

    import tinytensor.nn as nn, tinytensor.nn.functional as F
    layer = nn.Linear(4, 8); layer.to(tt.float64); layer.state_dict()

Files: module.py (Module, Parameter, ModuleList, ModuleDict, Sequential, ParameterList), layers.py (Linear,
Embedding, norms, Dropout, activations, Flatten, Unflatten, Identity, SwiGLU), conv.py (Conv1d, Conv2d, pooling,
BatchNorm1d, BatchNorm2d), loss.py (CrossEntropyLoss, NLLLoss, MSELoss, L1Loss, SmoothL1Loss, HuberLoss, KLDivLoss,
BCELoss, BCEWithLogitsLoss), attention.py (RotaryEmbedding, KVCache, MultiHeadAttention), recurrent.py (RNN, LSTM,
GRU, RNNCell, LSTMCell, GRUCell), init.py (weight initialisation), utils/ (clip_grad_norm_, rnn.pad_sequence),
functional.py (the stateless ops, F).
"""
from tinytensor.nn import functional, init, utils
from tinytensor.nn.attention import KVCache, MultiHeadAttention, RotaryEmbedding, rotate_half
from tinytensor.nn.conv import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, BatchNorm1d, BatchNorm2d,
                                Conv1d, Conv2d, MaxPool1d, MaxPool2d)
from tinytensor.nn.layers import (ELU, GELU, Dropout, Embedding, Flatten, Hardtanh, Identity, LayerNorm, LeakyReLU,
                                  Linear, LogSoftmax, ReLU, RMSNorm, Sigmoid, SiLU, Softmax, Softplus, SwiGLU, Tanh,
                                  Unflatten)
from tinytensor.nn.loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss, MSELoss,
                                NLLLoss, SmoothL1Loss)
from tinytensor.nn.module import (IncompatibleKeys, Module, ModuleDict, ModuleList, Parameter, ParameterList,
                                  Sequential)
from tinytensor.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase

__all__ = ["AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AvgPool1d", "AvgPool2d", "BCELoss", "BCEWithLogitsLoss",
           "BatchNorm1d", "BatchNorm2d", "Conv1d", "Conv2d", "CrossEntropyLoss", "Dropout", "ELU", "Embedding",
           "Flatten", "GELU", "GRU", "GRUCell", "Hardtanh", "HuberLoss", "Identity", "IncompatibleKeys", "KLDivLoss",
           "KVCache", "L1Loss", "LSTM", "LSTMCell", "LayerNorm", "LeakyReLU", "Linear", "LogSoftmax", "MSELoss",
           "MaxPool1d", "MaxPool2d", "Module", "ModuleDict", "ModuleList", "MultiHeadAttention", "NLLLoss", "Parameter",
           "ParameterList", "RMSNorm", "RNN", "RNNBase", "RNNCell", "RNNCellBase", "ReLU", "RotaryEmbedding",
           "Sequential", "SiLU", "Sigmoid", "SmoothL1Loss", "Softmax", "Softplus", "SwiGLU", "Tanh", "Unflatten",
           "functional", "init", "rotate_half", "utils"]
