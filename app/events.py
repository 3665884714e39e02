"""What the studio's long jobs tell the page: typed events, from the engine to the tabs.

A job (`app.jobs`) reports the engine's own events where they fit (a download's
`DownloadProgress`, the pair maker's `PairsProgress`, a video edit's `VideoProgress`) and the
studio's below, and its stream ends with `JobDone`. A watcher tells them apart with `match`, never by guessing from a dict's keys:

    match event:
        case TrainingProgress(step=step, seconds=seconds, budget=budget): ...
        case JobDone(result=summary): ...

Every event is a frozen dataclass: it crosses the ZeroGPU call's process boundary (pickled), and a
late watcher replays the same objects from the job's log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from e2gan.data.generate import PairsProgress
from e2gan.hub.download import DownloadProgress
from e2gan.inference.video import VideoProgress


@dataclass(frozen=True)
class Reattached:
    """First of a stream that follows a job already running (a reload, a second Start)."""

    kind: str


@dataclass(frozen=True)
class Heartbeat:
    """The job is alive and quiet: a watcher may redraw or notice its page has gone."""


@dataclass(frozen=True)
class JobDone:
    """The last event of a job's stream: what the job returned, and whether Stop ended it."""

    result: Any
    stopped: bool = False


@dataclass(frozen=True)
class TrainingProgress:
    """A training step ended (or, with step 0, the run is about to start)."""

    step: int
    seconds: float  # training seconds of this run so far
    budget: float  # training seconds this run may take
    eta_seconds: float | None = None  # to the end of the whole run
    losses: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SamplesDrawn:
    """A slice of a fine-tune ended: its adapter is written and drawn on held-out pairs."""

    path: str  # the sample sheet: source | teacher | adapter
    step: int
    seconds: float
    budget: float
    history: list[dict[str, float]]  # every logged step's losses so far


@dataclass(frozen=True)
class Evaluating:
    """Training is over; the model is being measured against the teacher."""


JobEvent = Union[Reattached, Heartbeat, JobDone, TrainingProgress, SamplesDrawn, Evaluating,
                 PairsProgress, DownloadProgress, VideoProgress]
