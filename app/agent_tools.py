"""Endpoints for assistants and scripts that hold no page session: each names its workspace.

The page's endpoints (/concept, /finetune, /apply_adapter, ...) keep the workspace in the page's
session (a `gr.State`). An MCP client cannot carry that state between tool calls, so every call
would open a new, empty workspace. These three take the workspace id as an argument instead:
`make_concept` returns it, `apply_concept` and `export_concept` take it. With Gradio's MCP extra
installed the studio serves them as MCP tools (`launch_options`), described by the docstrings
below; the page's endpoints, which cannot work there, are kept out (`hide_page_endpoints_from_mcp`).
"""

from __future__ import annotations

import json
import shutil
import warnings
from typing import Any

import gradio as gr

from e2gan.data.generate import PairsProgress
from e2gan.errors import E2GANError

from app import compare as comparing
from app import concepts, curation, pairs
from app.events import JobDone, TrainingProgress
from app.form import finite_number, whole_number
from app.library import export, export_formats, one_file
from app.settings import SETTINGS
from app.training import FinetuneRequest, stream_finetune
from app.ui import HEAVY, Context, photo_input, picture, user_errors
from app.workspace import Workspace


def _workspace(context: Context, workspace_id: str) -> Workspace:
    """An existing workspace: a mistyped id is an error here, never a silent new workspace."""
    if not (workspace_id or "").strip():
        raise E2GANError("name the workspace: make_concept returns its id")
    return Workspace.open(workspace_id.strip(), context.workspace_root)


def _concept_name(workspace: Workspace, concept: str) -> str:
    return (concept or "").strip() or workspace.current_name()


def build_agent_endpoints(context: Context) -> None:
    """The three endpoints, on hidden components (they only type and convert the values)."""
    with gr.Group(visible=False):
        # One output each: Gradio's MCP server renders a tool's several outputs as one Python repr.
        # Their values are the defaults an assistant sees in each tool's schema.
        concept_text = gr.Textbox("winter", label="concept")
        pair_count = gr.Number(SETTINGS.num_pairs, label="pairs to make")
        curated_count = gr.Number(SETTINGS.subset_size, label="pairs to keep")
        minutes = gr.Number(SETTINGS.train_minutes, label="minutes")
        size = gr.Number(SETTINGS.train_size, label="size")
        teacher = gr.Textbox("builtin", label="teacher")
        workspace_id = gr.Textbox(label="workspace")
        summary = gr.Textbox(label="summary (JSON)")
        image = photo_input(label="image")
        strength = gr.Number(1.0, label="strength")
        concept_name = gr.Textbox("", label="concept name")
        edited = gr.Image(type="pil", label="edited")
        export_format = gr.Dropdown(list(export_formats()), value="onnx", label="format")
        download = gr.File(label="file")
        make_button, apply_button, export_button = (gr.Button(visible=False) for _ in range(3))

    @user_errors
    def make_concept(concept: str, pairs_to_make: float, pairs_to_keep: float, minutes: float,
                     size: float, teacher: str, progress=gr.Progress()) -> str:
        """Teach the studio a new image-editing concept, end to end, in a new workspace: the
        teacher edits built-in photos into the concept, representative pairs are chosen by
        clustering, and a small LoRA adapter is trained on them (a few minutes on a CPU).

        Args:
            concept: the edit to learn. The built-in teacher knows named concepts such as "winter", "watercolor", "old_photo", "pencil_sketch"; a diffusion teacher takes any text.
            pairs_to_make: how many photos the teacher edits (e.g. 150).
            pairs_to_keep: how many representative pairs train the adapter (e.g. 100).
            minutes: the training budget in minutes (e.g. 5).
            size: the training resolution in pixels, a multiple of 32 (128 suits a CPU, 256 a GPU).
            teacher: "builtin" (always available), or a diffusion teacher whose weights are on the machine, e.g. "instruct-pix2pix".
        Returns:
            JSON: "workspace" (the id to pass to apply_concept and export_concept), the concept, its prompt, the pairs, the training steps and time, the adapter's size and its held-out scores against the teacher (PSNR, SSIM, MAE).
        """
        wanted = whole_number(pairs_to_make, "pairs to make")
        kept = whole_number(pairs_to_keep, "pairs to keep")
        if kept < 1:
            raise E2GANError(f"pairs to keep must be at least 1, got {kept}")
        request = FinetuneRequest.from_form(minutes, 0, size, SETTINGS.learning_rate, 0, False)
        workspace = context.workspace(None)  # a new one (and idle ones pruned)
        try:
            spec = concepts.set_concept(workspace, concept, (teacher or "builtin").strip(), "builtin")
        except E2GANError:
            shutil.rmtree(workspace.root)  # nothing made: leave no empty workspace behind
            raise
        made = None
        for event in pairs.stream_generation(workspace, wanted):
            match event:
                case JobDone(result=made):
                    pass
                case PairsProgress(done=done, total=total):
                    progress((done, total), desc="the teacher edits photos")
        progress(None, desc="choosing representative pairs")
        selection = curation.run_selection(workspace.current(), kept)
        trained = None
        for event in stream_finetune(workspace, request, context.base_dir):
            match event:
                case JobDone(result=trained):
                    pass
                case TrainingProgress(seconds=seconds, budget=budget):
                    progress(min(seconds / budget, 1.0), desc="training the adapter")
        return json.dumps({
            "workspace": workspace.id, "concept": spec.name, "prompt": spec.prompt,
            "teacher": spec.teacher, "pairs_made": made["pairs"], "pairs_kept": selection["k"],
            "steps": trained["steps"], "train_seconds": trained["train_seconds"],
            "adapter_kb": round(trained["adapter_bytes"] / 1024, 1),
            "held_out": [{key: row[key] for key in ("model", "psnr", "ssim", "mae", "pairs")}
                         for row in trained["metrics"]]}, indent=1)

    @user_errors
    def apply_concept(workspace: str, image: str, strength: float, concept: str) -> Any:
        """Edit one photo with a concept made by make_concept (the tiny GAN, not the teacher).

        Args:
            workspace: the workspace id that make_concept returned.
            image: the photo to edit (a URL or an uploaded file). Its long side is capped for speed.
            strength: how strongly the concept applies, 0 to 2 (1 is as trained).
            concept: the concept's name in that workspace; empty for the one made last.
        Returns:
            the edited photo, at the photo's own size (up to the cap).
        """
        opened = _workspace(context, workspace)
        adapters, name = comparing.adapter_files(opened), _concept_name(opened, concept)
        if name not in adapters:
            raise E2GANError(f"no adapter {name!r} in workspace {opened.id}: make_concept first")
        photo = picture(image)
        edited, _ = comparing.apply_adapter(adapters[name], photo,
                                            finite_number(strength, "strength"),
                                            comparing.shown_size(photo), base_dir=context.base_dir)
        return edited

    @user_errors
    def export_concept(workspace: str, format: str, concept: str) -> str:
        """Export a concept made by make_concept, to download or to run on a phone.

        Args:
            workspace: the workspace id that make_concept returned.
            format: "adapter" (the LoRA weights, about 0.3 MB), "merged model", "onnx", "onnx fp16", "onnx int8", "torchscript", "executorch" or "executorch int8" (a .pte for PyTorch's mobile runtime), "web page" (a static page that edits photos or the camera in a browser, zipped; the studio also serves it at /e2gan-web/<id>/) or "dataset" (the training pairs).
            concept: the concept's name in that workspace; empty for the one made last.
        Returns:
            the file to download; a zip where the export has several files (an on-device file comes with its sidecar JSON: inputs, the check against torch, latency).
        """
        opened = _workspace(context, workspace)
        name = _concept_name(opened, concept)
        result = export(opened, name, format, base_dir=context.base_dir)
        target = opened.concept(name).exports_dir / f"{name}-{format.replace(' ', '-')}.zip"
        return str(one_file(result["files"], target))

    heavy = {"concurrency_limit": SETTINGS.heavy_concurrency, "concurrency_id": HEAVY}
    make_button.click(make_concept, [concept_text, pair_count, curated_count, minutes, size,
                                     teacher], summary, api_name="make_concept", **heavy)
    apply_button.click(apply_concept, [workspace_id, image, strength, concept_name],
                       edited, api_name="apply_concept", **heavy)
    export_button.click(export_concept, [workspace_id, export_format, concept_name],
                        download, api_name="export_concept", **heavy)


MCP_TOOLS = ("make_concept", "apply_concept", "export_concept")  # the documented tools, exactly


def hide_page_endpoints_from_mcp(demo: gr.Blocks) -> None:
    """List exactly `MCP_TOOLS` as MCP tools. The page's endpoints stay out: Gradio feeds a
    tool's `gr.State` inputs their initial value on every call (it warns so), so one that reads
    the page's workspace would start an empty workspace each time, and the others (Try the
    base's /edit) are the page's, documented for gradio_client. Gradio lists as tools only the
    functions whose `_mcp_type` is unset or "tool" (`gradio.mcp`), and has no public switch for
    this; every endpoint stays public for gradio_client."""
    for block_fn in demo.fns.values():
        if block_fn.fn is not None and block_fn.api_name not in MCP_TOOLS:
            block_fn.fn._mcp_type = "page"
    # Gradio still warns at launch about the State inputs of the endpoints hidden just above.
    warnings.filterwarnings("ignore", message="This MCP server includes a tool that has a gr.State input")
