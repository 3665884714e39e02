"""Publishing a concept to the Hugging Face Hub and loading it back by its Hub id, through
huggingface_hub's real upload and download code against the Hub stand-in on loopback
(tests/hub_stand_in.py): the adapter byte for byte, a model card whose YAML parses, a sample
grid, the pairs as a dataset repo; the CLI and the studio's handlers; no token, no upload."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest
from hub_stand_in import HubStandIn
from PIL import Image

from e2gan.checkpoint import read_adapter
from e2gan.cli import main
from e2gan.errors import E2GANError
from e2gan.hub.adapters import hub_reference, resolve_adapter
from e2gan.hub.publish import publish_adapter
from e2gan.inference.pipeline import EditPipeline

TOKEN = "hf_writer"  # a write token of user "alice" on the stand-in


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with HubStandIn() as stand_in:
        stand_in.use(monkeypatch, tmp_path / "hf-cache")
        stand_in.users[TOKEN] = "alice"
        yield stand_in


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, tiny_base, tiny_pairs):
    """A winter adapter fine-tuned two steps from the tiny base (32 px)."""
    from e2gan.training.recipes import TrainingSettings, finetune

    out = tmp_path_factory.mktemp("adapter") / "winter.safetensors"
    finetune(tiny_base, tiny_pairs["winter"], out,
             TrainingSettings(size=32, steps=2, batch_size=4, checkpoint_every=0, device="cpu"))
    return out


def card_of(text: str) -> dict:
    from huggingface_hub import ModelCard

    return ModelCard(text).data.to_dict()


def edit_with(base, adapter_reference, image) -> np.ndarray:
    pipeline = EditPipeline.from_pretrained(base, device="cpu")
    name = pipeline.load_adapter(adapter_reference)
    return np.asarray(pipeline([image], pipeline.adapters[name].prompt)[0])


def no_lfs_or_xet(hub) -> bool:
    return not [r for r in hub.requests if "xet" in r.path or "lfs" in r.path]


def test_a_published_adapter_has_its_card_and_grid_and_loads_back_by_hub_id(
        hub, adapter, tiny_base, tiny_pairs):
    metrics = {"model": "E2GAN", "psnr": 18.25, "ssim": 0.61, "mae": 21.5, "fid": 210.0,
               "kid": 0.052, "pairs": 4}
    published = publish_adapter(adapter, "alice/winter", token=TOKEN, base=tiny_base,
                                metrics=metrics)
    repo = hub.repos["alice/winter"]
    assert published.repo_id == "alice/winter" and published.url == f"{hub.url}/alice/winter"
    assert set(repo.files) == {"winter.safetensors", "README.md", "samples.png"}
    assert repo.files["winter.safetensors"] == adapter.read_bytes()  # byte for byte
    assert no_lfs_or_xet(hub) and len(repo.commits) == 1  # one commit, plain files

    meta = read_adapter(adapter).metadata
    readme = repo.files["README.md"].decode()
    card = card_of(readme)
    assert card["library_name"] == "e2gan" and card["license"] == "apache-2.0"
    assert {"e2gan", "lora", "image-to-image"} <= set(card["tags"])
    assert "base_model" not in card  # the tiny base has no Hub id; its name and hash are below
    ours = card["e2gan"]
    assert ours["concept"] == "winter" and ours["prompt"] == meta["prompt"]
    assert ours["base_sha256"] == meta["base_sha256"] and ours["base_name"] == tiny_base.name
    assert ours["metrics"] == {"psnr": 18.25, "ssim": 0.61, "mae": 21.5, "fid": 210.0,
                               "kid": 0.052, "held_out_pairs": 4}
    assert "![source | teacher | E2GAN](samples.png)" in readme
    assert 'pipeline.load_adapter("alice/winter")' in readme
    assert "e2gan edit --model path/to/base --adapter alice/winter" in readme

    # The grid: held-out pairs of the dataset the adapter was trained on, at its 32 px, in three
    # columns: source | teacher | E2GAN.
    from e2gan.data.torch_data import resize_and_center_crop

    grid = Image.open(io.BytesIO(repo.files["samples.png"]))
    assert grid.size == (3 * 32, 4 * 32)
    source, edited = tiny_pairs["winter"].load_pair(tiny_pairs["winter"].split("test")[0])
    assert np.array_equal(np.asarray(grid.crop((32, 0, 64, 32))),
                          np.asarray(resize_and_center_crop(edited, 32)))
    # Its photos are built-in ones under licences that ask for attribution: the card gives it.
    from e2gan.data.attribution import shipped_photos

    by_id = {photo.id: photo for photo in shipped_photos()}
    shown = {record.origin.removeprefix("builtin:") for record in tiny_pairs["winter"].split("test")[:4]}
    for photo_id in shown:
        photo = by_id[photo_id]
        assert f"“{photo.title}” by {photo.author}, [{photo.licence}]({photo.licence_url})" in readme
    credited = readme.split("Photos in samples.png")[1].split("\n")[0]
    assert credited.count("”") == len(shown)  # those shown, each once

    # Loaded back by its Hub id, it edits exactly as the local file does.
    photo = resize_and_center_crop(source, 32)
    assert np.array_equal(edit_with(tiny_base, "alice/winter", photo),
                          edit_with(tiny_base, adapter, photo))
    # ... from the cache from then on: no request reaches the Hub.
    asked = len(hub.requests)
    assert resolve_adapter("alice/winter").read_bytes() == adapter.read_bytes()
    assert resolve_adapter("alice/winter/winter.safetensors") == resolve_adapter("alice/winter")
    assert len(hub.requests) == asked


def test_the_cli_publishes_to_your_account_and_applies_by_hub_id(hub, adapter, tiny_base,
                                                                  tiny_pairs, tmp_path, capsys):
    assert main(["publish", str(adapter), "--repo", "winter", "--token", TOKEN,
                 "--base", str(tiny_base), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["repo"] == "alice/winter"  # a bare name goes to the token's account (whoami)
    assert hub.repos["alice/winter"].files["winter.safetensors"] == adapter.read_bytes()

    source = tiny_pairs["winter"].path_of(tiny_pairs["winter"].split("test")[0], "source")
    outs = {}
    for name, reference in (("hub", "alice/winter"), ("local", str(adapter))):
        outs[name] = tmp_path / f"{name}.png"
        assert main(["edit", "--model", str(tiny_base), "--adapter", reference, "--image",
                     str(source), "--out", str(outs[name]), "--device", "cpu", "--json"]) == 0
    assert np.array_equal(np.asarray(Image.open(outs["hub"])), np.asarray(Image.open(outs["local"])))
    assert main(["adapter", "info", "alice/winter", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["concept"] == "winter"


def test_without_a_token_nothing_is_sent_and_the_error_says_how_to_sign_in(
        hub, adapter, tiny_base, capsys):
    assert main(["publish", str(adapter), "--repo", "alice/winter", "--base", str(tiny_base)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("error: no Hugging Face token")
    assert "hf auth login" in error and "HF_TOKEN" in error and "Sign in" in error
    assert hub.requests == [] and hub.repos == {}

    with pytest.raises(E2GANError, match=r"did not accept your token \(401\).*hf auth login"):
        publish_adapter(adapter, "alice/winter", token="hf_not_a_token", base=tiny_base)
    assert hub.repos == {}
    # Asked for privacy, an existing public repo is refused before anything is uploaded.
    hub.add_repo("alice/public", {"README.md": b"hello"})
    with pytest.raises(E2GANError, match="already exists on the Hub and is public"):
        publish_adapter(adapter, "alice/public", token=TOKEN, base=tiny_base, private=True)
    assert set(hub.repos["alice/public"].files) == {"README.md"}


def test_pairs_go_to_a_private_dataset_repo_that_datasets_reads_back(
        hub, adapter, tiny_base, tiny_pairs, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    from huggingface_hub import snapshot_download

    pairs = tiny_pairs["winter"]
    published = publish_adapter(adapter, "alice/winter", token=TOKEN, base=tiny_base,
                                pairs_dataset=pairs, private=True)
    assert published.pairs_repo_id == "alice/winter-pairs"
    stored = hub.datasets["alice/winter-pairs"]
    assert stored.private and hub.repos["alice/winter"].private and no_lfs_or_xet(hub)
    assert {"README.md", "train/metadata.jsonl", "test/metadata.jsonl"} <= set(stored.files)
    assert card_of(hub.repos["alice/winter"].files["README.md"].decode())["datasets"] == [
        "alice/winter-pairs"]
    assert card_of(stored.files["README.md"].decode())["task_categories"] == ["image-to-image"]

    # `e2gan import imagefolder --root alice/winter-pairs` reads them back (the token sees it)
    from e2gan.data.importers import import_imagefolder

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    back = import_imagefolder("alice/winter-pairs", tmp_path / "back", allow_download=True)
    assert sorted((r.id, r.split, r.prompt) for r in back) == sorted(
        (r.id, r.split, r.prompt) for r in pairs)

    folder = snapshot_download("alice/winter-pairs", repo_type="dataset", token=TOKEN)
    loaded = datasets.load_dataset("imagefolder", data_dir=folder, cache_dir=str(tmp_path / "ds"))
    assert {split: len(rows) for split, rows in loaded.items()} == {
        "train": len(pairs.split("train")), "test": len(pairs.split("test"))}
    row, record = loaded["test"][0], pairs.split("test")[0]
    assert row["edit_prompt"] == record.prompt
    assert np.array_equal(np.asarray(row["edited_image"]), np.asarray(pairs.load_pair(record)[1]))


def test_hub_ids_and_local_paths(tmp_path, monkeypatch, adapter):
    assert hub_reference("alice/winter") == ("alice/winter", None)
    assert hub_reference("alice/winter/v2/winter.safetensors") == ("alice/winter", "v2/winter.safetensors")
    for local in ("runs/winter.safetensors", "/abs/winter", "./alice/winter", "../a/b", "a/b/c",
                  "alice", "a/../b/c.safetensors", "C:/a/b"):
        assert hub_reference(local) is None, local
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "winter").write_bytes(adapter.read_bytes())
    monkeypatch.chdir(tmp_path)  # a local file wins over the Hub id it reads as
    assert resolve_adapter("alice/winter").resolve() == (tmp_path / "alice" / "winter").resolve()
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(E2GANError, match="no adapter file nobody/nothing here, and .*HF_HUB_OFFLINE"):
        resolve_adapter("nobody/nothing")  # the tests run offline (conftest)


def test_the_studio_publishes_with_the_visitors_sign_in_and_compares_a_hub_adapter(
        hub, winter_concept, tiny_base, monkeypatch):
    gr = pytest.importorskip("gradio")
    from gradio.helpers import special_args

    import app.library
    import app.tabs.library
    from app import compare as comparing
    from app.concept_metrics import ADAPTER_ROW
    from app.tabs.library import build_library_tab
    from app.ui import Context
    from e2gan.files import atomic_write_json

    workspace, folder = winter_concept
    atomic_write_json(folder.training_file, {"metrics": [
        {"model": ADAPTER_ROW, "psnr": 17.5, "ssim": 0.5, "pairs": 4},
        {"model": "base model (adapter off)", "psnr": 12.0}]})
    on_space = replace(app.library.SETTINGS, on_space=True)
    monkeypatch.setattr(app.library, "SETTINGS", on_space)
    monkeypatch.setattr(app.tabs.library, "SETTINGS", on_space)
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the Space's own secret: never used for a visitor
    # A Space with `hf_oauth: true` (README front matter) sets these; the sign-in routes need them.
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "alice/e2gan-studio")
    for name in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL"):
        monkeypatch.setattr(gr.oauth, name, f"stand-in {name}")
    with gr.Blocks() as demo:
        build_library_tab(Context(workspace.root.parent, tiny_base), gr.State())
    assert any(isinstance(block, gr.LoginButton) for block in demo.blocks.values())
    assert "/login/huggingface" in {getattr(route, "path", None) for route in demo.app.routes}
    handler = next(f.fn for f in demo.fns.values() if f.api_name == "publish")
    typed = [workspace.id, "winter", "alice/winter", False, True, ""]

    signed_out, *_ = special_args(handler, list(typed))  # Gradio injects None: not signed in
    with pytest.raises(gr.Error, match="sign in with Hugging Face"):
        handler(*signed_out)
    assert hub.repos == {}

    visitor = gr.OAuthToken(token=TOKEN, scope="openid profile write-repos manage-repos",
                            expires_at=0)
    signed_in, *_ = special_args(handler, list(typed), token=visitor)
    workspace_id, text = handler(*signed_in)
    assert workspace_id == workspace.id and "published [alice/winter]" in text
    assert hub.repos["alice/winter"].files["winter.safetensors"] == folder.adapter_file.read_bytes()
    assert "alice/winter-pairs" in hub.datasets
    card = card_of(hub.repos["alice/winter"].files["README.md"].decode())
    assert card["e2gan"]["metrics"] == {"psnr": 17.5, "ssim": 0.5, "held_out_pairs": 4}
    assert all(r.authorization == f"Bearer {TOKEN}" for r in hub.requests if r.method == "POST")

    # Compare takes an adapter from the Hub by its id beside this workspace's own.
    photo = Image.new("RGB", (48, 40), (120, 160, 200))
    result = comparing.compare(workspace, photo, other="alice/winter", base_dir=tiny_base)
    assert np.array_equal(np.asarray(result["images"]["alice/winter"]),
                          np.asarray(result["images"][result["adapter_label"]]))
    with pytest.raises(E2GANError, match="no adapter 'nope' in this workspace"):
        comparing.compare(workspace, photo, other="nope", base_dir=tiny_base)


def test_a_grid_without_pairs_shows_built_in_photos_and_credits_them(adapter, tiny_base):
    from e2gan.data.attribution import shipped_photos
    from e2gan.hub.publish import SAMPLE_ROWS, make_sample_grid

    grid, credits = make_sample_grid(adapter, tiny_base, None)
    assert grid.size == (2 * 32, SAMPLE_ROWS * 32)  # photo | E2GAN
    assert credits and len(credits) == len(set(credits)) <= SAMPLE_ROWS
    known = {photo.credit for photo in shipped_photos()}
    assert set(credits) <= known
