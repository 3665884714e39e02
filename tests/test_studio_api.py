"""The studio's whole flow through its public API, as a script would drive it (gradio_client),
against the launched app: offline, built-in teacher, a tiny base, tiny sizes."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from e2gan.checkpoint import read_adapter  # noqa: E402
from e2gan.data.dataset import PairDataset  # noqa: E402

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def studio(tiny_base, tmp_path_factory):
    from stand_in_inception import use_stand_in

    from app.studio import build_demo

    root = tmp_path_factory.mktemp("workspaces")
    demo = build_demo(tiny_base, root)
    port = free_port()
    # The app runs in this process: FID/KID go through a stand-in network here (the real one is
    # tested once in test_studio_units.py), which also counts the images it is shown.
    with pytest.MonkeyPatch.context() as patch:
        seen = use_stand_in(patch)
        demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
        yield f"http://127.0.0.1:{port}/", root, seen
        demo.close()


def client(url):
    # Files stay on the server (both run in this process): the test reads them there.
    return gradio_client.Client(url, verbose=False, download_files=False)


def workspace_of(root: Path, concept: str, exclude=()) -> Path:
    found = [p for p in root.glob(f"*/concepts/{concept}") if p.parent.parent not in exclude]
    assert len(found) == 1, found
    return found[0]


def read_json(path: Path):
    return json.loads(path.read_text())


def wait_for(job, predicate, timeout=600.0):  # a deadline against a hang, not a speed check
    started = time.time()
    while time.time() - started < timeout:
        if any(predicate(output) for output in job.outputs()):
            return
        if job.done():
            return
        time.sleep(0.05)
    raise AssertionError("the job never reported the expected progress")


def test_the_public_api_has_stable_names_and_hides_ui_events(studio):
    url, *_ = studio
    names = set(client(url).view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/concept", "/generate_pairs", "/stop", "/select", "/drop_pair", "/finetune",
            "/compare", "/apply_adapter", "/library", "/export", "/blend", "/edit",
            "/status", "/complete_fid", "/train_pix2pix", "/versions", "/restore_version"} <= names
    assert all(not name.startswith("/lambda") and "on_open" not in name and "live" not in name
               for name in names)


def test_whole_flow_with_cancels_through_the_api(studio, tmp_path):
    url, root, inception_calls = studio
    c = client(url)
    info, preview = c.predict("winter", "builtin", "built-in photos", "", None, 0, 0.75, 7.5,
                              api_name="/concept")
    assert "winter" in info and len(preview) == 4
    concept_dir = workspace_of(root, "winter")

    # Pairs, stopped in the middle: what was made stays a valid dataset, and generating resumes.
    job = c.submit(48, api_name="/generate_pairs")
    wait_for(job, lambda output: "pairs ·" in output[0] and not output[0].startswith("`░"))
    stopped_message = c.predict(api_name="/stop")
    assert "stopped" in stopped_message or "nothing is running" in stopped_message
    job.result()
    stopped = PairDataset.open(concept_dir / "pairs")
    assert 0 < len(stopped) < 48 and not stopped.info.complete
    text, gallery = c.predict(48, api_name="/generate_pairs")
    resumed = PairDataset.open(concept_dir / "pairs")
    assert len(resumed) == 48 and resumed.info.complete
    assert f"{len(stopped)} kept from before" in text and f"{48 - len(stopped)} new" in text
    # Built-in photos are held out whole, and the page says from how many the held-out pairs come.
    held_out = {record.origin for record in resumed.split("test")}
    assert held_out and not held_out & {record.origin for record in resumed.split("train")}
    assert (f"The {len(resumed.split('test'))} held-out pairs are crops of {len(held_out)} photos, "
            "none of which is used for training.") in text

    # Curate: k clusters, drop one pair, its cluster's next-nearest pair replaces it.
    plot, chosen, summary = c.predict(8, "cluster", "builtin", None, None, api_name="/select")
    assert "8 pairs chosen" in summary and len(chosen) == 8
    selection = json.loads((concept_dir / "selection.json").read_text())
    victim = selection["ids"][0]
    _, chosen, summary = c.predict(victim, api_name="/drop_pair")
    after = json.loads((concept_dir / "selection.json").read_text())
    assert victim not in after["ids"] and victim in after["dropped"]
    cluster = selection["labels"][selection["all_ids"].index(victim)]
    if "replaced by" in summary:
        new = (set(after["ids"]) - set(selection["ids"])).pop()
        assert after["labels"][after["all_ids"].index(new)] == cluster

    # Fine-tune, stopped in the middle: Stop ends the run without evaluating it (no samples, no
    # metrics: Compare measures on request), the adapter on disk is whole and the run resumable.
    job = c.submit(1.0, 0, 32, 0.003, 0, False, api_name="/finetune")
    wait_for(job, lambda output: "step" in output[0] and "step 0 " not in output[0])
    c.predict(api_name="/stop")
    final = job.result()
    assert "stopped" in final[0]
    record = json.loads((concept_dir / "training.json").read_text())
    assert record["state"] == "stopped" and record["metrics"] == []
    adapter_file = concept_dir / "winter.safetensors"
    adapter = read_adapter(adapter_file)
    steps_at_stop = adapter.metadata["training"]["steps"]
    assert steps_at_stop > 0 and (concept_dir / "winter.safetensors.training_state" / "trainer.pt").is_file()
    text, _, samples, metrics = c.predict(0.05, 0, 32, 0.003, 0, True, api_name="/finetune")
    assert read_adapter(adapter_file).metadata["training"]["steps"] > steps_at_stop
    assert Path(samples["path"]).is_file()
    assert [row[0] for row in metrics["data"]][0].startswith("E2GAN")
    # FID/KID are made on request (Compare's button); the table says so and what it would cost
    held_out = len(resumed.split("test"))
    assert all(row[4] == "–" for row in metrics["data"]) and inception_calls == []
    assert f"held-out pairs" in text and "compute FID/KID" in text

    # Compare: teacher, base and adapter side by side, with latencies.
    picture = concept_dir / "pairs" / "source" / f"{resumed.ids[0]}.png"
    slider, side_by_side, latency, metrics, caption = c.predict(
        gradio_client.handle_file(str(picture)), 0.8, None, api_name="/compare")
    assert f"{held_out} held-out pairs" in caption and "compute FID/KID" in caption
    metrics, caption = c.predict(api_name="/complete_fid")
    saved = read_json(concept_dir / "training.json")["metrics"]
    assert [row[4] for row in metrics["data"]] == [round(row["fid"], 1) for row in saved]
    assert inception_calls == [held_out] * 4 and f"{held_out} outputs" in caption and "noisy" in caption
    assert [item["caption"] for item in side_by_side] == ["teacher", "base model", "winter (strength 0.8)"]
    assert latency.count(" ms") == 3
    assert "a diffusion teacher (instruct-pix2pix, 20 denoising steps at 512 px" in latency  # estimated
    # The pix2pix baseline, trained from scratch as a job, joins the comparison and the table.
    text = c.predict(0.01, api_name="/train_pix2pix")
    assert text.startswith("**finished**: pix2pix after") and (concept_dir / "pix2pix" / "config.json").is_file()
    _, side_by_side, latency, metrics, _ = c.predict(gradio_client.handle_file(str(picture)), 1.0,
                                                     None, api_name="/compare")
    assert side_by_side[-1]["caption"].startswith("pix2pix (") and latency.count(" ms") == 4
    assert metrics["data"][-1][0].startswith("pix2pix (") and metrics["data"][-1][4] == "–"
    metrics, _ = c.predict(api_name="/complete_fid")
    assert isinstance(metrics["data"][-1][4], float) and len(inception_calls) == 5
    edited, timing = c.predict(gradio_client.handle_file(str(picture)), "winter", 0.5,
                               api_name="/apply_adapter")
    assert Path(edited["path"]).is_file() and timing.endswith("ms")

    # Library and export: the adapter downloads whole; the pairs as a zip; on-device files are
    # checked against torch, timed, and run in onnxruntime / torch.jit as downloaded.
    table, *_ = c.predict(api_name="/library")
    assert [row[0] for row in table["data"]] == ["winter"]
    download, message = c.predict("winter", "adapter", 0, api_name="/export")
    assert read_adapter(download[0]["path"]).metadata["concept"] == "winter"
    download, _ = c.predict("winter", "dataset", 0, api_name="/export")
    assert Path(download[0]["path"]).suffix == ".zip"
    download, message = c.predict("winter", "onnx", 32, api_name="/export")
    names = sorted(Path(item["path"]).name for item in download)
    assert names == ["winter_32.onnx", "winter_32.onnx.json", "winter_dynamic.onnx",
                     "winter_dynamic.onnx.json"]
    assert "max abs diff" in message and message.count(" ms |") == 3 and "onnxruntime" in message
    check_onnx_download(download, picture)
    download, message = c.predict("winter", "torchscript", 0, api_name="/export")
    # (gradio hands each file out from its own cache folder: find the sidecar by name)
    files = {Path(item["path"]).name: Path(item["path"]) for item in download}
    assert sorted(files) == ["winter.torchscript.pt", "winter.torchscript.pt.json"]
    sidecar = json.loads(files["winter.torchscript.pt.json"].read_text())
    assert sidecar["max_abs_diff"] < 1e-3 and sidecar["concept"] == "winter"
    assert "torch" in message and f"{sidecar['max_abs_diff']:.1e}" in message
    with pytest.raises(Exception, match="multiple of"):
        c.predict("winter", "onnx", 30, api_name="/export")


def check_onnx_download(download, picture):
    """The exported static and dynamic files give the adapter's edit, through onnxruntime only."""
    import numpy as np
    import onnxruntime
    from PIL import Image

    from app.compare import apply_adapter

    files = {Path(item["path"]).name: Path(item["path"]) for item in download}
    sidecar = json.loads(files["winter_32.onnx.json"].read_text())
    assert sidecar["max_abs_diff"] < 1e-3 and sidecar["input"]["shape"] == [1, 3, 32, 32]
    image = Image.open(picture).convert("RGB").resize((32, 32))
    expected, _ = apply_adapter(Path(sidecar["adapter"]), image, 1.0, size=32,
                                base_dir=sidecar["base"])
    array = np.asarray(image, np.float32).transpose(2, 0, 1)[None] / 127.5 - 1
    for name in ("winter_32.onnx", "winter_dynamic.onnx"):
        session = onnxruntime.InferenceSession(str(files[name]), providers=["CPUExecutionProvider"])
        out = session.run(None, {session.get_inputs()[0].name: array})[0][0]
        pixels = ((out.transpose(1, 2, 0).clip(-1, 1) + 1) * 127.5).round()
        assert np.abs(pixels - np.asarray(expected, np.float32)).max() <= 2, name


def test_two_concurrent_clients_work_in_separate_workspaces(studio):
    url, root, *_ = studio
    first, second = client(url), client(url)
    results = {}

    def flow(name, c, concept):
        c.predict(concept, "builtin", "built-in photos", "", None, 1, 0.75, 7.5, api_name="/concept")
        results[name] = c.predict(6, api_name="/generate_pairs")[0]

    threads = [threading.Thread(target=flow, args=("a", first, "night")),
               threading.Thread(target=flow, args=("b", second, "pencil sketch"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert "6 pairs" in results["a"] and "6 pairs" in results["b"]
    night, sketch = workspace_of(root, "night"), workspace_of(root, "pencil_sketch")
    assert night.parent.parent != sketch.parent.parent
    assert [row[0] for row in first.predict(api_name="/library")[0]["data"]] == ["night"]
    assert [row[0] for row in second.predict(api_name="/library")[0]["data"]] == ["pencil_sketch"]
    with pytest.raises(Exception, match="no adapter"):
        second.predict(gradio_client.handle_file(str(next(night.glob("pairs/source/*.png")))),
                       "winter", 1.0, api_name="/apply_adapter")


def test_a_fine_tune_outlives_its_watcher_and_a_second_start_reattaches(studio):
    """A closed tab or a cancelled client no longer stops a fine-tune: it runs on, and the next
    Start in that session follows it to its end instead of starting another."""
    from app.jobs import BOARD

    url, root, *_ = studio
    c = client(url)
    c.predict("old photo", "builtin", "built-in photos", "", None, 2, 0.75, 7.5, api_name="/concept")
    c.predict(8, api_name="/generate_pairs")
    job = c.submit(0.25, 0, 32, 0.003, 0, False, api_name="/finetune")
    wait_for(job, lambda output: "step" in output[0] and "step 0 " not in output[0])
    job.cancel()
    time.sleep(1.0)
    running = [j for j in BOARD.running() if j.kind == "fine-tuning"]
    assert len(running) == 1  # the watcher left; the job did not
    text, *_ = c.predict(5.0, 0, 32, 0.003, 0, False, api_name="/finetune")  # other settings
    assert text.startswith("**finished**") and BOARD.running() == []
    record = read_json(workspace_of(root, "old_photo") / "training.json")
    assert record["state"] == "finished" and record["request"]["minutes"] == 0.25


def test_pairs_brought_as_a_zip_import_through_the_api_and_curate(studio, tmp_path):
    import io
    import zipfile

    from PIL import Image

    url, root, *_ = studio
    archive = tmp_path / "pairs.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for index in range(10):
            for side, shade in (("before", index * 20), ("after", 250 - index * 20)):
                buffer = io.BytesIO()
                Image.new("RGB", (40, 32), (shade, 120, 60)).save(buffer, "PNG")
                bundle.writestr(f"{side}/{index}.png", buffer.getvalue())
    c = client(url)
    info, gallery = c.predict("a warm grade", [gradio_client.handle_file(str(archive))],
                              api_name="/import_pairs")
    assert "10 imported pairs" in info and len(gallery) == 4
    _, chosen, summary = c.predict(4, "cluster", "builtin", None, None, api_name="/select")
    assert "4 pairs chosen" in summary
    assert read_json(workspace_of(root, "a_warm_grade") / "concept.json")["teacher"] == "imported"


def test_the_fine_tunes_rank_takes_the_type_view_api_documents(studio):
    """Issue 27: view_api documented `rank_value` as a string and a string was refused. Every
    documented value is accepted as documented; the number a script may send still is."""
    url, root, *_ = studio
    c = client(url)
    endpoint = c.view_api(print_info=False, return_format="dict")["named_endpoints"]["/finetune"]
    rank = next(p for p in endpoint["parameters"] if p["parameter_name"] == "rank_value")
    documented = rank["type"]["enum"]
    assert rank["type"]["type"] == "string" and all(isinstance(v, str) for v in documented)
    assert "2" in documented and "0" in documented
    c.predict("duotone", "builtin", "built-in photos", "", None, 3, 0.75, 7.5, api_name="/concept")
    c.predict(6, api_name="/generate_pairs")
    concept_dir = workspace_of(root, "duotone")
    text, *_ = c.predict(0.02, 0, 32, 0.003, "2", False, api_name="/finetune")
    assert text.startswith("**finished**"), text
    assert read_json(concept_dir / "training.json")["request"]["rank"] == 2
    ranks = read_adapter(concept_dir / "duotone.safetensors").metadata["ranks"]
    crucial = {name: r for name, r in ranks.items() if name not in ("stem.conv", "head.1")}
    assert crucial and set(crucial.values()) == {2}
    text, *_ = c.predict(0.02, 0, 32, 0.003, 4, False, api_name="/finetune")  # a number: as before
    assert text.startswith("**finished**"), text
    assert read_json(concept_dir / "training.json")["request"]["rank"] == 4
