"""The one training loop every trainer in `train/` uses: GPT-char today, GPT-2, LLaMA and the encoders later.

    trainer = Trainer(model, TrainConfig(max_iters=2000), get_batch, run_config={"model": {...}})
    trainer.fit(resume=False)

Each iteration: `grad_accum` micro-batches (loss/grad_accum each, gradients summing in `.grad`), gradient clipping,
AdamW at the learning rate of nanoGPT's schedule (linear warmup, cosine decay to `min_lr`); a trainer that needs
another recipe passes its own `optimizer` and `lr_schedule` (iteration → lr), as the translation trainer does for
the paper's Adam + Noam. Every `eval_interval` iterations it estimates train and val loss on `eval_iters` batches
in eval mode, appends to `metrics.jsonl`, redraws `loss.png` when matplotlib is installed and writes a checkpoint
(atomically, via `tinytensor.io`). Ctrl-C lets the current iteration finish (so parameters are never half-updated),
saves a checkpoint and returns; a second Ctrl-C stops at once. `fit(resume=True)` restores parameters, optimizer
moments, the iteration, and the random streams of both batch sampling and dropout, so a resumed run reproduces the
uninterrupted one exactly.

Data-parallel (after `tinytensor.distributed.init()` joined N > 1 processes, as `--ddp` does): every rank draws the
same global batch from the same `batch_rng` (so trainers ask their `get_batch` for N times the per-rank batch) and
keeps its own rows (`dist.shard`); gradients are averaged over ranks after the last micro-batch, then clipped, so N
ranks with batch b take the steps one process takes with batch N·b. Before training the ranks check that they agree
(parameters, configs, iteration) and take rank 0's weights. Only rank 0 logs, draws progress and writes files; the
checkpoint holds the shared streams, so a run resumes on any number of processes (continuing the same stream of
global batches, now cut into that many shards). A Ctrl-C on any rank stops every rank after the same iteration.
"""
from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from tqdm import tqdm

import tinytensor as tt
import tinytensor.distributed as dist
import tinytensor.io as tio
from tinytensor import nn
from tinytensor.optim import AdamW, Optimizer
from tinytensor.optim.lr_scheduler import warmup_cosine
from train.settings import DEVICES, FRACTION, NON_NEGATIVE, POSITIVE, SettingError, setting

METRICS_FILE = "metrics.jsonl"
BatchFn = Callable[[str, np.random.Generator], tuple]


@dataclass
class TrainConfig:
    """Optimisation settings, each with its domain (train/settings.py); defaults are nanoGPT's shakespeare-char CPU
    run. `out_dir` and `progress` come from the command's own flags (--out, --no-progress)."""

    max_iters: int = setting(2000, POSITIVE, "optimizer steps in all", resumable=True)
    eval_interval: int = setting(250, POSITIVE, "iterations between evaluations and checkpoints", resumable=True)
    eval_iters: int = setting(20, POSITIVE, "batches per split in each evaluation", resumable=True)
    lr: float = setting(1e-3, POSITIVE, "peak learning rate", resumable=True)
    min_lr: float = setting(1e-4, NON_NEGATIVE, "learning rate at the end of the cosine decay (<= --lr)",
                            resumable=True)
    warmup_iters: int = setting(100, NON_NEGATIVE, "iterations of linear warmup", resumable=True)
    lr_decay_iters: int | None = setting(None, POSITIVE, "iterations of cosine decay (default: --max-iters)",
                                         resumable=True)
    weight_decay: float = setting(0.1, NON_NEGATIVE, "AdamW's decoupled weight decay", resumable=True)
    beta1: float = setting(0.9, FRACTION, "Adam's first-moment decay", resumable=True)
    beta2: float = setting(0.99, FRACTION, "Adam's second-moment decay", resumable=True)
    grad_clip: float = setting(1.0, NON_NEGATIVE, "clip the gradient norm to this (0: no clipping)", resumable=True)
    grad_accum: int = setting(1, POSITIVE, "micro-batches summed into each step", resumable=True)
    max_nonfinite: int = setting(0, NON_NEGATIVE, "non-finite losses to skip (their step not taken) before the "
                                 "run stops", resumable=True)
    seed: int = setting(1337, NON_NEGATIVE, "seed of the weights, batches and dropout")
    device: str = setting("cpu", DEVICES, "where to train", resumable=True)
    out_dir: str = "out"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.min_lr > self.lr:
            raise SettingError(f"--min-lr {self.min_lr} is above --lr {self.lr}: the schedule decays from --lr "
                               "down to --min-lr")

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


class NonFiniteLossError(RuntimeError):
    """Training met a non-finite loss (or parameters) more often than `max_nonfinite` allows; the last good
    checkpoint is kept."""


def init_distributed(ddp: bool, device: str = "cpu") -> int:
    """For trainers: join the processes of an MPI launch when `--ddp` asks or mpiexec started several; returns the
    number of processes (1 without a launch). NCCL carries the gradients on 'cuda', MPI on 'cpu'."""
    if ddp or dist.launched():
        dist.init("nccl" if tt.backend.normalize_device(device) == "cuda" else "mpi")
    return dist.get_world_size()


def default_loss(model: nn.Module, batch: tuple) -> tt.Tensor:
    """Language models return (logits, loss) from model(inputs, targets)."""
    return model(*batch)[1]


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups as in nanoGPT: decay matrices (weights, embeddings), not biases or norm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


class Trainer:
    """Trains `model` on batches from `get_batch(split, rng)` (numpy arrays, moved to the device here)."""

    def __init__(self, model: nn.Module, config: TrainConfig, get_batch: BatchFn, run_config: dict | None = None,
                 loss_fn: Callable = default_loss, optimizer: Optimizer | None = None,
                 lr_schedule: Callable[[int], float] | None = None):
        """`optimizer` defaults to AdamW over `decay_groups`; `lr_schedule` (the lr for a 0-based iteration)
        defaults to `warmup_cosine` with the config's settings. Either is set into every group each iteration."""
        self.model, self.config, self.get_batch, self.loss_fn = model, config, get_batch, loss_fn
        tt.backend.tune_host_allocator()
        if tt.backend.normalize_device(config.device) == "cpu":
            tt.backend.fit_threads_to_free_cores()  # BLAS threads on taken cores stall every GEMM
        self.run_config = run_config or {}
        self.out_dir = Path(config.out_dir)
        self.optimizer = optimizer or AdamW(decay_groups(model, config.weight_decay), lr=config.lr,
                                            betas=(config.beta1, config.beta2))
        self.lr_schedule = lr_schedule
        self.iteration = 0
        self.best_val = math.inf
        self.evaluated_at = 0
        self.batch_rng = np.random.default_rng(config.seed)
        self.history: list[dict] = []
        self.interrupted = False
        self.begun = False
        self.nonfinite = 0          # non-finite losses met so far (their steps skipped)
        self.saved_step = 0         # the iteration of the last checkpoint written or loaded
        self.metrics_bytes = 0      # the length of metrics.jsonl that the last checkpoint has seen

    @property
    def is_main(self) -> bool:
        """The rank that logs, shows progress and writes files (the only one when single-process)."""
        return dist.is_main_process()

    # ---- the loop -------------------------------------------------------------------------------------------------
    def begin(self, resume: bool = False) -> None:
        """Make the run directory consistent before the first step: a resumed run loads its checkpoint and drops
        the metrics lines logged after it; a fresh run commits its initial state as checkpoint 0 (so from now on
        the directory holds this run: model, config and tokenizer together) and starts metrics.jsonl afresh."""
        if self.begun:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self.load_checkpoint()
        else:
            tt.manual_seed(self.config.seed)
            self.save_checkpoint()
        self._truncate_metrics()
        self.begun = True

    def fit(self, resume: bool = False) -> dict:
        """Train to `max_iters` (from the checkpoint in out_dir when resuming); returns the last losses. Raises
        NonFiniteLossError, with the last good checkpoint kept, when the loss stops being a number."""
        self.begin(resume)
        if dist.get_world_size() > 1:
            self._join_ranks()
        bar = tqdm(total=self.config.max_iters, initial=self.iteration, disable=not (self.config.progress and
                   self.is_main), dynamic_ncols=True, desc="training")
        try:
            with _deferred_interrupt(self):
                while self.iteration < self.config.max_iters and not self._agreed_interrupt():
                    if self.iteration % self.config.eval_interval == 0 and self.iteration != self.evaluated_at:
                        self.evaluate_and_save()
                    self._train_step(bar)
        finally:
            bar.close()
        self.interrupted = self._agreed_interrupt()  # the handler is gone: every rank now ends the same way
        if self.interrupted:
            self.save_checkpoint()
            if self.is_main:
                print(f"interrupted: checkpoint saved at iteration {self.iteration} in {self.out_dir}; "
                      "continue with --resume")
        elif self.iteration != self.evaluated_at:
            self.evaluate_and_save()
        return self.history[-1] if self.history else {}

    def _join_ranks(self) -> None:
        """Data-parallel start: fail clearly if the ranks differ, take rank 0's weights, and give each rank other
        than 0 a dropout stream of its own (rank 0 keeps the checkpointed one)."""
        dist.check_consistency(self.model, {"run": self.run_config, "train": asdict(self.config),
                                            "iteration": self.iteration})
        dist.broadcast_parameters(self.model)
        if dist.get_rank() > 0:
            seeds = np.random.SeedSequence([self.config.seed, self.iteration, dist.get_rank()])
            tt.manual_seed(int(seeds.generate_state(1)[0]))

    def _agreed_interrupt(self) -> bool:
        """Whether to stop: the Ctrl-C flag, or with several ranks whether any rank has it (so all stop together;
        the flag can be set at any moment, so only the value agreed here may end the loop)."""
        if dist.get_world_size() == 1:
            return self.interrupted
        return bool(dist.all_reduce(np.array([self.interrupted], dtype=np.int32), "max")[0])

    def _train_step(self, bar: tqdm) -> None:
        started = time.perf_counter()
        lr = self.learning_rate(self.iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        total_loss, tokens = 0.0, 0
        for _ in range(self.config.grad_accum):
            batch, share = self._local_batch("train", self.batch_rng)
            loss = self.loss_fn(self.model, batch)
            (loss / self.config.grad_accum if share == 1 else loss * (share / self.config.grad_accum)).backward()
            total_loss += loss.item() * share / self.config.grad_accum
            tokens += batch[0].numel()
        if dist.get_world_size() > 1:
            dist.all_reduce_gradients(self.model.parameters())
            total_loss, tokens = self._global_step_stats(total_loss, tokens)
        self.iteration += 1
        if math.isfinite(total_loss):
            if self.config.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.optimizer.step()
        self.optimizer.zero_grad()
        tokens_per_second = tokens / (time.perf_counter() - started)
        bar.update(1)
        bar.set_postfix(loss=f"{total_loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tokens_per_second:,.0f}")
        self._log({"iter": self.iteration, "loss": total_loss, "lr": lr, "tokens_per_sec": tokens_per_second})
        if not math.isfinite(total_loss):
            self._count_nonfinite(f"the training loss at iteration {self.iteration} is {total_loss}")

    def _count_nonfinite(self, what: str) -> None:
        """Skip (the step was not taken) or, past `max_nonfinite`, stop with the last good checkpoint kept."""
        self.nonfinite += 1
        if self.nonfinite > self.config.max_nonfinite:
            self._stop_nonfinite(what)

    def _stop_nonfinite(self, what: str) -> None:
        raise NonFiniteLossError(f"{what}; stopped, keeping the checkpoint of iteration {self.saved_step} in "
                                     f"{self.out_dir / 'checkpoint'} (lower --lr, set --grad-clip, or allow "
                                     f"skipped steps with --max-nonfinite)")

    def learning_rate(self, iteration: int) -> float:
        if self.lr_schedule is not None:
            return self.lr_schedule(iteration)
        config = self.config
        return warmup_cosine(iteration, config.lr, config.warmup_iters, config.lr_decay_iters or config.max_iters,
                             config.min_lr)

    def _to_device(self, batch: tuple) -> tuple:
        return tuple(tt.tensor(array, device=self.config.device) for array in batch)

    def _local_batch(self, split: str, rng: np.random.Generator) -> tuple[tuple, float]:
        """(this rank's rows of the next global batch, on the device; their share of the global loss mean).

        The share is rows·world_size/global rows: 1 when the batch splits evenly, and the weight that keeps the
        average of the ranks' losses equal to the global mean when it does not (length-bucketed batches)."""
        global_batch = self.get_batch(split, rng)
        local = dist.shard(global_batch)
        share = len(local[0]) * dist.get_world_size() / len(global_batch[0])
        return self._to_device(local), share

    @staticmethod
    def _global_step_stats(loss: float, tokens: int) -> tuple[float, int]:
        """(mean loss, total tokens) over the ranks, for the log."""
        stats = dist.all_reduce(np.array([loss, tokens], dtype=np.float64), "sum")
        return float(stats[0]) / dist.get_world_size(), int(stats[1])

    # ---- evaluation ---------------------------------------------------------------------------------------------
    @tt.no_grad()
    def estimate_loss(self) -> dict:
        """Mean loss over `eval_iters` batches per split, in eval mode, from a stream seeded by the iteration
        (so evaluating never disturbs the training batches, and a resumed run evaluates the same batches)."""
        self.model.eval()
        losses = {}
        for split in ("train", "val"):
            rng = np.random.default_rng([self.config.seed, self.iteration, split == "val"])
            values = [self.loss_fn(self.model, batch).item() * share
                      for batch, share in (self._local_batch(split, rng) for _ in range(self.config.eval_iters))]
            losses[split] = float(np.mean(values))
        self.model.train()
        if dist.get_world_size() > 1:  # the ranks saw disjoint shards: their mean is the global batches' loss
            train_val = dist.all_reduce(np.array([losses["train"], losses["val"]]), "mean")
            losses = {"train": float(train_val[0]), "val": float(train_val[1])}
        return losses

    def evaluate_and_save(self) -> dict:
        losses = self.estimate_loss()
        if not all(math.isfinite(value) for value in losses.values()):
            self._log({"iter": self.iteration, "train_loss": losses["train"], "val_loss": losses["val"]})
            self._stop_nonfinite(f"the evaluation at iteration {self.iteration} gives losses {losses}")
        self.evaluated_at = self.iteration
        self.best_val = min(self.best_val, losses["val"])
        record = {"iter": self.iteration, "train_loss": losses["train"], "val_loss": losses["val"],
                  "best_val_loss": self.best_val}
        self.history.append(record)
        self._log(record)
        if self.is_main:
            tqdm.write(f"iter {self.iteration}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        self.save_checkpoint()
        self._plot()
        return record

    # ---- files --------------------------------------------------------------------------------------------------
    def _log(self, record: dict) -> None:
        """Append one line of strict JSON to metrics.jsonl (a non-finite number is written as null)."""
        if not self.is_main:
            return
        clean = {key: value if not isinstance(value, float) or math.isfinite(value) else None
                 for key, value in record.items()}
        with open(self.out_dir / METRICS_FILE, "a", encoding="utf-8") as file:
            file.write(json.dumps(clean, allow_nan=False) + "\n")

    def _metrics_size(self) -> int:
        path = self.out_dir / METRICS_FILE
        return path.stat().st_size if path.exists() else 0

    def _truncate_metrics(self) -> None:
        """Cut metrics.jsonl back to what the checkpoint had seen: a resumed run then logs exactly the lines of the
        uninterrupted one, and a fresh run starts from an empty file."""
        path = self.out_dir / METRICS_FILE
        if self.is_main and path.exists() and path.stat().st_size > self.metrics_bytes:
            with open(path, "r+b") as file:
                file.truncate(self.metrics_bytes)

    def _plot(self) -> None:
        """Redraw loss.png from the eval history (skipped quietly when matplotlib is not installed). It draws on a
        bare `Figure`, never through pyplot, so it does not switch the backend of a notebook it runs in."""
        if not self.is_main:
            return
        try:
            from matplotlib.figure import Figure
        except ImportError:
            return
        figure = Figure(figsize=(6, 4))
        axes = figure.subplots()
        iters = [r["iter"] for r in self.history]
        axes.plot(iters, [r["train_loss"] for r in self.history], label="train")
        axes.plot(iters, [r["val_loss"] for r in self.history], label="val")
        axes.set(xlabel="iteration", ylabel="loss", title="training curve")
        axes.legend()
        figure.savefig(self.out_dir / "loss.png", dpi=100, bbox_inches="tight")

    def save_checkpoint(self) -> None:
        """Parameters, optimizer, iteration, random streams and how much of metrics.jsonl they have seen, written
        atomically (by rank 0 only). Parameters that are no longer finite are never saved."""
        if not self.is_main:
            return
        if not all(bool(p.xp.isfinite(p.data).all()) for p in self.model.parameters()):
            self._stop_nonfinite(f"the parameters are not finite at iteration {self.iteration}")
        self.metrics_bytes = self._metrics_size() if self.begun else 0
        tio.save_checkpoint(
            self.out_dir / "checkpoint",
            model_state=self.model.state_dict(),
            optimizer_state=self.optimizer.state_dict(),
            rng_state=tt.get_rng_state(),
            config={**self.run_config, "train": asdict(self.config)},
            step=self.iteration,
            extra={"batch_rng": self.batch_rng.bit_generator.state, "best_val": self.best_val,
                   "evaluated_at": self.evaluated_at, "history": self.history, "nonfinite": self.nonfinite,
                   "metrics_bytes": self.metrics_bytes},
        )
        self.saved_step = self.iteration

    def load_checkpoint(self) -> None:
        path = self.out_dir / "checkpoint"
        checkpoint = tio.load_checkpoint(path)
        self.model.load_state_dict(checkpoint.model)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        tt.set_rng_state(checkpoint.rng)
        self.iteration = self.saved_step = checkpoint.step
        self.batch_rng.bit_generator.state = checkpoint.extra["batch_rng"]
        self.best_val = checkpoint.extra["best_val"]
        self.evaluated_at = checkpoint.extra["evaluated_at"]
        self.history = checkpoint.extra["history"]
        self.nonfinite = checkpoint.extra.get("nonfinite", 0)
        self.metrics_bytes = checkpoint.extra.get("metrics_bytes", self._metrics_size())


class _deferred_interrupt:  # noqa: N801 - used like a function, as a context manager
    """While training, the first Ctrl-C only sets `trainer.interrupted`; the loop stops after the current step."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)

    def __exit__(self, *exc_info):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum, frame):
        if self.trainer.interrupted:
            raise KeyboardInterrupt
        self.trainer.interrupted = True
