"""Step 6, Library and export: every concept made in this workspace, blends, downloads, the Hub.

Exports are written under the concept's `exports/` folder (atomically, or into a temporary
folder renamed when complete) and handed to the browser as files to download.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import time
from pathlib import Path

from e2gan import lora
from e2gan.checkpoint import apply_adapter, blend_adapters, load_generator, read_adapter, save_adapter, save_generator
from e2gan.errors import E2GANError
from e2gan.paths import default_base_dir
from e2gan.text import concept_key

from app.workspace import ConceptFolder, ConceptSpec, Workspace

EXPORT_FORMATS = ("adapter", "merged model", "onnx", "dataset")


def library_rows(workspace: Workspace) -> list[dict]:
    """One row per concept: pairs, adapter size, the adapter's held-out metrics, when made."""
    rows = []
    for folder in workspace.concepts():
        dataset = folder.dataset()
        training = folder.training() or {}
        metrics = (training.get("metrics") or [{}])[0]
        adapter = folder.adapter_file
        rows.append({
            "concept": folder.name, "prompt": folder.spec().prompt,
            "pairs": len(dataset) if dataset else 0,
            "adapter KB": round(adapter.stat().st_size / 1024, 1) if adapter.is_file() else None,
            "PSNR dB": metrics.get("psnr"), "MAE": metrics.get("mae"),
            "train s": training.get("train_seconds"),
            "made": time.strftime("%Y-%m-%d %H:%M", time.localtime(adapter.stat().st_mtime))
            if adapter.is_file() else "",
        })
    return rows


def blend(workspace: Workspace, first: str, second: str, weight: float) -> ConceptFolder:
    """A new concept whose adapter is weight * first + (1 - weight) * second."""
    folders = {folder.name: folder for folder in workspace.concepts() if folder.has_adapter()}
    for name in (first, second):
        if name not in folders:
            raise E2GANError(f"no adapter {name!r} in this workspace; fine-tune it first")
    if first == second:
        raise E2GANError("pick two different concepts to blend")
    a, b = read_adapter(folders[first].adapter_file), read_adapter(folders[second].adapter_file)
    blended = blend_adapters(a, b, float(weight))
    name = concept_key(f"{first} {weight:.2f} {second}")[:60]
    folder = workspace.concept(name)
    folder.save_spec(ConceptSpec(name=name, prompt=blended.prompt, teacher="blend",
                                 teacher_params={"of": [first, second], "weight": weight}))
    save_adapter(folder.adapter_file, blended)
    return folder


def _zip_folder(folder: Path, target: Path) -> Path:
    """Zip `folder` to `target` (built beside it under a temporary name, then renamed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        archive = shutil.make_archive(str(Path(scratch) / target.stem), "zip", folder)
        Path(archive).replace(target)
    return target


def _merged_model(folder: ConceptFolder, out: Path, base_dir: Path) -> Path:
    loaded = load_generator(base_dir)
    adapter = read_adapter(folder.adapter_file)
    name = apply_adapter(loaded, adapter)
    lora.set_adapter_scale(loaded.generator, name, 1.0)
    lora.remove_adapters(loaded.generator, merge=True)
    save_generator(out, loaded.generator, loaded.text_encoder,
                   {"merged_from": {"base": str(base_dir), "adapter": adapter.concept}})
    return out


def onnx_exporter():
    """The metrics helper's ONNX export function when it is installed, else None."""
    try:
        module = importlib.import_module("e2gan.export")
    except ImportError:
        return None
    return getattr(module, "export_onnx", None)


def export(workspace: Workspace, concept: str, kind: str, base_dir=None) -> Path:
    """Write one export of `concept` and return the file to download."""
    base_dir = Path(base_dir or default_base_dir())
    folder = workspace.concept(concept)
    if not folder.spec_file.is_file():
        raise E2GANError(f"no concept {concept!r} in this workspace")
    if kind not in EXPORT_FORMATS:
        raise E2GANError(f"unknown export format {kind!r}; choose from {', '.join(EXPORT_FORMATS)}")
    exports = folder.exports_dir
    exports.mkdir(parents=True, exist_ok=True)
    if kind == "dataset":
        dataset = folder.require_dataset()
        return _zip_folder(dataset.root, exports / f"{folder.name}-pairs.zip")
    if not folder.has_adapter():
        raise E2GANError(f"concept {concept!r} has no adapter yet: fine-tune it first")
    if kind == "adapter":
        target = exports / folder.adapter_file.name
        shutil.copyfile(folder.adapter_file, target)
        return target
    with tempfile.TemporaryDirectory(dir=exports) as scratch:
        merged = _merged_model(folder, Path(scratch) / f"{folder.name}-model", base_dir)
        if kind == "merged model":
            return _zip_folder(merged, exports / f"{folder.name}-model.zip")
        exporter = onnx_exporter()
        if exporter is None:
            raise E2GANError("ONNX export is not available in this version of e2gan")
        target = exports / f"{folder.name}.onnx"
        exporter(merged, target)
        return target


def push_to_hub(workspace: Workspace, concept: str, repo_id: str, token: str) -> str:
    """Upload the concept's adapter to a Hugging Face model repository (only with a token)."""
    if not token or not token.strip():
        raise E2GANError("give a Hugging Face token with write access to push")
    if not repo_id or "/" not in repo_id:
        raise E2GANError("give the repository as 'user/name'")
    folder = workspace.concept(concept)
    if not folder.has_adapter():
        raise E2GANError(f"concept {concept!r} has no adapter yet")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token.strip())
    try:
        api.create_repo(repo_id, exist_ok=True)
        info = api.upload_file(path_or_fileobj=str(folder.adapter_file),
                               path_in_repo=folder.adapter_file.name, repo_id=repo_id)
    except (HfHubHTTPError, OSError, ValueError) as error:
        raise E2GANError(f"push to {repo_id} failed: {error}") from None
    return str(getattr(info, "commit_url", info))
