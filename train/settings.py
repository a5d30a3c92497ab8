"""What every setting of a command accepts: its type, its domain, its help line, and whether --resume may change it.

Layer: the bottom of `train/`; `train/loop.py` declares TrainConfig with it and `train/cli.py` turns settings into
flags. A setting is a dataclass field declared with `setting(...)`, its domain beside it:

    max_iters: int = setting(2000, POSITIVE, "optimizer steps in all", resumable=True)

The flag `--max-iters` parses an int, `check_value` enforces `POSITIVE`, and `--help` prints both. Floats must be
finite everywhere (so `--lr nan` is refused whatever the domain). The model files keep Hugging Face's plain config
dataclasses, so the domains of their fields are declared here, in `MODEL_FIELD_DOMAINS`, one line per field name
(the names are shared across architectures: `n_layer`, `hidden_dropout_prob`, ...). A test checks that every flag
of every command has a domain.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class SettingError(ValueError):
    """A value outside its setting's domain; the message names the flag (or file), the value and what is allowed."""


@dataclass(frozen=True)
class Domain:
    """The values a setting accepts: `accepts(value)` and the words `--help` and errors use for it."""

    text: str
    accepts: Callable[[Any], bool]
    choices: tuple | None = None


def at_least(low: int) -> Domain:
    return Domain(f">= {low}", lambda value: value >= low)


def interval(low: float, high: float, closed_low: bool = True, closed_high: bool = False) -> Domain:
    """[low, high), or with the given ends open or closed."""
    text = f"{'[' if closed_low else '('}{low}, {high}{']' if closed_high else ')'}"
    return Domain(f"in {text}", lambda value: (low <= value if closed_low else low < value)
                  and (value <= high if closed_high else value < high))


def one_of(*choices) -> Domain:
    return Domain("one of " + ", ".join(map(str, choices)), lambda value: value in choices, tuple(choices))


POSITIVE = Domain("> 0", lambda value: value > 0)
NON_NEGATIVE = at_least(0)
FRACTION = interval(0, 1)                                     # dropout: 1 would drop everything
OPEN_UNIT = interval(0, 1, closed_low=False)                  # a share that must leave something on both sides
PROBABILITY_MASS = interval(0, 1, closed_low=False, closed_high=True)  # top-p
ANY = Domain("any value", lambda value: True)
DEVICES = Domain("cpu, cuda or cuda:N", lambda value: value in ("cpu", "cuda") or (
    value.startswith("cuda:") and value[5:].isdigit()))
BOOL = Domain("true or false", lambda value: isinstance(value, bool), (True, False))


def setting(default, domain: Domain, help: str, *, resumable: bool = False):  # noqa: A002 - argparse's word
    """A dataclass field that is a command-line flag: its domain, its help line, and whether `--resume` may change
    it (settings that shape the model or the data may not)."""
    return dataclasses.field(default=default, metadata={"domain": domain, "help": help, "resumable": resumable})


def domain_of(field: dataclasses.Field) -> Domain | None:
    return field.metadata.get("domain")


# ---- parsing and checking one value ---------------------------------------------------------------------------------
def scalar_type(annotation) -> type | None:
    """int, float, bool or str for a (string) annotation such as "int | None"; None when not a scalar setting."""
    text = str(annotation)
    if any(container in text for container in ("dict", "list", "tuple", "Mapping", "Sequence")):
        return None
    for kind in (bool, int, float, str):
        if kind.__name__ in text.replace("InitVar", ""):
            return kind
    return None


def parse_flag_value(text: str, kind: type):
    """The value of a command-line string as `kind`; ValueError (argparse words it) when it is not one."""
    if kind is bool:
        if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() in ("1", "true", "yes")
    if kind is int:
        return int(text)
    if kind is float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {text!r}")
        return value
    return text


def check_value(name: str, value, domain: Domain | None, source: str | None = None, kind: type | None = None) -> None:
    """SettingError naming `--name` (or `name` in `source`, a saved run) when value is not of `kind` or is outside
    `domain`; None always passes (an unset optional setting)."""
    if value is None:
        return
    where = f"{name} in {source}" if source else "--" + name.replace("_", "-")
    if kind is not None and not is_of_kind(value, kind):
        raise SettingError(f"{where} {value!r}: must be a {kind.__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingError(f"{where} {value!r}: must be a finite number")
    try:
        accepted = domain is None or domain.accepts(value)
    except TypeError:  # a string where a number belongs (a hand-edited file)
        accepted = False
    if not accepted:
        raise SettingError(f"{where} {value!r}: must be {domain.text}")


def is_of_kind(value, kind: type) -> bool:
    """JSON's view of a setting's type: bools are not ints, ints are floats."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    return isinstance(value, (int, float) if kind is float else kind)


# ---- the domains of the model configs' fields ----------------------------------------------------------------
_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu", "relu", "silu", "swish")  # models.hf.ACTIVATIONS
_SIZES = ("n_layer", "n_head", "n_embd", "n_inner", "n_positions", "block_size", "vocab_size", "hidden_size",
          "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size", "head_dim",
          "max_position_embeddings", "embedding_size", "num_hidden_groups", "inner_group_num", "pooler_hidden_size",
          "d_model", "n_heads", "d_ff", "n_encoder_layers", "n_decoder_layers", "num_labels")
_DROPOUTS = ("dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop", "attention_dropout", "hidden_dropout_prob",
             "attention_probs_dropout_prob", "classifier_dropout_prob", "classifier_dropout", "cls_dropout",
             "pooler_dropout")
_SWITCHES = ("bias", "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn",
             "tie_word_embeddings", "attention_bias", "mlp_bias", "relative_attention", "position_biased_input",
             "enhanced_mask_decoder", "talking_head", "norm_first", "share_embeddings", "add_cross_attention",
             "is_decoder", "legacy")
MODEL_FIELD_DOMAINS: dict[str, Domain] = {
    **{name: POSITIVE for name in _SIZES},
    **{name: FRACTION for name in _DROPOUTS},
    **{name: BOOL for name in _SWITCHES},
    "layer_norm_eps": POSITIVE, "layer_norm_epsilon": POSITIVE, "rms_norm_eps": POSITIVE,
    "initializer_range": NON_NEGATIVE, "rope_theta": POSITIVE, "type_vocab_size": NON_NEGATIVE,
    "max_relative_positions": Domain("-1 (max_position_embeddings) or >= 1", lambda value: value == -1 or value >= 1),
    "activation": one_of("relu", "gelu"),
    "activation_function": one_of(*_ACTIVATIONS), "hidden_act": one_of(*_ACTIVATIONS),
    "pooler_hidden_act": one_of(*_ACTIVATIONS), "position_embedding_type": one_of("absolute"),
    "pad_token_id": NON_NEGATIVE, "bos_token_id": NON_NEGATIVE, "eos_token_id": NON_NEGATIVE,
    "pad_id": NON_NEGATIVE, "bos_id": NON_NEGATIVE, "eos_id": NON_NEGATIVE,
    "src_vocab_size": POSITIVE, "tgt_vocab_size": POSITIVE,
    # DeBERTa-v2 (models/deberta_v2.py)
    "position_buckets": Domain("-1 (no buckets) or >= 2", lambda value: value == -1 or value >= 2),
    "share_att_key": BOOL, "norm_rel_ebd": one_of("none", "layer_norm"),
    "conv_kernel_size": Domain("0 (no conv layer) or an odd size",
                               lambda value: value == 0 or (value > 0 and value % 2 == 1)),
    "conv_act": one_of(*_ACTIVATIONS, "tanh"), "conv_groups": one_of(1),
}
