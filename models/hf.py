"""Loading and saving Hugging Face checkpoints: the one `from_pretrained` / `save_pretrained` path of every model.

A checkpoint directory holds `config.json` and `model.safetensors` (or `model.safetensors.index.json`, whose
`weight_map` names the shard file of each key). A model class opts in by subclassing `PretrainedModel` and
declaring, beside its modules, how its names differ from the files (see MODELS.md §0.1–0.2):

    config_class       the config dataclass; its field names are the config.json keys, its annotations their types
    base_model_prefix  the trunk's attribute ("transformer", "bert", "model"): head models add it to bare keys,
                       trunk models strip it (and drop the head's keys) when reading a head checkpoint
    hf_transposed      name suffixes stored transposed in the files (GPT-2's Conv1D weights are [in, out])
    hf_ignored         regular expressions for keys to skip (old buffers such as GPT-2's `attn.bias`)
    hf_tied            {target: source}: with `tie_word_embeddings`, the target shares the source's Parameter
    hf_fresh           regular expressions for keys a file may lack (a new task head such as BERT's classifier):
                       they keep their initialisation, as transformers' "newly initialized" weights

A config class may list `hf_legacy_keys`: config.json keys that are not fields but that its constructor accepts
and folds into fields (LLaMA's top-level `rope_theta` and `rope_scaling`, as `dataclasses.InitVar`s), so
they are read but never written back.

Loading also renames the legacy `gamma`/`beta` to `weight`/`bias` and skips `position_ids` and `inv_freq` buffers.
Every file is read through `tinytensor.io`: config.json's values are checked against the config's annotations
(ConfigError names the file and the key), damaged weights raise CheckpointError naming the file, and the shards an
index names must lie inside the directory (UnsafePathError otherwise).

It also holds what every model file shares at its inputs: `as_input_ids` (ids [B, T], T ≥ 1, integers; errors say
what was given), `as_attention_mask` and `key_padding_mask` (attention_mask [B, Tk], checked against the ids, with
1 = token → a boolean [B, 1, 1, Tk] that masks keys only, MODELS.md §0.3), `as_ids` (labels, token types) and
`ACTIVATIONS` (config strings → functions, §0.4), and `EmbeddingsEntry`, the split forward of every
`*ForSequenceClassification` (`embed` then `forward_embeddings`, so SiFT can perturb the embeddings in between).

Tying follows transformers: a target missing from the file is tied to its source; present and equal, tied;
present and different, untied (the target gets its own Parameter). Saving writes every state_dict key except
tied targets, in the model's dtype, with safetensors metadata {"format": "pt"} and a strictly typed config
(ints as JSON ints, floats as JSON floats), so `transformers` loads the directory with no missing or unexpected keys.
"""
from __future__ import annotations

import dataclasses
import json
import re
import typing
from pathlib import Path

import numpy

import tinytensor as tt
import tinytensor.nn as nn
import tinytensor.nn.functional as F
from tinytensor import backend
from tinytensor.io import (CheckpointError, ConfigError, atomic_write_bytes, atomic_write_text, check_type,
                          field_types, file_errors, path_inside, read_json_fields, read_safetensors, require_file,
                          weights_file_bytes)

def gelu_tanh(x: tt.Tensor) -> tt.Tensor:
    """GPT-2's GELU, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))): `gelu_new` in Hugging Face's configs."""
    return F.gelu(x, approximate="tanh")


ACTIVATIONS = {"gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "gelu_fast": gelu_tanh, "gelu": F.gelu,
               "relu": F.relu, "silu": F.silu, "swish": F.silu,
               "tanh": tt.tanh}  # MODELS.md §0.4; `gelu` is the exact erf form; tanh is DeBERTa-v2's conv_act


def as_ids(ids, device: str | None = None) -> tt.Tensor:
    """Token ids (or masks, labels, positions) as an integer Tensor on `device`, the model's.

    Host data (lists, NumPy arrays) is placed on `device`; a Tensor must already be there: moving it silently
    would hide a copy in every call, so a Tensor on another device is an error naming both."""
    if not isinstance(ids, tt.Tensor):
        return tt.tensor(ids, device=device)
    if device is not None and ids.device != backend.normalize_device(device):
        raise RuntimeError(f"ids are a Tensor on {ids.device} but the model is on {device}; "
                           f"move them with .to('{device}') or pass host data (a list or NumPy array)")
    return ids


class EmbeddingsEntry:
    """forward(ids) = forward_embeddings(embed(ids)), and the single-label `loss`: the classifiers of bert.py,
    classification.py and deberta_v2.py define the two halves. The models take token ids only, so SiFT
    (train/sift.py) needs this second entry to perturb the embedding layer's output [B, T, E]."""

    def forward(self, input_ids, token_type_ids=None, attention_mask=None) -> tt.Tensor:
        """input_ids, token_type_ids, attention_mask [B, T] → logits [B, num_labels]."""
        return self.forward_embeddings(self.embed(input_ids, token_type_ids, attention_mask), attention_mask)

    @staticmethod
    def loss(logits: tt.Tensor, labels) -> tt.Tensor:
        """Single-label classification: mean cross entropy against labels [B]."""
        return F.cross_entropy(logits, as_ids(labels, logits.device))


def model_device(model: nn.Module) -> str:
    """Where a model's parameters live: the device its entry points put host inputs on."""
    return next(iter(model.parameters())).device


def as_input_ids(input_ids, device: str | None = None) -> tt.Tensor:
    """input_ids as an integer Tensor [B, T] with T ≥ 1 on `device` (the model's; see `as_ids`), what every model's
    forward and `generate` take; errors say what was given. (The embedding then checks each id against the
    vocabulary and names the first one outside.)"""
    ids = as_ids(input_ids, device)
    if ids.ndim != 2:
        hint = "; add a batch axis, e.g. ids[None]" if ids.ndim == 1 else ""
        raise ValueError(f"input_ids must be 2-D [batch, time], got shape {ids.shape}{hint}")
    if ids.shape[1] == 0:
        raise ValueError(f"input_ids must hold at least one token per row, got shape {ids.shape}")
    if ids.dtype.kind not in "iu":
        raise TypeError(f"input_ids must be integers, got dtype {ids.dtype}")
    return ids


def as_attention_mask(attention_mask, like: tt.Tensor, past: int = 0) -> tt.Tensor | None:
    """attention_mask (1 = token, 0 = pad) as a Tensor on `like`'s device, checked to be [B, past + T] for `like`
    = input_ids [B, T] or embeddings [B, T, H] (`past`: keys already in a cache). None stays None."""
    if attention_mask is None:
        return None
    mask = as_ids(attention_mask, like.device)
    expected = (like.shape[0], past + like.shape[1])
    if mask.shape != expected:
        keys = f"{past} cached + {like.shape[1]} new" if past else "time"
        raise ValueError(f"attention_mask has shape {mask.shape}; expected {expected} = [batch, {keys}], "
                         f"one entry per token of input_ids")
    return mask


def key_padding_mask(attention_mask, like: tt.Tensor, past: int = 0):
    """attention_mask [B, Tk] (1 = token, 0 = pad; checked by `as_attention_mask`) → a boolean keep mask
    [B, 1, 1, Tk] over keys only, as Hugging Face's BERT, GPT-2 and LLaMA mask (pad query rows still attend;
    their outputs are unspecified)."""
    mask = as_attention_mask(attention_mask, like, past)
    return None if mask is None else mask.data[:, None, None, :] != 0


CONFIG_FILE = "config.json"
SIZE_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "embedding_size", "n_embd", "n_inner")


def check_sizes_fit_weights(config, state: dict[str, numpy.ndarray], config_path: Path) -> None:
    """Each size the config names (hidden_size, vocab_size, …) must be the length of some axis of the weights.
    Checked before the model is built: a config.json that lost a key takes its class's default, and LLaMA's
    defaults (4096 wide, 32 layers) would allocate 7 billion parameters before the weights could disagree."""
    lengths = {n for array in state.values() for n in array.shape}
    for field in SIZE_FIELDS:
        size = getattr(config, field, None)
        if isinstance(size, int) and not isinstance(size, bool) and size > 0 and size not in lengths:
            raise ConfigError(config_path, f"{field} {size} is not the length of any axis of the weights; the config "
                                           "does not describe this checkpoint")
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
LAYOUT = (f"a Hugging Face checkpoint directory holds {CONFIG_FILE} and {WEIGHTS_FILE}, or {WEIGHTS_INDEX_FILE} "
          "with its shards")
ALWAYS_IGNORED = (r"(^|\.)position_ids$", r"(^|\.)rotary_emb\.inv_freq$")
LEGACY_SUFFIXES = {".gamma": ".weight", ".beta": ".bias"}
DTYPES = {"float32": tt.float32, "float64": tt.float64}


class PretrainedModel(nn.Module):
    """A Module that reads and writes Hugging Face checkpoint directories (see the module docstring)."""

    config_class: type
    base_model_prefix: str = ""
    hf_transposed: tuple[str, ...] = ()
    hf_ignored: tuple[str, ...] = ()
    hf_tied: dict[str, str] = {}
    hf_fresh: tuple[str, ...] = ()

    @classmethod
    def from_pretrained(cls, directory, dtype=tt.float32) -> PretrainedModel:
        """Build the model from `directory`'s config.json and weights (float32, float16 or bfloat16 files, or
        float64), computing in `dtype` (None: the files' dtype; bfloat16 files and tt.bfloat16 compute in float32,
        which holds every bf16 number exactly)."""
        directory = Path(directory)
        config = read_config(cls.config_class, directory)
        state = read_weights(directory)
        check_sizes_fit_weights(config, state, directory / CONFIG_FILE)
        if dtype is None:
            dtype = _floating_dtype(state, directory)
        with file_errors(directory / CONFIG_FILE):  # sizes the config allows but no array can have (-1, ...)
            model = cls(config)
        model.to(tt.backend.as_dtype(dtype)).load_hf_state_dict(state, source=directory)
        return model

    def load_hf_state_dict(self, state: dict[str, numpy.ndarray], source: str | Path = "state dict") -> None:
        """Load arrays named as in a Hugging Face file (any legacy form) into this model. CheckpointError, naming
        `source` (a checkpoint directory), lists missing and unexpected keys and shape mismatches."""
        targets = self.state_dict()
        state = self._rename_from_hf(state, targets)
        for target, source_key in self._tied_pairs():
            if target not in state and source_key in state:
                state[target] = state[source_key]
            elif target in state and source_key in state and not numpy.array_equal(state[target], state[source_key]):
                _untie(self, target)  # transformers keeps two different matrices apart (and warns)
        fresh = re.compile("|".join(self.hf_fresh)) if self.hf_fresh else None
        for name in targets:
            if name not in state and fresh and fresh.search(name):
                state[name] = targets[name]  # keeps its initialisation
        missing = [name for name in targets if name not in state]
        unexpected = [name for name in state if name not in targets]
        if missing or unexpected:
            raise CheckpointError(source, f"weights do not fit {type(self).__name__}: missing keys "
                                          f"{missing or 'none'}; unexpected keys {unexpected or 'none'}")
        try:
            self.load_state_dict(state)
        except RuntimeError as error:  # shape mismatches, listed by load_state_dict
            raise CheckpointError(source, str(error)) from None

    def save_pretrained(self, directory, dtype=None) -> None:
        """Write config.json and model.safetensors in Hugging Face's layout, tied targets left out, in the model's
        dtype or in `dtype` ("float32", "float16", "bfloat16" or tt.bfloat16 …: bf16 rounds to nearest even, as
        torch does), with config.json's "dtype" saying which."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        for target, source_key in self._tied_pairs():
            if state[target].data is state[source_key].data:
                del state[target]
        arrays = {name: self._to_hf_layout(name, backend.to_numpy(tensor.data)) for name, tensor in state.items()}
        if dtype is None:
            dtype = next(iter(arrays.values())).dtype.name
        elif isinstance(dtype, (str, backend.StorageDtype)) and dtype == tt.bfloat16:
            dtype = tt.bfloat16.name
        else:
            dtype = numpy.dtype(dtype).name
        atomic_write_bytes(directory / WEIGHTS_FILE, weights_file_bytes(arrays, {"format": "pt"}, dtype))
        atomic_write_text(directory / CONFIG_FILE, json.dumps(config_to_dict(self.config, type(self).__name__, dtype),
                                                              indent=2, sort_keys=True) + "\n")

    def _tied_pairs(self) -> list[tuple[str, str]]:
        return list(self.hf_tied.items()) if getattr(self.config, "tie_word_embeddings", False) else []

    def _to_hf_layout(self, name: str, array: numpy.ndarray) -> numpy.ndarray:
        array = array.T if name.endswith(self.hf_transposed) else array
        return numpy.ascontiguousarray(array)

    def _rename_from_hf(self, state: dict[str, numpy.ndarray], targets) -> dict[str, numpy.ndarray]:
        """Our names and layout for a file's arrays: legacy suffixes renamed, buffers dropped, the base-model
        prefix added or stripped, Conv1D-style weights transposed."""
        ignored = re.compile("|".join(ALWAYS_IGNORED + self.hf_ignored))
        renamed = {}
        for name, array in state.items():
            for old, new in LEGACY_SUFFIXES.items():
                name = name[:-len(old)] + new if name.endswith(old) else name
            if not ignored.search(name):
                renamed[name] = array
        prefix = f"{self.base_model_prefix}." if self.base_model_prefix else None
        if prefix and any(name.startswith(prefix) for name in targets):  # a head model: bare trunk keys gain it
            renamed = {(prefix + name if name not in targets and prefix + name in targets else name): array
                       for name, array in renamed.items()}
        elif prefix and any(name.startswith(prefix) for name in renamed):  # a trunk reading a head checkpoint
            renamed = {name[len(prefix):]: array for name, array in renamed.items() if name.startswith(prefix)}
        return {name: self._to_hf_layout(name, array) for name, array in renamed.items()}


def read_config(config_class: type, directory: Path):
    """The config dataclass from directory/config.json: known keys only, each checked against its annotation by
    `tinytensor.io.check_type` (transformers ignores unknown keys such as `n_ctx` too). ConfigError names the file
    and the key for a value of the wrong type, an unsupported value (the config's own checks), or a config that is
    not a JSON object; FileNotFoundError says what the directory should hold."""
    path = require_file(directory / CONFIG_FILE, LAYOUT)
    fields = read_json_fields(path, {**field_types(config_class), "model_type": str})
    model_type = fields.pop("model_type", config_class.model_type)
    if model_type != config_class.model_type:
        raise ConfigError(path, f"model_type is {model_type!r}; {config_class.__name__} reads "
                                f"{config_class.model_type!r}")
    with file_errors(path):
        return config_class(**fields)


def config_to_dict(config, architecture: str, dtype: str) -> dict:
    """config.json contents: every field in its annotated type, plus model_type, architectures and dtype."""
    hints = typing.get_type_hints(type(config))
    fields = {field.name: check_type(getattr(config, field.name), hints[field.name], field.name)
              for field in dataclasses.fields(config)}
    return {**fields, "model_type": config.model_type, "architectures": [architecture], "dtype": dtype}


def read_weights(directory: Path) -> dict[str, numpy.ndarray]:
    """Every array of directory/model.safetensors, or of the shards listed in model.safetensors.index.json (each
    shard a file inside `directory`). CheckpointError names a damaged file, an index without a `weight_map`
    object, or files that hold no tensors; UnsafePathError a shard outside the directory."""
    index = directory / WEIGHTS_INDEX_FILE
    if (directory / WEIGHTS_FILE).exists() or not index.exists():
        source, state = directory / WEIGHTS_FILE, read_safetensors(directory / WEIGHTS_FILE, hint=LAYOUT)
    else:
        weight_map = read_json_fields(index, {"weight_map": dict[str, str]}, required=["weight_map"],
                                      error=CheckpointError)["weight_map"]
        source, state = index, {}
        for shard in sorted(set(weight_map.values())):
            state.update(read_safetensors(path_inside(directory, shard, index, "weight_map entry"),
                                          hint=f"a shard named by {index}"))
    if not state:
        raise CheckpointError(source, "holds no tensors")
    return state


def _floating_dtype(state: dict[str, numpy.ndarray], directory: Path):
    """The dtype of the files' first array, which must be a floating one (a model in another dtype cannot train)."""
    dtype = next(iter(state.values())).dtype
    if not tt.backend.is_floating(dtype):
        raise CheckpointError(directory, f"weights have dtype {dtype}; pass a floating dtype to from_pretrained")
    return dtype


def _untie(model: nn.Module, name: str) -> None:
    """Give the parameter at dotted `name` its own storage, so it no longer shares its source's."""
    *path, attribute = name.split(".")
    module = model
    for part in path:
        module = getattr(module, part)
    shared = getattr(module, attribute)
    setattr(module, attribute, nn.Parameter(shared.data.copy()))
