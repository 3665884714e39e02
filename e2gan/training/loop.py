"""The generic training loop: steps, seeds, progress callbacks, checkpoints, resume, stop.

It knows nothing about GANs beyond `train_step(batch) -> losses` and the modules whose weights
make up a resumable state. A checkpoint holds tensors and plain Python values only and is read
with `torch.load(weights_only=True)`; it is written atomically, so killing the process at any
moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import io
import os
import pickle
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from e2gan.errors import E2GANError
from e2gan.files import atomic_write_bytes

ProgressCallback = Callable[[dict[str, Any]], None]


@dataclass
class LoopConfig:
    steps: int = 1000
    batch_size: int = 4
    seed: int = 0
    checkpoint_every: int = 200  # steps; 0 disables periodic checkpoints
    log_every: int = 10
    max_seconds: float | None = None  # stop early (cleanly) after this much training time


@dataclass
class LoopResult:
    steps_done: int
    stopped_early: bool
    seconds: float
    images_seen: int
    images_per_second: float
    last_losses: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _infinite_batches(dataset: Dataset, batch_size: int, seed: int, start_epoch: int):
    epoch = start_epoch
    while True:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        loader = DataLoader(dataset, batch_size=min(batch_size, len(dataset)), shuffle=True,
                            drop_last=len(dataset) >= batch_size, generator=generator)
        for batch in loader:
            yield epoch, batch
        epoch += 1


def save_state(path: Path, modules: dict[str, nn.Module], trainer: Any, step: int,
               extra: dict[str, Any]) -> None:
    state = {
        "step": step,
        "modules": {name: module.state_dict() for name, module in modules.items()},
        "trainer": trainer.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()[1].tolist()},
        "extra": extra,
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path: Path, modules: dict[str, nn.Module], trainer: Any) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        for name, module in modules.items():
            module.load_state_dict(state["modules"][name])
        trainer.load_state_dict(state["trainer"])
        torch.set_rng_state(state["rng"]["torch"])
    except (OSError, EOFError, RuntimeError, KeyError, TypeError, ValueError,
            pickle.UnpicklingError) as error:
        # Left by a run with other models, concepts or settings (or cut short): a user's choice
        # to make, not a traceback.
        reason = (str(error).splitlines() or [type(error).__name__])[0][:200]
        raise E2GANError(
            f"cannot resume from the training checkpoint {path} ({reason}); it is from a "
            "different run: delete it or restart training (--restart)") from None
    return state


def run_training(trainer: Any, dataset: Dataset, config: LoopConfig,
                 modules: dict[str, nn.Module], state_path: str | os.PathLike | None = None,
                 resume: bool = True, on_progress: ProgressCallback | None = None,
                 should_stop: Callable[[], bool] | None = None) -> LoopResult:
    """Run `config.steps` steps of `trainer.train_step`.

    `modules` are the modules whose weights (with the trainer's optimiser state) form a resumable
    checkpoint at `state_path`. With `resume` and an existing checkpoint, training continues from
    its step with the same data order. `should_stop` is polled every step: stopping (or hitting
    `max_seconds`) saves a checkpoint and returns normally, so the caller keeps what was learned.
    """
    seed_everything(config.seed)
    state_path = Path(state_path) if state_path else None
    start_step = 0
    saved_rng = None
    if state_path and resume and state_path.is_file():
        saved = load_state(state_path, modules, trainer)
        start_step, saved_rng = int(saved["step"]), saved["rng"]["torch"]
    # As many batches as `_infinite_batches` yields per epoch: it drops the last partial batch
    # (unless the dataset is smaller than one batch, when the single batch is the whole epoch).
    steps_per_epoch = max(1, len(dataset) // config.batch_size)
    batches = _infinite_batches(dataset, config.batch_size, config.seed,
                                start_step // steps_per_epoch)
    for _ in range(start_step % steps_per_epoch):  # replay the data order up to the resume point
        next(batches)
    if saved_rng is not None:
        # Replaying drew augmentation randomness again; rewind to where the checkpoint was taken.
        torch.set_rng_state(saved_rng)

    history: list[dict[str, Any]] = []
    losses: dict[str, float] = {}
    images_seen, started, step = 0, time.perf_counter(), start_step
    stopped_early = False
    while step < config.steps:
        if (should_stop and should_stop()) or (
                config.max_seconds is not None and time.perf_counter() - started >= config.max_seconds):
            stopped_early = True
            break
        epoch, batch = next(batches)
        losses = trainer.train_step(batch)
        step += 1
        images_seen += len(batch["source"])
        elapsed = time.perf_counter() - started
        if step % config.log_every == 0 or step == config.steps:
            rate = images_seen / max(elapsed, 1e-9)
            event = {"step": step, "total_steps": config.steps, "epoch": epoch,
                     "losses": dict(losses), "seconds": elapsed, "images_per_second": rate,
                     "eta_seconds": (config.steps - step) * config.batch_size / max(rate, 1e-9)}
            history.append(event)
            if on_progress:
                on_progress(event)
        if state_path and config.checkpoint_every and step % config.checkpoint_every == 0:
            save_state(state_path, modules, trainer, step, {"epoch": epoch})
    if state_path and step > start_step:
        save_state(state_path, modules, trainer, step, {})
    seconds = time.perf_counter() - started
    return LoopResult(steps_done=step, stopped_early=stopped_early, seconds=seconds,
                      images_seen=images_seen, images_per_second=images_seen / max(seconds, 1e-9),
                      last_losses=losses, history=history)
