"""Weights on first use: a teacher's or CLIP's weights download once into the Hugging Face cache,
with progress and cancel, through huggingface_hub's real code against a Hub stand-in on loopback
(tests/hub_stand_in.py). Offline, the one-line error naming the repo and `hf download` stays."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import pytest
from hub_stand_in import HubStandIn

from e2gan.errors import E2GANError
from e2gan.hub.download import DownloadCancelled, DownloadProgress, cached_snapshot
from e2gan.teachers.weights import (ALLOW_PATTERNS, IGNORE_PATTERNS, resolve_model_folder,
                                   weights_present)

from app.events import JobDone

REPO = "e2gan-test/tiny-pipeline"
WEIGHTS = "unet/diffusion_pytorch_model.safetensors"
# Past huggingface_hub's 10 MiB read size, so that a dropped connection has bytes on disk to
# resume from and a cancel has a chunk boundary to stop at.
CHUNK = 10 * 1024 * 1024
PIPELINE = {
    "model_index.json": json.dumps({"_class_name": "StableDiffusionPipeline",
                                    "unet": ["diffusers", "UNet2DConditionModel"]}).encode(),
    "unet/config.json": b'{"sample_size": 8}',
    WEIGHTS: random.Random(0).randbytes(CHUNK + 600_000),
    # Never fetched: the fp16 variant and the single-file checkpoint (IGNORE_PATTERNS).
    "unet/diffusion_pytorch_model.fp16.safetensors": b"half",
    "v1-5-pruned.ckpt": b"pickle",
}
WANTED = ["model_index.json", "unet/config.json", WEIGHTS]


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with HubStandIn() as stand_in:
        stand_in.use(monkeypatch, tmp_path / "hf-cache")
        stand_in.add_repo(REPO, PIPELINE)
        yield stand_in


def hub_cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE  # the test's own, set by `HubStandIn.use`


def files_in(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_missing_model_downloads_once_into_the_cache_with_progress(hub):
    events = []
    folder = resolve_model_folder(REPO, allow_download=True, on_progress=events.append)
    assert files_in(folder) == {name: PIPELINE[name] for name in WANTED}
    assert str(folder).startswith(hub_cache())
    assert cached_snapshot(REPO, ALLOW_PATTERNS, IGNORE_PATTERNS) == folder
    total = sum(len(PIPELINE[name]) for name in WANTED)
    assert events[0].total_bytes == total and events[0].done_bytes == 0  # the size from the start
    assert events[0].files_total == 3 and not events[0].finished
    last = events[-1]
    assert last.finished and last.done_bytes == total and last.files_done == 3
    assert last.bytes_per_second > 0 and last.eta_seconds == 0
    assert [e.done_bytes for e in events] == sorted(e.done_bytes for e in events)
    assert "e2gan-test/tiny-pipeline: 11.1 MB of 11.1 MB (100%)" in last.describe()
    assert "3 of 3 files" in last.describe()

    # Once there, it is found offline: no request reaches the Hub again.
    asked = len(hub.requests)
    assert resolve_model_folder(REPO) == folder and weights_present(REPO)[0]
    assert len(hub.requests) == asked


def test_a_dropped_connection_resumes_with_a_range_request(hub):
    hub.cut_once[WEIGHTS] = CHUNK + 100_000  # the first GET stops part way through the file
    folder = resolve_model_folder(REPO, allow_download=True)
    assert (folder / WEIGHTS).read_bytes() == PIPELINE[WEIGHTS]
    first, second = hub.file_requests(WEIGHTS)
    assert first.range is None and first.sent == CHUNK + 100_000
    assert second.range == f"bytes={CHUNK}-"  # from the last whole chunk on disk
    assert second.sent == len(PIPELINE[WEIGHTS]) - CHUNK  # the rest, not the file again


def test_a_cancel_leaves_no_half_snapshot_and_the_next_download_completes(hub):
    hub.hold[WEIGHTS] = CHUNK + 100_000  # the weights file pauses part way through
    stop, outcome = threading.Event(), {}

    def download():
        try:
            resolve_model_folder(REPO, allow_download=True, should_stop=stop.is_set)
        except E2GANError as error:
            outcome["error"] = error

    worker = threading.Thread(target=download)
    worker.start()
    assert hub.holding.wait(10)
    stop.set()  # the user presses Cancel ...
    hub.release.set()  # ... and the next bytes arrive
    worker.join(10)
    assert isinstance(outcome.get("error"), DownloadCancelled)
    message = str(outcome["error"])
    assert "download of e2gan-test/tiny-pipeline cancelled" in message and "\n" not in message
    assert "next download fetches the rest" in message

    # The half-fetched snapshot is not taken for a model, and no partial file lingers.
    assert cached_snapshot(REPO, ALLOW_PATTERNS, IGNORE_PATTERNS) is None
    present, reason = weights_present(REPO)
    assert not present and "not on this machine" in reason
    assert not list(Path(hub_cache()).rglob("*.incomplete"))

    folder = resolve_model_folder(REPO, allow_download=True)
    assert files_in(folder) == {name: PIPELINE[name] for name in WANTED}


def test_a_missing_repo_is_one_line_naming_it(hub):
    with pytest.raises(E2GANError) as error:
        resolve_model_folder("e2gan-test/no-such-model", allow_download=True)
    message = str(error.value)
    assert message.startswith("e2gan-test/no-such-model was not found on the Hub")
    assert "\n" not in message


def test_a_gated_repo_says_how_to_get_access_and_a_token_with_access_downloads(hub, monkeypatch):
    hub.add_repo("e2gan-test/gated", PIPELINE, gated=True)
    with pytest.raises(E2GANError) as error:
        resolve_model_folder("e2gan-test/gated", allow_download=True)
    message = str(error.value)
    assert "e2gan-test/gated is a gated model" in message and "\n" not in message
    assert f"{hub.url}/e2gan-test/gated" in message  # where to accept its conditions
    assert "hf auth login" in message and "HF_TOKEN" in message

    monkeypatch.setenv("HF_TOKEN", "hf_without_access")
    with pytest.raises(E2GANError, match="your Hugging Face token has no access to it yet"):
        resolve_model_folder("e2gan-test/gated", allow_download=True)

    hub.tokens.add("hf_with_access")
    monkeypatch.setenv("HF_TOKEN", "hf_with_access")
    folder = resolve_model_folder("e2gan-test/gated", allow_download=True)
    assert (folder / WEIGHTS).read_bytes() == PIPELINE[WEIGHTS]
    assert hub.file_requests(WEIGHTS)[-1].authorization == "Bearer hf_with_access"


def test_offline_the_one_line_error_stays_and_nothing_is_asked(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(E2GANError) as error:
        resolve_model_folder(REPO, allow_download=True)
    assert "HF_HUB_OFFLINE" in str(error.value) and f"hf download {REPO}" in str(error.value)
    with pytest.raises(E2GANError, match=f"not on this machine.*hf download {REPO}"):
        resolve_model_folder(REPO)
    assert hub.requests == []


def test_clip_weights_download_through_the_same_path(hub):
    from e2gan.text import resolve_open_clip_weights

    clip_repo = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"  # open_clip's laion2b_s34b_b79k
    hub.add_repo(clip_repo, {"open_clip_model.safetensors": b"clip weights",
                             "open_clip_pytorch_model.bin": b"the same, pickled"})
    events = []
    path = resolve_open_clip_weights("ViT-B-32", "laion2b_s34b_b79k", allow_download=True,
                                     on_progress=events.append)
    assert Path(path).read_bytes() == b"clip weights"
    assert not hub.file_requests("open_clip_pytorch_model.bin")  # one file, not both
    assert events[-1].finished and events[-1].done_bytes == len(b"clip weights")
    assert resolve_open_clip_weights("ViT-B-32", "laion2b_s34b_b79k") == path  # now local


def test_cli_fetch_weights_shows_progress_on_stderr(hub, monkeypatch, capsys):
    from e2gan.cli import main
    from e2gan.teachers import TEACHERS

    monkeypatch.setattr(TEACHERS.get("sd-turbo"), "default_model", REPO)
    assert main(["fetch-weights", "sd-turbo", "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert files_in(Path(result["paths"][0])) == {name: PIPELINE[name] for name in WANTED}
    lines = [line for line in err.splitlines() if line.startswith("[download]")]
    assert f"[download] {REPO}: 0 B of 11.1 MB (0%)" in lines[0]
    assert "11.1 MB of 11.1 MB (100%)" in lines[-1] and "MB/s" in lines[-1]

    assert main(["fetch-weights", "e2gan-test/no-such-model", "--json"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: e2gan-test/no-such-model was not found") and err.count("\n") == 1


def test_the_studio_offers_a_download_for_a_teacher_without_weights(hub, monkeypatch, tmp_path):
    from app import concepts
    from app.workspace import Workspace
    from e2gan.teachers import TEACHERS

    monkeypatch.setattr(TEACHERS.get("sd-turbo"), "default_model", REPO)
    assert ("sd-turbo · weights to download", "sd-turbo") in concepts.teacher_choices()
    text, downloadable = concepts.weights_offer("sd-turbo")
    assert downloadable and REPO in text
    with pytest.raises(E2GANError, match="press Download weights under the teacher"):
        concepts.set_concept(Workspace.create(tmp_path), "snow", "sd-turbo", "builtin")

    # Cancel (the studio's Stop on the workspace's job) ends the download with its message.
    from app.jobs import BOARD

    workspace, outcome = Workspace.create(tmp_path), {}
    hub.hold[WEIGHTS] = CHUNK + 100_000

    def watch():
        try:
            list(concepts.stream_weights_download(workspace, "sd-turbo"))
        except E2GANError as error:
            outcome["error"] = error

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert hub.holding.wait(10)
    job = BOARD.get(workspace.id)
    stopper = threading.Thread(target=job.stop)
    stopper.start()
    assert job.stop_event.wait(5)
    hub.release.set()
    watcher.join(10), stopper.join(10)
    assert isinstance(outcome.get("error"), DownloadCancelled)
    assert concepts.weights_offer("sd-turbo")[1]  # still to download

    events = list(concepts.stream_weights_download(workspace, "sd-turbo"))
    progress = [event for event in events if isinstance(event, DownloadProgress)]
    assert progress[-1].finished and progress[-1].fraction == 1.0
    assert isinstance(events[-1], JobDone) and Path(events[-1].result[0]).is_dir()
    assert ("sd-turbo", "sd-turbo") in concepts.teacher_choices()
    assert concepts.weights_offer("sd-turbo") == ("", False)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline: the reason, no button
    monkeypatch.setattr(TEACHERS.get("sd-turbo"), "default_model", "e2gan-test/elsewhere")
    text, downloadable = concepts.weights_offer("sd-turbo")
    assert not downloadable and "hf download e2gan-test/elsewhere" in text
    assert "sd-turbo" not in [name for _, name in concepts.teacher_choices()]
