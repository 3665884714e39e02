"""Tab 6: every concept of this workspace; blend two; export a download; train the pix2pix
baseline; publish to the Hub."""

from __future__ import annotations

import gradio as gr

from e2gan.errors import E2GANError

from app import baseline, library, web_pages
from app import versions as versions_of
from app.events import Evaluating, JobDone, TrainingProgress
from app.form import finite_number, whole_number
from app.settings import SETTINGS
from app.ui import HEAVY, Context, progress_line, seconds_text, stop_job, user_errors

VERSION_COLUMNS = ["best", "version", "PSNR dB", "MAE", "FID", "steps", "train s", "finished"]
COLUMNS = ["concept", "prompt", "pairs", "adapter KB", "PSNR dB", "MAE", "FID", "train s", "fine-tune",
           "made"]


def table(workspace) -> list[list]:
    return [[row[column] for column in COLUMNS] for row in library.library_rows(workspace)]


def build_library_tab(context: Context, workspace_state: gr.State) -> dict:
    with gr.Tab("6 · Library & export", id="library") as tab:
        rows = gr.Dataframe(headers=COLUMNS, label="concepts in this workspace", interactive=False)
        refresh = gr.Button("Refresh")
        with gr.Row():
            concept = gr.Dropdown([], label="concept", allow_custom_value=True)
            kind = gr.Radio(list(library.export_formats()), value="adapter", label="export as",
                            info="onnx: a fixed-size file and a dynamic one (fp16 / int8: "
                                 "checked on held-out pairs against fp32 and the teacher); "
                                 "torchscript: any size. All are checked and timed. web page: "
                                 "edits in the visitor's browser, served here at a link.")
            size = gr.Number(value=0, label="on-device size (px)",
                             info="0: the size the adapter was trained at", elem_id="export-size")
            export_button = gr.Button("Export", variant="primary")
        note = library.export_formats_note()  # where ExecuTorch is missing: how to add it
        gr.Markdown(note, visible=bool(note), elem_id="export-formats-note")
        download = gr.File(label="download", interactive=False, file_count="multiple")
        with gr.Accordion("versions of this concept", open=False):
            gr.Markdown("Every fresh fine-tune keeps the adapter it replaces as a version; ★ marks "
                        "the best by held-out PSNR against the teacher. Restoring one keeps the "
                        "current adapter as a version too.")
            versions = gr.Dataframe(headers=VERSION_COLUMNS, interactive=False)
            with gr.Row():
                version = gr.Textbox(label="version to restore", placeholder="v1")
                versions_button = gr.Button("Show versions")
                restore_button = gr.Button("Restore this version")
        with gr.Accordion("blend two concepts", open=False):
            with gr.Row():
                first = gr.Dropdown([], label="first", allow_custom_value=True)
                second = gr.Dropdown([], label="second", allow_custom_value=True)
                weight = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="weight of the first")
                blend_button = gr.Button("Blend")
        with gr.Accordion("pix2pix baseline (the paper's comparison)", open=False):
            gr.Markdown("pix2pix's 9-block generator trained from scratch on the current "
                        "concept's pairs for the same kind of budget; Compare then shows it beside "
                        "the adapter, with its metrics. Training again continues where it stopped.")
            with gr.Row():
                baseline_minutes = gr.Number(value=SETTINGS.train_minutes, label="minutes of training",
                                             elem_id="pix2pix-minutes")
                baseline_button = gr.Button("Train pix2pix baseline")
                baseline_stop = gr.Button("Stop", variant="stop")
            baseline_progress = gr.Markdown()
        with gr.Accordion("Publish to the Hub", open=False):
            gr.Markdown("The adapter with a model card (held-out scores, a sample grid, how to load "
                        "it), and if you like its pairs as a dataset repo (*user/name*-pairs). "
                        + ("Sign in with your Hugging Face account: you publish as yourself."
                           if SETTINGS.on_space else "With the token below, else HF_TOKEN or the "
                           "one `hf auth login` saved; nothing is uploaded without one."))
            with gr.Row():
                if SETTINGS.on_space:  # OAuth: the visitor's own token reaches the handler
                    gr.LoginButton()
                repo = gr.Textbox(label="repository (user/name)", placeholder="you/winter")
                token = gr.Textbox(label="token (write access)", type="password",
                                   visible=not SETTINGS.on_space)
                private = gr.Checkbox(label="private")
                include_pairs = gr.Checkbox(label="also publish the pairs")
                publish_button = gr.Button("Publish")
        message = gr.Markdown()

    def names(workspace):
        return [folder.name for folder in workspace.concepts()]

    @user_errors
    def show(workspace_id):
        workspace = context.workspace(workspace_id)
        choices = names(workspace)
        current = workspace.current_name()
        picked = current if current in choices else (choices[0] if choices else None)
        return (workspace.id, table(workspace), gr.update(choices=choices, value=picked),
                gr.update(choices=choices), gr.update(choices=choices))

    @user_errors
    def run_export(workspace_id, name, format_name, size_value, request: gr.Request = None):
        size = whole_number(size_value or 0, "on-device size") or None
        workspace = context.workspace(workspace_id)
        result = library.export(workspace, name or workspace.current_name() or "", format_name,
                                context.base_dir, size=size)
        url = web_pages.public_url(request, result["page_id"]) if result.get("page_id") else None
        return (workspace.id, [str(path) for path in result["files"]],
                library.export_report(result, url))

    @user_errors
    def run_blend(workspace_id, a, b, w):
        weight = finite_number(w, "blend weight")
        workspace = context.workspace(workspace_id)
        folder = library.blend(workspace, a, b, weight)
        return workspace.id, table(workspace), f"blended into concept `{folder.name}`"

    def version_rows(folder):
        return [["★" if row["best"] else "", row["version"], row["psnr"], row["mae"],
                 None if row["fid"] is None else round(row["fid"], 1), row["steps"],
                 row["train_seconds"], row["finished"]] for row in versions_of.list_versions(folder)]

    def picked(workspace, name):
        folder = workspace.concept(name or workspace.current_name() or "")
        if not folder.spec_file.is_file():
            raise E2GANError(f"no concept {name!r} in this workspace")
        return folder

    @user_errors
    def show_versions(workspace_id, name):
        workspace = context.workspace(workspace_id)
        return workspace.id, version_rows(picked(workspace, name))

    @user_errors
    def restore_version(workspace_id, name, wanted):
        workspace = context.workspace(workspace_id)
        folder = picked(workspace, name)
        kept = versions_of.restore(folder, (wanted or "").strip())
        text = (f"version `{wanted.strip()}` of `{folder.name}` is current again"
                + (f"; the adapter it replaced is kept as `{kept}`" if kept else ""))
        return workspace.id, version_rows(folder), table(workspace), text

    @user_errors
    def run_publish(workspace_id, name, repo_id, private_value, pairs_value, token_value,
                    oauth_token: gr.OAuthToken | None = None):
        """Gradio hands `oauth_token` in (from the type) when the visitor signed in on a Space."""
        token = library.hub_token(token_value, oauth_token.token if oauth_token else None)
        workspace = context.workspace(workspace_id)
        return workspace.id, library.publish(workspace, name or workspace.current_name() or "",
                                             repo_id, token, bool(private_value),
                                             bool(pairs_value), context.base_dir)

    @user_errors
    def run_baseline(workspace_id, minutes_value):
        minutes = finite_number(minutes_value or 0, "training minutes")
        workspace = context.workspace(workspace_id)
        for event in baseline.stream_pix2pix(workspace, minutes):
            match event:
                case JobDone(result=row, stopped=stopped):
                    scores = (f"; held-out PSNR {row['psnr']:.2f} dB" if "psnr" in row else "") + (
                        f", FID {row['fid']:.1f}" if "fid" in row else "")
                    yield (workspace.id, f"**{'stopped' if stopped else 'finished'}**: pix2pix "
                           f"after {row['steps']} steps ({seconds_text(row['train_seconds'])} in "
                           f"all){scores}. See **5 · Compare**.")
                    return
                case Evaluating():
                    yield workspace.id, "measuring pix2pix against the teacher on held-out pairs…"
                case TrainingProgress(step=step, seconds=seconds, budget=budget):
                    yield workspace.id, progress_line(
                        seconds / budget, f"pix2pix step {step} · about "
                                          f"{seconds_text(budget - seconds)} left")

    refresh.click(show, workspace_state, [workspace_state, rows, concept, first, second],
                  api_name="library")
    export_button.click(run_export, [workspace_state, concept, kind, size],
                        [workspace_state, download, message],
                        api_name="export", concurrency_limit=SETTINGS.heavy_concurrency,
                        concurrency_id=HEAVY)
    blend_button.click(run_blend, [workspace_state, first, second, weight],
                       [workspace_state, rows, message], api_name="blend")
    baseline_job = baseline_button.click(
        run_baseline, [workspace_state, baseline_minutes], [workspace_state, baseline_progress],
        api_name="train_pix2pix", concurrency_limit=SETTINGS.heavy_concurrency, concurrency_id=HEAVY)
    baseline_stop.click(stop_job, workspace_state, baseline_progress, cancels=[baseline_job],
                        api_visibility="private")
    versions_button.click(show_versions, [workspace_state, concept], [workspace_state, versions],
                          api_name="versions")
    restore_button.click(restore_version, [workspace_state, concept, version],
                         [workspace_state, versions, rows, message], api_name="restore_version")
    publish_button.click(run_publish, [workspace_state, concept, repo, private, include_pairs, token],
                         [workspace_state, message], api_name="publish", api_visibility="undocumented")
    # Entering the tab shows what the earlier steps left there.
    tab.select(show, [workspace_state], [workspace_state, rows, concept, first, second], api_visibility="private")
    return {}
