"""Engine speed against PyTorch eager (CPU), same machine, same run.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=17179869184 python benchmarks/ops_vs_torch.py

1. Per-op overhead on a small tensor (8×8): µs per forward op, and per op with backward.
2. A forward + backward + AdamW step of a 4-layer MLP of width 512 (batch 64).
3. The same for one pre-norm transformer block (B=16, T=64, C=384, 6 heads).
Prints a markdown table of medians and the ratio tinytensor / PyTorch (goal ≤ 1.3×).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import tinytensor as tt
import tinytensor.nn as nn
import tinytensor.nn.functional as F
from benchmarks.common import machine, median_time, ratio_row
from tinytensor.optim import AdamW

# ---- per-op overhead ------------------------------------------------------------------------------------------------
SMALL_OPS = {
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "matmul": lambda a, b: a @ b,
    "exp": lambda a, b: a.exp(),
    "sum": lambda a, b: a.sum(),
    "reshape": lambda a, b: a.reshape(64),
}


def per_op_overhead(repeats: int) -> list[str]:
    rows = []
    data = np.random.default_rng(0).standard_normal((2, 8, 8)).astype(np.float32)
    for with_grad in (False, True):
        ours = [tt.tensor(d, requires_grad=with_grad) for d in data]
        theirs = [torch.tensor(d, requires_grad=with_grad) for d in data]
        for name, op in SMALL_OPS.items():
            def ours_step(op=op, inputs=ours, with_grad=with_grad):
                out = op(*inputs)
                if with_grad:
                    out.sum().backward()

            def theirs_step(op=op, inputs=theirs, with_grad=with_grad):
                out = op(*inputs)
                if with_grad:
                    out.sum().backward()

            label = f"{name} 8×8" + (" fwd+bwd" if with_grad else "")
            rows.append(ratio_row(label, median_time(ours_step, repeats * 20), median_time(theirs_step, repeats * 20),
                                  unit="µs", scale=1e6))
    return rows


# ---- models built twice with the same weights ---------------------------------------------------------------------
class Mlp(nn.Module):
    def __init__(self, width: int, depth: int):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])

    def forward(self, x):
        for index, layer in enumerate(self.layers):
            x = layer(x)
            x = F.relu(x) if index < len(self.layers) - 1 else x
        return x


class TorchMlp(torch.nn.Module):
    def __init__(self, width: int, depth: int):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(width, width) for _ in range(depth)])

    def forward(self, x):
        for index, layer in enumerate(self.layers):
            x = layer(x)
            x = torch.relu(x) if index < len(self.layers) - 1 else x
        return x


class AttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc, self.out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x):
        attended = F.packed_self_attention(self.qkv(self.ln1(x)), self.heads, is_causal=True)  # as models.gpt_char
        x = x + self.proj(attended)
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class TorchAttentionBlock(torch.nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
        self.qkv, self.proj = torch.nn.Linear(width, 3 * width), torch.nn.Linear(width, width)
        self.fc, self.out = torch.nn.Linear(width, 4 * width), torch.nn.Linear(4 * width, width)

    def forward(self, x):
        batch, time, width = x.shape
        qkv = self.qkv(self.ln1(x)).reshape(batch, time, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        attended = torch.nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, time, width))
        return x + self.out(torch.nn.functional.gelu(self.fc(self.ln2(x))))


def copy_weights(ours: nn.Module, theirs: torch.nn.Module) -> None:
    state = {name: torch.from_numpy(tensor.numpy().copy()) for name, tensor in ours.state_dict().items()}
    theirs.load_state_dict(state)


def training_step_ratio(name: str, ours: nn.Module, theirs: torch.nn.Module, inputs: np.ndarray,
                        repeats: int) -> str:
    copy_weights(ours, theirs)
    projection = np.random.default_rng(1).standard_normal(ours(tt.tensor(inputs)).shape).astype(np.float32)
    our_opt, their_opt = AdamW(ours.parameters(), lr=1e-4), torch.optim.AdamW(theirs.parameters(), lr=1e-4)
    our_x, our_r = tt.tensor(inputs), tt.tensor(projection)
    their_x, their_r = torch.from_numpy(inputs), torch.from_numpy(projection)

    def our_step():
        loss = (ours(our_x) * our_r).mean()
        loss.backward()
        our_opt.step()
        our_opt.zero_grad()

    def their_step():
        loss = (theirs(their_x) * their_r).mean()
        loss.backward()
        their_opt.step()
        their_opt.zero_grad()

    return ratio_row(name, median_time(our_step, repeats), median_time(their_step, repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    tt.manual_seed(0)
    rng = np.random.default_rng(0)
    print(f"machine: {machine()}; torch {torch.__version__} ({torch.get_num_threads()} threads)\n")
    print("| benchmark | tinytensor | PyTorch | ratio |\n|---|---|---|---|")
    for row in per_op_overhead(args.repeats):
        print(row)
    mlp_input = rng.standard_normal((64, 512)).astype(np.float32)
    print(training_step_ratio("MLP 4×512, batch 64: fwd+bwd+AdamW", Mlp(512, 4), TorchMlp(512, 4), mlp_input,
                              args.repeats))
    block_input = rng.standard_normal((16, 64, 384)).astype(np.float32)
    print(training_step_ratio("attention block B16 T64 C384 h6: fwd+bwd+AdamW", AttentionBlock(384, 6),
                              TorchAttentionBlock(384, 6), block_input, args.repeats))


if __name__ == "__main__":
    main()
