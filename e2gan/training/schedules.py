"""Learning-rate schedules as a pure function of the step.

A pure function (rather than a stateful `LambdaLR`) makes resuming exact without saving anything:
the factor at step `s` is known from `s` alone, under any number of processes. The shapes are the
field's usual ones:

- `constant`: warm-up, then the base rate.
- `linear`: pix2pix's policy: the base rate for the first half of training, then a straight line
  down to zero at the last step.
- `cosine`: warm-up, then a half cosine from the base rate to zero (as `transformers`'
  `get_cosine_schedule_with_warmup`).

Warm-up (all three) rises linearly from 0 to the base rate over `warmup_steps`. A run bounded by
time only has no last step, so decaying schedules need a step count (`check_schedule`).
"""

from __future__ import annotations

import math

from e2gan.errors import E2GANError

SCHEDULES = ("constant", "linear", "cosine")


def check_schedule(name: str, total_steps: int | None, warmup_steps: int) -> None:
    if name not in SCHEDULES:
        raise E2GANError(f"unknown learning-rate schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    if warmup_steps < 0:
        raise E2GANError(f"warm-up steps must not be negative, got {warmup_steps}")
    if name != "constant" and total_steps is None:
        raise E2GANError(f"the {name} schedule decays to zero at the last step, so it needs a step "
                         "count; a run bounded by time only uses the constant schedule")


def learning_rate_factor(name: str, step: int, total_steps: int | None, warmup_steps: int = 0) -> float:
    """The multiplier of the base learning rate for the update made at `step` (0-based)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if name == "constant" or total_steps is None:
        return 1.0
    if name == "linear":
        half = total_steps // 2
        if step < half:
            return 1.0
        return max(0.0, (total_steps - step) / max(1, total_steps - half))
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))
