"""Tests for tinytensor.nn.recurrent: RNN (tanh, relu), LSTM and GRU and their cells equal torch's to 1e-12 in
float64 (outputs and every gradient, from tests/fixtures/make_rnn_fixture.py; torch is not needed here), their
gradients match finite differences on every backend, a char-RNN written in everyday PyTorch style learns, and
mistakes fail with one line naming the layer and the shapes."""
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import scaled_examples, tensor

import tinytensor as tt
import tinytensor.nn as nn  # noqa: PLR0402 - DESIGN.md spelling; `from tinytensor import nn` hits tt.ops.nn
import tinytensor.nn.functional as F

F64 = tt.float64
FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "rnn_torch.json").read_text(encoding="utf-8"))
LAYERS = {"rnn_tanh": lambda i, h, **kw: nn.RNN(i, h, nonlinearity="tanh", **kw),
          "rnn_relu": lambda i, h, **kw: nn.RNN(i, h, nonlinearity="relu", **kw),
          "lstm": nn.LSTM, "gru": nn.GRU}
CELLS = {"rnn_tanh": lambda i, h, **kw: nn.RNNCell(i, h, nonlinearity="tanh", **kw),
         "rnn_relu": lambda i, h, **kw: nn.RNNCell(i, h, nonlinearity="relu", **kw),
         "lstm": nn.LSTMCell, "gru": nn.GRUCell}


def objective_weights(shape) -> np.ndarray:
    """The fixture script's fixed weights of the summed outputs: sin(1), sin(2), … in row-major order."""
    return np.sin(np.arange(1, int(np.prod(shape)) + 1, dtype=np.float64)).reshape(shape)


def flat_outputs(result) -> list:
    if isinstance(result, tt.Tensor):
        return [result]
    return [out for item in result for out in flat_outputs(item)]


def case_id(case: dict) -> str:
    options = case["options"]
    words = [case["kind"]] + [name for name in ("bidirectional", "batch_first") if options.get(name)]
    words += ["given_state" if case["initial_states"] else "default_state"]
    return "-".join(words)


def assert_matches_torch(module: nn.Module, case: dict) -> None:
    """Load torch's state dict, run the fixture's input, and compare outputs and all gradients to 1e-12."""
    module.load_state_dict({name: np.array(value) for name, value in case["state_dict"].items()})
    x = tt.tensor(np.array(case["input"]), requires_grad=True)
    states = [tt.tensor(np.array(s), requires_grad=True) for s in case["initial_states"]]
    hx = None if not states else tuple(states) if len(states) == 2 else states[0]
    outputs = flat_outputs(module(x) if hx is None else module(x, hx))
    sum((out * tt.tensor(objective_weights(out.shape))).sum() for out in outputs).backward()
    close = {"rtol": 1e-12, "atol": 1e-12}
    assert len(outputs) == len(case["outputs"])
    for out, expected in zip(outputs, case["outputs"]):
        assert out.dtype == F64
        np.testing.assert_allclose(out.numpy(), np.array(expected), **close)
    np.testing.assert_allclose(x.grad.numpy(), np.array(case["input_grad"]), **close)
    for state, expected in zip(states, case["initial_state_grads"]):
        np.testing.assert_allclose(state.grad.numpy(), np.array(expected), **close)
    assert [name for name, _ in module.named_parameters()] == list(case["param_grads"])
    for name, param in module.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), np.array(case["param_grads"][name]), **close, err_msg=name)


# ---- parity with torch ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", FIXTURE["layers"], ids=case_id)
def test_recurrent_layers_match_torch_outputs_and_gradients(case):
    sizes = FIXTURE["sizes"]
    module = LAYERS[case["kind"]](sizes["input"], sizes["hidden"], dtype=F64, **case["options"])
    assert list(module.state_dict()) == list(case["state_dict"])  # PyTorch's names, in PyTorch's order
    assert_matches_torch(module, case)


@pytest.mark.parametrize("case", FIXTURE["cells"], ids=lambda case: case_id(case).replace("-", "_cell-", 1))
def test_recurrent_cells_match_torch_outputs_and_gradients(case):
    sizes = FIXTURE["sizes"]
    assert_matches_torch(CELLS[case["kind"]](sizes["input"], sizes["hidden"], dtype=F64), case)


# ---- finite differences --------------------------------------------------------------------------------------------
@st.composite
def recurrent_configs(draw):
    return {"input_size": draw(st.integers(1, 3)), "hidden_size": draw(st.integers(1, 3)),
            "num_layers": draw(st.integers(1, 2)), "bidirectional": draw(st.booleans()),
            "batch_first": draw(st.booleans()), "bias": draw(st.booleans()),
            "steps": draw(st.integers(1, 3)), "batch": draw(st.integers(1, 2)), "seed": draw(st.integers(0, 99))}


def check_recurrent_gradients(layer_type, config: dict, device: str) -> None:
    """Gradients w.r.t. the input, the initial state(s) and every weight match finite differences."""
    steps, batch, seed = config.pop("steps"), config.pop("batch"), config.pop("seed")
    module = layer_type(**config, dtype=F64).to(device)
    rng = np.random.default_rng(seed)
    for param in module.parameters():
        param.data[...] = tensor(rng.uniform(-0.8, 0.8, param.shape), device, F64).data
    shape = (batch, steps) if config["batch_first"] else (steps, batch)
    x = tensor(rng.standard_normal((*shape, config["input_size"])), device, F64, requires_grad=True)
    state_shape = (config["num_layers"] * (2 if config["bidirectional"] else 1), batch, config["hidden_size"])
    states = [tensor(rng.standard_normal(state_shape), device, F64, requires_grad=True)
              for _ in range(2 if layer_type is nn.LSTM else 1)]

    def run(x, *states_and_params):
        hx = tuple(states_and_params[:2]) if layer_type is nn.LSTM else states_and_params[0]
        return flat_outputs(module(x, hx))
    assert tt.gradcheck(run, [x, *states, *module.parameters()])


@scaled_examples(0.4)
@given(recurrent_configs())
def test_lstm_gradients_match_finite_differences(device, config):
    check_recurrent_gradients(nn.LSTM, config, device)


@scaled_examples(0.4)
@given(recurrent_configs())
def test_gru_gradients_match_finite_differences(device, config):
    check_recurrent_gradients(nn.GRU, config, device)


def test_gru_and_lstm_cells_have_second_derivatives():
    rng = np.random.default_rng(0)
    for cell in (nn.GRUCell(2, 3, dtype=F64), nn.LSTMCell(2, 3, dtype=F64)):
        x = tt.tensor(rng.standard_normal((2, 2)), requires_grad=True)
        h = tt.tensor(rng.standard_normal((2, 3)), requires_grad=True)
        assert tt.gradgradcheck(lambda x, h, cell=cell: flat_outputs(cell(x, h if cell.mode == "GRU" else (h, h)))[0],
                                [x, h])


# ---- behaviour -----------------------------------------------------------------------------------------------------
def test_parameters_start_uniform_within_one_over_sqrt_hidden():
    lstm = nn.LSTM(5, 16, num_layers=2, bidirectional=True)
    values = np.concatenate([p.numpy().ravel() for p in lstm.parameters()])
    assert np.abs(values).max() <= 0.25 and np.abs(values).max() > 0.24 and abs(values.mean()) < 0.02
    assert lstm.weight_ih_l1_reverse.shape == (64, 32) and lstm.bias_hh_l0.shape == (64,)
    assert list(nn.GRU(2, 3, bias=False).state_dict()) == ["weight_ih_l0", "weight_hh_l0"]


def test_default_initial_state_is_zeros_on_the_input_device(device):
    rng = np.random.default_rng(0)
    for layer in (nn.LSTM(3, 4, num_layers=2, dtype=F64), nn.GRU(3, 4, bidirectional=True, dtype=F64)):
        layer.to(device)
        x = tensor(rng.standard_normal((5, 2, 3)), device, F64)
        zeros = tt.zeros(layer.num_layers * (2 if layer.bidirectional else 1), 2, 4, dtype=F64, device=device)
        implicit, explicit = layer(x), layer(x, (zeros, zeros) if isinstance(layer, nn.LSTM) else zeros)
        for got, want in zip(flat_outputs(implicit), flat_outputs(explicit)):
            assert got.device == x.device
            np.testing.assert_array_equal(got.numpy(), want.numpy())
    cell = nn.LSTMCell(3, 4, dtype=F64).to(device)
    h, c = cell(tensor(rng.standard_normal((2, 3)), device, F64))
    assert h.device == c.device == x.device and h.shape == c.shape == (2, 4)


def test_unbatched_input_gives_unbatched_outputs_equal_to_a_batch_of_one():
    gru = nn.GRU(3, 4, num_layers=2, bidirectional=True, dtype=F64)
    x = tt.tensor(np.random.default_rng(0).standard_normal((5, 3)))
    output, h_n = gru(x)
    batched_output, batched_h_n = gru(x.unsqueeze(1))
    assert output.shape == (5, 8) and h_n.shape == (4, 4)
    np.testing.assert_array_equal(output.numpy(), batched_output.numpy()[:, 0])
    np.testing.assert_array_equal(h_n.numpy(), batched_h_n.numpy()[:, 0])


def test_dropout_acts_between_layers_only_in_training():
    rnn = nn.RNN(3, 4, num_layers=2, dropout=0.5)
    x = tt.randn(6, 2, 3)
    rnn.eval()
    first, second = rnn(x)[0].numpy(), rnn(x)[0].numpy()
    np.testing.assert_array_equal(first, second)
    rnn.train()
    assert not np.allclose(rnn(x)[0].numpy(), first)
    with pytest.warns(UserWarning, match="num_layers=1"):
        nn.LSTM(3, 4, dropout=0.2)


def test_float32_layers_stay_float32_and_print_like_pytorch():
    lstm = nn.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)
    output, (h_n, c_n) = lstm(tt.randn(2, 5, 3))
    assert output.dtype == h_n.dtype == c_n.dtype == tt.float32 and output.shape == (2, 5, 8)
    assert repr(lstm) == "LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)"
    assert repr(nn.RNN(2, 3, nonlinearity="relu")) == "RNN(2, 3, nonlinearity='relu')"
    assert repr(nn.GRUCell(2, 3, bias=False)) == "GRUCell(2, 3, bias=False)"


# ---- a classic program -----------------------------------------------------------------------------------------------
def test_char_rnn_in_pytorch_style_learns_and_samples():
    torch = tt  # the program below is PyTorch's with only the import changed
    text = "hello world, hello recurrent world. " * 4
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    data = torch.tensor([stoi[ch] for ch in text])

    class CharRNN(nn.Module):
        def __init__(self, vocab_size, hidden_size=32):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, 16)
            self.lstm = nn.LSTM(16, hidden_size, batch_first=True)
            self.head = nn.Linear(hidden_size, vocab_size)

        def forward(self, idx, hidden=None):
            output, hidden = self.lstm(self.embed(idx), hidden)
            return self.head(output), hidden

    torch.manual_seed(0)
    model = CharRNN(len(chars))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    seq_len, losses = 16, []
    for _ in range(60):
        starts = torch.randint(0, len(data) - seq_len - 1, (8,)).numpy()
        xb = torch.stack([data[s:s + seq_len] for s in starts])
        yb = torch.stack([data[s + 1:s + seq_len + 1] for s in starts])
        logits, _ = model(xb)
        loss = F.cross_entropy(logits.reshape(-1, len(chars)), yb.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])

    model.eval()
    with torch.no_grad():
        idx, hidden, sampled = torch.tensor([[stoi["h"]]]), None, []
        for _ in range(20):
            logits, hidden = model(idx, hidden)
            probs = F.softmax(logits[:, -1, :], dim=-1)
            idx = torch.multinomial(probs, num_samples=1)
            sampled.append(chars[idx.item()])
    assert len(sampled) == 20 and set(sampled) <= set(chars)


# ---- errors --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, call, error, message", [
    (lambda: nn.LSTM(3, 4), lambda m: m(tt.randn(5, 2, 7)), ValueError,
     r"^LSTM: input \(5, 2, 7\) does not fit input_size 3"),
    (lambda: nn.GRU(3, 4, batch_first=True), lambda m: m(tt.randn(2, 5, 3, 1)), ValueError,
     r"^GRU: input \(2, 5, 3, 1\) does not fit input_size 3 \(expected \[B, T, in\]"),
    (lambda: nn.RNN(3, 4, num_layers=2), lambda m: m(tt.randn(5, 2, 3), tt.zeros(1, 2, 4)), ValueError,
     r"^RNN: hx \(1, 2, 4\) does not fit input \(5, 2, 3\) \(expected \(2, 2, 4\)"),
    (lambda: nn.LSTM(3, 4), lambda m: m(tt.randn(5, 2, 3), (tt.zeros(1, 2, 4), tt.zeros(1, 3, 4))), ValueError,
     r"^LSTM: c0 \(1, 3, 4\) does not fit input \(5, 2, 3\)"),
    (lambda: nn.LSTM(3, 4), lambda m: m(tt.randn(5, 3), tt.zeros(1, 4)), TypeError, r"^LSTM: hx must be a tuple"),
    (lambda: nn.LSTMCell(3, 4), lambda m: m(tt.randn(2, 5)), ValueError,
     r"^LSTMCell: input \(2, 5\) does not fit input_size 3"),
    (lambda: nn.GRUCell(3, 4), lambda m: m(tt.randn(2, 3), tt.zeros(3, 4)), ValueError,
     r"^GRUCell: state \(3, 4\) does not fit input \(2, 3\) \(expected \(2, 4\)\)"),
])
def test_shape_mistakes_fail_with_one_line_naming_the_layer_and_shapes(make, call, error, message):
    with pytest.raises(error, match=message) as raised:
        call(make())
    assert "\n" not in str(raised.value)


def test_unsupported_options_are_refused():
    with pytest.raises(NotImplementedError, match="proj_size"):
        nn.LSTM(3, 4, proj_size=2)
    with pytest.raises(TypeError):
        nn.GRU(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        nn.GRU(3, 4, num_layers=2, dropout=1.5)
