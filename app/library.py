"""Step 6, Library and export: every concept made in this workspace, blends, downloads, the Hub.

Exports are written under the concept's `exports/` folder (atomically, or into a temporary
folder renamed when complete) and handed to the browser as files to download. On-device formats
(ONNX, TorchScript) come from the engine's `e2gan.export.export_concept`, which checks every file
against PyTorch before it is written; the studio shows that check and the measured latency.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from e2gan.models import lora
from e2gan.checkpoint import apply_adapter, blend_adapters, load_generator, read_adapter, save_adapter, save_generator
from e2gan.errors import E2GANError
from e2gan.hub.publish import SIGN_IN, publish_adapter
from e2gan.paths import default_base_dir
from e2gan.text import concept_key

from app.settings import SETTINGS
from app.training import run_state
from app.workspace import ConceptFolder, ConceptSpec, Workspace
from e2gan.export import export_concept
from e2gan.export.web import export_web
from app.concept_metrics import ADAPTER_ROW
from app import web_pages

# on-device format -> (engine format, precision)
ON_DEVICE_FORMATS = {"onnx": ("onnx", "fp32"), "onnx fp16": ("onnx", "fp16"),
                     "onnx int8": ("onnx", "int8"), "torchscript": ("torchscript", "fp32"),
                     # .pte files need the `mobile` extra
                     "executorch": ("executorch", "fp32"), "executorch int8": ("executorch", "int8")}
WEB_PAGE = "web page"  # a static page that edits in the visitor's browser (e2gan.export.web)
EXPORT_FORMATS = ("adapter", "merged model", *ON_DEVICE_FORMATS, WEB_PAGE, "dataset")
EXPORT_REPEATS = 10  # timed runs per exported file (after two warm-up runs)
# `make studio` installs the studio without the `mobile` extra: ExecuTorch is then not offered,
# and the Library says how to add it.
EXECUTORCH_INSTALL = ("ExecuTorch (`.pte` files for PyTorch's mobile runtime) is not installed "
                      "here: `pip install executorch` (or `pip install 'e2gan-studio[mobile]'`), "
                      "then restart the studio to export for phones.")


def executorch_available() -> bool:
    """Whether this machine can write ExecuTorch files: the `executorch` package is installed and
    its exporter can be found (found, not imported: importing it takes seconds)."""
    from importlib.metadata import PackageNotFoundError, version
    from importlib.util import find_spec

    try:
        version("executorch")
        return find_spec("executorch.exir") is not None
    except (PackageNotFoundError, ImportError, ValueError):
        return False


def export_formats() -> tuple[str, ...]:
    """The export formats this machine can write: every one, less ExecuTorch's where it is not
    installed."""
    if executorch_available():
        return EXPORT_FORMATS
    return tuple(kind for kind in EXPORT_FORMATS
                 if ON_DEVICE_FORMATS.get(kind, ("",))[0] != "executorch")


def export_formats_note() -> str:
    """What the Library says under the formats: how to add ExecuTorch where it is missing."""
    return "" if executorch_available() else EXECUTORCH_INSTALL


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
            "FID": round(metrics["fid"], 1) if "fid" in metrics else None,
            "train s": training.get("train_seconds"),
            "fine-tune": run_state(folder),
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


def one_file(files: list[Path], target: Path) -> Path:
    """The export as one download: the file itself, or its files zipped to `target` (an ONNX
    file and its sidecar, for instance). Built under a temporary name, then renamed."""
    if len(files) == 1:
        return Path(files[0])
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        for path in files:
            shutil.copy2(path, Path(scratch) / Path(path).name)
        return _zip_folder(Path(scratch), target)


def _merged_model(folder: ConceptFolder, out: Path, base_dir: Path) -> Path:
    loaded = load_generator(base_dir)
    adapter = read_adapter(folder.adapter_file)
    name = apply_adapter(loaded, adapter)
    lora.set_adapter_scale(loaded.generator, name, 1.0)
    lora.remove_adapters(loaded.generator, merge=True)
    save_generator(out, loaded.generator, loaded.text_encoder,
                   {"merged_from": {"base": str(base_dir), "adapter": adapter.concept}})
    return out


def training_size(folder: ConceptFolder) -> int:
    """The resolution the concept's adapter was trained at: the natural export size."""
    settings = read_adapter(folder.adapter_file).metadata.get("training", {}).get("settings", {})
    return int(settings.get("size", SETTINGS.train_size))


def _on_device_export(folder: ConceptFolder, kind: str, base_dir: Path, size: int,
                      repeats: int) -> dict:
    """ONNX (a static size x size file and a dynamic one; fp32, fp16 or int8), TorchScript or
    ExecuTorch (a static `.pte` for PyTorch's mobile runtime),
    through the engine's `export_concept`: it merges the adapter, bakes the prompt in, checks each
    file (against torch; fp16/int8 also on the concept's held-out pairs against fp32 and the
    teacher), refuses a file that fails, and times it. Files land in `exports/`."""
    engine_format, precision = ON_DEVICE_FORMATS[kind]
    result = export_concept(base_dir, folder.exports_dir, adapter=folder.adapter_file,
                            size=size, formats=(engine_format,), dynamic=True, repeats=repeats,
                            precision=precision,
                            dataset=folder.pairs_dir if precision != "fp32" else None)
    files = []
    for record in result["files"]:
        path = Path(record["path"])
        files += [path, path.with_name(path.name + ".json")]  # the sidecar says how to feed it
    return {"files": files, "checks": result["files"], "size": result["size"],
            "torch_eager_latency_median_s": result["torch_eager_latency_median_s"],
            "threads": result["threads"]}


def _web_page_export(workspace: Workspace, folder: ConceptFolder, base_dir: Path, size: int,
                     repeats: int) -> dict:
    """The concept as a web page (`e2gan.export.web`): its folder under `exports/`, served by the
    studio at a link of its own (`app.web_pages`), and zipped for a download to host elsewhere."""
    result = export_web(base_dir, folder.exports_dir, adapter=folder.adapter_file, size=size,
                        repeats=repeats)
    page = Path(result["folder"])
    page_id = web_pages.publish(workspace.root.parent, page)
    archive = _zip_folder(page, folder.exports_dir / f"{folder.name}-web.zip")
    return {"files": [archive], "checks": [], "web": result, "page_id": page_id,
            "link": web_pages.link(page_id)}


def export(workspace: Workspace, concept: str, kind: str, base_dir=None, size: int | None = None,
           repeats: int = EXPORT_REPEATS) -> dict:
    """Write one export of `concept`; returns {"files": [paths to download], "checks": [...]}.

    `checks` (on-device formats only) holds one row per model file: format, variant, the largest
    absolute difference from torch on random inputs, the runtime and its median latency.
    `size` (on-device formats) defaults to the adapter's training size.
    """
    base_dir = Path(base_dir or default_base_dir())
    folder = workspace.concept(concept)
    if not folder.spec_file.is_file():
        raise E2GANError(f"no concept {concept!r} in this workspace")
    if kind not in EXPORT_FORMATS:
        raise E2GANError(f"unknown export format {kind!r}; choose from {', '.join(export_formats())}")
    if kind not in export_formats():
        raise E2GANError(EXECUTORCH_INSTALL)
    exports = folder.exports_dir
    exports.mkdir(parents=True, exist_ok=True)
    if kind == "dataset":
        dataset = folder.require_dataset()
        return {"files": [_zip_folder(dataset.root, exports / f"{folder.name}-pairs.zip")], "checks": []}
    if not folder.has_adapter():
        raise E2GANError(f"concept {concept!r} has no adapter yet: fine-tune it first")
    if kind == "adapter":
        target = exports / folder.adapter_file.name
        shutil.copyfile(folder.adapter_file, target)
        return {"files": [target], "checks": []}
    if kind in ON_DEVICE_FORMATS:
        size = int(size) if size else training_size(folder)
        return _on_device_export(folder, kind, base_dir, size, repeats)
    if kind == WEB_PAGE:
        size = int(size) if size else training_size(folder)
        return _web_page_export(workspace, folder, base_dir, size, repeats)
    with tempfile.TemporaryDirectory(dir=exports) as scratch:
        merged = _merged_model(folder, Path(scratch) / f"{folder.name}-model", base_dir)
        return {"files": [_zip_folder(merged, exports / f"{folder.name}-model.zip")], "checks": []}


def export_report(result: dict, public_url: str | None = None) -> str:
    """Markdown for the user: what was written and, for on-device files, the check and timing;
    for a web page, its link (and `public_url`, the same link in full, to open on a phone)."""
    files = result["files"]
    total = sum(Path(path).stat().st_size for path in files)
    lines = [f"exported {', '.join(f'`{Path(path).name}`' for path in files)} "
             f"({total / 1024:.0f} KB in all)"]
    if result.get("link"):
        web = result["web"]
        lines += ["", f"**[Open the web page]({result['link']})**"
                  + (f" · on a phone: `{public_url}`" if public_url else ""), "",
                  f"It edits a photo or the camera in the visitor's browser, on their device "
                  f"(onnxruntime-web: WebGPU where the browser has it, else WebAssembly), at "
                  f"{web['size']}x{web['size']} px, and shows the frames per second. The model is "
                  f"{web['model_bytes'] / 1e6:.1f} MB ({web['precision']}; checked against "
                  f"PyTorch: max abs diff {web['max_abs_diff']:.1e}); the runtime, "
                  f"{web['runtime']}, about 15 MB (WebAssembly) or 30 MB (WebGPU) more. A camera "
                  f"needs https or localhost; the zip is the same folder, for any static host."]
    if result.get("checks"):
        lines += ["", f"Each file was run on random {result['size']}x{result['size']} inputs "
                  f"against the PyTorch model (outputs in [-1, 1]; refused above 1e-3) and timed "
                  f"at batch 1 with {result['threads']} thread(s):", "",
                  "| file | variant | max abs diff vs torch | runtime | median latency |",
                  "|---|---|---|---|---|"]
        for row in result["checks"]:
            lines.append(f"| `{Path(row['path']).name}` | {row['variant']} | "
                         f"{row['max_abs_diff']:.1e} | {row['runtime']} | "
                         f"{row['latency_median_s'] * 1000:.1f} ms |")
        lines.append(f"| (PyTorch eager, for reference) | | | | "
                     f"{result['torch_eager_latency_median_s'] * 1000:.1f} ms |")
        checked = [row for row in result["checks"] if row.get("quality_check")]
        if checked:
            check = checked[0]["quality_check"]
            lines += ["", f"**{checked[0]['precision']}** on {check['photos']} held-out pairs: "
                      f"PSNR against the fp32 file {check['psnr_vs_fp32_db']:.1f} dB; against "
                      f"the teacher {check['psnr_vs_teacher_db']:.2f} dB (fp32: "
                      f"{check['fp32_psnr_vs_teacher_db']:.2f} dB, a drop of "
                      f"{check['psnr_drop_db']:.2f} dB; the rule: {check['rule']})."]
    return "\n".join(lines)


def hub_token(typed: str | None, signed_in: str | None) -> str:
    """The token to publish with: the visitor's Hugging Face sign-in, else a typed token; away
    from a Space, else HF_TOKEN or the one `hf auth login` saved. On a Space never the Space's
    own token (its HF_TOKEN secret): a visitor publishes as themself or not at all."""
    for token in (signed_in, typed):
        if token and token.strip():
            return token.strip()
    if SETTINGS.on_space:
        raise E2GANError("sign in with Hugging Face (the button above) to publish from this Space")
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise E2GANError(f"no Hugging Face token, so nothing was published: {SIGN_IN}")
    return token


def publish(workspace: Workspace, concept: str, repo_id: str, token: str, private: bool = False,
            include_pairs: bool = False, base_dir=None) -> str:
    """Publish the concept's adapter (model card, held-out scores, sample grid) to the Hub, and
    its pairs as a dataset repo with `include_pairs`; returns what to tell the user (markdown)."""
    repo_id = (repo_id or "").strip()
    if not repo_id:
        raise E2GANError("give the repository to publish to, as user/name")
    folder = workspace.concept(concept)
    if not folder.has_adapter():
        raise E2GANError(f"concept {concept!r} has no adapter yet: fine-tune it first")
    rows = (folder.training() or {}).get("metrics") or []
    scores = next((row for row in rows if row.get("model") == ADAPTER_ROW), {})
    dataset = folder.dataset()
    if include_pairs and not dataset:
        raise E2GANError(f"concept {concept!r} has no pairs to publish")
    published = publish_adapter(folder.adapter_file, repo_id, token=token, private=private,
                                pairs_dataset=dataset if include_pairs else None,
                                samples_from=dataset, base=base_dir or default_base_dir(),
                                metrics=scores)
    text = f"published [{published.repo_id}]({published.url}): {', '.join(published.files)}"
    if published.pairs_repo_id:
        text += f"; pairs: [{published.pairs_repo_id}]({published.pairs_url})"
    return text
