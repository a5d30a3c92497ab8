"""The lecture GPT's training step: tinytensor vs the same model in PyTorch eager, same batches, same machine.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=17179869184 python -m benchmarks.gpt_char_vs_torch --steps 30
    ... --busy    # the same with one competing CPU-bound process running for both frameworks

Each (framework, config) runs in its own subprocess, so peak RSS is that framework's alone; the step is
forward + cross-entropy + backward + grad clipping + AdamW, as in `train.loop`. Reports median step time, the
ratio tinytensor / PyTorch (goal ≤ 1.1×) and peak RSS. `--busy` keeps one other process spinning on a core
throughout (a laptop is rarely idle); each framework runs with its defaults, as a user would get them.
"""
from __future__ import annotations

import argparse
import json
import contextlib
import subprocess
import sys

import numpy as np

from benchmarks.common import machine, median_time, peak_rss_mb

CONFIGS = {
    "tiny": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, dropout=0.0),
    "small": dict(n_layer=6, n_head=6, n_embd=384, block_size=64, batch_size=16, dropout=0.0),
    "lecture": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, dropout=0.2),
}
VOCAB = 65


def batches(config: dict, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    shape = (config["batch_size"], config["block_size"])
    return [(rng.integers(0, VOCAB, shape), rng.integers(0, VOCAB, shape)) for _ in range(count)]


def run_tinytensor(config: dict, steps: int, warmup: int) -> float:
    import tinytensor as tt
    from models.gpt_char import GPT, GPTConfig
    from tinytensor.nn.utils import clip_grad_norm_
    from tinytensor.optim import AdamW
    from train.loop import decay_groups

    tt.manual_seed(0)
    tt.backend.tune_host_allocator()  # as train.loop.Trainer does
    tt.backend.fit_threads_to_free_cores()  # likewise
    model_config = {k: v for k, v in config.items() if k != "batch_size"}
    model = GPT(GPTConfig(vocab_size=VOCAB, **model_config))
    optimizer = AdamW(decay_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.99))
    data = [(tt.tensor(x), tt.tensor(y)) for x, y in batches(config, steps + 3)]
    position = iter(range(10**9))

    def step():
        x, y = data[next(position) % len(data)]
        _, loss = model(x, y)
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()

    return median_time(step, steps, warmup)


def run_torch(config: dict, steps: int, warmup: int) -> float:
    import torch

    model = torch_gpt(config)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=1e-3, betas=(0.9, 0.99))
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches(config, steps + 3)]
    position = iter(range(10**9))

    def step():
        x, y = data[next(position) % len(data)]
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.view(-1, VOCAB), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return median_time(step, steps, warmup)


def torch_gpt(config: dict):
    """The same architecture as models.gpt_char.GPT, written in PyTorch for the comparison."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    C, H, T, p = config["n_embd"], config["n_head"], config["block_size"], config["dropout"]

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn, self.proj, self.drop = nn.Linear(C, 3 * C, bias=False), nn.Linear(C, C), nn.Dropout(p)

        def forward(self, x):
            B, T_, _ = x.shape
            q, k, v = self.c_attn(x).view(B, T_, 3, H, C // H).permute(2, 0, 3, 1, 4)
            y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p if self.training else 0)
            return self.drop(self.proj(y.transpose(1, 2).reshape(B, T_, C)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.sa, self.ln2 = nn.LayerNorm(C), Attention(), nn.LayerNorm(C)
            self.ffwd = nn.Sequential(nn.Linear(C, 4 * C), nn.ReLU(), nn.Linear(4 * C, C), nn.Dropout(p))

        def forward(self, x):
            x = x + self.sa(self.ln1(x))
            return x + self.ffwd(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(VOCAB, C), nn.Embedding(T, C)
            self.blocks = nn.Sequential(*[Block() for _ in range(config["n_layer"])])
            self.ln_f, self.lm_head = nn.LayerNorm(C), nn.Linear(C, VOCAB)

        def forward(self, idx):
            x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
            return self.lm_head(self.ln_f(self.blocks(x)))

    return GPT()


def child(framework: str, config_name: str, steps: int, warmup: int) -> None:
    runner = run_tinytensor if framework == "tinytensor" else run_torch
    seconds = runner(CONFIGS[config_name], steps, warmup)
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


def measure(framework: str, config_name: str, steps: int, warmup: int) -> dict:
    command = [sys.executable, "-m", "benchmarks.gpt_char_vs_torch", "--child", framework, config_name,
               "--steps", str(steps), "--warmup", str(warmup)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


@contextlib.contextmanager
def competing_process(active: bool):
    """One CPU-bound Python process spinning for the duration (nothing when not `active`)."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if active else None
    try:
        yield
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configs", nargs="+", default=["tiny", "small"], choices=sorted(CONFIGS))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (1 is enough for lecture)")
    parser.add_argument("--busy", action="store_true", help="run with one competing CPU-bound process")
    parser.add_argument("--child", nargs=2, metavar=("FRAMEWORK", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.steps, args.warmup)
        return
    print(f"machine: {machine()}{', one competing CPU-bound process' if args.busy else ''}\n")
    print("| config | tinytensor step | PyTorch step | ratio | tinytensor peak RSS | PyTorch peak RSS | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name in args.configs:
        with competing_process(args.busy):
            ours, theirs = (measure("tinytensor", name, args.steps, args.warmup),
                            measure("torch", name, args.steps, args.warmup))
        print(f"| {name} | {ours['seconds'] * 1e3:.1f} ms | {theirs['seconds'] * 1e3:.1f} ms | "
              f"{ours['seconds'] / theirs['seconds']:.2f}× | {ours['peak_rss_mb']:.0f} MiB | "
              f"{theirs['peak_rss_mb']:.0f} MiB | {ours['peak_rss_mb'] / theirs['peak_rss_mb']:.2f}× |")


if __name__ == "__main__":
    main()
