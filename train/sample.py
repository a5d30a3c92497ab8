"""`python -m train.sample`: write text with a model trained by `python -m train.gpt_char`.

    python -m train.sample --ckpt runs/gpt_char --prompt "ROMEO:" --max-new-tokens 500 --temperature 0.8 --top-k 50
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tinytensor as tt
import tinytensor.io as tio
from models.tokenizers import CharTokenizer
from train.gpt_char import build_model


def load_run(run_dir: str | Path, device: str = "cpu"):
    """The model (in eval mode) and tokenizer saved in a run directory."""
    run_dir = Path(run_dir)
    checkpoint = tio.load_checkpoint(run_dir / "checkpoint")
    model = build_model(checkpoint.config["model_name"], checkpoint.config["model"])
    model.load_state_dict(checkpoint.model)
    return model.to(device).eval(), CharTokenizer.load(run_dir / "tokenizer.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.sample", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="run directory written by python -m train.gpt_char")
    parser.add_argument("--prompt", default="\n")
    parser.add_argument("--max-new-tokens", type=int, default=500)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        tt.backend.require_device(args.device)
        model, tokenizer = load_run(args.ckpt, args.device)
        prompt_ids = tokenizer.encode(args.prompt)
    except (OSError, ValueError, tt.backend.DeviceUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    tt.manual_seed(args.seed)
    for index in range(args.num_samples):
        ids = model.generate(tt.tensor([prompt_ids], device=args.device), args.max_new_tokens,
                             temperature=args.temperature, top_k=args.top_k)
        print(f"--- sample {index + 1} ---\n{tokenizer.decode(ids.numpy()[0].tolist())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
