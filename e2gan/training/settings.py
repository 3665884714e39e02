"""Every choice a training job makes, in one dataclass that is saved with what it trains."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from e2gan.errors import E2GANError
from e2gan.limits import MAX_TRAINING_SIZE, MAX_TRAINING_STEPS
from e2gan.precision import check_precision

# Adam on the LoRA factors (B starts at zero) needs a larger step than full training to move in a
# few CPU minutes. Measured on a held-out concept (watercolor, 100 pairs, 3 min at 128 px,
# MAE vs teacher, lower is better): 2e-4 -> 32.2, 1e-3 -> 29.7, 3e-3 -> 27.7, 1e-2 diverged (46.0).
LORA_LEARNING_RATE = 3e-3
FULL_LEARNING_RATE = 2e-4  # the paper's (and pix2pix's) Adam setting
# A LoRA fine-tune keeps an EMA of its adapter and writes that: a minute of GAN steps at 3e-3
# ends wherever the last few noisy updates left it, and the average is a steadier edit. Measured
# by `experiments/lora_recipe_trials.py` on four held-out concepts and validation photos only (never the
# benchmark's judging photos), 130 steps each: mean FID 294.3 -> 289.7, mean KID 0.221 -> 0.215;
# a linear decay (3e-3 or 6e-3) scored between the two, and it needs a step count that a
# wall-clock budget has not. Full fine-tuning and pix2pix keep the paper's recipe (no EMA).
LORA_EMA_DECAY = 0.99
# A LoRA fine-tune also adapts the generator's first and last convolutions (the stem, whose
# features skip to the head, and the output head), beside the paper's crucial layers: the finest
# texture and the output's colours pass through them and nothing else. Measured by
# `experiments/lora_recipe_trials.py` on validation photos (150 steps, EMA 0.99; docs/training/
# lora-recipe-trials.jsonl, built-in teacher v2): risograph PSNR 16.39 -> 17.20 dB, FID 231.4 ->
# 226.3, KID 0.099 -> 0.083; the tone concept vampire 17.97 -> 18.10 dB, FID 231.4 -> 192.8, KID
# 0.177 -> 0.127. Feature matching on D (weight 10) did nothing at L1 100 (risograph 16.47 dB,
# FID 231.7) and hurt with L1 at 10 (15.98 dB, FID 234.0), so it stays off. ~27 K parameters more.
TEXTURE_LORA_RANKS = {"stem.conv": 8, "head.1": 8}
REPORT_TO = ("none", "tensorboard", "trackio")
CONCEPT_STARTS = ("closest", "mean")  # see training.concept_start


@dataclass
class TrainingSettings:
    size: int = 128
    steps: int = 1000  # optimiser steps; each sees batch_size x processes images
    batch_size: int = 4  # per process
    learning_rate: float = FULL_LEARNING_RATE
    discriminator_learning_rate: float | None = None  # None: same as learning_rate
    l1_weight: float = 100.0
    feature_matching_weight: float = 0.0  # pix2pixHD's term on D's features; see training.losses
    grain: bool = True  # a LoRA fine-tune fits its concept's grain when it writes (models.grain)
    seed: int = 0
    device: str = "auto"  # auto, cpu or cuda (GPUs: CUDA_VISIBLE_DEVICES / accelerate launch)
    # auto: bf16 autocast where the device multiplies bf16 in hardware (GPUs; CPUs with AMX,
    # AVX512-BF16 or ARM BF16), else fp32; see e2gan.precision. Weights, optimiser state, EMA and
    # losses stay fp32 either way.
    precision: str = "auto"
    checkpoint_every: int = 200  # steps; 0: only when a run ends
    max_seconds: float | None = None
    augment: bool = True
    schedule: str = "constant"  # constant, linear (pix2pix's), cosine; see training.schedules
    warmup_steps: int = 0
    ema_decay: float = 0.0  # 0: off; else the EMA's top decay (warming up below it: training/ema.py)
    max_grad_norm: float | None = None  # None: no clipping
    report_to: str = "none"  # none, tensorboard or trackio (through Accelerate's trackers)
    log_every: int = 10
    concept_start: str = "closest"  # a new concept's tokens: closest known concept, or "mean"

    def __post_init__(self) -> None:
        for name in ("size", "steps", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise E2GANError(f"{name.replace('_', ' ')} must be at least 1, got {getattr(self, name)}")
        MAX_TRAINING_STEPS.check(self.steps, f"{self.steps:,} training steps")
        MAX_TRAINING_SIZE.check(self.size, f"training size {self.size} px")
        # `not x > 0` is also true for NaN; inf would train to NaN weights that pass every check.
        for name in ("learning_rate", "discriminator_learning_rate", "l1_weight", "max_grad_norm"):
            value = getattr(self, name)
            if value is not None and not 0 < value < float("inf"):
                raise E2GANError(f"{name.replace('_', ' ')} must be a positive finite number, got {value}")
        if self.max_seconds is not None and not self.max_seconds >= 0:
            raise E2GANError(f"time limit must not be negative, got {self.max_seconds}")
        if not 0 <= self.feature_matching_weight < float("inf"):
            raise E2GANError("feature matching weight must be a finite number of at least 0, "
                             f"got {self.feature_matching_weight}")
        if not 0 <= self.ema_decay < 1:
            raise E2GANError(f"EMA decay must lie in [0, 1), got {self.ema_decay}")
        if self.warmup_steps < 0 or self.checkpoint_every < 0:
            raise E2GANError("warm-up steps and checkpoint interval must not be negative")
        if self.concept_start not in CONCEPT_STARTS:
            raise E2GANError(f"concept start must be one of {', '.join(CONCEPT_STARTS)}, "
                             f"got {self.concept_start!r}")
        check_precision(self.precision)
        if self.report_to not in REPORT_TO:
            raise E2GANError(f"report_to must be one of {', '.join(REPORT_TO)}, got {self.report_to!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def tracker_config(self) -> dict[str, Any]:
        """The settings as trackers accept them (TensorBoard's hparams take no None)."""
        return {key: ("none" if value is None else value) for key, value in asdict(self).items()}


def wall_clock_steps() -> int:
    """The step count of a run that only its time budget ends: as many as one run may have
    (`E2GAN_MAX_TRAINING_STEPS`)."""
    return MAX_TRAINING_STEPS.value()
