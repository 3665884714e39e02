"""A web page export (`e2gan export --format web`) in headless Chromium: a local static server
for its folder, and one edit of a photo read back from the page. Used by the browser test and, run
as a script, to measure the page's frames per second on the camera (Chromium's fake camera):

    python -m tests.browser.web_page FOLDER --seconds 20 [--threads 1] [--isolated]
"""

from __future__ import annotations

import argparse
import functools
import json
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from e2gan.export.web import CROSS_ORIGIN_ISOLATION, MEDIA_TYPES
from tests.browser.studio_pass import chromium_path


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **MEDIA_TYPES}
    isolated = False

    def end_headers(self) -> None:
        if self.isolated:
            for name, value in CROSS_ORIGIN_ISOLATION.items():
                self.send_header(name, value)
        super().end_headers()

    def log_message(self, *args) -> None:  # quiet
        pass


@contextmanager
def serve(folder: Path, isolated: bool = False):
    """`folder` on http://127.0.0.1:<free port>/ while the block runs; yields the address."""
    handler = type("Handler", (_Handler,), {"isolated": isolated})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def browser_page(camera: bool = False):
    """A headless Chromium page (Debian's Chromium; Playwright's own download cannot work offline);
    `camera`: Chromium's fake camera, allowed without asking. JavaScript errors are collected in
    `page.errors`."""
    from playwright.sync_api import sync_playwright

    arguments = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"] if camera else []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                             args=arguments)
        try:
            page = browser.new_page()
            page.errors = []
            page.on("pageerror", lambda error: page.errors.append(str(error)))
            page.on("console", lambda message: page.errors.append(message.text)
                    if message.type == "error" else None)
            yield page
        finally:
            browser.close()


def wait_for_state(page, wanted: str, timeout_ms: float) -> None:
    page.wait_for_function(f"['{wanted}', 'error'].includes(document.body.dataset.state)",
                           timeout=timeout_ms)
    state = page.evaluate("document.body.dataset.state")
    if state != wanted:
        raise AssertionError(f"the page says: {page.inner_text('#error')}")


def edit_photo(url: str, photo: Path, timeout_ms: float = 120_000) -> dict:
    """Open the page at `url`, choose `photo`, wait for the edit; returns its pixels (RGB, row by
    row), the page's status line and state, and any JavaScript errors."""
    with browser_page() as page:
        page.goto(url)
        wait_for_state(page, "ready", timeout_ms)
        page.set_input_files("#upload", str(photo))
        wait_for_state(page, "edited", timeout_ms)
        return {"pixels": page.evaluate("window.e2gan.outputPixels()"),
                "status": page.inner_text("#status"),
                "size": page.evaluate("window.e2gan.size"),
                "backend": page.evaluate("window.e2gan.backend"), "errors": list(page.errors)}


def camera_fps(url: str, seconds: float, timeout_ms: float = 120_000) -> dict:
    """Open the page, start the (fake) camera, let it run `seconds`; the page's own readings."""
    with browser_page(camera=True) as page:
        page.goto(url)
        wait_for_state(page, "ready", timeout_ms)
        page.click("#camera")
        wait_for_state(page, "camera", timeout_ms)
        page.wait_for_timeout(seconds * 1000)
        reading = page.evaluate("({fps: e2gan.fps, edits: e2gan.edits, lastMs: e2gan.lastMs, "
                                "size: e2gan.size, backend: e2gan.backend})")
        return {**reading, "status": page.inner_text("#status"), "errors": list(page.errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--ep", default="wasm", choices=["wasm", "webgpu", "auto"])
    parser.add_argument("--isolated", action="store_true",
                        help="send the cross-origin isolation headers (WebAssembly threads)")
    args = parser.parse_args()
    query = [f"ep={args.ep}"] if args.ep != "auto" else []
    query += [f"threads={args.threads}"] if args.threads else []
    with serve(args.folder, isolated=args.isolated) as url:
        print(json.dumps(camera_fps(f"{url}index.html?{'&'.join(query)}", args.seconds)))


if __name__ == "__main__":
    main()
