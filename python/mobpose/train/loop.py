"""A resumable training loop: functions, no module-level state.

- Checkpoints (`last.safetensors`, and `best.safetensors` by validation metric) hold the model, the
  optimizer and scheduler state and the RNG states, written atomically (mobpose.checkpoint) every
  `checkpoint_every` steps and at each epoch's end. A killed run started again with the same
  `out_dir` resumes from `last.safetensors` at the step it reached and sees the same data order
  (each epoch's order is drawn from `seed + epoch`, and a resumed epoch skips the batches it did).
  Temporaries that killed writes left in `out_dir` (`.*.safetensors.*.tmp`) are removed when a run starts.
- Multi-process data parallel training: started by `torchrun --nproc-per-node N`, the loop joins the
  process group (gloo on CPU), wraps the model in DistributedDataParallel, shards every epoch's batches
  over the ranks, and only rank 0 writes files.
- Progress with tqdm; metrics appended as JSON lines to `out_dir/log.jsonl`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import checkpoint as ck

__all__ = [
    "TrainConfig",
    "fit",
    "lr_at",
    "optimizer_from_tensors",
    "optimizer_to_tensors",
]

logger = logging.getLogger(__name__)

SCHEDULES = ("cosine", "exponential", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping of one run.

    `schedule`: 'cosine' (linear warm-up for `warmup_epochs`, then cosine to `min_lr`, ConvNeXtPose),
    'exponential' (lr * `decay` per epoch, KTPFormer/VideoPose3D) or 'constant'.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.1
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    min_lr: float = 1e-6
    decay: float = 0.99
    grad_clip: float = 0.0
    seed: int = 0
    checkpoint_every: int = 200
    max_steps: int = 0  # > 0 stops early (tests, smoke runs)
    workers: int = 0  # > 0: batches are made by this many data-loader processes, ahead of the step

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive, got {self.lr}")


def lr_at(config: TrainConfig, epoch_progress: float) -> float:
    """Learning rate at a fractional epoch (0 = start)."""
    c = config
    if c.schedule == "constant":
        return c.lr
    if c.schedule == "exponential":
        return c.lr * c.decay ** math.floor(epoch_progress)
    if epoch_progress < c.warmup_epochs:
        return c.lr * (epoch_progress + 1e-3) / c.warmup_epochs
    span = max(c.epochs - c.warmup_epochs, 1e-9)
    t = min((epoch_progress - c.warmup_epochs) / span, 1.0)
    return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * t))


def optimizer_to_tensors(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Splits an optimizer state_dict into tensors (for safetensors) and JSON-able rest."""
    tensors, rest = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, entries in state["state"].items():
        rest["state"][str(pid)] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                rest["state"][str(pid)][key] = value
    return tensors, rest


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    """Inverse of `optimizer_to_tensors`."""
    state: dict[int, dict[str, Any]] = {int(pid): dict(v) for pid, v in rest["state"].items()}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": rest["param_groups"]}


def _distributed() -> tuple[int, int]:
    """(rank, world size); joins the gloo process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    if world > 1:
        return torch.distributed.get_rank(), world
    return 0, 1


def _batches(n: int, batch_size: int, seed: int, epoch: int, rank: int, world: int) -> list[np.ndarray]:
    """This rank's batches of sample indices for an epoch: a shuffle drawn from seed + epoch,
    cut into global batches, each global batch split over the ranks."""
    order = np.random.default_rng(seed + epoch).permutation(n)
    per_rank = batch_size // world if world > 1 else batch_size
    if per_rank < 1:
        raise ValueError(f"batch_size {batch_size} is smaller than the number of processes {world}")
    global_size = per_rank * world
    count = n // global_size
    if count == 0:
        raise ValueError(f"the dataset has {n} samples, fewer than one batch of {global_size}")
    return [order[i * global_size + rank * per_rank: i * global_size + (rank + 1) * per_rank] for i in range(count)]


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _batch_source(dataset: Sequence, batches: list[np.ndarray], collate: Callable, workers: int) -> Iterator:
    """Yields collated batches in order: in this process, or made ahead by `workers` processes."""
    if workers <= 0:
        return (collate([dataset[int(i)] for i in idx]) for idx in batches)
    # forkserver: workers start from a clean process, never from a fork of this multithreaded one (torch's
    # thread pools, or JAX's when litert-torch is loaded, can deadlock a forked child)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=[[int(i) for i in idx] for idx in batches], collate_fn=collate,
        num_workers=workers, worker_init_fn=_worker_init, prefetch_factor=4, multiprocessing_context="forkserver",
    )
    return iter(loader)


def fit(
    model: nn.Module,
    *,
    model_name: str,
    model_config: dict,
    dataset: Sequence,
    collate: Callable[[list], Any],
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    config: TrainConfig,
    out_dir: str | os.PathLike,
    validate: Callable[[nn.Module], dict[str, float]] | None = None,
    best_metric: str | None = None,
    run_info: dict | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Trains `model` on `dataset` and returns the final summary.

    Args:
        model: the module (on the CPU).
        model_name, model_config: written into every checkpoint (registry name and config).
        dataset: indexable samples; `collate(list_of_samples)` makes a batch.
        loss_fn: (model, batch) -> scalar loss.
        config: the TrainConfig.
        out_dir: run folder (checkpoints, log.jsonl); resumed when it holds `last.safetensors`.
        validate: optional model -> metrics, run at each epoch's end on rank 0 (model in eval mode).
        best_metric: the metric whose lowest value picks `best.safetensors`.
        run_info: JSON-able description stored in checkpoints (data, noise model, command...).
        progress: show a tqdm bar on rank 0.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    rank, world = _distributed()
    torch.manual_seed(config.seed + rank)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start_epoch, start_batch, step, best = 0, 0, 0, math.inf
    last = out / "last.safetensors"
    if rank == 0:  # the run folder is this run's: temporaries of killed checkpoint writes are stale
        ck.remove_stale_temporaries(out)
    if last.exists():
        tensors, meta = ck.load(last, kind="training")
        if meta["model"] != model_name or meta["config"] != json.loads(json.dumps(model_config)):
            raise ValueError(f"{last} belongs to another model or config; use a new out_dir")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer.load_state_dict(optimizer_from_tensors(tensors, meta["training"]["optimizer"]))
        state = meta["training"]
        start_epoch, start_batch, step, best = state["epoch"], state["batch"], state["step"], state["best"]
        torch.set_rng_state(tensors["rng.torch"])
        logger.info("resumed %s at epoch %d batch %d (step %d)", last, start_epoch, start_batch, step)

    def save(path: Path, epoch: int, batch: int) -> None:
        if rank != 0:
            return
        opt_tensors, opt_rest = optimizer_to_tensors(optimizer.state_dict())
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors.update(opt_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        training = {"epoch": epoch, "batch": batch, "step": step, "best": best, "optimizer": opt_rest,
                    "train_config": asdict(config), "run": run_info or {}}
        ck.save(path, tensors, model=model_name, config=model_config, kind="training", training=training)

    def log(record: dict) -> None:
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    summary: dict[str, Any] = {}
    started = time.perf_counter()
    done = False
    for epoch in range(start_epoch, config.epochs):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)  # per-epoch augmentation draws (deterministic, also on resume)
        batches = _batches(len(dataset), config.batch_size, config.seed, epoch, rank, world)
        first = start_batch if epoch == start_epoch else 0
        net.train()
        bar: Iterator = tqdm(range(first, len(batches)), desc=f"epoch {epoch + 1}/{config.epochs}",
                             disable=not progress or rank != 0, leave=False)
        running = 0.0
        made = _batch_source(dataset, batches[first:], collate, config.workers)
        for b in bar:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(config, epoch + b / max(len(batches), 1))
            batch = next(made)
            loss = loss_fn(net, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch} batch {b}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            running += loss.item()
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss.item():.4g}")
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                save(last, epoch, b + 1)
            if config.max_steps and step >= config.max_steps:
                save(last, epoch, b + 1)
                done = True
                break
        count = len(batches) - first
        record = {"epoch": epoch + 1, "step": step, "train_loss": running / max(count, 1),
                  "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - started, 1)}
        if done:
            log(record)
            break
        if validate is not None and rank == 0:
            model.eval()
            with torch.no_grad():
                record.update(validate(model))
            if best_metric is not None and record[best_metric] < best:
                best = record[best_metric]
                save(out / "best.safetensors", epoch + 1, 0)
        save(last, epoch + 1, 0)
        log(record)
        logger.info("%s", record)
        summary = record
    if world > 1:
        torch.distributed.barrier()
    summary["steps"] = step
    return summary
