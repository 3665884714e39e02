"""The Library's "web page" export: written under the concept's exports, zipped for download, and
served by the studio itself at /e2gan-web/<page id>/ (a random id, never the workspace's), with the
media types and cross-origin isolation headers the page needs; nothing outside the page is served."""

from __future__ import annotations

import zipfile
from pathlib import Path

import httpx
import pytest

pytest.importorskip("gradio")

from test_studio_api import free_port  # noqa: E402




def test_the_library_exports_a_web_page_and_the_studio_serves_it(winter_concept, tiny_base,
                                                                  stand_in_runtime):
    from app import library
    from app.studio import build_demo, launch_options

    workspace, folder = winter_concept
    root = workspace.root.parent
    assert library.WEB_PAGE in library.export_formats()
    demo = build_demo(tiny_base, root)
    result = library.export(workspace, "winter", library.WEB_PAGE, tiny_base, size=32, repeats=1)
    page_id, link = result["page_id"], result["link"]
    assert link == f"e2gan-web/{page_id}/" and workspace.id not in link and len(page_id) == 32
    page = folder.exports_dir / "winter_web"
    (archive,) = result["files"]
    with zipfile.ZipFile(archive) as zipped:
        assert {"index.html", "page.json", "ort/ort.wasm.min.js", "winter_32.onnx"} <= set(zipped.namelist())
    report = library.export_report(result, f"https://example.org/{link}")
    assert f"]({link})" in report and f"`https://example.org/{link}`" in report

    again = library.export(workspace, "winter", library.WEB_PAGE, tiny_base, size=32, repeats=1)
    assert again["page_id"] == page_id  # a re-export updates the page behind the same link

    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                **launch_options())
    try:
        base = f"http://127.0.0.1:{port}/"
        index = httpx.get(base + link + "index.html")
        assert index.status_code == 200 and index.text == (page / "index.html").read_text()
        assert index.headers["content-type"].startswith("text/html")
        assert index.headers["cross-origin-opener-policy"] == "same-origin"
        assert index.headers["cross-origin-embedder-policy"] == "require-corp"
        assert httpx.get(base + link).text == index.text
        bare = httpx.get(base + link.rstrip("/"))
        assert bare.status_code == 308 and bare.headers["location"].endswith(link)
        for name, media_type in [("ort/ort-wasm-simd-threaded.mjs", "text/javascript"),
                                 ("ort/ort-wasm-simd-threaded.wasm", "application/wasm"),
                                 ("page.json", "application/json")]:
            answer = httpx.get(base + link + name)
            assert answer.status_code == 200 and answer.headers["content-type"].startswith(media_type)
            assert answer.content == (page / name).read_bytes()
        for wrong in [f"e2gan-web/{'0' * 32}/index.html", "e2gan-web/not-an-id/index.html",
                      link + "../winter_web.page-id", link + "%2e%2e/winter_web.page-id",
                      link + "ort/../../../concept.json", link + ".hidden", link + "missing.js"]:
            assert httpx.get(base + wrong).status_code == 404, wrong
    finally:
        demo.close()


def test_the_full_link_follows_the_address_the_visitor_used():
    from starlette.requests import Request

    from app import web_pages

    def request(headers: dict[str, str], root_path: str = ""):
        scope = {"type": "http", "method": "POST", "scheme": "http", "path": "/gradio_api/queue/join",
                 "root_path": root_path, "query_string": b"", "server": ("10.0.0.5", 7860),
                 "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
        return type("GradioRequest", (), {"request": Request(scope)})()

    page_id = "ab" * 16
    assert (web_pages.public_url(request({"host": "192.168.1.20:7860"}), page_id)
            == f"http://192.168.1.20:7860/e2gan-web/{page_id}/")
    spaced = request({"host": "10.0.0.5:7860", "x-forwarded-host": "me-studio.hf.space",
                      "x-forwarded-proto": "https"})
    assert web_pages.public_url(spaced, page_id) == f"https://me-studio.hf.space/e2gan-web/{page_id}/"
    assert web_pages.public_url(None, page_id) is None
