"""The studio's plain parts: workspaces, stoppable jobs, curation, exports (no server)."""

from __future__ import annotations

import threading
import time

import pytest

from e2gan.errors import E2GANError

pytest.importorskip("gradio")


def test_workspace_ids_are_random_hex_and_never_paths(tmp_path):
    from app.workspace import Workspace

    first, second = Workspace.create(tmp_path), Workspace.create(tmp_path)
    assert first.id != second.id and len(first.id) == 16
    assert Workspace.open(first.id, tmp_path).root == first.root
    for bad in ["../etc", first.id + "/..", "ABCDEF0123456789", "", None]:
        with pytest.raises(E2GANError):
            Workspace.open(bad, tmp_path)
    with pytest.raises(E2GANError, match="no concept yet"):
        first.current()


def test_closing_a_job_generator_stops_its_worker_cleanly():
    from app.jobs import JobBoard

    board = JobBoard()
    steps, finished = [], threading.Event()

    def work(report, should_stop):
        while not should_stop():
            steps.append(len(steps))
            report({"step": len(steps)})
            time.sleep(0.01)
        finished.set()  # the engine's atomic writes complete before the worker returns
        return len(steps)

    stream = board.stream("a" * 16, "test job", work)
    assert next(stream)["step"] == 1
    with pytest.raises(E2GANError, match="already running"):
        next(board.stream("a" * 16, "second", work))
    stream.close()  # what a cancelled Gradio event does to its generator
    assert finished.is_set() and board.running() == []
    done = list(board.stream("b" * 16, "short", lambda report, stop: 7))
    assert done[-1] == {"done": True, "stopped": False, "result": 7}


def test_a_failing_job_raises_its_error_in_the_stream():
    from app.jobs import JobBoard

    def work(report, should_stop):
        raise E2GANError("teacher exploded")

    with pytest.raises(E2GANError, match="teacher exploded"):
        list(JobBoard().stream("c" * 16, "bad", work))


def test_dropping_a_pair_brings_in_the_next_nearest_of_its_cluster(tmp_path, tiny_pairs):
    from app.curation import drop_pair, run_selection, scatter
    from app.workspace import ConceptFolder

    folder = ConceptFolder(tmp_path / "night")
    folder.root.mkdir()
    (folder.root / "pairs").symlink_to(tiny_pairs["night"].root)
    data = run_selection(folder, 4, "cluster")
    assert len(data["ids"]) == 4 and len(data["labels"]) == len(data["all_ids"])
    for victim in list(data["ids"]):
        cluster = data["labels"][data["all_ids"].index(victim)]
        before = set(data["ids"])
        data, replacement = drop_pair(folder, victim)
        members = [i for i, label in zip(data["all_ids"], data["labels"]) if label == cluster]
        if replacement:
            assert replacement in members and replacement not in before
            others = [data["distances"][data["all_ids"].index(i)] for i in members
                      if i not in data["dropped"] and i != replacement and i not in before]
            assert all(data["distances"][data["all_ids"].index(replacement)] <= d for d in others)
        else:
            assert all(i in data["dropped"] or i in before for i in members)
    assert len(scatter(data).data) >= 2
    with pytest.raises(E2GANError, match="not in the selection"):
        drop_pair(folder, "no-such-pair")


def test_a_builtin_concept_is_checked_before_anything_is_written(tmp_path):
    from app.concepts import set_concept
    from app.workspace import Workspace

    workspace = Workspace.create(tmp_path)
    with pytest.raises(E2GANError, match="unknown built-in concept"):
        set_concept(workspace, "a purple giraffe", "builtin", "builtin")
    with pytest.raises(E2GANError, match="not found"):
        set_concept(workspace, "winter", "builtin", str(tmp_path / "missing"))
    assert workspace.concepts() == []
    spec = set_concept(workspace, "Winter", "builtin", "builtin")
    assert (spec.name, spec.prompt) == ("winter", "a snowy winter scene")
    assert workspace.current().name == "winter"
