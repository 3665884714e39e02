"""The studio: Concept -> Pairs -> Curate -> Fine-tune -> Compare -> Library & export.

`build_demo` wires the tabs; `launch_options` holds the Gradio 6 launch settings (theme and css
belong to `launch()`, and so does the route that serves the Library's web pages, `app.web_pages`). Public API endpoints (stable names, for gradio_client): /concept, /import_pairs,
/generate_pairs, /stop, /select, /drop_pair, /finetune, /compare, /apply_adapter, /library,
/export, /blend, /edit, /status, and for clients without a page session (scripts, MCP
assistants) /make_concept, /apply_concept, /export_concept (`app.agent_tools`). Everything else
is UI-only and private.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import gradio as gr
from PIL import Image

from e2gan.checkpoint import load_generator
from e2gan.limits import MAX_STUDIO_QUEUE, MAX_UPLOAD_BYTES
from e2gan.paths import default_base_dir

from app import gpu
from app.agent_tools import build_agent_endpoints, hide_page_endpoints_from_mcp
from app.concepts import teacher_table
from app.jobs import BOARD
from app.settings import SETTINGS
from app.tabs.compare import build_compare_tab
from app.tabs.concept import build_concept_tab, build_pairs_tab
from app.tabs.curate import build_curate_tab
from app.tabs.finetune import build_finetune_tab
from app.tabs.library import build_library_tab
from app.tabs.live import build_live_tab
from app.try_concept import ConceptTrier, build_try_tab
from app import web_pages
from app.ui import Context, visitor_of
from app.workspace import default_workspace_root

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CSS = (ASSETS / "studio.css").read_text(encoding="utf-8")
LOGO = ASSETS / "logo.svg"  # also the page's icon
STATUS_SECONDS = 10.0  # how often the status line refreshes itself


# The session's workspace id goes into the page's address (`?workspace=<id>`, replacing the
# history entry), so a reload, a second tab with that address or a bookmark reopens the same
# workspace, also after the studio restarts. Ids are 64 random bits: the address is the key.
KEEP_WORKSPACE_IN_ADDRESS = """(id) => {
  if (id) {
    const address = new URL(window.location.href);
    address.searchParams.set("workspace", id);
    window.history.replaceState(null, "", address);
  }
}"""


def _clip_line() -> str:
    try:  # optional: open_clip
        from e2gan.teachers.clip_scores import clip_weights_available
    except ImportError:
        return "CLIP: not installed"
    found, where = clip_weights_available()
    return "CLIP weights: found" if found else "CLIP weights: not found (built-in embedder in use)"


@functools.lru_cache(maxsize=4)
def _base_and_teachers(base_dir: Path) -> tuple[int, list[dict], str]:
    """Loading the base and looking for weights takes seconds: done once per process."""
    info = load_generator(base_dir).info
    return len((info.get("text_encoder") or {}).get("concepts", [])), teacher_table(), _clip_line()


def teachers_line(teachers: list[dict]) -> str:
    """Which teachers run here, in plain words: the ready ones first, then what the others lack."""
    ready = [row["name"] for row in teachers if row["available"]]
    no_weights = [row["name"] for row in teachers if row["missing"] == "weights"]
    no_packages = [row["name"] for row in teachers if row["missing"] == "packages"]
    parts = [f"{', '.join(ready)} ready" if ready else "none ready"]
    if no_weights:
        parts.append(f"{', '.join(no_weights)}: no weights on this machine")
    if no_packages:
        parts.append(f"{', '.join(no_packages)}: packages not installed")
    line = "**Teachers:** " + " · ".join(parts)
    if no_weights or no_packages:
        line += " (see the Concept tab for what to fetch)"
    return line


def status_text(base_dir: Path, workspace_id: str | None = None) -> str:
    """One status line: device and what it can do, base, teachers, weights, Space mode, what is
    running."""
    concepts, teachers, clip_line = _base_and_teachers(base_dir)
    usable = [row["name"] for row in teachers if row["available"]]
    running = BOARD.running()
    mine = [job.kind for job in running if job.workspace_id == workspace_id]
    parts = [f"**Device** {SETTINGS.device_label}",
             gpu.hardware_line(SETTINGS.device, SETTINGS.on_space, SETTINGS.zero_gpu),
             f"**Base** `{base_dir.name}` ({concepts} concepts)",
             teachers_line(teachers), clip_line]
    if usable == ["builtin"]:
        parts.append("offline: the built-in teacher carries the whole flow")
    if SETTINGS.on_space:
        parts.append("Hugging Face Space" + (" (ZeroGPU)" if SETTINGS.zero_gpu else ""))
    if workspace_id:
        parts.append(f"**Workspace** `{workspace_id}` (this page's address reopens it)")
    parts.append(f"**Running** {', '.join(mine) if mine else 'nothing in your session'}"
                 f" · {len(running)} job(s) on this machine")
    return " · ".join(parts)


def build_demo(base_dir: str | Path | None = None,
               workspace_root: str | Path | None = None) -> gr.Blocks:
    context = Context(Path(workspace_root or default_workspace_root()),
                      Path(base_dir or default_base_dir()))
    context.workspace_root.mkdir(parents=True, exist_ok=True)
    web_pages.serve_pages_from(context.workspace_root)  # the Library's web page exports
    # Every image a user hands the studio is opened by `e2gan.files.open_image`, which checks
    # E2GAN_MAX_IMAGE_PIXELS from the header and names the limit. PIL's own guard would fire
    # first, inside Gradio's preprocessing, as an anonymous "error" (and only past 179 MP).
    Image.MAX_IMAGE_PIXELS = None
    trier = ConceptTrier(context.base_dir)
    # Gradio's cache holds every upload and every image shown; uploads are copied into the
    # workspace, so a day-old cached file is no one's only copy.
    with gr.Blocks(title="E2GAN Studio", delete_cache=(3600, 24 * 3600)) as demo:
        workspace_state = gr.State(None)
        # The fine-tune form's values, kept in the browser across a reload. Outside the tabs:
        # there a component would take a tab's place, and inside one it loads only when shown.
        finetune_form = gr.BrowserState({}, storage_key="e2gan-finetune-form")
        with gr.Row(elem_classes="studio-header"):
            gr.HTML(LOGO.read_text(encoding="utf-8"), elem_classes="studio-logo", container=False)
            gr.Markdown("# E2GAN Studio\nDistil a slow image editor into a tiny real-time GAN, one "
                        "concept at a time: **Concept → Pairs → Curate → Fine-tune → Compare → "
                        "Library**.")
        status = gr.Markdown(elem_classes="status-line")
        # What became of the workspace the address named, when it is gone (`Context.page_workspace`).
        notice = gr.Markdown(visible=False, elem_classes="workspace-notice")
        with gr.Tabs():
            tabs = [build_concept_tab(context, workspace_state),
                    build_pairs_tab(context, workspace_state),
                    build_curate_tab(context, workspace_state),
                    build_finetune_tab(context, workspace_state, finetune_form),
                    build_compare_tab(context, workspace_state),
                    build_library_tab(context, workspace_state),
                    build_live_tab(context, workspace_state)]
            build_try_tab(trier)
        build_agent_endpoints(context)

        def start(workspace_id, request: gr.Request):
            # A reload, a bookmark or a restarted studio: the address names the workspace.
            wanted = workspace_id or (request.query_params.get("workspace") if request else None)
            workspace, told = context.page_workspace(wanted, visitor_of(request))
            return (workspace.id, status_text(context.base_dir, workspace.id), workspace.id,
                    gr.update(value=told, visible=bool(told)))

        def refresh(workspace_id):
            return status_text(context.base_dir, workspace_id)

        # gr.State stays on the server; the page's script needs the id in a component.
        address_id = gr.Textbox(visible=False)
        demo.load(start, workspace_state, [workspace_state, status, address_id, notice],
                  api_visibility="private").then(None, address_id, None, js=KEEP_WORKSPACE_IN_ADDRESS)
        gr.Button("refresh status", size="sm").click(refresh, workspace_state, status,
                                                      api_name="status")
        # The status line follows the machine's jobs on its own (a job started by another tab,
        # or one left running by a reload, shows up without a click).
        gr.Timer(STATUS_SECONDS).tick(refresh, workspace_state, status, api_visibility="private",
                                      show_progress="hidden")
        # ... and says at once when a job shown on this page ends, not at the next tick.
        for event in (event for tab in tabs for event in tab.get("job_events", [])):
            event.then(refresh, workspace_state, status, api_visibility="private",
                       show_progress="hidden")
    demo.queue(default_concurrency_limit=4, max_size=MAX_STUDIO_QUEUE.value())
    hide_page_endpoints_from_mcp(demo)
    return demo


def mcp_available() -> bool:
    """Gradio's MCP extra (`pip install "gradio[mcp]"`, part of the studio's install)."""
    return importlib.util.find_spec("mcp") is not None


def launch_options() -> dict:
    """Gradio 6 takes the theme and css at launch, and the upload limit: its server stops a
    larger file while it streams in. With the MCP extra, assistants reach the studio at
    /gradio_api/mcp/ (tools: make_concept, apply_concept, export_concept). The Library's web
    pages are served at /e2gan-web/<page id>/ by a route of the app itself (`app.web_pages`)."""
    return {"mcp_server": mcp_available(), "theme": gr.themes.Soft(primary_hue="indigo"), "css": CSS,
            "max_file_size": MAX_UPLOAD_BYTES.value(),
            "favicon_path": str(LOGO), "app_kwargs": {"routes": web_pages.routes()}}
