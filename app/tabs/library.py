"""Tab 6: every concept of this workspace; blend two; export a download; push to the Hub."""

from __future__ import annotations

import gradio as gr

from app import library
from app.settings import SETTINGS
from app.ui import HEAVY, Context, user_errors

COLUMNS = ["concept", "prompt", "pairs", "adapter KB", "PSNR dB", "MAE", "train s", "made"]


def table(workspace) -> list[list]:
    return [[row[column] for column in COLUMNS] for row in library.library_rows(workspace)]


def build_library_tab(context: Context, workspace_state: gr.State) -> dict:
    with gr.Tab("6 · Library & export", id="library") as tab:
        rows = gr.Dataframe(headers=COLUMNS, label="concepts in this workspace", interactive=False)
        refresh = gr.Button("Refresh")
        with gr.Row():
            concept = gr.Dropdown([], label="concept", allow_custom_value=True)
            kind = gr.Radio(list(library.EXPORT_FORMATS), value="adapter", label="export as")
            export_button = gr.Button("Export", variant="primary")
        download = gr.File(label="download", interactive=False)
        with gr.Accordion("blend two concepts", open=False):
            with gr.Row():
                first = gr.Dropdown([], label="first", allow_custom_value=True)
                second = gr.Dropdown([], label="second", allow_custom_value=True)
                weight = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="weight of the first")
                blend_button = gr.Button("Blend")
        with gr.Accordion("push to the Hugging Face Hub", open=False):
            gr.Markdown("Only with your token; nothing is uploaded otherwise.")
            with gr.Row():
                repo = gr.Textbox(label="repository (user/name)")
                token = gr.Textbox(label="token", type="password")
                push_button = gr.Button("Push adapter")
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
    def run_export(workspace_id, name, format_name):
        workspace = context.workspace(workspace_id)
        path = library.export(workspace, name or workspace.current_name() or "", format_name,
                              context.base_dir)
        return workspace.id, str(path), f"exported `{path.name}` ({path.stat().st_size / 1024:.0f} KB)"

    @user_errors
    def run_blend(workspace_id, a, b, w):
        workspace = context.workspace(workspace_id)
        folder = library.blend(workspace, a, b, float(w))
        return workspace.id, table(workspace), f"blended into concept `{folder.name}`"

    @user_errors
    def run_push(workspace_id, name, repo_id, token_value):
        workspace = context.workspace(workspace_id)
        return f"pushed: {library.push_to_hub(workspace, name, repo_id, token_value)}"

    refresh.click(show, workspace_state, [workspace_state, rows, concept, first, second],
                  api_name="library")
    export_button.click(run_export, [workspace_state, concept, kind], [workspace_state, download, message],
                        api_name="export", concurrency_limit=SETTINGS.heavy_concurrency,
                        concurrency_id=HEAVY)
    blend_button.click(run_blend, [workspace_state, first, second, weight],
                       [workspace_state, rows, message], api_name="blend")
    push_button.click(run_push, [workspace_state, concept, repo, token], message,
                      api_visibility="undocumented")
    # Entering the tab shows what the earlier steps left there.
    tab.select(show, [workspace_state], [workspace_state, rows, concept, first, second], api_visibility="private")
    return {}
