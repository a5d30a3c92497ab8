"""`python -m train.lm_sample`: write text with a `python -m train.lm` run or a GPT-2 / LLaMA Hugging Face directory.

    python -m train.lm_sample --ckpt runs/lm --prompt "ROMEO:" --max-new-tokens 200 --temperature 0.8 --top-k 50
    python -m train.lm_sample --ckpt path/to/gpt2 --prompt "Hello, my name is" --top-p 0.9

--ckpt is a run directory of `python -m train.lm` (its checkpoint is read: weights, config and tokenizer of one
commit) or any Hugging Face directory with config.json, model.safetensors, vocab.json and merges.txt, whose
model_type picks the class. The flags are train.sample's; an empty prompt (the default here) starts from
`<|endoftext|>`, as GPT-2 samples unconditionally.
"""
from __future__ import annotations

import sys
from pathlib import Path

import tinytensor as tt
from models.tokenizers import ByteLevelBPETokenizer
from train.lm import TASK
from train.sample import load_run, run_sampler


def load_model(ckpt: str | Path, device: str = "cpu"):
    """(model in eval mode, tokenizer) from a train.lm run directory or a Hugging Face directory."""
    directory = Path(ckpt)
    if (directory / "checkpoint").is_dir():
        return load_run(directory, device)
    model_class = TASK.model_classes(TASK.model_name_of_directory(directory, "--ckpt"))[1]
    model = model_class.from_pretrained(directory, dtype=tt.float32)
    return model.to(device).eval(), ByteLevelBPETokenizer.from_pretrained(directory)


def main(argv: list[str] | None = None) -> int:
    return run_sampler(argv, "python -m train.lm_sample", __doc__, load=load_model, prompt="", max_new_tokens=200)


if __name__ == "__main__":
    sys.exit(main())
