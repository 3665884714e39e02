"""Long jobs (pair generation, fine-tuning) as generators that stream progress and stop cleanly.

The engine's long functions block and report through `on_progress` / poll `should_stop`. Here one
runs in a worker thread while a generator relays its progress events to the UI. Stopping never
kills the thread: it sets the job's stop flag, which the engine polls between batches (pairs) or
steps (training) and then finishes its atomic writes, so a stopped job leaves a valid, resumable
dataset or adapter. The same happens when Gradio cancels the generator (a Stop button's
`cancels=`, a client's `job.cancel()`, a closed tab): closing the generator runs its `finally`,
which stops the worker and waits for it.
"""

from __future__ import annotations

import ctypes
import gc
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from e2gan.errors import E2GANError

Report = Callable[[dict[str, Any]], None]
Work = Callable[[Report, Callable[[], bool]], Any]

# How long closing a job waits for its worker: a pair batch or a training step on a slow CPU.
STOP_WAIT_SECONDS = 120.0


@dataclass
class Job:
    workspace_id: str
    kind: str
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    started: float = field(default_factory=time.time)

    def stop(self, wait: float = STOP_WAIT_SECONDS) -> bool:
        """Ask the job to stop and wait for it; True when its worker has finished."""
        self.stop_event.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(wait)
        return self.thread is None or not self.thread.is_alive()


class JobBoard:
    """The jobs running now, at most one per workspace (two writers on one dataset would clash)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}

    def running(self) -> list[Job]:
        with self._lock:
            return [job for job in self._jobs.values() if job.thread and job.thread.is_alive()]

    def get(self, workspace_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(workspace_id)

    def stop(self, workspace_id: str) -> str:
        job = self.get(workspace_id)
        if job is None:
            return "nothing is running"
        finished = job.stop()
        return f"stopped {job.kind}" if finished else f"asked {job.kind} to stop; it is finishing a step"

    def _claim(self, workspace_id: str, kind: str) -> Job:
        with self._lock:
            current = self._jobs.get(workspace_id)
            if current is not None and current.thread and current.thread.is_alive():
                raise E2GANError(f"{current.kind} is already running in this workspace; stop it first")
            job = Job(workspace_id, kind)
            self._jobs[workspace_id] = job
            return job

    def _release(self, job: Job) -> None:
        with self._lock:
            if self._jobs.get(job.workspace_id) is job:
                del self._jobs[job.workspace_id]

    def stream(self, workspace_id: str, kind: str, work: Work,
               poll_seconds: float = 0.25) -> Iterator[dict[str, Any]]:
        """Run `work(report, should_stop)` in a thread; yield each reported event, then
        {"done": True, "result": ...}. Errors raised by `work` are raised here."""
        job = self._claim(workspace_id, kind)
        events: queue.Queue = queue.Queue()
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["result"] = work(events.put, job.stop_event.is_set)
            except BaseException as error:  # handed to the generator, which re-raises it
                outcome["error"] = error
            finally:
                events.put(None)

        job.thread = threading.Thread(target=target, name=f"e2gan-{kind}-{workspace_id}", daemon=True)
        job.thread.start()
        try:
            while True:
                try:
                    event = events.get(timeout=poll_seconds)
                except queue.Empty:
                    yield {"heartbeat": True}
                    continue
                if event is None:
                    break
                yield event
            if "error" in outcome:
                raise outcome["error"]
            yield {"done": True, "stopped": job.stop_event.is_set(), "result": outcome.get("result")}
        finally:
            # Reached on normal end, on an error and when the generator is closed (cancelled).
            job.stop()
            self._release(job)
            release_freed_memory()


def release_freed_memory() -> None:
    """Hand the memory a finished job used back to the system. Its trainer sits in reference
    cycles that only the cycle collector frees, and glibc then keeps the freed heap unless
    trimmed: measured after one 18 s fine-tune at 128 px, 1,046 MB without, 973 MB with this
    (898 MB before the job)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): the allocator decides
        pass


BOARD = JobBoard()
