"""What a training run tells its caller: a few typed events, and the summary `run` returns.

Events are frozen dataclasses, so a consumer reads `event.step`, not `event["step"]`, and a value
always means one thing (a step count is never also a "finished" flag). A caller tells them apart
with `isinstance` or a `match` statement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Callable, Union


class EndReason(str, Enum):
    """Why `Trainer.run` returned."""

    STEPS = "steps"  # the step target was reached
    TIME = "time"  # the time budget ran out
    STOPPED = "stopped"  # someone called `Trainer.stop()`


@dataclass(frozen=True)
class StepsLogged:
    """Every `log_every` steps: where the run is and how fast it goes."""

    step: int
    total_steps: int | None  # None: the run is bounded by time only
    epoch: int
    losses: dict[str, float]
    learning_rate: float
    seconds: float  # training time of this `run` call so far
    images_per_second: float  # global: every process's images
    eta_seconds: float | None  # to the step target, or to the time budget, whichever is sooner


@dataclass(frozen=True)
class CheckpointSaved:
    """The resumable state was written (atomically) at this step."""

    step: int
    path: str


@dataclass(frozen=True)
class RunEnded:
    """The last event of a `run` call."""

    step: int
    reason: EndReason
    seconds: float


TrainingEvent = Union[StepsLogged, CheckpointSaved, RunEnded]
EventCallback = Callable[[TrainingEvent], None]


@dataclass
class RunSummary:
    """What one `Trainer.run` call did. `steps_done` counts from the start of training (a resumed
    run includes the steps before it); `images_seen` and `seconds` are this call's only."""

    steps_done: int
    reason: EndReason
    seconds: float
    images_seen: int
    images_per_second: float
    last_losses: dict[str, float] = field(default_factory=dict)
    history: list[StepsLogged] = field(default_factory=list)

    @property
    def stopped_early(self) -> bool:
        """Ended by a stop or the clock rather than by reaching its step target."""
        return self.reason is not EndReason.STEPS

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reason"] = self.reason.value
        return data
