"""Hugging Face Spaces: the GPU calls of a ZeroGPU Space (`app.gpu`) and what a CPU Space says.

No ZeroGPU here: a stand-in `spaces` module does what the real one (0.51) does to a call that
matters to us. It books `duration(*args)` seconds, and it moves the arguments, the return value and
every item a generator yields through pickle, as they cross into and out of ZeroGPU's worker
process (nothing else of the caller reaches the call).
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest

from e2gan.errors import E2GANError

from app import gpu

ROOT = Path(__file__).resolve().parents[1]


def _across(value):
    return pickle.loads(pickle.dumps(value))


class StandInSpaces(types.ModuleType):
    """`spaces` on ZeroGPU, as far as our calls see it."""

    def __init__(self) -> None:
        super().__init__("spaces")
        self.booked: list[int] = []

    def GPU(self, task=None, *, duration=None, size=None):  # noqa: N802 (the package's name)
        def decorate(function):
            def book(args, kwargs):
                args, kwargs = _across(args), _across(kwargs)
                self.booked.append(duration(*args, **kwargs))
                return args, kwargs

            if inspect.isgeneratorfunction(function):
                def handler(*args, **kwargs):
                    args, kwargs = book(args, kwargs)
                    for item in function(*args, **kwargs):
                        yield _across(item)
            else:
                def handler(*args, **kwargs):
                    args, kwargs = book(args, kwargs)
                    return _across(function(*args, **kwargs))
            return handler

        return decorate if task is None else decorate(task)


@pytest.fixture
def zero_gpu(monkeypatch):
    spaces = StandInSpaces()
    monkeypatch.setitem(sys.modules, "spaces", spaces)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    return spaces


def _work(report, should_stop):
    return "done"


def test_without_spaces_the_decorator_is_the_function_itself(monkeypatch):
    seconds = lambda count: 3 * count  # noqa: E731
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert gpu.gpu_task(seconds)(_work) is _work and _work.gpu_duration is seconds
    assert gpu.booking(seconds, 10) is None
    # ZeroGPU said, but no `spaces` to import: still the function itself, and it runs.
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setitem(sys.modules, "spaces", None)  # `import spaces` raises ImportError
    assert gpu.gpu_task(seconds)(_work) is _work
    assert gpu.device("cpu") == "cpu"  # outside a GPU call the studio's device


def test_the_studio_gpu_work_books_seconds_from_the_job_size(tmp_path):
    """The real modules, imported on a (stand-in) ZeroGPU Space in a fresh process: `spaces` is
    imported before torch, pair making, fine-tuning and Compare are decorated, and each books
    seconds computed from its job's size, capped at E2GAN_MAX_GPU_CALL_SECONDS."""
    package = tmp_path / "stand_in" / "spaces"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent("""
        import sys
        TORCH_FIRST = "torch" in sys.modules
        DECORATED = {}

        def GPU(task=None, *, duration=None, size=None):
            def decorate(function):
                DECORATED[function.__name__] = duration
                return function
            return decorate if task is None else decorate(task)
    """))
    script = textwrap.dedent("""
        import json, os, sys
        import app.gpu  # what app.py imports first
        import spaces
        from app import compare, concepts, pairs, settings, training
        from app.workspace import ConceptSpec, Workspace

        workspace = Workspace.create(sys.argv[1])
        folder = workspace.concept("winter")
        folder.save_spec(ConceptSpec(name="winter", prompt="make it winter",
                                     teacher="instruct-pix2pix"))
        workspace.set_current("winter")
        book = spaces.DECORATED
        turbo = Workspace.create(sys.argv[1])
        turbo.concept("winter").save_spec(ConceptSpec(
            name="winter", prompt="a snowy winter scene", teacher="sd-turbo",
            teacher_params={"num_inference_steps": 4, "strength": 0.5, "resolution": 768}))
        turbo.set_current("winter")
        minutes = [training.FinetuneRequest(minutes=m) for m in (0.5, 1.0, 5.0)]
        report = {
            "torch_first": spaces.TORCH_FIRST,
            "decorated": sorted(book),
            "pairs": [book["make_pairs_on_gpu"](workspace, n, "stop") for n in (10, 20, 30)],
            "turbo_pairs": book["make_pairs_on_gpu"](turbo, 100, "stop"),
            "fine_tune": [book["fine_tune_on_gpu"](workspace, r, None, "stop") for r in minutes],
            "compare": [book["edit_with_every_model_on_gpu"](workspace, None, 1.0, other, None, None)
                        for other in (None, "night")],
            "preview": book["preview_on_gpu"](folder.spec(), 4),
            "device": settings.SETTINGS.device, "zero_gpu": settings.SETTINGS.zero_gpu,
            "budget": training.training_budget(minutes[2], 120),
        }
        os.environ["E2GAN_MAX_GPU_CALL_SECONDS"] = "600"
        report["raised_cap"] = book["fine_tune_on_gpu"](workspace, minutes[2], None, "stop")
        print(json.dumps(report))
    """)
    env = {**os.environ, "SPACES_ZERO_GPU": "true", "SPACE_ID": "someone/e2gan",
           "PYTHONPATH": f"{package.parent}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
    env.pop("E2GAN_MAX_GPU_CALL_SECONDS", None)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "workspaces")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["torch_first"] is False
    assert report["decorated"] == ["edit_with_every_model_on_gpu", "fine_tune_on_gpu",
                                   "make_pairs_on_gpu", "preview_on_gpu"]
    # InstructPix2Pix, 20 steps at 512 px: (15 s start + 30 s load + n x 1.9 s) x 1.25, capped.
    assert report["pairs"] == [80, 104, 120]
    # SD-Turbo, 4 steps x strength 0.5 = 2 steps at 768 px: 0.3 + 2 x 0.08 x 2.25 = 0.66 s a pair.
    assert report["turbo_pairs"] == 120  # (15 + 30 + 66) x 1.25 = 139, capped
    # 15 s start + (10 s load + 20 s judging) x 1.25 + the training minutes, capped.
    assert report["fine_tune"] == [83, 113, 120]
    assert report["raised_cap"] == 353
    assert report["budget"] == pytest.approx(120 - 52.5)  # what a 120 s booking leaves to train
    # The teacher's load and one edit, then base and adapter (2 s each), and another adapter.
    assert report["compare"] == [64, 67]
    assert report["preview"] == 66  # (15 s start + 30 s load + 4 x 1.9 s) x 1.25
    # The studio's own process stays on the CPU: there `spaces` makes CUDA look available.
    assert report["device"] == "cpu" and report["zero_gpu"] is True


def test_a_fine_tune_runs_as_one_gpu_call_across_the_process_boundary(zero_gpu, winter_concept,
                                                                       tiny_base):
    from app import training
    from app.events import Evaluating, SamplesDrawn

    workspace, folder = winter_concept
    before = folder.adapter_file.read_bytes()
    on_gpu = gpu.generator_task(training.finetune_seconds, training.fine_tune)
    request = training.FinetuneRequest(minutes=0.02, size=32)
    events = []
    result = gpu.run_job(on_gpu, training.fine_tune, (workspace, request, tiny_base),
                         events.append, lambda: False)
    assert zero_gpu.booked == [54]  # 15 + 37.5 + 1.2 s, the whole run in one booking
    assert result["state"] == "finished" and result["steps"] > 0 and result["metrics"]
    # the typed events crossed the process boundary as they were sent
    assert any(isinstance(event, SamplesDrawn) for event in events) and Evaluating() in events
    assert folder.adapter_file.read_bytes() != before
    assert folder.training()["state"] == "finished"


def test_compare_runs_as_one_gpu_call_and_its_errors_keep_their_message(zero_gpu, winter_concept,
                                                                          tiny_base):
    from PIL import Image

    from app import compare

    workspace, _ = winter_concept
    on_gpu = gpu.call_task(compare.compare_seconds, compare.edit_with_every_model)
    photo = Image.new("RGB", (48, 40), (90, 120, 200))
    result = gpu.outcome(on_gpu(workspace, photo, 1.0, None, 32, tiny_base))
    assert set(result["images"]) == set(result["latency"]) == {"teacher", "base model",
                                                               "winter (strength 1)"}
    with pytest.raises(E2GANError, match="no adapter 'nope' in this workspace"):
        gpu.outcome(on_gpu(workspace, photo, 1.0, "nope", 32, tiny_base))
    # The built-in teacher's edit (0.2 s), base and adapter (2 s each), then another adapter.
    assert zero_gpu.booked == [24, 27]  # (15 + 0.2 + 4) x 1.25 and (15 + 0.2 + 6) x 1.25


def test_a_diffusion_teachers_preview_is_one_gpu_call_and_the_builtin_ones_none(
        zero_gpu, tiny_instruct_pix2pix, monkeypatch):
    from app import concepts
    from app.workspace import ConceptSpec

    monkeypatch.setattr(concepts, "preview_on_gpu",
                        gpu.call_task(concepts.preview_seconds, concepts._preview))
    spec = ConceptSpec(name="old_person", prompt="old person", teacher="instruct-pix2pix",
                       phrasings={"description": "old person", "instruction": "make them old"})
    shown = concepts.preview(spec, count=2)
    assert len(shown) == 2 and shown[0][1].size == shown[0][0].size
    assert zero_gpu.booked == [58]  # (15 s start + 30 s load + 2 x 0.3 s at 32 px) x 1.25
    assert tiny_instruct_pix2pix == ["make them old"]  # its own phrasing, across the boundary
    assert len(concepts.preview(ConceptSpec(name="winter", prompt="a snowy winter scene"), 1)) == 1
    assert zero_gpu.booked == [58]  # the built-in filters borrow no GPU


def test_stop_reaches_the_gpu_side_and_the_result_still_comes_back(zero_gpu):
    def count_until_stopped(start, report, should_stop):
        made = start
        while not should_stop():
            made += 1
            report({"made": made})
            time.sleep(0.01)
        return {"made": made, "stopped": True}

    on_gpu = gpu.generator_task(lambda start, stop_file=None: 30, count_until_stopped)
    events = []
    result = gpu.run_job(on_gpu, count_until_stopped, (5,), events.append,
                         lambda: len(events) >= 3)  # the job's Stop, after three reports
    assert result["stopped"] and result["made"] == events[-1]["made"] >= 8
    assert zero_gpu.booked == [30]


def test_a_booking_ends_the_work_in_time_and_errors_survive_the_trip(zero_gpu):
    def until_stopped(report, should_stop):
        started = time.monotonic()
        while not should_stop():
            if time.monotonic() - started > 60:
                return "never told to stop"  # a failure, not a hang
            time.sleep(0.02)
        return "stopped"

    # A 1-second booking: the work is told to stop, and not before half-way (0.5 s after the
    # call began), leaving time to write. How late after that is a busy scheduler's business.
    called = time.monotonic()
    kind, outcome = list(gpu.streamed(until_stopped, (), "/nonexistent/stop", 1))[-1]
    assert (kind, outcome) == ("result", "stopped") and time.monotonic() - called >= 0.5

    def refuses(report, should_stop):
        raise E2GANError("teacher 'x': unknown knob")

    on_gpu = gpu.generator_task(lambda stop_file=None: 20, refuses)
    with pytest.raises(E2GANError, match="unknown knob"):
        gpu.run_job(on_gpu, refuses, (), lambda event: None, lambda: False)

    class Unpicklable(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a} and {b}")

    def breaks(report, should_stop):
        raise Unpicklable("this", "that")

    on_gpu = gpu.generator_task(lambda stop_file=None: 20, breaks)
    with pytest.raises(E2GANError, match="Unpicklable: this and that"):
        gpu.run_job(on_gpu, breaks, (), lambda event: None, lambda: False)


def test_cpu_work_books_no_gpu_time(zero_gpu, tmp_path):
    """The built-in teacher's pairs run without a GPU call: no quota spent on image filters."""
    from app import pairs
    from app.workspace import ConceptSpec, Workspace

    workspace = Workspace.create(tmp_path)
    workspace.concept("winter").save_spec(ConceptSpec(name="winter", prompt="a snowy winter scene"))
    workspace.set_current("winter")
    assert not gpu.teacher_needs_gpu("builtin") and gpu.teacher_needs_gpu("instruct-pix2pix")
    on_gpu = gpu.generator_task(pairs.pair_generation_seconds, pairs.make_pairs)
    made = gpu.run_job(on_gpu, pairs.make_pairs, (workspace, 4), lambda event: None,
                       lambda: False, on_gpu=False)
    assert made["pairs"] >= 4 and zero_gpu.booked == []


def test_the_studio_says_plainly_what_the_machine_can_do(monkeypatch, tiny_base):
    from app import studio
    from app.settings import SETTINGS

    cpu_space = gpu.hardware_line("cpu", on_space=True, zero_gpu=False)
    assert cpu_space.startswith("**This Space has no GPU:**")
    assert "built-in teacher" in cpu_space and "diffusion teachers need a GPU" in cpu_space
    assert "No GPU here" in gpu.hardware_line("cpu", on_space=False, zero_gpu=False)
    monkeypatch.setenv("E2GAN_MAX_GPU_CALL_SECONDS", "90")
    zero = gpu.hardware_line("cpu", on_space=True, zero_gpu=True)
    assert zero.startswith("**ZeroGPU:**") and "up to 90 s a run" in zero
    assert "every teacher" in gpu.hardware_line("cuda", on_space=True, zero_gpu=False)
    line = studio.status_text(tiny_base)
    assert gpu.hardware_line(SETTINGS.device, SETTINGS.on_space, SETTINGS.zero_gpu) in line


def test_a_job_thread_carries_the_context_of_the_request_that_started_it():
    """ZeroGPU reads the visitor's Gradio request from the calling context, for their quota."""
    import contextvars

    from app.jobs import JobBoard

    request = contextvars.ContextVar("request", default=None)
    request.set("the visitor's request")
    seen = []
    board = JobBoard()
    list(board.stream("a" * 16, "probe", lambda report, should_stop: seen.append(
        (request.get(), threading.current_thread()))))
    (value, thread), = seen
    assert value == "the visitor's request" and thread is not threading.current_thread()
