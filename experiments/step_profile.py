"""Where does one training step's time go? A LoRA fine-tune step against a pix2pix step (issue 28).

    python experiments/step_profile.py DATASET [--steps 30] [--warmup 5] [--out FILE]

Builds the benchmark's two jobs on DATASET (a pair folder from `e2gan pairs`) with the
benchmark's settings (128 px, batch 4): `finetune_job` (the shipped base + LoRA, the studio's
recipe) and `pix2pix_job`. Each runs its warm-up steps, then STEPS steps through the trainer's
own parts, one phase at a time, timed with a clock:

  data                 the loader's next batch and the step's flips (`Trainer._batches`, `_randomise`)
  generator forward    `ConditionedGenerator` on the sources
  discriminator step   D on the real and the fake edit, its backward, its Adam step
  generator step       D on the fake edit, the losses, G's backward (through D), G's Adam step
  ema                  the EMA of the trained weights (when the recipe keeps one)

Each phase's FLOPs are counted once by torch's FlopCounterMode, so each gets an achieved rate; the
whole step's rate against pix2pix's says how far the LoRA step is from "what its arithmetic
costs". `Trainer.run` is timed over the same number of steps as a check that the phases add up.
Prints a JSON report (and writes it with --out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from e2gan.data.reader import PairDataset
from e2gan.paths import default_base_dir
from e2gan.training.recipes import (FULL_LEARNING_RATE, LORA_EMA_DECAY, LORA_LEARNING_RATE,
                                    TrainingSettings, finetune_job, pix2pix_job)

PHASES = ("data", "generator forward", "discriminator step", "generator step", "ema")


def one_step(trainer, batches, clock: dict[str, list[float]] | None = None,
             counter: dict[str, float] | None = None) -> None:
    """One step of `trainer`, phase by phase, as `Trainer.run` makes it; each phase's seconds
    appended to `clock`, or its FLOPs added to `counter`."""
    gan = trainer.gan_step

    @contextmanager
    def phase(name):
        with FlopCounterMode(display=False) if counter is not None else nullcontext() as flops:
            started = time.perf_counter()
            yield
            seconds = time.perf_counter() - started
        if clock is not None:
            clock.setdefault(name, []).append(seconds)
        if counter is not None:
            counter[name] = counter.get(name, 0.0) + flops.get_total_flops()

    with phase("data"):
        _, batch = next(batches)
        trainer._set_learning_rate()
        batch, noise = trainer._randomise(batch)
    source, target = batch["source"], batch["edited"]
    with phase("generator forward"):
        with gan._autocast():
            fake, text = gan.generator(source, list(batch["prompt"]), noise)
    with phase("discriminator step"):
        _, real_features = gan.discriminator_step(source, target, fake, text)
    with phase("generator step"):
        gan.generator_step(source, target, fake, text, real_features)
    with phase("ema"):
        if trainer.ema is not None:
            trainer.ema.step(trainer.trainable)
    trainer.step += 1


def profile(job, steps: int, warmup: int) -> dict:
    trainer = job.trainer
    trainer.model.train()
    trainer.discriminator.train()
    batches = trainer._batches()
    for _ in range(warmup):
        one_step(trainer, batches)
    flops: dict[str, float] = {}
    one_step(trainer, batches, counter=flops)
    clock: dict[str, list[float]] = {}
    started = time.perf_counter()
    for _ in range(steps):
        one_step(trainer, batches, clock=clock)
    phased = (time.perf_counter() - started) / steps
    # The same number of steps through the trainer's own loop: the phases should add up to it.
    summary = trainer.run(steps=trainer.step + steps)
    phases = {}
    for name in PHASES:
        seconds = statistics.median(clock[name])
        phases[name] = {"ms": round(seconds * 1e3, 1), "gflop": round(flops.get(name, 0) / 1e9, 2),
                        "gflop_per_s": round(flops.get(name, 0) / 1e9 / seconds, 1) if flops.get(name) else None}
    total_flops = sum(flops.values())
    return {"trainable_parameters": sum(p.numel() for p in trainer.trainable),
            "phases": phases,
            "step_ms_phased": round(phased * 1e3, 1),
            "step_ms_trainer_run": round(summary.seconds / steps * 1e3, 1),
            "step_gflop": round(total_flops / 1e9, 2),
            "step_gflop_per_s": round(total_flops / 1e9 / phased, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--only", choices=["lora", "pix2pix"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    dataset = PairDataset.open(args.dataset)
    report = {"threads": torch.get_num_threads(), "torch": torch.__version__, "size": 128,
              "batch_size": 4, "steps_timed": args.steps}
    with tempfile.TemporaryDirectory() as scratch:
        common = dict(size=128, batch_size=4, steps=10_000, checkpoint_every=0, log_every=10_000,
                      grain=False)
        if args.only in (None, "lora"):
            settings = TrainingSettings(learning_rate=LORA_LEARNING_RATE, ema_decay=LORA_EMA_DECAY, **common)
            job = finetune_job(default_base_dir(), dataset, Path(scratch) / "adapter.safetensors",
                               settings, mode="lora")
            report["lora"] = profile(job, args.steps, args.warmup)
        if args.only in (None, "pix2pix"):
            job = pix2pix_job(dataset, Path(scratch) / "pix2pix",
                              TrainingSettings(learning_rate=FULL_LEARNING_RATE, **common))
            report["pix2pix"] = profile(job, args.steps, args.warmup)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
