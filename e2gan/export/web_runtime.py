"""onnxruntime-web's runtime files for the web page export (`e2gan export --format web`).

Where they come from: the `onnxruntime-web` package of the npm registry, at one pinned version,
checked against the registry's sha512 and unpacked once into a cache
(`$E2GAN_CACHE/onnxruntime-web-<version>`, else `~/.cache/e2gan/...`). The repository does not
carry them: the WebAssembly binaries are 15 and 30 MB, and the registry is reachable wherever
`pip` is (a user's machine, a Hugging Face Space, CI), so `make web-runtime` (run by `make test`)
or the first web export fetches them; no npm, node or CDN is needed, only HTTPS to the registry
(or a mirror named by `npm_config_registry`). `E2GAN_WEB_RUNTIME` names a folder that already
holds the files (e.g. an unpacked package's `dist/`), for machines with no way out at all.

Two runtimes travel with a page, and each visitor's browser loads one: `ort.min.js` (WebGPU
through JSEP, with the WebAssembly CPU kernels as its fallback) where the browser offers a WebGPU
adapter, else `ort.wasm.min.js` (WebAssembly only, half the download).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from e2gan.errors import E2GANError
from e2gan.files import atomic_write_json, atomic_write_text
from e2gan.paths import cache_root

VERSION = "1.31.1"
PACKAGE = "onnxruntime-web"
# The registry's `dist.integrity` of that tarball (`npm view onnxruntime-web@1.31.1 dist.integrity`).
INTEGRITY = ("sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZP"
             "XrQ73k82URw==")
TARBALL_BYTES_LIMIT = 64 * 1024 * 1024  # the tarball is 34.6 MB
# (loader, Emscripten glue it imports, the WebAssembly binary), per runtime
WEBGPU_FILES = ("ort.min.js", "ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm")
WASM_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
FILES = WEBGPU_FILES + WASM_FILES
ENV_FOLDER = "E2GAN_WEB_RUNTIME"
FETCH_COMMAND = "make web-runtime (or: e2gan web-runtime)"
# The npm package ships no LICENSE file; its package.json says MIT and every file's header reads
# "Copyright (c) Microsoft Corporation. All rights reserved. Licensed under the MIT License."
# This is the LICENSE of the microsoft/onnxruntime repository the package is built from.
LICENSE = """MIT License

Copyright (c) Microsoft Corporation

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def cache_folder() -> Path:
    """Where the fetched runtime lives: under e2gan.paths.cache_root() ($E2GAN_CACHE, else
    $XDG_CACHE_HOME/e2gan, else ~/.cache/e2gan)."""
    return cache_root() / f"{PACKAGE}-{VERSION}"


def tarball_url() -> str:
    registry = (os.environ.get("npm_config_registry") or "https://registry.npmjs.org/").rstrip("/")
    return f"{registry}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"


def missing_files(folder: Path) -> list[str]:
    return [name for name in FILES if not (folder / name).is_file()]


def _unpack(data: bytes, target: Path) -> None:
    """The runtime's files from the npm tarball into `target` (built beside it, then renamed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for name in FILES:  # only these names are read: nothing else in the archive is unpacked
                member = archive.getmember(f"package/dist/{name}")
                if not member.isfile():
                    raise E2GANError(f"{PACKAGE} {VERSION}'s {name} is not a plain file")
                (staging / name).write_bytes(archive.extractfile(member).read())
        (staging / "LICENSE").write_text(LICENSE, encoding="utf-8")
        atomic_write_json(staging / "runtime.json", {"package": PACKAGE, "version": VERSION,
                                                     "integrity": INTEGRITY, "from": tarball_url()})
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the cache is readable like any other
        try:
            os.replace(staging, target)
        except OSError:  # another process unpacked it meanwhile: keep theirs
            if missing_files(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_runtime(timeout: float = 120.0) -> Path:
    """Download the pinned package from the npm registry, check it, unpack the runtime into the
    cache; returns that folder (at once when it is already there)."""
    target = cache_folder()
    if not missing_files(target):
        return target
    url = tarball_url()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read(TARBALL_BYTES_LIMIT + 1)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise E2GANError(f"cannot download {PACKAGE} {VERSION} from {url} ({reason}); the web page "
                         f"export needs its runtime files: run {FETCH_COMMAND} where the npm "
                         f"registry is reachable, or set {ENV_FOLDER} to a folder holding "
                         f"{', '.join(FILES)}") from None
    if len(data) > TARBALL_BYTES_LIMIT:
        raise E2GANError(f"{url} is larger than {TARBALL_BYTES_LIMIT >> 20} MB: not {PACKAGE} {VERSION}")
    algorithm, expected = INTEGRITY.split("-", 1)
    if base64.b64encode(hashlib.new(algorithm, data).digest()).decode() != expected:
        raise E2GANError(f"{url} does not match {PACKAGE} {VERSION}'s published {algorithm}; "
                         "nothing was unpacked")
    if target.exists():  # a folder left incomplete by hand: replaced whole
        shutil.rmtree(target)
    _unpack(data, target)
    return target


def runtime_folder(fetch: bool = True) -> Path:
    """The folder holding every runtime file: $E2GAN_WEB_RUNTIME as given, else the cache
    (fetched first when `fetch` and it is missing). Raises, naming what to run, when absent."""
    if os.environ.get(ENV_FOLDER):
        folder = Path(os.environ[ENV_FOLDER])
        missing = missing_files(folder)
        if missing:
            raise E2GANError(f"{ENV_FOLDER}={folder} lacks onnxruntime-web's {', '.join(missing)} "
                             f"(version {VERSION}'s dist/ files); unset it to use the cache filled "
                             f"by {FETCH_COMMAND}")
        return folder
    folder = cache_folder()
    if missing_files(folder):
        if not fetch:
            raise E2GANError(f"onnxruntime-web {VERSION} is not in {folder}: run {FETCH_COMMAND}")
        return fetch_runtime()
    return folder


def license_text(folder: Path) -> str:
    """The runtime's licence: the folder's own LICENSE when it has one, else the MIT text above."""
    path = folder / "LICENSE"
    return path.read_text(encoding="utf-8") if path.is_file() else LICENSE


def write_license(folder: Path, target: Path) -> None:
    atomic_write_text(target, license_text(folder))
