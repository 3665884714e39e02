"""The web page export in a real browser: headless Chromium loads the exported folder from a local
http server, edits a fixed photo with onnxruntime-web (WebAssembly), and the edit it shows must be
onnxruntime's in Python on the same ONNX file, within 2 grey levels."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

pytest.importorskip("playwright")

from e2gan.data.sources import builtin_photos  # noqa: E402
from e2gan.export import web_runtime  # noqa: E402
from e2gan.export.web import export_web  # noqa: E402
from tests.browser.studio_pass import chromium_path  # noqa: E402
from tests.browser.web_page import edit_photo, serve  # noqa: E402

SIZE = 64


def _fetched_runtime() -> Path | None:
    """The runtime `make web-runtime` fetched into the user's cache (the tests' own E2GAN_CACHE
    is a fresh folder), or one named by E2GAN_WEB_RUNTIME."""
    if os.environ.get(web_runtime.ENV_FOLDER):
        return Path(os.environ[web_runtime.ENV_FOLDER])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "e2gan"
    folder = cache / f"{web_runtime.PACKAGE}-{web_runtime.VERSION}"
    return None if web_runtime.missing_files(folder) else folder


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (apt-get install -y chromium)")
@pytest.mark.skipif(_fetched_runtime() is None,
                    reason=f"onnxruntime-web is not fetched: run {web_runtime.FETCH_COMMAND}")
def test_the_page_edits_a_photo_in_the_browser_as_onnxruntime_does(tiny_base, tmp_path, monkeypatch):
    monkeypatch.setenv(web_runtime.ENV_FOLDER, str(_fetched_runtime()))
    result = export_web(tiny_base, tmp_path / "site", prompt="a pencil sketch", size=SIZE, repeats=1)
    folder = Path(result["folder"])
    photo = next(iter(builtin_photos(1, size=SIZE, seed=7)))[1].convert("RGB")
    photo.save(tmp_path / "photo.png")

    config = json.loads((folder / "page.json").read_text())
    session = ort.InferenceSession(str(folder / config["model"]), providers=["CPUExecutionProvider"])
    pixels = np.asarray(photo, np.float32).transpose(2, 0, 1)[None] / 127.5 - 1.0
    edited = session.run([config["output"]["name"]], {config["input"]["name"]: pixels})[0][0]
    expected = ((edited.transpose(1, 2, 0).clip(-1, 1) + 1) * 127.5).round()
    assert expected.std() > 5  # an edit with something in it, not a flat colour

    # WebAssembly's own build; then the WebGPU build, which headless Chromium gives no GPU, so
    # it must fall back to its WebAssembly kernels and edit the same.
    with serve(folder) as url:
        for query in ("ep=wasm", "ep=webgpu"):
            shown = edit_photo(f"{url}index.html?{query}", tmp_path / "photo.png")
            assert shown["errors"] == [], query
            assert shown["size"] == SIZE and f"{SIZE}×{SIZE} px" in shown["status"]
            assert shown["backend"].startswith("WebAssembly"), query
            got = np.asarray(shown["pixels"], np.float32).reshape(SIZE, SIZE, 3)
            assert np.abs(got - expected).max() <= 2, query
