"""The studio serves each web page export (`e2gan export --format web`) at a link a visitor can
open on a phone: `<studio address>/e2gan-web/<page id>/`.

A page id is random (128 bits) and says nothing of the workspace it came from: the workspace id is
the key to a whole workspace, so it never appears in a link meant to be shared. Each export of a
concept keeps its id (a file beside the folder), so a re-export updates the page behind the same
link. `<workspace root>/.web-pages/<page id>.json` says which folder an id serves; the route reads
only files inside that folder, and a page whose workspace was removed answers 404.

The route is a plain Starlette route handed to Gradio's FastAPI app at launch (`routes()`, through
`launch_options`), with the media types browsers insist on (`.mjs`, `.wasm`) and the two headers
that make the page cross-origin isolated, so WebAssembly may use several threads.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route

from e2gan.errors import E2GANError
from e2gan.export.web import CROSS_ORIGIN_ISOLATION, MEDIA_TYPES
from e2gan.files import atomic_write_json, atomic_write_text, is_within

from app.workspace import read_json

PREFIX = "e2gan-web"
PAGES_DIR = ".web-pages"  # under the workspace root; not a workspace id, so pruning passes it by
_PAGE_ID = re.compile(r"[0-9a-f]{32}")
# The workspace roots this process's studios serve pages from (build_demo adds its own).
_ROOTS: list[Path] = []


def serve_pages_from(workspace_root: Path) -> None:
    root = Path(workspace_root).resolve()
    if root not in _ROOTS:
        _ROOTS.append(root)


def publish(workspace_root: Path, folder: Path) -> str:
    """The page id that serves `folder` (a web export inside `workspace_root`): the one it had,
    else a new one."""
    root, folder = Path(workspace_root).resolve(), Path(folder).resolve()
    if not is_within(root, folder):
        raise E2GANError(f"{folder} is not inside the workspaces")
    id_file = folder.with_name(folder.name + ".page-id")
    page_id = id_file.read_text(encoding="utf-8").strip() if id_file.is_file() else ""
    if not _PAGE_ID.fullmatch(page_id):
        page_id = secrets.token_hex(16)
        atomic_write_text(id_file, page_id)
    atomic_write_json(root / PAGES_DIR / f"{page_id}.json",
                      {"folder": str(folder.relative_to(root))})
    return page_id


def link(page_id: str) -> str:
    """The page's address relative to the studio's page (so it holds behind a proxy's root path)."""
    return f"{PREFIX}/{page_id}/"


def page_folder(page_id: str) -> Path | None:
    if not _PAGE_ID.fullmatch(page_id):
        return None
    for root in _ROOTS:
        try:
            entry = read_json(root / PAGES_DIR / f"{page_id}.json")
        except E2GANError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("folder"), str):
            folder = root / entry["folder"]
            if is_within(root, folder) and (folder / "index.html").is_file():
                return folder.resolve()
    return None


def page_file(page_id: str, name: str) -> Path | None:
    """A file of the page, or None: unknown page, hidden or outside names, not a file."""
    folder = page_folder(page_id)
    if folder is None or any(part.startswith(".") or not part for part in name.split("/")):
        return None
    path = folder / name
    return path.resolve() if is_within(folder, path) and path.is_file() else None


GONE = ("No such page here: its workspace may have been removed, or the link is mistyped. "
        "Export the concept as a web page again in the studio's Library.")


async def _serve(request: Request):
    page_id, name = request.path_params["page_id"], request.path_params.get("name", "")
    if "name" not in request.path_params and page_folder(page_id) is not None:
        return RedirectResponse(f"{request.url.path}/", status_code=308)  # relative links need it
    path = page_file(page_id, name or "index.html")
    if path is None:
        return PlainTextResponse(GONE, status_code=404)
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
                        headers={**CROSS_ORIGIN_ISOLATION, "Cache-Control": "no-cache",
                                 "X-Content-Type-Options": "nosniff"})


def routes() -> list[Route]:
    return [Route(f"/{PREFIX}/{{page_id}}", _serve, methods=["GET", "HEAD"]),
            Route(f"/{PREFIX}/{{page_id}}/{{name:path}}", _serve, methods=["GET", "HEAD"])]


def public_url(request, page_id: str) -> str | None:
    """The page's full address as the visitor's browser reached the studio (through a Space's or
    another proxy's forwarded host and scheme), to type or share on a phone; None without a
    request (an API call, a test)."""
    raw = getattr(request, "request", None) if request is not None else None
    if raw is None:
        return None
    from gradio import route_utils  # the studio's own dependency; its proxy-aware origin

    try:
        root = route_utils.get_root_url(raw, raw.url.path, raw.scope.get("root_path") or None)
    except Exception:  # an odd request: the relative link still works
        return None
    return f"{root}/{link(page_id)}"
