"""`e2gan export --format web`: the folder's contents, its atomic write, the bad-input errors, and
fetching onnxruntime-web's runtime (pinned, checked) into the cache. A stand-in runtime (files of
the right names) keeps these offline and fast; the real page runs in tests/browser/."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from e2gan.cli import main
from e2gan.errors import E2GANError
from e2gan.export import web, web_runtime
from e2gan.export.web import export_web

PROMPT = "a scene at night"  # a concept the tiny base knows




@pytest.fixture
def page(tiny_base, stand_in_runtime, tmp_path):
    out = tmp_path / "site"
    return out, export_web(tiny_base, out, prompt=PROMPT, size=32, repeats=1)


def _leftovers(out: Path) -> list[str]:
    return sorted(path.name for path in out.iterdir() if path.name.startswith("."))


def test_the_folder_holds_the_page_the_checked_model_and_the_runtime(page, stand_in_runtime):
    out, result = page
    folder = Path(result["folder"])
    assert folder == out / f"{result['concept']}_web" and result["index"] == str(folder / "index.html")
    model = f"{result['concept']}_32.onnx"
    assert sorted(result["files"]) == sorted(
        ["index.html", "e2gan-web.js", "page.json", model, model + ".json", "ort/LICENSE",
         *(f"ort/{name}" for name in web_runtime.FILES)])
    assert _leftovers(out) == []
    for name in web_runtime.FILES:  # the runtime as fetched, byte for byte
        assert (folder / "ort" / name).read_bytes() == (stand_in_runtime / name).read_bytes()
    assert "MIT License" in (folder / "ort" / "LICENSE").read_text()
    assert 'src="e2gan-web.js"' in (folder / "index.html").read_text()

    config = json.loads((folder / "page.json").read_text())
    assert config["model"] == model and config["model_bytes"] == (folder / model).stat().st_size
    assert config["prompt"] == PROMPT and config["size"] == 32 and config["precision"] == "fp32"
    assert config["input"]["name"] == "image" and config["output"]["name"] == "edited"
    assert config["input"]["shape"] == [1, 3, 32, 32] and config["input"]["range"] == [-1.0, 1.0]
    assert config["input"]["layout"].startswith("NCHW")
    assert config["runtime"]["wasm"] == "ort/ort.wasm.min.js"
    assert config["runtime"]["webgpu"] == "ort/ort.min.js"
    assert config["checked"]["max_abs_diff"] <= 1e-3
    # The file is the one the ONNX export checked; it runs under the names the page feeds it.
    session = ort.InferenceSession(str(folder / model), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    edited = session.run([config["output"]["name"]], {config["input"]["name"]: image})[0]
    assert edited.shape == (1, 3, 32, 32) and np.isfinite(edited).all()


def test_a_failure_leaves_the_previous_page_whole_and_no_temporary(page, tiny_base, monkeypatch):
    out, result = page
    folder = Path(result["folder"])
    before = {name: (folder / name).read_bytes() for name in result["files"]}

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(web, "_link_or_copy", broken)  # midway: the model and page are written
    with pytest.raises(OSError):
        export_web(tiny_base, out, prompt="a pencil sketch", size=32, repeats=1)
    assert {name: (folder / name).read_bytes() for name in result["files"]} == before
    assert sorted(p.name for p in out.iterdir()) == [folder.name]


def test_a_failed_first_export_leaves_nothing_and_a_killed_ones_leftovers_go(tiny_base,
                                                                            stand_in_runtime, tmp_path):
    import os

    out = tmp_path / "site"
    killed, running = out / ".web-killed.tmp", out / ".web-running.tmp"
    for folder in (killed, running):
        (folder / "ort").mkdir(parents=True)
    os.utime(killed, (0, 0))  # left long ago by an export that was killed
    with pytest.raises(E2GANError, match="multiple of"):
        export_web(tiny_base, out, prompt=PROMPT, size=30, repeats=1)
    assert [path.name for path in out.iterdir()] == [running.name]


def test_a_missing_runtime_is_said_before_any_work_naming_the_command(tiny_base, tmp_path,
                                                                       monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(web_runtime.ENV_FOLDER, str(empty))
    monkeypatch.setattr(web, "export_concept", lambda *a, **k: pytest.fail("exported anyway"))
    with pytest.raises(E2GANError, match="make web-runtime") as error:
        export_web(tiny_base, tmp_path / "site", prompt=PROMPT, size=32)
    assert "ort-wasm-simd-threaded.wasm" in str(error.value)
    assert not (tmp_path / "site").exists()

    monkeypatch.delenv(web_runtime.ENV_FOLDER)  # the (empty, per-test) cache, no way to fetch
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9")
    with pytest.raises(E2GANError, match=r"cannot download onnxruntime-web .*make web-runtime"):
        export_web(tiny_base, tmp_path / "site", prompt=PROMPT, size=32)
    with pytest.raises(E2GANError, match="make web-runtime"):
        web_runtime.runtime_folder(fetch=False)


def test_the_cli_writes_the_page_and_refuses_bad_input_in_one_line(tiny_base, stand_in_runtime,
                                                                   tmp_path, capsys):
    out = tmp_path / "site"
    assert main(["export", "--model", str(tiny_base), "--prompt", PROMPT, "--format", "web",
                 "--size", "32", "--repeats", "1", "--out", str(out), "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Path(result["index"]).is_file() and result["runtime"] == "onnxruntime-web 1.31.1"

    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    for flags, message in ([["--out", str(a_file)], "is a file, not a folder"],
                           [["--out", str(out), "--size", "30"], "multiple of"],
                           [["--out", str(out), "--precision", "int8", "--dataset", str(tmp_path)],
                            "is not a dataset"]):
        code = main(["export", "--model", str(tiny_base), "--prompt", PROMPT, "--format", "web",
                     "--repeats", "1", "--quiet", *flags])
        error = capsys.readouterr().err
        assert code == 2 and message in error and "Traceback" not in error
    assert sorted(p.name for p in out.iterdir()) == [Path(result["folder"]).name]


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_the_runtime_is_fetched_checked_and_unpacked_once(monkeypatch):
    files = {name: f"runtime {name}".encode() for name in web_runtime.FILES}
    data = _tarball({**files, "ort.all.min.js": b"not wanted"})
    digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
    asked = []
    monkeypatch.delenv(web_runtime.ENV_FOLDER, raising=False)
    monkeypatch.setattr(web_runtime.urllib.request, "urlopen",
                        lambda url, timeout: asked.append(url) or _Response(data))

    monkeypatch.setattr(web_runtime, "INTEGRITY", "sha512-" + base64.b64encode(b"x" * 64).decode())
    with pytest.raises(E2GANError, match="does not match"):
        web_runtime.runtime_folder()
    assert not web_runtime.cache_folder().exists()

    monkeypatch.setattr(web_runtime, "INTEGRITY", f"sha512-{digest}")
    folder = web_runtime.runtime_folder()
    assert folder == web_runtime.cache_folder()
    assert sorted(p.name for p in folder.iterdir()) == sorted([*files, "LICENSE", "runtime.json"])
    assert all((folder / name).read_bytes() == files[name] for name in files)
    assert asked[-1].endswith("/onnxruntime-web/-/onnxruntime-web-1.31.1.tgz")
    web_runtime.runtime_folder()
    assert len(asked) == 2  # the refused download and the good one; the cache serves the third
