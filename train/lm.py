"""`python -m train.lm`: train GPT-2 or LLaMA on your own text with a byte-level BPE, on the shared loop.

    python -m train.lm --model gpt2 --data my.txt                   # tiny preset: BPE of 512 learned from the text
    python -m train.lm --model llama --data my.txt --out runs/llama --max-iters 500
    python -m train.lm --data my.txt --tokenizer path/to/gpt2        # reuse a vocab.json + merges.txt instead
    python -m train.lm --init-from path/to/gpt2 --data my.txt --lr 1e-4   # fine-tune a Hugging Face checkpoint
    python -m train.lm --out runs/lm --resume                        # continue exactly where it stopped
    mpiexec -n 2 python -m train.lm --ddp --data my.txt              # data-parallel, --batch-size per process

Every field of the model's config (`--n-layer`, `--n-embd`, … for GPT-2; `--hidden-size`, `--num-key-value-heads`,
… for LLaMA) and of `TrainConfig` (`--lr`, `--max-iters`, …) is a flag that overrides the preset; `--help` after
`--model NAME` lists that model's flags. The text is split 90/10 by characters (validation from the end); the BPE
is learned from the training part only. Batches are random windows of `--block-size` ids, and the loss is Hugging
Face's causal-LM loss with labels = input_ids (the model shifts them), so a window of T ids gives T-1 predictions.

The run directory gets `tokenizer/` (vocab.json, merges.txt), `checkpoint/` (for --resume), `metrics.jsonl`,
`loss.png`, and at the end (also after Ctrl-C) `hf/`: config.json + model.safetensors + vocab.json + merges.txt,
which `GPT2LMHeadModel.from_pretrained`, `transformers` and `python -m train.lm_sample --ckpt <out>` load.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import sys
from pathlib import Path

import numpy as np

import tinytensor as tt
import tinytensor.distributed as dist
import tinytensor.io as tio
from models.tokenizers import DEFAULT_SPECIAL_TOKEN, ByteLevelBPETokenizer
from train.corpus import CorpusError, CorpusUnavailableError, get_batch, load_corpus
from train.flags import config_fields, explicit_flags, flag_type, run_command
from train.loop import Trainer, TrainConfig, init_distributed

# name → (module, config class, causal-LM class), imported on first use so a missing models/llama.py only
# matters to `--model llama`
MODELS = {"gpt2": ("models.gpt2", "GPT2Config", "GPT2LMHeadModel"),
          "llama": ("models.llama", "LlamaConfig", "LlamaForCausalLM")}
# the config field that bounds the context; it is set to --block-size unless given
POSITIONS_FIELD = {"gpt2": "n_positions", "llama": "max_position_embeddings"}

DATA_PRESETS = {
    # a CPU run of minutes: 128-token windows, batch 8, a 512-token BPE learned from the data
    "tiny": dict(block_size=128, batch_size=8, vocab_size=512, max_iters=1000, eval_interval=100, eval_iters=10,
                 lr=1e-3, min_lr=1e-4, warmup_iters=50, beta2=0.99, weight_decay=0.1, grad_clip=1.0),
}
MODEL_PRESETS = {
    "gpt2": {"tiny": dict(n_layer=4, n_head=4, n_embd=128, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)},
    "llama": {"tiny": dict(num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, hidden_size=128,
                           intermediate_size=384, rope_theta=10000.0, tie_word_embeddings=True,
                           attention_dropout=0.0)},
}
# set from the tokenizer and --block-size, never from a preset
DERIVED_FIELDS = {"vocab_size", "bos_token_id", "eos_token_id"}


class ModelUnavailableError(RuntimeError):
    """The asked-for model cannot be used (its module is missing or fails to import, or the name is unknown)."""


def model_classes(name: str) -> tuple[type, type]:
    """(config class, causal-LM class) for a registry name, importing its module now."""
    if name not in MODELS:
        raise ModelUnavailableError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    module_name, config_name, model_name = MODELS[name]
    try:
        module = importlib.import_module(module_name)
        return getattr(module, config_name), getattr(module, model_name)
    except (ImportError, AttributeError) as error:
        raise ModelUnavailableError(f"--model {name} needs {config_name} and {model_name} from {module_name}, "
                                    f"which cannot be imported ({type(error).__name__}: {error})") from error


def model_name_of_directory(directory: str | Path) -> str:
    """The registry name for a Hugging Face directory, from the model_type in its config.json."""
    config_file = Path(directory) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} not found (expected a Hugging Face checkpoint directory)")
    model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    if model_type not in MODELS:
        raise ModelUnavailableError(f"{config_file} has model_type {model_type!r}; "
                                    f"train.lm knows {', '.join(MODELS)}")
    return model_type


# ---- command line -------------------------------------------------------------------------------------------------
def build_parser(config_class: type | None = None, add_help: bool = True) -> argparse.ArgumentParser:
    """Common flags, TrainConfig's fields, and (when known) every scalar field of the model's config."""
    parser = argparse.ArgumentParser(prog="python -m train.lm", description=__doc__, add_help=add_help,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default=None, help="architecture (default gpt2)")
    parser.add_argument("--preset", choices=sorted(DATA_PRESETS), default="tiny")
    parser.add_argument("--data", help="a UTF-8 text file (default: Shakespeare's plays, downloaded once)")
    parser.add_argument("--out", default="runs/lm", help="run directory for checkpoints, metrics and hf/")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--tokenizer", help="directory with vocab.json + merges.txt to use instead of training one")
    parser.add_argument("--init-from", help="Hugging Face directory to fine-tune (config, weights and tokenizer)")
    parser.add_argument("--vocab-size", type=int, help="size of the BPE learned from the data")
    parser.add_argument("--block-size", type=int, help="tokens per training window")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--sample-tokens", type=int, default=100, help="tokens of the sample printed at the end")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    parser.add_argument("--ddp", action="store_true",
                        help="data-parallel over the processes of `mpiexec -n N` (--batch-size per process)")
    train_fields = [f for f in dataclasses.fields(TrainConfig) if f.name not in {"out_dir", "progress"}]
    model_fields = config_fields(config_class, DERIVED_FIELDS) if config_class else {}
    taken = {action.dest for action in parser._actions}
    for name, kind in [*((f.name, flag_type(f.type)) for f in train_fields), *model_fields.items()]:
        if name not in taken:
            parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None, dest=name)
    return parser


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, str]:
    """Find the model first (from --model, the --init-from directory or the run being resumed), then parse every
    flag with that model's config fields. Returns (args, model name)."""
    known, _ = build_parser(add_help=False).parse_known_args(argv)
    model_name = choose_model_name(known)
    args = build_parser(model_classes(model_name)[0]).parse_args(argv)
    return args, model_name


def choose_model_name(args: argparse.Namespace) -> str:
    if args.resume:
        saved = tio.load_checkpoint(Path(args.out) / "checkpoint").config["model_name"]
        found, source = saved, f"the checkpoint in {args.out}"
    elif args.init_from:
        found, source = model_name_of_directory(args.init_from), args.init_from
    else:
        return args.model or "gpt2"
    if args.model and args.model != found:
        raise ModelUnavailableError(f"--model {args.model} does not match {source}, which holds {found}")
    return found


# ---- data ---------------------------------------------------------------------------------------------------------
def split_text(text: str, train_fraction: float = 0.9) -> tuple[str, str]:
    """The first 90 % of the characters for training, the rest for validation (as train.corpus splits ids)."""
    cut = int(len(text) * train_fraction)
    if not 0 < cut < len(text):
        raise CorpusError(f"the corpus has {len(text)} characters, too few to split into training and validation")
    return text[:cut], text[cut:]


def encode_splits(tokenizer: ByteLevelBPETokenizer, train_text: str, val_text: str, block_size: int) -> dict:
    """{"train": ids, "val": ids} as int64 arrays; each split must be longer than one window."""
    splits = {"train": np.asarray(tokenizer.encode(train_text), dtype=np.int64),
              "val": np.asarray(tokenizer.encode(val_text), dtype=np.int64)}
    for split, ids in splits.items():
        if len(ids) <= block_size:
            raise CorpusError(f"the {split} split has {len(ids)} tokens, not more than --block-size {block_size}; "
                              "give more text or a smaller --block-size")
    return splits


def window_batches(splits: dict, batch_size: int, block_size: int):
    """get_batch(split, rng) for the Trainer: (input_ids,) of random windows [B, T]; labels are the same ids."""
    def batches(split: str, rng: np.random.Generator) -> tuple:
        return (get_batch(splits[split], batch_size, block_size, rng)[0],)
    return batches


def causal_lm_loss(model, batch: tuple) -> tt.Tensor:
    """Hugging Face's convention: labels = input_ids, the model's `loss` compares logits[:, t] with ids[:, t+1]."""
    (input_ids,) = batch
    return model.loss(model(input_ids), input_ids)


def get_tokenizer(args: argparse.Namespace, settings: dict, train_text: str, out_dir: Path) -> ByteLevelBPETokenizer:
    """The run's tokenizer on resume, the fine-tuned checkpoint's, a given one, or one learned from train_text."""
    source = (out_dir / "tokenizer" if args.resume else args.init_from or args.tokenizer)
    if source is not None:
        return ByteLevelBPETokenizer.from_pretrained(source)
    if dist.is_main_process():
        print(f"learning a byte-level BPE of {settings['vocab_size']} tokens from {len(train_text):,} characters")
    return ByteLevelBPETokenizer.train(train_text, settings["vocab_size"])


# ---- model --------------------------------------------------------------------------------------------------------
def new_model_config(model_name: str, settings: dict, tokenizer: ByteLevelBPETokenizer) -> dict:
    """The config of a fresh model: preset and flags for the config's fields, vocabulary from the tokenizer, and
    the context length from --block-size."""
    names = set(inspect.signature(model_classes(model_name)[0]).parameters)
    config = {name: value for name, value in settings.items() if name in names and name not in DERIVED_FIELDS}
    config.setdefault(POSITIONS_FIELD[model_name], settings["block_size"])
    config["vocab_size"] = tokenizer.vocab_size
    if DEFAULT_SPECIAL_TOKEN in tokenizer.special_tokens:
        special_id = tokenizer.token_to_id(DEFAULT_SPECIAL_TOKEN)
        config.update({name: special_id for name in ("bos_token_id", "eos_token_id") if name in names})
    return config


def build_model(model_name: str, model_config: dict):
    """A fresh causal LM from a config dict (as stored in every checkpoint)."""
    config_class, model_class = model_classes(model_name)
    return model_class(config_class(**model_config))


def load_pretrained(model_name: str, directory: str, overrides: dict):
    """Fine-tuning: the model of a Hugging Face directory, with config flags (dropout, say) applied on top."""
    model_class = model_classes(model_name)[1]
    pretrained = model_class.from_pretrained(directory, dtype=tt.float32)
    if not overrides:
        return pretrained
    model = model_class(dataclasses.replace(pretrained.config, **overrides))
    try:
        model.load_state_dict(pretrained.state_dict())
    except RuntimeError as error:
        flags = " ".join("--" + name.replace("_", "-") for name in overrides)
        raise ValueError(f"{flags} change the shape of {directory}'s weights, so it cannot be fine-tuned with "
                         f"them: {error}") from error
    return model


def load_checkpoint_model(out_dir: str | Path):
    """The model as the run's checkpoint holds it (what --resume continues from), in eval mode."""
    checkpoint = tio.load_checkpoint(Path(out_dir) / "checkpoint")
    model = build_model(checkpoint.config["model_name"], checkpoint.config["model"])
    model.load_state_dict(checkpoint.model)
    return model.eval()


def context_length(model_name: str, model_config: dict) -> int:
    return model_config[POSITIONS_FIELD[model_name]]


# ---- the run ------------------------------------------------------------------------------------------------------
class Run:
    """Everything `fit` needs, prepared (and checked) before training starts."""

    def __init__(self, args: argparse.Namespace, model_name: str):
        self.args, self.model_name, self.out_dir = args, model_name, Path(args.out)
        flags = explicit_flags(args)
        if args.resume:
            saved = tio.load_checkpoint(self.out_dir / "checkpoint").config
            self.settings = {**saved["train"], **saved["data"], **flags}
        else:
            self.settings = {**DATA_PRESETS[args.preset], **MODEL_PRESETS[model_name][args.preset], **flags}
        tt.backend.require_device(self.settings.get("device", "cpu"))
        self.world_size = init_distributed(args.ddp, self.settings.get("device", "cpu"))
        train_text, val_text = split_text(load_corpus(args.data))
        self.tokenizer = get_tokenizer(args, self.settings, train_text, self.out_dir)
        self.model, self.model_config = self._model(saved["model"] if args.resume else None, flags)
        self.block_size, self.batch_size = self.settings["block_size"], self.settings["batch_size"]
        self._check_sizes()
        self.splits = encode_splits(self.tokenizer, train_text, val_text, self.block_size)

    def _model(self, saved_config: dict | None, flags: dict):
        """(model, config dict): rebuilt from the checkpoint's config, loaded for fine-tuning, or fresh."""
        tt.manual_seed(self.settings.get("seed", 1337))
        if saved_config is not None:
            model = build_model(self.model_name, saved_config)
        elif self.args.init_from:
            settable = config_fields(model_classes(self.model_name)[0], DERIVED_FIELDS)
            overrides = {k: v for k, v in flags.items() if k in settable}
            model = load_pretrained(self.model_name, self.args.init_from, overrides)
        else:
            model = build_model(self.model_name, new_model_config(self.model_name, self.settings, self.tokenizer))
        return model.to(self.settings.get("device", "cpu")), dataclasses.asdict(model.config)

    def _check_sizes(self) -> None:
        limit = context_length(self.model_name, self.model_config)
        if self.block_size > limit:
            raise ValueError(f"--block-size {self.block_size} is longer than the model's context of {limit} tokens")
        if self.tokenizer.vocab_size > self.model_config["vocab_size"]:
            raise ValueError(f"the tokenizer has {self.tokenizer.vocab_size} tokens but the model's vocabulary "
                             f"only {self.model_config['vocab_size']}")

    def trainer(self) -> Trainer:
        config = TrainConfig.from_dict({**self.settings, "out_dir": str(self.out_dir),
                                        "progress": not self.args.no_progress})
        run_config = {"model_name": self.model_name, "model": self.model_config,
                      "data": {"block_size": self.block_size, "batch_size": self.batch_size}}
        global_batch = self.batch_size * self.world_size  # each process keeps batch_size rows
        return Trainer(self.model, config, window_batches(self.splits, global_batch, self.block_size),
                       run_config=run_config, loss_fn=causal_lm_loss)

    def describe(self) -> str:
        return (f"{self.model_name}: {self.model.num_parameters() / 1e6:.3f} M parameters, vocabulary of "
                f"{self.tokenizer.vocab_size}, {len(self.splits['train']):,} training and "
                f"{len(self.splits['val']):,} validation tokens")

    def save_pretrained(self) -> Path:
        """<out>/hf: the model and its tokenizer in the Hugging Face layout."""
        hf_dir = self.out_dir / "hf"
        self.model.save_pretrained(hf_dir)
        self.tokenizer.save_pretrained(hf_dir)
        return hf_dir


USER_ERRORS = (CorpusError, CorpusUnavailableError, tio.CheckpointError, OSError, ValueError, KeyError,
               tt.backend.DeviceUnavailableError, ModelUnavailableError, dist.RankMismatchError)


def main(argv: list[str] | None = None) -> int:
    return run_command(argv, parse_args, Run, train, USER_ERRORS)


def train(run: Run) -> int:
    """Fit on the shared loop, write <out>/hf (also after Ctrl-C), print a short sample (rank 0 only, in DDP)."""
    run.out_dir.mkdir(parents=True, exist_ok=True)
    if dist.is_main_process():
        run.tokenizer.save_pretrained(run.out_dir / "tokenizer")
        print(run.describe())
    trainer = run.trainer()
    trainer.fit(resume=run.args.resume)
    if not dist.is_main_process():
        return 130 if trainer.interrupted else 0
    hf_dir = run.save_pretrained()
    print(f"saved {hf_dir} (sample with: python -m train.lm_sample --ckpt {run.out_dir} --prompt ...)")
    if trainer.interrupted:
        return 130
    if run.args.sample_tokens > 0:
        print_sample(run.model, run.tokenizer, run.args.sample_tokens)
    return 0


def print_sample(model, tokenizer: ByteLevelBPETokenizer, length: int) -> None:
    """Generate from the end-of-text token (GPT-2's unconditional start) and print the text."""
    start = tokenizer.token_to_id(DEFAULT_SPECIAL_TOKEN) if DEFAULT_SPECIAL_TOKEN in tokenizer.special_tokens else 0
    device = next(iter(model.parameters())).device
    ids = model.generate(tt.tensor([[start]], device=device), max_new_tokens=length)
    print(f"\n--- sample ---\n{tokenizer.decode(ids.numpy()[0, 1:].tolist())}")


if __name__ == "__main__":
    sys.exit(main())
