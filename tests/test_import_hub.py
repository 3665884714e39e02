"""Importing pairs by a Hugging Face dataset id: an imagefolder dataset repo comes through the
Hugging Face cache (a download only when allowed) and imports as the same folder would, through
huggingface_hub's real download code against the Hub stand-in on loopback (tests/hub_stand_in.py).
Offline, or when the repo is missing, one line names it and the `hf download` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hub_stand_in import HubStandIn

from e2gan.data.export import export_dataset
from e2gan.data.importers import import_imagefolder
from e2gan.errors import E2GANError
from e2gan.hub.download import DownloadProgress

from app.events import JobDone

REPO = "alice/winter-pairs"
FETCH = f"`hf download {REPO} --repo-type dataset`"


@pytest.fixture(scope="module")
def exported(tiny_pairs, tmp_path_factory):
    """The winter pairs as the imagefolder export, and its files as a dataset repo holds them."""
    folder = tmp_path_factory.mktemp("export") / "hf"
    export_dataset(tiny_pairs["winter"], folder)
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
             if p.is_file()}
    return folder, files


@pytest.fixture
def hub(monkeypatch, tmp_path, exported):
    with HubStandIn() as stand_in:
        stand_in.use(monkeypatch, tmp_path / "hf-cache")
        # Parquet shards beside the imagefolder files are another layout: never fetched.
        stand_in.add_repo(REPO, {**exported[1], "data/train-00000.parquet": b"PAR1"},
                          repo_type="dataset")
        yield stand_in


def pairs_of(dataset) -> list[tuple]:
    return [(record.id, record.split, record.prompt,
             *(np.asarray(image).tobytes() for image in dataset.load_pair(record)))
            for record in dataset]


def one_line_error(call) -> str:
    with pytest.raises(E2GANError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_hub_dataset_imports_the_same_pairs_as_its_folder_then_comes_from_the_cache(
        hub, exported, tmp_path, monkeypatch):
    local = import_imagefolder(exported[0], tmp_path / "local", concept="winter")
    events = []
    remote = import_imagefolder(REPO, tmp_path / "remote", concept="winter", allow_download=True,
                                on_progress=events.append)
    assert len(remote) == 16 and pairs_of(remote) == pairs_of(local)
    assert remote.info.prompt == local.info.prompt
    commit = hub.datasets[REPO].commit
    assert remote.info.teacher_params == {"format": "imagefolder", "hub": REPO, "revision": commit}
    wanted = len(exported[1]) - 1  # all but README.md
    assert events[0].repo_id == REPO and events[-1].finished and events[-1].files_done == wanted
    assert not hub.file_requests("README.md") and not hub.file_requests("data/train-00000.parquet")

    # Cached now: found without allow_download and without asking the Hub, at a commit too.
    asked = len(hub.requests)
    again = import_imagefolder(REPO, tmp_path / "again")
    pinned = import_imagefolder(f"{REPO}@{commit}", tmp_path / "pinned")
    assert pairs_of(again) == pairs_of(pinned) == pairs_of(local) and len(hub.requests) == asked

    message = one_line_error(lambda: import_imagefolder(f"{REPO}@nope", tmp_path / "x",
                                                        allow_download=True))
    assert message == f"dataset {REPO} has no revision 'nope' on the Hub"
    # A local folder of the same name wins (here one without metadata: a local error).
    (tmp_path / "alice" / "winter-pairs").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(E2GANError, match="no imagefolder metadata in alice/winter-pairs"):
        import_imagefolder(REPO, tmp_path / "y", allow_download=True)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_missing_or_unreadable_dataset_repo_is_one_line_naming_it(hub, tmp_path):
    message = one_line_error(lambda: import_imagefolder("alice/nothing", tmp_path / "out",
                                                        allow_download=True))
    assert message.startswith("dataset alice/nothing was not found on the Hub")
    message = one_line_error(lambda: import_imagefolder("alice/nothing", tmp_path / "out"))
    assert "dataset alice/nothing is not on this machine" in message
    assert "`hf download alice/nothing --repo-type dataset`" in message
    assert "--allow-download" in message
    hub.add_repo("alice/parquet", {"data/train-00000.parquet": b"PAR1"}, repo_type="dataset")
    message = one_line_error(lambda: import_imagefolder("alice/parquet", tmp_path / "out",
                                                        allow_download=True))
    assert message.startswith("dataset alice/parquet on the Hub holds no imagefolder files")
    assert not (tmp_path / "out").exists()


def test_offline_and_not_cached_names_the_fetch_command_and_asks_nothing(
        hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = one_line_error(lambda: import_imagefolder(REPO, tmp_path / "out",
                                                        allow_download=True))
    assert message.startswith(f"dataset {REPO} is not in the Hugging Face cache and "
                              "HF_HUB_OFFLINE is set")
    assert FETCH in message
    assert hub.requests == [] and not (tmp_path / "out").exists()


def test_cli_imports_a_hub_dataset_only_with_allow_download_showing_progress(
        hub, exported, tmp_path, capsys):
    from e2gan.cli import main

    command = ["import", "imagefolder", "--root", REPO, "--out", str(tmp_path / "winter"), "--json"]
    assert main(command) == 2
    assert FETCH in capsys.readouterr().err and hub.requests == []
    assert main(command + ["--allow-download"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["pairs"] == 16
    assert f"[download] {REPO}: " in captured.err
    assert f"{len(exported[1]) - 1} of {len(exported[1]) - 1} files" in captured.err


def test_the_studio_imports_a_hub_dataset_as_a_concept_within_the_upload_limits(
        hub, tmp_path, monkeypatch):
    from app import concepts
    from app.workspace import Workspace

    workspace = Workspace.create(tmp_path / "workspaces")
    monkeypatch.setenv("E2GAN_MAX_UPLOAD_BYTES", "1000")
    message = one_line_error(lambda: concepts.import_pairs(workspace, "a winter look", None, REPO))
    assert message.startswith(f"dataset {REPO} is ") and "E2GAN_MAX_UPLOAD_BYTES" in message
    assert not hub.file_requests("train/metadata.jsonl")  # refused before any file came
    monkeypatch.delenv("E2GAN_MAX_UPLOAD_BYTES")
    with pytest.raises(E2GANError, match="not both"):
        concepts.import_pairs(workspace, "a winter look", [str(tmp_path / "p.zip")], REPO)

    events = list(concepts.stream_pairs_import(workspace, "a winter look", None, f" {REPO} "))
    assert any(isinstance(event, DownloadProgress) for event in events)
    assert isinstance(events[-1], JobDone)
    spec = events[-1].result
    assert spec.name == "a_winter_look" and spec.teacher == "imported" and spec.source == REPO
    assert spec.teacher_params == {"dataset": REPO}
    assert workspace.current().name == "a_winter_look"
    assert len(workspace.current().dataset()) == 16
