"""Tab 5: one image through the teacher, the base and the adapters; a before/after slider."""

from __future__ import annotations

import gradio as gr

from app import compare as comparing
from app.concepts import example_images
from app.settings import SETTINGS
from app.tabs.finetune import METRIC_HEADERS, metrics_rows
from app.ui import HEAVY, Context, user_errors


def build_compare_tab(context: Context, workspace_state: gr.State) -> dict:
    examples = example_images(4)
    with gr.Tab("5 · Compare", id="compare") as tab:
        gr.Markdown("Any image through the teacher, the base model and the new adapter (and "
                    "another adapter of this workspace). The strength slider re-renders live.")
        with gr.Row():
            image = gr.Image(type="pil", label="image", value=examples[0], height=300)
            slider = gr.ImageSlider(label="before / after (drag)", type="pil", height=300)
        with gr.Row():
            scale = gr.Slider(0.0, 1.5, value=1.0, step=0.05, label="adapter strength")
            other = gr.Dropdown([], value=None, label="also compare with adapter",
                                allow_custom_value=True)
            run_button = gr.Button("Compare", variant="primary")
        gr.Examples([[e] for e in examples], inputs=[image])
        gallery = gr.Gallery(label="side by side", columns=4, height=300, buttons=["fullscreen"])
        latency = gr.Markdown()
        metrics = gr.Dataframe(headers=METRIC_HEADERS, label="this concept against the teacher "
                               "(held-out pairs)", interactive=False)
        # An API-only endpoint: a hidden button carries it (scripts call /apply_adapter).
        concept_name = gr.Textbox(visible=False)
        output = gr.Image(type="pil", visible=False)
        timing = gr.Textbox(visible=False)
        hidden = gr.Button(visible=False)

    @user_errors
    def run(workspace_id, picture, strength, other_name):
        workspace = context.workspace(workspace_id)
        result = comparing.compare(workspace, picture, float(strength), other_name or None,
                                   base_dir=context.base_dir)
        edited = result["images"][result["adapter_label"]]
        lines = [f"- **{label}**: {seconds * 1000:.0f} ms" for label, seconds in result["latency"].items()]
        text = (f"Latency on {SETTINGS.device_label}, one image at {edited.width}x{edited.height}:\n"
                + "\n".join(lines + [f"- {note}" for note in result["notes"]]))
        training = workspace.current().training() or {}
        before = picture.convert("RGB").resize(edited.size)
        return (workspace.id, (before, edited), list(map(tuple, zip(result["images"].values(),
                                                                      result["images"].keys()))),
                text, metrics_rows(training.get("metrics", [])))

    @user_errors
    def apply(workspace_id, picture, concept, strength):
        """Public: one image through base + a workspace adapter at a strength."""
        workspace = context.workspace(workspace_id)
        files = comparing.adapter_files(workspace)
        concept = concept or workspace.current_name()
        if concept not in files:
            raise gr.Error(f"no adapter {concept!r} in this workspace")
        edited, seconds = comparing.apply_adapter(files[concept], picture, float(strength),
                                                  base_dir=context.base_dir)
        return workspace.id, edited, f"{seconds * 1000:.0f} ms"

    def live(workspace_id, picture, strength):
        """Re-render the adapter only, as the strength slider moves (private, UI only)."""
        if not workspace_id or picture is None:
            return gr.skip()
        workspace = context.workspace(workspace_id)
        try:
            folder = workspace.current()
            if not folder.has_adapter():
                return gr.skip()
            size = None if picture.width <= 512 else 256
            edited, _ = comparing.apply_adapter(folder.adapter_file, picture, float(strength),
                                                size=size or SETTINGS.train_size,
                                                base_dir=context.base_dir)
        except Exception:
            return gr.skip()
        return (picture.convert("RGB").resize(edited.size), edited)

    def on_open(workspace_id):
        if not workspace_id:
            return gr.skip()
        names = list(comparing.adapter_files(context.workspace(workspace_id)))
        return gr.update(choices=names)

    heavy = dict(concurrency_limit=SETTINGS.heavy_concurrency, concurrency_id=HEAVY)
    run_button.click(run, [workspace_state, image, scale, other],
                     [workspace_state, slider, gallery, latency, metrics], api_name="compare", **heavy)
    scale.release(live, [workspace_state, image, scale], slider, api_visibility="private",
                  trigger_mode="always_last", **heavy)
    hidden.click(apply, [workspace_state, image, concept_name, scale], [workspace_state, output, timing],
                 api_name="apply_adapter", **heavy)
    # Entering the tab shows what the earlier steps left there.
    tab.select(on_open, [workspace_state], [other], api_visibility="private")
    return {}
