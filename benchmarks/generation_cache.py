"""Greedy generation speed with and without the key/value cache, for GPT-2 and LLaMA (random small models, CPU).

    python -m benchmarks.generation_cache --lengths 32 128 256

Without the cache every new token re-runs the whole context (quadratic in length); with it each step feeds one
token. Prints tokens/s for both and checks that they chose the same tokens.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import tinytensor as tt
from models.gpt2 import GPT2Config, GPT2LMHeadModel
from models.llama import LlamaConfig, LlamaForCausalLM

MODELS = {
    "gpt2": lambda: GPT2LMHeadModel(GPT2Config(vocab_size=1000, n_positions=512, n_embd=256, n_layer=4, n_head=4)),
    "llama": lambda: LlamaForCausalLM(LlamaConfig(vocab_size=1000, hidden_size=256, intermediate_size=688,
                                                  num_hidden_layers=4, num_attention_heads=4,
                                                  num_key_value_heads=2, max_position_embeddings=512)),
}


def tokens_per_second(model, prompt: np.ndarray, new_tokens: int, use_cache: bool) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    out = model.generate(prompt, new_tokens, temperature=0, use_cache=use_cache)
    return new_tokens / (time.perf_counter() - started), out.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 128, 256], help="new tokens to generate")
    args = parser.parse_args()
    tt.manual_seed(0)
    print("| model | new tokens | with cache | without cache | speed-up |\n|---|---|---|---|---|")
    for name, build in MODELS.items():
        model = build().eval()
        prompt = np.random.default_rng(0).integers(0, 1000, (1, 8))
        for length in args.lengths:
            cached, cached_ids = tokens_per_second(model, prompt, length, use_cache=True)
            uncached, uncached_ids = tokens_per_second(model, prompt, length, use_cache=False)
            same = "" if np.array_equal(cached_ids, uncached_ids) else " (tokens differ!)"
            print(f"| {name} | {length} | {cached:.0f} tok/s | {uncached:.0f} tok/s | {cached / uncached:.1f}×{same} |")


if __name__ == "__main__":
    main()
