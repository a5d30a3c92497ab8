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

The run directory (docs/commands.md, "Run directories") gets `checkpoint/` (weights, config and tokenizer committed
together; what --resume and `python -m train.lm_sample --ckpt <out>` read), `metrics.jsonl`, `loss.png`, and at the
end (also after Ctrl-C) `hf/`: config.json + model.safetensors + vocab.json + merges.txt, which
`GPT2LMHeadModel.from_pretrained` and `transformers` load.
"""
from __future__ import annotations

import dataclasses
import inspect
import sys
from dataclasses import dataclass

import numpy as np

import tinytensor as tt
import tinytensor.distributed as dist
from models.tokenizers import DEFAULT_SPECIAL_TOKEN, ByteLevelBPETokenizer
from train.cli import CommandError, Run, Task, check_model_fits, export_hf
from train.corpus import CorpusError, get_batch, load_corpus, require_windows
from train.settings import ANY, NON_NEGATIVE, POSITIVE, at_least, setting


@dataclass
class LMSettings:
    """The data, the tokenizer and the sample of a train.lm run."""

    data: str | None = setting(None, ANY, "a UTF-8 text file (default: Shakespeare's plays, downloaded once)")
    tokenizer: str | None = setting(None, ANY, "directory with vocab.json + merges.txt to use instead of learning one")
    vocab_size: int = setting(512, at_least(257), "size of the BPE learned from the data (256 bytes + <|endoftext|> "
                                                  "at least)")
    block_size: int = setting(128, POSITIVE, "tokens per training window")
    batch_size: int = setting(8, POSITIVE, "windows per batch (per process with --ddp)", resumable=True)
    sample_tokens: int = setting(100, NON_NEGATIVE, "tokens of the sample printed at the end", resumable=True)


# the config field that bounds the context; it is set to --block-size unless given
POSITIONS_FIELD = {"gpt2": "n_positions", "llama": "max_position_embeddings"}
PRESETS = {
    # a CPU run of minutes: 128-token windows, batch 8, a 512-token BPE learned from the data
    "tiny": {"*": dict(block_size=128, batch_size=8, vocab_size=512, max_iters=1000, eval_interval=100,
                       eval_iters=10, lr=1e-3, min_lr=1e-4, warmup_iters=50, beta2=0.99, weight_decay=0.1,
                       grad_clip=1.0),
             "gpt2": dict(n_layer=4, n_head=4, n_embd=128, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0),
             "llama": dict(num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, hidden_size=128,
                           intermediate_size=384, rope_theta=10000.0, tie_word_embeddings=True,
                           attention_dropout=0.0)},
}


# ---- data ---------------------------------------------------------------------------------------------------------
def split_text(text: str, train_fraction: float = 0.9) -> tuple[str, str]:
    """The first 90 % of the characters for training, the rest for validation (as train.corpus splits ids)."""
    cut = int(len(text) * train_fraction)
    if not 0 < cut < len(text):
        raise CorpusError(f"the corpus has {len(text)} characters, too few to split into training and validation")
    return text[:cut], text[cut:]


def window_batches(splits: dict, batch_size: int, block_size: int):
    """get_batch(split, rng) for the Trainer: (input_ids,) of random windows [B, T]; labels are the same ids."""
    def batches(split: str, rng: np.random.Generator) -> tuple:
        return (get_batch(splits[split], batch_size, block_size, rng)[0],)
    return batches


def causal_lm_loss(model, batch: tuple) -> tt.Tensor:
    """Hugging Face's convention: labels = input_ids, the model's `loss` compares logits[:, t] with ids[:, t+1]."""
    (input_ids,) = batch
    return model.loss(model(input_ids), input_ids)


# ---- model --------------------------------------------------------------------------------------------------------
def new_model_config(config_class: type, model_name: str, run: Run) -> dict:
    """The config of a fresh model: preset and flags for the config's fields, vocabulary from the tokenizer, and
    the context length from --block-size."""
    names = set(inspect.signature(config_class).parameters)
    config = {**run.model_flags, "vocab_size": run.tokenizer.vocab_size}
    config.setdefault(POSITIONS_FIELD[model_name], run.settings["block_size"])
    if DEFAULT_SPECIAL_TOKEN in run.tokenizer.special_tokens:
        special_id = run.tokenizer.token_to_id(DEFAULT_SPECIAL_TOKEN)
        config.update({name: special_id for name in ("bos_token_id", "eos_token_id") if name in names})
    return config


def load_pretrained(model_class: type, directory: str, overrides: dict):
    """Fine-tuning: the model of a Hugging Face directory, with config flags (dropout, say) applied on top."""
    pretrained = model_class.from_pretrained(directory, dtype=tt.float32)
    if not overrides:
        return pretrained
    model = model_class(dataclasses.replace(pretrained.config, **overrides))
    try:
        model.load_state_dict(pretrained.state_dict())
    except RuntimeError as error:
        flags = " ".join("--" + name.replace("_", "-") for name in overrides)
        raise CommandError(f"{flags} change the shape of {directory}'s weights, so it cannot be fine-tuned with "
                           f"them: {error}") from error
    return model


class LMTask(Task):
    command = "lm"
    doc = __doc__
    models = {"gpt2": ("models.gpt2", "GPT2Config", "GPT2LMHeadModel"),
              "llama": ("models.llama", "LlamaConfig", "LlamaForCausalLM")}
    default_model = "gpt2"
    settings_class = LMSettings
    presets = PRESETS
    derived_fields = frozenset({"vocab_size", "bos_token_id", "eos_token_id"})
    init_from_flag = "--init-from"

    def preset_settings(self, preset_name: str, model_name: str, args) -> dict:
        """With --init-from the checkpoint's architecture stands: only the data and training parts of the preset."""
        if args.init_from:
            return dict(self.presets[preset_name]["*"])
        return super().preset_settings(preset_name, model_name, args)

    def tokenizer_from_dict(self, data: dict) -> ByteLevelBPETokenizer:
        return ByteLevelBPETokenizer.from_dict(data)

    def prepare(self, run: Run) -> None:
        train_text, val_text = split_text(load_corpus(run.settings["data"]))
        run.tokenizer = self._tokenizer(run, train_text)
        config_class, model_class = self.model_classes(run.model_name)
        if run.saved is not None:
            run.model = self.build_model(run.model_name, run.saved["model"])
        elif run.args.init_from:
            run.model = load_pretrained(model_class, run.args.init_from, run.model_flags)
        else:
            run.model = self.build_model(run.model_name, new_model_config(config_class, run.model_name, run))
        run.model_config = dataclasses.asdict(run.model.config)
        block_size = run.settings["block_size"]
        check_model_fits(run, "--block-size", block_size, run.model_config[POSITIONS_FIELD[run.model_name]])
        splits = {"train": np.asarray(run.tokenizer.encode(train_text), dtype=np.int64),
                  "val": np.asarray(run.tokenizer.encode(val_text), dtype=np.int64)}
        require_windows(splits, block_size, unit="tokens")
        run.model = run.model.to(run.device)
        run.batches = window_batches(splits, run.settings["batch_size"] * run.world_size, block_size)
        run.loss_fn = causal_lm_loss
        run.description = (f"{run.model_name}: {run.model.num_parameters() / 1e6:.3f} M parameters, vocabulary of "
                           f"{run.tokenizer.vocab_size}, {len(splits['train']):,} training and "
                           f"{len(splits['val']):,} validation tokens")

    def _tokenizer(self, run: Run, train_text: str) -> ByteLevelBPETokenizer:
        """The run's own on resume, the fine-tuned checkpoint's, a given one, or one learned from train_text."""
        if run.saved is not None:
            return run.tokenizer
        source = run.args.init_from or run.settings["tokenizer"]
        if source is not None:
            return ByteLevelBPETokenizer.from_pretrained(source)
        if dist.is_main_process():
            print(f"learning a byte-level BPE of {run.settings['vocab_size']} tokens from {len(train_text):,} "
                  "characters")
        return ByteLevelBPETokenizer.train(train_text, run.settings["vocab_size"])

    def finish(self, run: Run, trainer) -> int:
        """Write <out>/hf (also after Ctrl-C), then print a short sample."""
        hf_dir = export_hf(run)
        print(f"saved {hf_dir} (sample with: python -m train.lm_sample --ckpt {run.directory.path} --prompt ...)")
        if trainer.interrupted:
            return 130
        if run.settings["sample_tokens"] > 0:
            print_sample(run.model, run.tokenizer, run.settings["sample_tokens"])
        return 0


def print_sample(model, tokenizer: ByteLevelBPETokenizer, length: int) -> None:
    """Generate from the end-of-text token (GPT-2's unconditional start) and print the text."""
    start = tokenizer.token_to_id(DEFAULT_SPECIAL_TOKEN) if DEFAULT_SPECIAL_TOKEN in tokenizer.special_tokens else 0
    device = next(iter(model.parameters())).device
    ids = model.generate(tt.tensor([[start]], device=device), max_new_tokens=length)
    print(f"\n--- sample ---\n{tokenizer.decode(ids.numpy()[0, 1:].tolist())}")


TASK = LMTask()
main = TASK.main

if __name__ == "__main__":
    sys.exit(main())
