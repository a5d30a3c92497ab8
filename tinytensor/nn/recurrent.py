"""Recurrent layers: RNN (tanh or relu), LSTM and GRU, and their one-step cells RNNCell, LSTMCell and GRUCell.

They sit beside tinytensor.nn.layers and have no Function of their own: each time step is composed from
differentiable ops (F.linear, tanh, sigmoid, relu, products and sums, stack/cat), so the gradients, and second
derivatives under create_graph, come from ops that are proven one by one. Per layer and direction the input
projection x·W_ihᵀ + b_ih is one GEMM over all T·B rows; only h·W_hhᵀ + b_hh runs step by step.

Names, shapes, gate order and init are PyTorch's, so a torch state dict loads by name:
  weight_ih_l{k}[_reverse] [G·H, in], weight_hh_l{k}[_reverse] [G·H, H], bias_ih_l{k}[_reverse], bias_hh_l{k}[_reverse]
with G = 1 (RNN), 4 (LSTM, gates i, f, g, o) or 3 (GRU, gates r, z, n), every entry ~ U(±1/√H).
Cells use the same names without the suffix (weight_ih, weight_hh, bias_ih, bias_hh).

The equations (Hochreiter & Schmidhuber 1997; Cho et al. 2014, in PyTorch's variant):
  RNN   h' = act(W_ih x + b_ih + W_hh h + b_hh)
  LSTM  i, f, g, o = σ, σ, tanh, σ of (W_ih x + b_ih + W_hh h + b_hh);  c' = f ⊙ c + i ⊙ g;  h' = o ⊙ tanh(c')
  GRU   r, z = σ(W_i{r,z} x + b_i{r,z} + W_h{r,z} h + b_h{r,z});  n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
        h' = (1 − z) ⊙ n + z ⊙ h

Each step reads its slice of the projected inputs; the engine adds each slice's gradient into one buffer where it
lands (`autograd.SliceGrad`), so the backward costs O(T), not T full-size arrays.
"""
from __future__ import annotations

import math
import warnings

from tinytensor.nn import functional as F
from tinytensor.nn import init
from tinytensor.nn.layers import _new_parameter
from tinytensor.nn.module import Module
from tinytensor.ops.creation import zeros
from tinytensor.ops.shape import cat, stack
from tinytensor.tensor import Tensor

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# ---- one time step ------------------------------------------------------------------------------------------------
def _rnn_step(mode: str, input_gates: Tensor, state, weight_hh: Tensor, bias_hh: Tensor | None):
    """One step from the projected input W_ih x + b_ih [B, G·H] and the state (h, or (h, c) for LSTM) [B, H].
    Returns the new state in the same form."""
    if mode == "LSTM":
        h, c = state
        in_gate, forget_gate, cell_gate, out_gate = (input_gates + F.linear(h, weight_hh, bias_hh)).chunk(4, -1)
        c = F.sigmoid(forget_gate) * c + F.sigmoid(in_gate) * F.tanh(cell_gate)
        return F.sigmoid(out_gate) * F.tanh(c), c
    if mode == "GRU":
        x_reset, x_update, x_new = input_gates.chunk(3, -1)
        h_reset, h_update, h_new = F.linear(state, weight_hh, bias_hh).chunk(3, -1)
        reset_gate, update_gate = F.sigmoid(x_reset + h_reset), F.sigmoid(x_update + h_update)
        candidate = F.tanh(x_new + reset_gate * h_new)
        return (1 - update_gate) * candidate + update_gate * state
    pre_activation = input_gates + F.linear(state, weight_hh, bias_hh)
    return F.tanh(pre_activation) if mode == "RNN_TANH" else F.relu(pre_activation)


def _hidden_of(mode: str, state) -> Tensor:
    return state[0] if mode == "LSTM" else state


# ---- multi-layer, maybe bidirectional ----------------------------------------------------------------------------
class RNNBase(Module):
    """What RNN, LSTM and GRU share: PyTorch's arguments, parameters, init and forward over a whole sequence.

    input [T, B, in] (or [B, T, in] with batch_first, or unbatched [T, in]); initial state [L·D, B, H] (L layers,
    D = 2 if bidirectional else 1; unbatched [L·D, H]), zeros when omitted, (h0, c0) for LSTM.
    Returns output [T, B, D·H] (the last layer's h at every step, forward and reverse halves concatenated; batch
    first / unbatched like the input) and the final state [L·D, B, H] (h_n, or (h_n, c_n) for LSTM), ordered
    layer by layer, forward before reverse. `dropout` applies to the outputs of every layer but the last, in training.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: str | None = None, dtype=None):
        super().__init__()
        name = _layer_name(mode)
        if proj_size:
            raise NotImplementedError(f"{name}: proj_size={proj_size} is not supported (projected LSTMs are out of "
                                      "scope); leave proj_size=0")
        if hidden_size < 1 or num_layers < 1 or input_size < 1:
            raise ValueError(f"{name}: input_size {input_size}, hidden_size {hidden_size} and num_layers "
                             f"{num_layers} must be positive")
        if not 0 <= dropout < 1:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout={dropout} acts between layers, so with num_layers=1 it does nothing",
                          UserWarning, stacklevel=2)
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, float(dropout), bidirectional
        self.proj_size = 0
        gate_size = GATES[mode] * hidden_size
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                setattr(self, "weight_ih" + suffix, _new_parameter((gate_size, layer_input), dtype, device))
                setattr(self, "weight_hh" + suffix, _new_parameter((gate_size, hidden_size), dtype, device))
                if bias:
                    setattr(self, "bias_ih" + suffix, _new_parameter((gate_size,), dtype, device))
                    setattr(self, "bias_hh" + suffix, _new_parameter((gate_size,), dtype, device))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(±1/√hidden_size), as PyTorch."""
        bound = 1 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            init.uniform_(param, -bound, bound)

    def flatten_parameters(self) -> None:
        """A no-op kept for PyTorch programs (cuDNN wants one contiguous weight buffer; there is no cuDNN here)."""

    def _weights(self, layer: int, direction: int) -> tuple:
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        bias = (getattr(self, "bias_ih" + suffix), getattr(self, "bias_hh" + suffix)) if self.bias else (None, None)
        return getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix), *bias

    def forward(self, input: Tensor, hx=None):
        name = _layer_name(self.mode)
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            layout = "[B, T, in]" if self.batch_first else "[T, B, in]"
            raise ValueError(f"{name}: input {input.shape} does not fit input_size {self.input_size} "
                             f"(expected {layout} or unbatched [T, in])")
        batched = input.ndim == 3
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)
        steps, batch = x.shape[0], x.shape[1]
        directions = 2 if self.bidirectional else 1
        states = self._initial_states(hx, input.shape, batch, x)
        final_states = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                state = (states[0][index], states[1][index]) if self.mode == "LSTM" else states[index]
                hidden_seq, state = _run_sequence(self.mode, x, state, *self._weights(layer, direction),
                                                  reverse=direction == 1, steps=steps)
                outputs.append(hidden_seq)
                final_states.append(state)
            x = outputs[0] if directions == 1 else cat(outputs, -1)
            if layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, self.training)
        output = x.transpose(0, 1) if batched and self.batch_first else x if batched else x.squeeze(1)
        if self.mode == "LSTM":
            final = tuple(_stack_states([s[k] for s in final_states], batched) for k in (0, 1))
        else:
            final = _stack_states(final_states, batched)
        return output, final

    def _initial_states(self, hx, input_shape: tuple, batch: int, x: Tensor):
        """h0 (and c0) as [L·D, B, H] Tensors: the given ones, checked and made batched, or zeros."""
        name, batched = _layer_name(self.mode), len(input_shape) == 3
        shape = (self.num_layers * (2 if self.bidirectional else 1), batch, self.hidden_size)
        if hx is None:
            state = zeros(*shape, dtype=x.dtype, device=x.device)
            return (state, state) if self.mode == "LSTM" else state
        given = hx if self.mode == "LSTM" else (hx,)
        if self.mode == "LSTM" and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"{name}: hx must be a tuple (h0, c0), got {type(hx).__name__}")
        labels = ("h0", "c0") if self.mode == "LSTM" else ("hx",)
        expected = shape if batched else (shape[0], shape[2])
        for label, state in zip(labels, given):
            if state.shape != expected:
                raise ValueError(f"{name}: {label} {state.shape} does not fit input {input_shape} (expected "
                                 f"{expected}: [num_layers·directions, B, hidden_size], unbatched without B)")
        states = tuple(s if batched else s.unsqueeze(1) for s in given)
        return states if self.mode == "LSTM" else states[0]

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.mode == "RNN_RELU":
            text += ", nonlinearity='relu'"
        for option, default in (("num_layers", 1), ("bias", True), ("batch_first", False), ("dropout", 0.0),
                                ("bidirectional", False)):
            if getattr(self, option) != default:
                text += f", {option}={getattr(self, option)}"
        return text


def _run_sequence(mode: str, x: Tensor, state, weight_ih, weight_hh, bias_ih, bias_hh, reverse: bool, steps: int):
    """One layer in one direction over x [T, B, in]: the input projection as one GEMM, then the recurrence.
    Returns (h at every step [T, B, H] in time order, the final state)."""
    input_gates = F.linear(x, weight_ih, bias_ih)  # [T, B, G·H]
    hidden = [None] * steps
    for t in reversed(range(steps)) if reverse else range(steps):
        state = _rnn_step(mode, input_gates[t], state, weight_hh, bias_hh)
        hidden[t] = _hidden_of(mode, state)
    return stack(hidden), state


def _stack_states(states: list, batched: bool) -> Tensor:
    stacked = stack(states)  # [L·D, B, H]
    return stacked if batched else stacked.squeeze(1)


def _layer_name(mode: str) -> str:
    return "RNN" if mode.startswith("RNN") else mode


class RNN(RNNBase):
    """Elman RNN, h' = tanh or relu(W_ih x + b_ih + W_hh h + b_hh), stacked and optionally bidirectional.
    PyTorch's signature: RNN(input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True, ...)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: str | None = None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(f"RNN_{nonlinearity.upper()}", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), gates i, f, g, o; forward(input, (h0, c0)) returns
    (output, (h_n, c_n)). `proj_size` is refused (NotImplementedError)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: str | None = None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al. 2014) in PyTorch's form, gates r, z, n, with the reset gate applied after
    the hidden projection: n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: str | None = None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


# ---- cells ---------------------------------------------------------------------------------------------------------
class RNNCellBase(Module):
    """One time step: input [B, in] or [in], state [B, H] or [H] (zeros when omitted) → the next state."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool = True, device: str | None = None,
                 dtype=None):
        super().__init__()
        self.mode, self.input_size, self.hidden_size, self.bias = mode, input_size, hidden_size, bias
        gate_size = GATES[mode] * hidden_size
        self.weight_ih = _new_parameter((gate_size, input_size), dtype, device)
        self.weight_hh = _new_parameter((gate_size, hidden_size), dtype, device)
        self.register_parameter("bias_ih", _new_parameter((gate_size,), dtype, device) if bias else None)
        self.register_parameter("bias_hh", _new_parameter((gate_size,), dtype, device) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(±1/√hidden_size), as PyTorch."""
        bound = 1 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            init.uniform_(param, -bound, bound)

    def forward(self, input: Tensor, hx=None):
        name = type(self).__name__
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input {input.shape} does not fit input_size {self.input_size} "
                             "(expected [B, in] or unbatched [in])")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        expected = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        if hx is None:
            state = zeros(x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)
            states = (state, state) if self.mode == "LSTM" else (state,)
        else:
            if self.mode == "LSTM" and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
                raise TypeError(f"{name}: hx must be a tuple (h, c), got {type(hx).__name__}")
            given = tuple(hx) if self.mode == "LSTM" else (hx,)
            for state in given:
                if state.shape != expected:
                    raise ValueError(f"{name}: state {state.shape} does not fit input {input.shape} "
                                     f"(expected {expected})")
            states = given if batched else tuple(s.unsqueeze(0) for s in given)
        input_gates = F.linear(x, self.weight_ih, self.bias_ih)
        new = _rnn_step(self.mode, input_gates, states if self.mode == "LSTM" else states[0], self.weight_hh,
                        self.bias_hh)
        new = new if self.mode == "LSTM" else (new,)
        new = new if batched else tuple(s.squeeze(0) for s in new)
        return new if self.mode == "LSTM" else new[0]

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        text += "" if self.bias else ", bias=False"
        return text + (", nonlinearity='relu'" if self.mode == "RNN_RELU" else "")


class RNNCell(RNNCellBase):
    """h' = tanh or relu(W_ih x + b_ih + W_hh h + b_hh). PyTorch's signature:
    RNNCell(input_size, hidden_size, bias=True, nonlinearity='tanh')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device: str | None = None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(f"RNN_{nonlinearity.upper()}", input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity


class LSTMCell(RNNCellBase):
    """One LSTM step: cell(input, (h, c)) → (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: str | None = None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)


class GRUCell(RNNCellBase):
    """One GRU step: cell(input, h) → h'."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: str | None = None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)

