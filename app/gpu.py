"""The GPU on a ZeroGPU Space, and what the machine can do in plain words.

A ZeroGPU Space lends a GPU only for the length of a call to a function decorated with
`spaces.GPU(duration=...)`. What the `spaces` package (0.51) does with such a call, and so what
this module is built around:

- Off ZeroGPU (`SPACES_ZERO_GPU` unset) `spaces.GPU` returns the function unchanged; we do not even
  import the package there, so the studio runs where it is not installed.
- On ZeroGPU the call runs in a *forked worker process*: its arguments, its return value (or each
  item a generator yields) are pickled across, and what it writes in memory never reaches the
  studio's process; only files do. Exceptions other than `gr.Error` arrive as "ZeroGPU worker
  error" with the message lost.
- `duration` may be a callable taking the function's own arguments; it returns the seconds to
  book. The booking counts against the visitor's quota (read from the Gradio request of the
  calling context), a booking over the visitor's per-call cap is refused, and a call that runs
  past its booking may be aborted.
- Importing `spaces` on ZeroGPU patches torch (`torch.cuda.is_available()` says True outside the
  calls); it must come before anything initialises CUDA, hence `app.py` imports this module first.

Our long jobs (pair generation, fine-tuning) run in `app.jobs` worker threads that outlive the
request, report progress through callbacks and stop through a flag: none of which crosses a
process boundary. So the GPU work of a job is a decorated *generator* with picklable arguments
(the workspace, the request), called from the job's thread (which carries the request's context,
so the visitor's quota is used): `streamed` runs the engine's blocking function inside the GPU call
and yields its progress events, heartbeats and finally its result or its error (as a value, so the
message survives); `relay`, on the job's side, hands the events on and passes Stop to the GPU side
through a file, so a stopped job still finishes its step and writes. A GPU call also stops by
itself shortly before its booking runs out: pairs and adapters are written atomically as they are
made, so starting again resumes. The same path runs off ZeroGPU, in one process, so every test of
the studio exercises it.
"""

from __future__ import annotations

import contextvars
import importlib
import math
import os
import pickle
import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator


def on_zero_gpu() -> bool:
    """Whether this is a ZeroGPU Space: the variable the `spaces` package itself reads."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true")


def _spaces():
    """The `spaces` package when it lends GPUs here (a ZeroGPU Space with it installed), else None."""
    if not on_zero_gpu():
        return None
    try:
        return importlib.import_module("spaces")
    except ImportError:
        return None


_spaces()  # on ZeroGPU: before anything can initialise CUDA (see the module's note)

from e2gan.errors import E2GANError  # noqa: E402  (after `spaces`, on purpose)
from e2gan.limits import MAX_GPU_CALL_SECONDS  # noqa: E402

Report = Callable[[dict[str, Any]], None]


# --- how long a call books ------------------------------------------------------------------

# Added to every booking: forking the worker, initialising CUDA, moving weights to the GPU.
CALL_START_SECONDS = 15.0
# Bookings are estimates; this much more is asked for so that a slow call is not aborted.
SAFETY = 1.25
# A call stops its work this long before its booking ends, to write what it has made.
WRAP_UP_SECONDS = 10.0

# Estimates for a ZeroGPU slice (half an RTX Pro 6000 / an H200 MIG), not measured: no such GPU
# was available here. They size the bookings only; a call that ends early frees the GPU at once.
DIFFUSION_LOAD_SECONDS = 30.0  # a Stable Diffusion pipeline from disk onto the GPU
DIFFUSION_STEP_SECONDS = 0.08  # one denoising step at 512 px, fp16, with guidance
DIFFUSION_IMAGE_SECONDS = 0.3  # per image besides the steps: VAE encode and decode
CPU_IMAGE_SECONDS = 0.2  # a teacher without weights (the built-in filters) runs on the CPU


def capped(seconds: float) -> int:
    """Seconds to book: whole, at least 10, at most `E2GAN_MAX_GPU_CALL_SECONDS`."""
    whole = math.ceil(round(seconds, 6))  # 80.00000000000001 s is 80 s, not 81
    return int(min(max(whole, 10), MAX_GPU_CALL_SECONDS.value()))


def teacher_needs_gpu(name: str) -> bool:
    """Teachers with weights (the diffusion editors) need a GPU; the built-in filters do not."""
    # loads torch, which on ZeroGPU must come after `spaces` (see the top); registers every teacher
    from e2gan.teachers import TEACHERS

    return name in TEACHERS and bool(TEACHERS.get(name).default_model)


def teacher_image_seconds(name: str, params: dict[str, Any] | None = None) -> tuple[float, float]:
    """(seconds to load, seconds per image) of teacher `name` with `params` on a ZeroGPU slice:
    denoising steps actually run (img2img runs steps x strength) at its resolution."""
    if not teacher_needs_gpu(name):
        return 0.0, CPU_IMAGE_SECONDS
    from e2gan.teachers import TEACHERS  # loads torch: after `spaces`, as at the top

    given = {key: value for key, value in (params or {}).items() if value is not None}
    knobs = {**getattr(TEACHERS.get(name), "defaults", {}), **given}
    steps = int(knobs.get("num_inference_steps", 30))
    if "strength" in knobs:
        steps = max(1, int(steps * float(knobs["strength"])))
    area = (int(knobs.get("resolution", 512)) / 512) ** 2
    return DIFFUSION_LOAD_SECONDS, DIFFUSION_IMAGE_SECONDS + steps * DIFFUSION_STEP_SECONDS * area


# --- the decorator --------------------------------------------------------------------------

def gpu_task(duration: Callable[..., float]):
    """`spaces.GPU(duration=...)` on a ZeroGPU Space, the function itself elsewhere.

    `duration` takes the decorated function's own arguments and returns the seconds the call
    needs (from the job's size); the booking is that, capped (`capped`). The function is marked
    with `gpu_duration` either way, so what would be booked can be checked anywhere."""

    def decorate(function):
        function.gpu_duration = duration
        spaces = _spaces()
        if spaces is None:
            return function

        def booked(*args, **kwargs) -> int:
            return capped(duration(*args, **kwargs))

        return spaces.GPU(duration=booked)(function)

    return decorate


def booking(duration: Callable[..., float], *args, **kwargs) -> int | None:
    """The seconds a call of a function decorated with `duration` books here: None off ZeroGPU
    (nothing is booked, nothing ends a call early)."""
    return capped(duration(*args, **kwargs)) if _spaces() is not None else None


# The booking of the GPU call running in this context (None outside one, and off ZeroGPU).
_BOOKED: contextvars.ContextVar[int | None] = contextvars.ContextVar("e2gan_gpu_booking", default=None)


def booked_seconds() -> int | None:
    return _BOOKED.get()


def device(configured: str) -> str:
    """Where work inside a GPU call runs: the lent GPU on ZeroGPU (only inside a call is it real),
    else `configured`, the studio's device (`SETTINGS.device`)."""
    if _BOOKED.get() is not None:
        import torch  # here, not at the top: on ZeroGPU `spaces` must be imported before torch

        if torch.cuda.is_available():
            return "cuda"
    return configured


def call(function: Callable, booked: int | None, *args, **kwargs) -> tuple[str, Any]:
    """Run `function` inside a GPU call: ("result", value) or ("error", exception), so that an
    E2GANError's message survives the trip back from ZeroGPU's worker process."""
    token = _BOOKED.set(booked)
    try:
        return "result", function(*args, **kwargs)
    except Exception as error:  # returned, then raised again by `outcome` on the studio's side
        return "error", _portable(error)
    finally:
        _BOOKED.reset(token)


def outcome(result: tuple[str, Any]) -> Any:
    kind, value = result
    if kind == "error":
        raise value
    return value


def _portable(error: BaseException) -> BaseException:
    """The error itself when it survives pickling, else an E2GANError with its message."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return E2GANError(f"{type(error).__name__}: {error}")


# --- long jobs across the process boundary ----------------------------------------------------

HEARTBEAT_SECONDS = 0.5
_END = object()


def streamed(body: Callable[..., Any], args: tuple, stop_file: str,
             booked: int | None) -> Iterator[tuple[str, Any]]:
    """Inside the GPU call: run `body(*args, report, should_stop)` in a thread and yield
    ("event", event) for each report, ("heartbeat", None) when quiet for `HEARTBEAT_SECONDS`, then
    ("result", value) or ("error", exception). `should_stop` turns true when `stop_file` exists,
    when this generator is closed early, or `WRAP_UP_SECONDS` before a booking of `booked`
    seconds (which began `CALL_START_SECONDS` earlier) runs out."""
    events: queue.Queue = queue.Queue()
    closed = threading.Event()
    started = time.monotonic()
    # The booking's clock starts before this body does (forking, CUDA): that much less is left.
    left = None if booked is None else max(booked - CALL_START_SECONDS - WRAP_UP_SECONDS, booked / 2)
    deadline = None if left is None else started + left
    ended: dict[str, Any] = {}

    def should_stop() -> bool:
        return (closed.is_set() or os.path.exists(stop_file)
                or (deadline is not None and time.monotonic() >= deadline))

    def run() -> None:
        try:
            ended["outcome"] = call(body, booked, *args, events.put, should_stop)
        finally:
            events.put(_END)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,),
                              name="e2gan-gpu-body", daemon=True)
    thread.start()
    try:
        while True:
            try:
                event = events.get(timeout=HEARTBEAT_SECONDS)
            except queue.Empty:
                yield "heartbeat", None
                continue
            if event is _END:
                break
            yield "event", event
    finally:
        closed.set()  # closed early (its caller went away): the body ends its step and writes
        thread.join()
    yield ended.get("outcome", ("error", E2GANError("the job's work ended abnormally")))


def relay(events: Iterator[tuple[str, Any]], stop_file: str, report: Report,
          should_stop: Callable[[], bool]) -> Any:
    """On the job's side: pass each event of `streamed` to `report`, turn the job's Stop into
    `stop_file` (checked at every event and heartbeat), and return the result or raise the error."""
    ended = None
    try:
        for kind, value in events:
            if should_stop() and not os.path.exists(stop_file):
                Path(stop_file).touch()
            if kind == "event":
                report(value)
            elif kind in ("result", "error"):
                ended = kind, value  # the last item: the call then ends by itself
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # a no-op after the end; on an early exit it stops the GPU side too
    if ended is None:
        raise E2GANError("the GPU call ended without a result (ZeroGPU aborted it?); start again "
                         "to resume")
    return outcome(ended)


def run_job(gpu_body: Callable[..., Iterator], body: Callable[..., Any], args: tuple,
            report: Report, should_stop: Callable[[], bool], on_gpu: bool = True) -> Any:
    """A job's work: `body(*args, report, should_stop)` through the decorated generator
    `gpu_body(*args, stop_file)` (a GPU call on ZeroGPU), or here when `on_gpu` is false (CPU
    work, which should not spend the visitor's GPU quota)."""
    folder = tempfile.mkdtemp(prefix="e2gan-stop-")
    stop_file = os.path.join(folder, "stop")
    try:
        events = gpu_body(*args, stop_file) if on_gpu else streamed(body, args, stop_file, None)
        return relay(events, stop_file, report, should_stop)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def call_task(duration: Callable[..., float], body: Callable[..., Any]):
    """The GPU side of a short call `body(*args)`: decorated with `gpu_task(duration)`, it
    returns ("result", value) or ("error", exception); `outcome` turns that back."""

    def on_gpu(*args, **kwargs):
        return call(body, booking(duration, *args, **kwargs), *args, **kwargs)

    on_gpu.__name__ = on_gpu.__qualname__ = f"{body.__name__.lstrip('_')}_on_gpu"
    on_gpu.__module__ = body.__module__
    on_gpu.__doc__ = f"`{body.__name__}` inside a GPU call (see app.gpu.call_task)."
    return gpu_task(duration)(on_gpu)


def generator_task(duration: Callable[..., float], body: Callable[..., Any]):
    """The GPU side of a job whose work is `body(*args, report, should_stop)`: a generator of
    `streamed` events taking `body`'s leading arguments plus a stop file, decorated with
    `gpu_task(duration)` (`duration` takes the same arguments; the stop file is last and
    optional). Made once per body, at import: ZeroGPU keeps one worker per decorated function."""

    def on_gpu(*args):
        *leading, stop_file = args
        yield from streamed(body, tuple(leading), stop_file, booking(duration, *leading))

    on_gpu.__name__ = on_gpu.__qualname__ = f"{body.__name__.lstrip('_')}_on_gpu"
    on_gpu.__module__ = body.__module__
    on_gpu.__doc__ = f"`{body.__name__}` inside a GPU call (see app.gpu.generator_task)."
    return gpu_task(duration)(on_gpu)


# --- plain words for the status line --------------------------------------------------------

def hardware_line(device: str, on_space: bool, zero_gpu: bool) -> str:
    """What this machine can do, in one line for the studio's status."""
    if zero_gpu:
        return (f"**ZeroGPU:** fine-tuning, and previews, pair making and Compare with a diffusion "
                f"teacher, borrow a GPU for up to {MAX_GPU_CALL_SECONDS.value()} s a run (a longer "
                "run stops and resumes when started again); everything else runs on the CPU")
    if device == "cpu":
        where = "This Space has no GPU" if on_space else "No GPU here"
        return (f"**{where}:** the built-in teacher, fine-tuning, Compare and exports run at CPU "
                "speed (a 5-minute fine-tune learns a concept); the diffusion teachers need a GPU "
                "(a GPU Space, or bring pairs made elsewhere as a zip)")
    return "**GPU:** every teacher, fine-tuning and Compare run on it"
