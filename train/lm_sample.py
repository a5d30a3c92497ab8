"""`python -m train.lm_sample`: write text with a GPT-2 or LLaMA checkpoint in the Hugging Face layout.

    python -m train.lm_sample --ckpt runs/lm --prompt "ROMEO:" --max-new-tokens 200 --temperature 0.8 --top-k 50
    python -m train.lm_sample --ckpt path/to/gpt2 --prompt "Hello, my name is" --top-p 0.9

--ckpt is a run directory of `python -m train.lm` (its `hf/` is read) or any Hugging Face directory with
config.json, model.safetensors, vocab.json and merges.txt. The model class comes from config.json's model_type.
An empty prompt starts from `<|endoftext|>`, as GPT-2 samples unconditionally.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tinytensor as tt
from models.tokenizers import DEFAULT_SPECIAL_TOKEN, ByteLevelBPETokenizer
from train.lm import ModelUnavailableError, model_classes, model_name_of_directory


def hf_directory(ckpt: str | Path) -> Path:
    """The Hugging Face directory of a train.lm run (<run>/hf), or the directory itself."""
    ckpt = Path(ckpt)
    return ckpt / "hf" if (ckpt / "hf" / "config.json").is_file() else ckpt


def load_pretrained(ckpt: str | Path, device: str = "cpu"):
    """(model in eval mode, tokenizer) from a run or Hugging Face directory."""
    directory = hf_directory(ckpt)
    model_class = model_classes(model_name_of_directory(directory))[1]
    model = model_class.from_pretrained(directory, dtype=tt.float32)
    return model.to(device).eval(), ByteLevelBPETokenizer.from_pretrained(directory)


def prompt_ids(tokenizer: ByteLevelBPETokenizer, prompt: str) -> tuple[list[int], int]:
    """(ids to start from, how many leading ids to leave out of the printed text)."""
    ids = tokenizer.encode(prompt)
    if ids:
        return ids, 0
    if DEFAULT_SPECIAL_TOKEN not in tokenizer.special_tokens:
        raise ValueError(f"the prompt is empty and the tokenizer has no {DEFAULT_SPECIAL_TOKEN} to start from")
    return [tokenizer.token_to_id(DEFAULT_SPECIAL_TOKEN)], 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.lm_sample", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="run directory of python -m train.lm, or a Hugging Face dir")
    parser.add_argument("--prompt", default="")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=1.0, help="0 is greedy")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--device", default="cpu")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        tt.backend.require_device(args.device)
        model, tokenizer = load_pretrained(args.ckpt, args.device)
        start, hidden = prompt_ids(tokenizer, args.prompt)
    except (OSError, ValueError, KeyError, tt.backend.DeviceUnavailableError, ModelUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    tt.manual_seed(args.seed)
    for index in range(args.num_samples):
        ids = model.generate(tt.tensor([start], device=args.device), args.max_new_tokens,
                             temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
        print(f"--- sample {index + 1} ---\n{tokenizer.decode(ids.numpy()[0, hidden:].tolist())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
