"""`e2gan export --format web`: one concept as a static web page that edits on the visitor's device.

The folder holds everything a browser needs and nothing a server must run:

    <concept>_web/
        index.html, e2gan-web.js   the page (e2gan/export/web_page/): a photo or the camera in,
                                   the edit out, its size, the time per edit and frames per second
        page.json                  what the page reads: the model file, its input and output
                                   names, layout and value range (from the export's sidecar)
        <concept>_<size>.onnx      the concept, as `e2gan export --format onnx` writes and checks
        <concept>_<size>.onnx.json   it (static size, fp32, fp16 or int8), and its sidecar
        ort/                       onnxruntime-web's runtime and its LICENSE (`web_runtime`)

The page runs whatever graph the ONNX export produced: it reads the names, the NCHW RGB layout and
the ranges from page.json rather than assuming them. Any static file server can host the folder;
WebAssembly uses several threads only on a cross-origin-isolated page (two response headers,
`CROSS_ORIGIN_ISOLATION`), and a camera needs https or localhost.

Written atomically: the folder is built under a temporary name beside its target and renamed into
place only once every file is in it, so an error leaves the previous folder (or none), never half
of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from e2gan.errors import E2GANError
from e2gan.export import export_concept
from e2gan.export import web_runtime
from e2gan.files import atomic_write_json, replace_folder

PAGE_FILES = ("index.html", "e2gan-web.js")
PAGE_SOURCE = Path(__file__).with_name("web_page")
RUNTIME_FOLDER = "ort"
# What a server adds to every response for WebAssembly threads (SharedArrayBuffer) to be allowed.
CROSS_ORIGIN_ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin",
                          "Cross-Origin-Embedder-Policy": "require-corp"}
# Types a browser insists on: a module script must be JavaScript, WebAssembly streaming compile
# wants application/wasm. Servers guess by suffix, some wrongly (.mjs), so they are said here.
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".mjs": "text/javascript; charset=utf-8", ".wasm": "application/wasm",
               ".json": "application/json", ".onnx": "application/octet-stream"}


def folder_name(concept: str) -> str:
    return f"{concept}_web"


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the cache and the target share a disk (the runtime's 45 MB once, however
    many pages), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


STALE_SECONDS = 6 * 3600  # a staging folder this old belongs to an export that was killed


def _remove_stale_staging(out_dir: Path) -> None:
    """What killed exports left in `out_dir` (an export still running is younger than this)."""
    for staging in out_dir.glob(".web-*.tmp"):
        try:
            if staging.is_dir() and time.time() - staging.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(staging, ignore_errors=True)
        except OSError:
            continue


def _check_out_dir(out_dir: Path) -> None:
    existing = next((parent for parent in [out_dir, *out_dir.parents] if parent.exists()), None)
    if existing is not None and not existing.is_dir():
        raise E2GANError(f"cannot write the web page into {out_dir}: {existing} is a file, not a folder")


def write_page(staging: Path, onnx_record: dict, runtime: Path, result: dict) -> dict:
    """The page's files beside the exported ONNX file in `staging`; returns page.json's content."""
    model = Path(onnx_record["path"])
    sidecar = json.loads(model.with_name(model.name + ".json").read_text(encoding="utf-8"))
    shape = sidecar["input"]["shape"]
    if not all(isinstance(side, int) for side in shape):
        raise E2GANError(f"the web page needs a static-size model; {model.name} is {shape}")
    for name in PAGE_FILES:
        shutil.copyfile(PAGE_SOURCE / name, staging / name)
    ort_folder = staging / RUNTIME_FOLDER
    ort_folder.mkdir()
    for name in web_runtime.FILES:
        _link_or_copy(runtime / name, ort_folder / name)
    web_runtime.write_license(runtime, ort_folder / "LICENSE")
    page = {
        "concept": result["concept"], "prompt": result["prompt"], "size": result["size"],
        "precision": onnx_record.get("precision", "fp32"),
        "model": model.name, "model_bytes": model.stat().st_size,
        "input": sidecar["input"], "output": sidecar["output"],
        "runtime": {"package": f"{web_runtime.PACKAGE} {web_runtime.VERSION}",
                    "folder": f"{RUNTIME_FOLDER}/",
                    "webgpu": f"{RUNTIME_FOLDER}/{web_runtime.WEBGPU_FILES[0]}",
                    "wasm": f"{RUNTIME_FOLDER}/{web_runtime.WASM_FILES[0]}"},
        "checked": {"max_abs_diff": onnx_record["max_abs_diff"],
                    "runtime": onnx_record["runtime"]},
    }
    atomic_write_json(staging / "page.json", page)
    return page


def export_web(model: str | os.PathLike, out_dir: str | os.PathLike,
               adapter: str | os.PathLike | None = None, prompt: str | None = None,
               scale: float = 1.0, size: int = 256, precision: str = "fp32",
               dataset: str | os.PathLike | None = None, repeats: int = 10,
               threads: int | None = None) -> dict:
    """Write `<out_dir>/<concept>_web/`, the concept as a web page; returns what was written.

    The ONNX file is `export_concept`'s static `size` x `size` one in `precision`, checked as
    that export checks it. The runtime files are found (or fetched) before any work."""
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    runtime = web_runtime.runtime_folder(fetch=True)  # missing and unreachable: said before any work
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(out_dir)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".web-", suffix=".tmp"))
    try:
        os.chmod(staging, 0o755)  # mkdtemp makes it private; a page is for any server to read
        result = export_concept(model, staging, adapter=adapter, prompt=prompt, scale=scale,
                                size=size, formats=("onnx",), dynamic=False, repeats=repeats,
                                threads=threads, precision=precision, dataset=dataset)
        record = result["files"][0]
        page = write_page(staging, record, runtime, result)
        target = out_dir / folder_name(result["concept"])
        replace_folder(staging, target, overwrite=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = sorted(str(path.relative_to(target)) for path in target.rglob("*") if path.is_file())
    return {"concept": result["concept"], "prompt": result["prompt"], "size": result["size"],
            "precision": page["precision"], "folder": str(target),
            "index": str(target / "index.html"), "files": files,
            "bytes": sum((target / name).stat().st_size for name in files),
            "model_bytes": page["model_bytes"], "runtime": page["runtime"]["package"],
            "max_abs_diff": record["max_abs_diff"], "onnxruntime_latency_median_s":
            record["latency_median_s"], "threads": result["threads"]}
