"""The one training engine: a `Trainer` owns a job's state and runs it on `accelerate`.

Every way to train (the shared base, a LoRA or full fine-tune, pix2pix, a rank-search round, the
studio's live fine-tune, the benchmark's runs) builds `TrainingParts` and hands them here.
Accelerate does what a training loop should not hand-write: device placement, DDP gradient averaging and data sharding under `accelerate launch` / `torchrun`, per-process
RNG state, and the resumable checkpoint (`save_state` / `load_state`: safetensors for weights,
`torch.load(weights_only=True)` for the rest).

Training randomness is a function of (seed, step). The data order depends on (seed, epoch)
(`EpochShuffle`), the learning rate on the step (`schedules`), and each step's flips and noise
(Eq. 1's z) are drawn for the whole global batch from a generator seeded by (seed, step), each
process taking its slice. So resuming is exact (the batches already seen in the epoch are skipped
with `skip_first_batches`, which never decodes them), and a 2-process run with batch 2 is the same
training as a 1-process run with batch 4: the sampler shards each global batch, DDP averages the
per-process mean losses, and the random draws are the global batch's.
"""

from __future__ import annotations

import contextlib
import io
import math
import pickle
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from safetensors import SafetensorError
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from e2gan.errors import E2GANError
from e2gan.files import atomic_write_bytes, replace_folder
from e2gan.precision import resolve_precision
from e2gan.training.ema import WeightAverage
from e2gan.training.events import (CheckpointSaved, EndReason, EventCallback, RunEnded, RunSummary,
                                   StepsLogged)
from e2gan.training.gan import ConditionedGenerator, GANHyperparameters, PairedGANStep
from e2gan.training.schedules import check_schedule, learning_rate_factor
from e2gan.training.settings import TrainingSettings

TRAINER_STATE_FILE = "trainer.pt"


class TrainingDiverged(E2GANError):
    """A loss became NaN or infinite."""  # beside accelerate's files: the step and the EMA weights


@dataclass
class TrainingParts:
    """What one job trains. The recipes build these; the trainer never builds models itself."""

    generator: nn.Module
    discriminator: nn.Module
    text_encoder: nn.Module | None
    generator_parameters: list[nn.Parameter]  # what G's optimiser moves (all, or LoRA + tokens)
    dataset: Dataset
    # True when a step may leave some trainable parameters without a gradient (several concepts'
    # token tables, only some in a batch): DDP then has to look for them, at a cost.
    partial_gradients: bool = False


class EpochShuffle(Sampler[int]):
    """A shuffled order per epoch that depends on (seed, epoch) alone, on every process."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())


def _accelerator(settings: TrainingSettings, log_dir: Path | None, partial_gradients: bool):
    from accelerate import Accelerator, DistributedDataParallelKwargs

    if settings.device.startswith("cuda") and not torch.cuda.is_available():
        raise E2GANError("CUDA was requested but no GPU is available")
    if settings.device not in ("auto", "cpu", "cuda"):
        raise E2GANError(f"training device must be auto, cpu or cuda, got {settings.device!r}; "
                         "pick GPUs with CUDA_VISIBLE_DEVICES")
    use_cuda = settings.device != "cpu" and torch.cuda.is_available()
    report_to = None if settings.report_to == "none" else settings.report_to
    if report_to and log_dir is None:
        raise E2GANError(f"--report-to {report_to} needs an output folder for its logs")
    return Accelerator(
        # Autocast is the GAN step's own (`Trainer.precision`), not Accelerate's: Accelerate
        # keeps one precision per process and refuses a second, and one studio process runs
        # many jobs (and the tests run fp32 and bf16 side by side).
        cpu=not use_cuda, mixed_precision="no", log_with=report_to,
        project_dir=str(log_dir) if log_dir else None,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=partial_gradients)])


def _trained_names(model: nn.Module, optimizers: list[torch.optim.Optimizer]) -> set[str]:
    """The parameters of `model` an optimiser updates. Not `requires_grad`: the GAN step turns
    the discriminator's off while the generator steps."""
    trained = {id(p) for optimizer in optimizers for group in optimizer.param_groups
               for p in group["params"]}
    return {name for name, parameter in model.named_parameters() if id(parameter) in trained}


def _check_saved_weights(models: list[nn.Module], optimizers: list[torch.optim.Optimizer],
                         folder: Path) -> None:
    """Refuse a state that lacks a trained parameter of these models (it is from another run:
    loading it without `strict` would leave that parameter as initialised)."""
    from safetensors import safe_open

    for index, model in enumerate(models):
        path = folder / (f"model_{index}.safetensors" if index else "model.safetensors")
        if not path.is_file():
            continue  # a pickled state (safe_serialization off): accelerate checks it itself
        with safe_open(str(path), framework="pt") as handle:
            saved = set(handle.keys())
        missing = sorted(_trained_names(model, optimizers) - saved)
        if missing:
            raise ValueError(f"{path.name} lacks {len(missing)} trained parameters "
                             f"(e.g. {missing[0]})")


class Trainer:
    """One training job: `run` it (in as many calls as you like), `save` it, `stop` it."""

    def __init__(self, parts: TrainingParts, settings: TrainingSettings,
                 state_dir: str | Path | None = None, log_dir: str | Path | None = None,
                 run_name: str = "e2gan") -> None:
        from accelerate.utils import set_seed

        check_schedule(settings.schedule, settings.steps, settings.warmup_steps)
        self.settings = settings
        self.state_dir = Path(state_dir) if state_dir else None
        self.accelerator = accelerator = _accelerator(settings, Path(log_dir) if log_dir else None,
                                                      parts.partial_gradients)
        # bf16 autocast where the device multiplies bf16 in hardware (e2gan.precision): it needs
        # no loss scaler and keeps GAN losses in range; where bf16 is only emulated, "auto" runs
        # fp32, as autocast would only slow. Weights, optimiser state, EMA and losses stay fp32.
        self.precision = resolve_precision(settings.precision, accelerator.device)
        self.hyperparameters = GANHyperparameters(
            learning_rate=settings.learning_rate,
            discriminator_learning_rate=settings.discriminator_learning_rate,
            l1_weight=settings.l1_weight, feature_matching_weight=settings.feature_matching_weight,
            max_grad_norm=settings.max_grad_norm)
        self.generator = parts.generator
        self.text_encoder = parts.text_encoder
        self.trainable = [p for p in parts.generator_parameters if p.requires_grad]
        if not self.trainable:
            raise E2GANError("nothing to train: the generator has no trainable parameters")
        hp = self.hyperparameters
        generator_optimizer = torch.optim.Adam(self.trainable, lr=hp.learning_rate, betas=hp.betas)
        discriminator_optimizer = torch.optim.Adam(
            parts.discriminator.parameters(), lr=hp.discriminator_learning_rate or hp.learning_rate,
            betas=hp.betas)
        global_batch = settings.batch_size * accelerator.num_processes
        loader = DataLoader(parts.dataset, batch_size=settings.batch_size,
                            sampler=EpochShuffle(len(parts.dataset), settings.seed),
                            drop_last=len(parts.dataset) >= global_batch,
                            # Its own generator for the loader's per-iterator seed draw: from the
                            # global RNG, that draw would shift noise and flips after a resume.
                            generator=torch.Generator().manual_seed(settings.seed))
        (self.model, self.discriminator, self.generator_optimizer, self.discriminator_optimizer,
         self.loader) = accelerator.prepare(ConditionedGenerator(parts.generator, parts.text_encoder),
                                            parts.discriminator, generator_optimizer,
                                            discriminator_optimizer, loader)
        self.base_rates = [group["lr"] for opt in self.optimizers for group in opt.param_groups]
        # A fine-tune's frozen base weights are the base model's own files: saving them in every
        # resumable state made one studio fine-tune's state 68 MB (the adapter is 0.3 MB).
        accelerator.register_save_state_pre_hook(self._drop_frozen_weights)
        self.gan_step = PairedGANStep(accelerator, self.model, self.discriminator,
                                      self.generator_optimizer, self.discriminator_optimizer, hp,
                                      self.precision)
        self.ema = None
        if settings.ema_decay:
            self.ema = WeightAverage(self.trainable, decay=settings.ema_decay)
        self.step = 0
        self._saved_step: int | None = None  # the step the state on disk holds, when known
        self._stop = threading.Event()
        # Flips and noise come from (seed, step) (`_randomise`); anything else drawing from the
        # global generators gets a per-process stream that is still reproducible from the seed.
        set_seed(settings.seed, device_specific=True)
        if settings.report_to != "none":
            accelerator.init_trackers(run_name, config=settings.tracker_config())

    # -- state -------------------------------------------------------------------------------

    @property
    def optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        return self.generator_optimizer, self.discriminator_optimizer

    @property
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.loader))

    def save(self) -> Path:
        """Write the resumable state to `state_dir`, atomically: a kill at any moment leaves the
        previous state or the new one, never a mixture."""
        if self.state_dir is None:
            raise E2GANError("this trainer has no state folder to save to")
        partial = self.state_dir.with_name(self.state_dir.name + ".partial")
        accelerator = self.accelerator
        if accelerator.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)  # before anyone writes: each process adds its RNG file
        accelerator.wait_for_everyone()
        accelerator.save_state(str(partial))
        accelerator.wait_for_everyone()  # every RNG file is in before the folder moves
        if accelerator.is_main_process:
            extra = {"step": self.step, "ema": self.ema.state_dict() if self.ema else None}
            buffer = _serialise(extra)
            atomic_write_bytes(partial / TRAINER_STATE_FILE, buffer)
            replace_folder(partial, self.state_dir, overwrite=True)
        accelerator.wait_for_everyone()
        self._saved_step = self.step
        return self.state_dir

    def _drop_frozen_weights(self, models: list[nn.Module], weights: list[dict], output_dir: str) -> None:
        """Accelerate's save hook: each model's state keeps its trained parameters and buffers."""
        for model, state in zip(models, weights):
            trained = _trained_names(model, list(self.optimizers))
            for name, _ in model.named_parameters():
                if name not in trained:
                    state.pop(name, None)

    def resume(self) -> bool:
        """Continue from `state_dir` when it holds a state; False when there is none."""
        folder = self._saved_state()
        if folder is None:
            return False
        try:
            # Frozen weights are not in the state (`_drop_frozen_weights`): they stay as loaded,
            # and `_check_saved_weights` makes sure every trained one was there.
            _check_saved_weights(self.accelerator._models, list(self.optimizers), folder)
            self.accelerator.load_state(str(folder), strict=False)
            extra = torch.load(folder / TRAINER_STATE_FILE, map_location="cpu", weights_only=True)
            self.step = self._saved_step = int(extra["step"])
            if self.ema is not None and extra.get("ema") is not None:
                self.ema.load_state_dict(extra["ema"])
        except (OSError, EOFError, RuntimeError, KeyError, TypeError, ValueError,
                pickle.UnpicklingError, SafetensorError) as error:
            # Left by a run with other models, concepts or settings: a user's choice to make.
            reason = (str(error).splitlines() or [type(error).__name__])[0][:200]
            raise E2GANError(
                f"cannot resume from the training state {folder} ({reason}); it is from a "
                "different run: delete it or restart training (--restart)") from None
        return True

    def _saved_state(self) -> Path | None:
        if self.state_dir is None:
            return None
        # `replace_folder` moves the old state aside for an instant; a kill then leaves it there.
        for folder in (self.state_dir, self.state_dir.with_name(self.state_dir.name + ".old")):
            if (folder / TRAINER_STATE_FILE).is_file():
                return folder
        return None

    def forget_state(self) -> None:
        """Delete the resumable state (a finished job's optimiser moments are dead weight)."""
        if self.state_dir is not None and self.accelerator.is_main_process:
            for folder in (self.state_dir, self.state_dir.with_name(self.state_dir.name + ".old")):
                shutil.rmtree(folder, ignore_errors=True)

    @contextlib.contextmanager
    def averaged_weights(self) -> Iterator[None]:
        """Inside, the trained parameters hold their EMA (when on): what inference should use."""
        if self.ema is None:
            yield
            return
        self.ema.store(self.trainable)
        self.ema.copy_to(self.trainable)
        try:
            yield
        finally:
            self.ema.restore(self.trainable)

    def close(self) -> None:
        if self.settings.report_to != "none":
            self.accelerator.end_training()

    # -- running -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask a running `run` to return after its current step (safe from any thread)."""
        self._stop.set()

    def _batches(self) -> Iterator[tuple[int, dict]]:
        from accelerate import skip_first_batches

        while True:
            epoch, offset = divmod(self.step, self.steps_per_epoch)
            self.loader.set_epoch(epoch)
            loader = skip_first_batches(self.loader, offset) if offset else self.loader
            for batch in loader:
                yield epoch, batch

    def _set_learning_rate(self) -> float:
        factor = learning_rate_factor(self.settings.schedule, self.step, self.settings.steps,
                                      self.settings.warmup_steps)
        groups = [group for opt in self.optimizers for group in opt.param_groups]
        for group, base in zip(groups, self.base_rates):
            group["lr"] = base * factor
        return self.base_rates[0] * factor

    def _randomise(self, batch: dict) -> tuple[dict, torch.Tensor | None]:
        """This step's flips (when augmenting) and noise: drawn for the global batch from (seed,
        step), this process's slice taken, so neither resuming nor sharding changes them."""
        source, edited = batch["source"], batch["edited"]
        size, process = len(source), self.accelerator.process_index
        rows = slice(process * size, (process + 1) * size)
        global_size = size * self.accelerator.num_processes
        generator = torch.Generator().manual_seed(self.settings.seed * 1_000_003 + self.step)
        flips = torch.rand(global_size, generator=generator)[rows] < 0.5
        if self.settings.augment and flips.any():
            flips = flips.to(source.device).view(-1, 1, 1, 1)
            batch = {**batch, "source": torch.where(flips, source.flip(-1), source),
                     "edited": torch.where(flips, edited.flip(-1), edited)}
        channels = self.accelerator.unwrap_model(self.model).noise_channels
        if not channels:
            return batch, None
        noise = torch.randn(global_size, channels, *source.shape[2:], generator=generator)[rows]
        return batch, noise.to(source.device, source.dtype)

    def _agree(self, wants_to_end: bool) -> bool:
        """Under several processes, end only together (a lone process would hang the others)."""
        if self.accelerator.num_processes == 1:
            return wants_to_end
        flag = torch.tensor([1.0 if wants_to_end else 0.0], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    def run(self, steps: int | None = None, seconds: float | None = None,
            on_event: EventCallback | None = None,
            should_stop: Callable[[], bool] | None = None) -> RunSummary:
        """Train until step `steps` (default: the settings' step count), for at most `seconds`
        of this call (default: the settings' time limit), or until `stop()` / `should_stop()`."""
        target = self.settings.steps if steps is None else steps
        budget = self.settings.max_seconds if seconds is None else seconds
        self._stop.clear()
        emit = on_event if (on_event and self.is_main_process) else (lambda event: None)
        history: list[StepsLogged] = []
        losses: dict[str, float] = {}
        images, started = 0, time.perf_counter()
        global_batch = self.settings.batch_size * self.accelerator.num_processes
        batches = self._batches()
        reason = EndReason.STEPS
        self.model.train()
        self.discriminator.train()
        while self.step < target:
            stopped = self._stop.is_set() or bool(should_stop and should_stop())
            out_of_time = budget is not None and time.perf_counter() - started >= budget
            if self._agree(stopped or out_of_time):
                reason = EndReason.STOPPED if stopped else EndReason.TIME
                break
            epoch, batch = next(batches)
            learning_rate = self._set_learning_rate()
            batch, noise = self._randomise(batch)
            losses = self.gan_step(batch, noise)
            if not all(math.isfinite(value) for value in losses.values()):
                # Writing on would save NaN weights that load and edit to black: stop here, so the
                # caller keeps the last model it wrote and the last saved state.
                raise TrainingDiverged(
                    f"training diverged at step {self.step + 1}: losses "
                    f"{', '.join(f'{k}={v:.3g}' for k, v in losses.items())}; nothing was written "
                    "from this run after its last checkpoint; lower the learning rate and rerun")
            if self.ema is not None:
                self.ema.step(self.trainable)
            self.step += 1
            images += global_batch
            elapsed = time.perf_counter() - started
            if self.step % self.settings.log_every == 0 or self.step == target:
                rate = images / max(elapsed, 1e-9)
                eta = (target - self.step) * global_batch / max(rate, 1e-9)
                if budget is not None:
                    eta = min(eta, max(0.0, budget - elapsed))
                event = StepsLogged(self.step, target, epoch, dict(losses), learning_rate, elapsed,
                                    rate, eta)
                history.append(event)
                emit(event)
                if self.settings.report_to != "none":
                    self.accelerator.log({**losses, "learning_rate": learning_rate}, step=self.step)
            every = self.settings.checkpoint_every
            if self.state_dir and every and self.step % every == 0:
                emit(CheckpointSaved(self.step, str(self.save())))
        seconds_taken = time.perf_counter() - started
        if self.state_dir and images and self._saved_step != self.step:
            emit(CheckpointSaved(self.step, str(self.save())))
        emit(RunEnded(self.step, reason, seconds_taken))
        return RunSummary(steps_done=self.step, reason=reason, seconds=seconds_taken,
                          images_seen=images, images_per_second=images / max(seconds_taken, 1e-9),
                          last_losses=losses, history=history)


def _serialise(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()
