"""Tests for tinytensor.nn.module: registration order, traversal, state dicts, dtype/device moves, modes, repr."""
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytensor as tt
import tinytensor.nn as nn  # noqa: PLR0402 - DESIGN.md spelling; `from tinytensor import nn` hits tt.ops.nn


class Block(nn.Module):
    """A small two-layer module with a persistent and a non-persistent buffer."""

    def __init__(self, width: int = 3):
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        self.register_buffer("steps", tt.zeros(1, dtype=tt.int64))
        self.register_buffer("table", tt.ones(width), persistent=False)

    def forward(self, x):
        return self.norm(self.fc(x))


class TiedModel(nn.Module):
    """An embedding whose weight is reused by the output head (GPT-2 style weight tying)."""

    def __init__(self, vocab: int = 5, width: int = 3):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList([Block(width), Block(width)])
        self.lm_head = nn.Linear(width, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, ids):
        h = self.wte(ids)
        for block in self.blocks:
            h = block(h)
        return self.lm_head(h)


EXPECTED_NAMES = ["wte.weight",
                  "blocks.0.fc.weight", "blocks.0.fc.bias", "blocks.0.norm.weight", "blocks.0.norm.bias",
                  "blocks.1.fc.weight", "blocks.1.fc.bias", "blocks.1.norm.weight", "blocks.1.norm.bias"]


# ---- registration and traversal -------------------------------------------------------------------------------------
def test_named_parameters_follow_registration_order_and_list_a_tied_weight_once():
    assert [name for name, _ in TiedModel().named_parameters()] == EXPECTED_NAMES


def test_parameter_order_is_the_same_across_two_constructions():
    first = [(name, p.shape) for name, p in TiedModel().named_parameters()]
    second = [(name, p.shape) for name, p in TiedModel().named_parameters()]
    assert first == second


def test_parameters_recurse_false_lists_only_the_modules_own():
    block = Block()
    assert list(block.parameters(recurse=False)) == []
    assert [name for name, _ in block.fc.named_parameters(prefix="fc", recurse=False)] == ["fc.weight", "fc.bias"]


def test_num_parameters_counts_tied_weights_once_and_can_skip_frozen_ones():
    model = TiedModel(vocab=5, width=3)
    per_block = 3 * 3 + 3 + 3 + 3
    assert model.num_parameters() == 5 * 3 + 2 * per_block
    model.wte.weight.requires_grad = False
    assert model.num_parameters(trainable_only=True) == 2 * per_block


def test_named_modules_and_children_walk_depth_first_in_registration_order():
    model = TiedModel()
    assert [name for name, _ in model.named_modules()] == [
        "", "wte", "blocks", "blocks.0", "blocks.0.fc", "blocks.0.norm", "blocks.1", "blocks.1.fc",
        "blocks.1.norm", "lm_head"]
    assert [name for name, _ in model.named_children()] == ["wte", "blocks", "lm_head"]
    assert list(model.children())[1] is model.blocks


def test_buffers_are_listed_with_qualified_names():
    assert [name for name, _ in TiedModel().named_buffers()] == [
        "blocks.0.steps", "blocks.0.table", "blocks.1.steps", "blocks.1.table"]
    assert len(list(Block().buffers())) == 2


def test_reassigning_a_submodule_keeps_its_place_and_none_unregisters_a_parameter():
    block = Block()
    block.fc = nn.Linear(3, 3, bias=False)
    assert [name for name, _ in block.named_parameters()] == ["fc.weight", "norm.weight", "norm.bias"]
    block.extra = nn.Parameter(tt.zeros(2))
    assert "extra" in dict(block.named_parameters())
    block.extra = None
    assert block.extra is None and "extra" not in dict(block.named_parameters())


def test_assigning_a_plain_tensor_to_a_parameter_name_is_refused():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="Parameter"):
        layer.weight = tt.zeros(2, 2)


def test_assigning_a_tensor_to_a_buffer_name_replaces_the_buffer():
    block = Block()
    block.steps = tt.ones(1, dtype=tt.int64)
    assert block.state_dict()["steps"].tolist() == [1]


def test_forgetting_super_init_gives_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match=re.escape("super().__init__()")):
        Broken()


def test_deleting_an_attribute_unregisters_it():
    block = Block()
    del block.norm
    assert [name for name, _ in block.named_children()] == ["fc"]


# ---- Parameter ----------------------------------------------------------------------------------------------------
def test_parameter_requires_grad_shares_data_and_says_parameter_in_its_repr():
    source = tt.tensor(np.array([1.0, 2.0]))
    param = nn.Parameter(source)
    assert param.requires_grad and param.is_leaf
    assert param.data is source.data
    assert repr(param).startswith("Parameter containing:")


def test_parameter_refuses_integer_data():
    with pytest.raises(TypeError, match="floating"):
        nn.Parameter(np.arange(3), requires_grad=False)


# ---- state dicts ----------------------------------------------------------------------------------------------------
def test_state_dict_has_parameters_and_persistent_buffers_under_every_name_detached_and_shared():
    model = TiedModel()
    state = model.state_dict()
    assert list(state) == ["wte.weight",  # each module's own tensors, then its children's (PyTorch's order)
                           "blocks.0.steps", "blocks.0.fc.weight", "blocks.0.fc.bias", "blocks.0.norm.weight",
                           "blocks.0.norm.bias",
                           "blocks.1.steps", "blocks.1.fc.weight", "blocks.1.fc.bias", "blocks.1.norm.weight",
                           "blocks.1.norm.bias", "lm_head.weight"]
    assert not any(isinstance(t, nn.Parameter) or t.requires_grad for t in state.values())
    assert state["wte.weight"].data is model.wte.weight.data
    assert state["lm_head.weight"].data is model.wte.weight.data


@given(st.integers(0, 2**31 - 1))
def test_state_dict_then_load_state_dict_round_trips_exactly(seed):
    tt.manual_seed(seed)
    source = TiedModel()
    source.blocks[0].steps = tt.tensor([seed], dtype=tt.int64)
    target = TiedModel()
    target.load_state_dict(source.state_dict())
    for (name, expected), got in zip(source.state_dict().items(), target.state_dict().values()):
        np.testing.assert_array_equal(got.numpy(), expected.numpy(), err_msg=name)
    ids = np.array([[0, 4, 2]])
    np.testing.assert_array_equal(target(ids).numpy(), source(ids).numpy())


def test_load_state_dict_copies_into_the_same_parameter_objects_and_arrays():
    target = Block()
    weight, weight_array = target.fc.weight, target.fc.weight.data
    target.load_state_dict(Block().state_dict())
    assert target.fc.weight is weight and target.fc.weight.data is weight_array


def test_load_state_dict_error_names_missing_unexpected_and_mismatched_keys_in_one_message():
    state = Block().state_dict()
    del state["norm.bias"]
    state["extra.weight"] = tt.zeros(2)
    state["fc.weight"] = tt.zeros(3, 4)
    with pytest.raises(RuntimeError) as error:
        Block().load_state_dict(state)
    message = str(error.value)
    assert "missing keys: norm.bias" in message
    assert "unexpected keys: extra.weight" in message
    assert "size mismatch for fc.weight: expected shape (3, 3), got shape (3, 4)" in message


def test_load_state_dict_writes_nothing_when_any_shape_mismatches():
    target = Block()
    before = target.fc.bias.numpy().copy()
    state = Block().state_dict()
    state["norm.weight"] = tt.zeros(5)
    with pytest.raises(RuntimeError, match="size mismatch for norm.weight"):
        target.load_state_dict(state, strict=False)
    np.testing.assert_array_equal(target.fc.bias.numpy(), before)


def test_load_state_dict_non_strict_returns_missing_and_unexpected_keys():
    state = {"fc.weight": np.ones((3, 3)), "other": np.zeros(1)}
    target = Block()
    result = target.load_state_dict(state, strict=False)
    assert result.missing_keys == ["steps", "fc.bias", "norm.weight", "norm.bias"]
    assert result.unexpected_keys == ["other"]
    np.testing.assert_array_equal(target.fc.weight.numpy(), np.ones((3, 3), dtype=np.float32))


def test_load_state_dict_casts_values_to_each_parameters_dtype():
    target = nn.Linear(2, 2)
    target.load_state_dict({"weight": np.full((2, 2), 0.1, dtype=np.float64), "bias": tt.zeros(2, dtype=tt.float64)})
    assert target.weight.dtype == tt.float32
    np.testing.assert_array_equal(target.weight.numpy(), np.full((2, 2), 0.1, dtype=np.float32))


def test_loading_a_tied_model_writes_the_shared_weight_from_either_key():
    source, target = TiedModel(), TiedModel()
    state = source.state_dict()
    del state["lm_head.weight"]
    result = target.load_state_dict(state, strict=False)
    assert result.missing_keys == ["lm_head.weight"]
    np.testing.assert_array_equal(target.lm_head.weight.numpy(), source.wte.weight.numpy())


# ---- dtype, device, modes -----------------------------------------------------------------------------------------
def test_to_float64_and_back_keeps_values_and_parameter_identity():
    model = TiedModel()
    params = list(model.parameters())
    before = [p.numpy().copy() for p in params]
    assert model.to(tt.float64) is model
    assert all(p.dtype == tt.float64 for p in model.parameters())
    model.to(tt.float32)
    after = list(model.parameters())
    assert all(a is b for a, b in zip(after, params))
    for p, values in zip(after, before):
        assert p.dtype == tt.float32
        np.testing.assert_array_equal(p.numpy(), values)


def test_to_casts_floating_buffers_and_gradients_but_not_integer_buffers():
    block = Block()
    block.fc.weight.grad = tt.ones(3, 3)
    block.double()
    assert block.steps.dtype == tt.int64
    assert block.table.dtype == tt.float64
    assert block.fc.weight.grad.dtype == tt.float64


def test_to_refuses_integer_dtypes():
    with pytest.raises(TypeError, match="floating"):
        Block().to(tt.int32)


def test_module_to_device_keeps_parameter_identity(device):
    model = TiedModel()
    params = list(model.parameters())
    model.to(device)
    assert all(a is b for a, b in zip(model.parameters(), params))
    assert {p.device for p in model.parameters()} | {b.device for b in model.buffers()} == {device}
    assert model(np.array([[1, 2]])).device == device
    source = TiedModel()
    model.load_state_dict(source.state_dict())
    assert model.wte.weight.device == device
    np.testing.assert_array_equal(model.wte.weight.numpy(), source.wte.weight.numpy())


def test_train_and_eval_propagate_to_every_submodule():
    model = TiedModel()
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.blocks.train()
    assert model.blocks[1].norm.training and not model.training


def test_zero_grad_drops_gradients_or_fills_them_with_new_zero_arrays():
    layer = nn.Linear(2, 2)
    layer(tt.ones(1, 2)).sum().backward()
    old_grad = layer.weight.grad.data
    layer.zero_grad(set_to_none=False)
    assert layer.weight.grad.data is not old_grad and not layer.weight.grad.data.any() and old_grad.any()
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


def test_requires_grad_false_freezes_every_parameter():
    model = TiedModel().requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


def test_apply_visits_children_before_their_parent_and_returns_self():
    model = Block()
    visited = []
    assert model.apply(lambda m: visited.append(type(m).__name__)) is model
    assert visited == ["Linear", "LayerNorm", "Block"]


def test_repr_shows_the_nested_structure_with_each_layers_settings():
    text = repr(TiedModel())
    assert text.startswith("TiedModel(\n  (wte): Embedding(5, 3)\n  (blocks): ModuleList(\n    (0): Block(\n")
    assert "      (fc): Linear(in_features=3, out_features=3, bias=True)\n" in text
    assert "      (norm): LayerNorm((3,), eps=1e-05, elementwise_affine=True)\n" in text
    assert text.endswith("  (lm_head): Linear(in_features=3, out_features=5, bias=False)\n)")


# ---- containers ---------------------------------------------------------------------------------------------------
def test_module_list_appends_extends_indexes_and_iterates_in_order():
    layers = nn.ModuleList([nn.Linear(1, 1)])
    layers.append(nn.ReLU()).extend([nn.Linear(1, 2), nn.Linear(2, 3)])
    assert len(layers) == 4
    assert [type(m).__name__ for m in layers] == ["Linear", "ReLU", "Linear", "Linear"]
    assert layers[-1].out_features == 3 and len(layers[1:3]) == 2
    layers[1] = nn.SiLU()
    assert isinstance(layers[1], nn.SiLU) and [name for name, _ in layers.named_children()] == ["0", "1", "2", "3"]
    assert [name for name, _ in layers.named_parameters()][-1] == "3.bias"


def test_module_dict_registers_items_under_their_keys():
    heads = nn.ModuleDict({"mlm": nn.Linear(2, 5), "nsp": nn.Linear(2, 2)})
    heads["sop"] = nn.Linear(2, 2, bias=False)
    assert list(heads) == ["mlm", "nsp", "sop"] and "nsp" in heads and len(heads) == 3
    assert list(heads.state_dict()) == ["mlm.weight", "mlm.bias", "nsp.weight", "nsp.bias", "sop.weight"]
    del heads["nsp"]
    assert list(heads.keys()) == ["mlm", "sop"]


def test_sequential_applies_its_modules_in_order_and_names_them_by_index():
    first, second = nn.Linear(2, 3, dtype=tt.float64), nn.Linear(3, 1, dtype=tt.float64)
    model = nn.Sequential(first, nn.ReLU(), second)
    x = tt.tensor(np.array([[0.5, -1.0]]))
    np.testing.assert_array_equal(model(x).numpy(), second(tt.relu(first(x))).numpy())
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert model[2] is second and len(model) == 3


def test_forward_hooks_record_and_replace_and_pre_hooks_replace_the_arguments():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    seen = []
    record = model[1].register_forward_hook(lambda module, args, output: seen.append((module, output.shape)))
    x = tt.ones(4, 2)
    plain = model(x)
    assert seen == [(model[1], (4, 3))]
    scale = model[2].register_forward_hook(lambda module, args, output: output * 10.0)
    shift = model[0].register_forward_pre_hook(lambda module, args: args[0] + 1.0)  # one value: the new argument
    by_hand = model[2].forward(model[1].forward(model[0].forward(x + 1.0))) * 10.0  # .forward: no hooks
    np.testing.assert_allclose(model(x).numpy(), by_hand.numpy(), rtol=1e-6)
    for handle in (record, scale, shift):
        handle.remove()
    seen.clear()
    np.testing.assert_array_equal(model(x).numpy(), plain.numpy())
    assert seen == []


def test_get_submodule_parameter_and_buffer_by_dotted_path():
    model = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3))
    model[1].register_buffer("scale", tt.ones(3))
    assert model.get_submodule("1") is model[1] and model.get_submodule("") is model
    assert model.get_parameter("0.weight") is model[0].weight and model.get_buffer("1.scale").shape == (3,)
    with pytest.raises(AttributeError, match="has no submodule '5'"):
        model.get_submodule("5.weight")
    with pytest.raises(AttributeError, match="has no parameter 'scale'"):
        model.get_parameter("1.scale")
