"""Tab 5: one image through the teacher, the base and the adapters; a before/after slider; a
video through the adapter."""

from __future__ import annotations

import gradio as gr

from e2gan.errors import E2GANError
from e2gan.inference.video import VideoProgress

from app import compare as comparing
from app import video
from app.baseline import complete_pix2pix_fid
from app.concept_metrics import complete_distribution_metrics, metrics_caption
from app.concepts import example_images
from app.events import JobDone, Reattached
from app.form import finite_number, whole_number
from app.settings import SETTINGS
from app.tabs.finetune import METRIC_HEADERS, metrics_rows
from app.ui import (HEAVY, Context, photo_input, plain_message, progress_line, seconds_text,
                    stop_job, user_errors)
from app.ui import picture as read_picture  # `picture` is the handlers' name for the image


def build_compare_tab(context: Context, workspace_state: gr.State) -> dict:
    examples = example_images(4)
    with gr.Tab("5 · Compare", id="compare") as tab:
        gr.Markdown("Any image through the teacher, the base model and the new adapter (and its "
                    "pix2pix baseline when one was trained on the Library tab, or another adapter "
                    "of this workspace or from the Hub). The strength slider re-renders live.")
        with gr.Row():
            image = photo_input(label="image", value=examples[0], height=300)
            slider = gr.ImageSlider(label="before / after (drag)", type="pil", height=300)
        with gr.Row():
            scale = gr.Slider(0.0, 1.5, value=1.0, step=0.05, label="adapter strength")
            other = gr.Dropdown([], value=None, label="also compare with adapter",
                                info="one of this workspace, or type a Hub id (user/name)",
                                allow_custom_value=True)
            run_button = gr.Button("Compare", variant="primary")
        gr.Examples([[e] for e in examples], inputs=[image])
        gallery = gr.Gallery(label="side by side", columns=4, height=300, buttons=["fullscreen"])
        latency = gr.Markdown()
        metrics = gr.Dataframe(headers=METRIC_HEADERS, label="this concept against the teacher "
                               "(held-out pairs)", interactive=False)
        with gr.Row():
            caption = gr.Markdown(elem_id="metrics-caption")
            fid_button = gr.Button("compute FID/KID", size="sm", scale=0)
        with gr.Accordion("a video through the adapter", open=False):
            gr.Markdown("Every frame through this concept's adapter at the strength above, the "
                        "sound kept; it runs as a job of your workspace (Stop keeps what is done "
                        "as a playable file). The report says frames per second and flicker: how "
                        "much the edit changes from frame to frame against the source's change.")
            with gr.Row():
                video_in = gr.Video(label="video", sources=["upload"], height=240)
                video_out = gr.Video(label="edited", interactive=False, height=240)
            with gr.Row():
                video_size = gr.Number(value=256, label="short side (px)",
                                       info=f"capped so the long side stays within "
                                            f"{SETTINGS.max_edit_side} px")
                video_button = gr.Button("Edit the video", variant="primary")
                video_stop = gr.Button("Stop", variant="stop")
            video_report = gr.Markdown()
        # An API-only endpoint: a hidden button carries it (scripts call /apply_adapter).
        concept_name = gr.Textbox(visible=False)
        output = gr.Image(type="pil", visible=False)
        timing = gr.Textbox(visible=False)
        hidden = gr.Button(visible=False)

    @user_errors
    def run(workspace_id, path, strength, other_name):
        strength = finite_number(strength, "strength")
        picture = read_picture(path)
        workspace = context.workspace(workspace_id)
        result = comparing.compare(workspace, picture, strength, other_name or None,
                                   base_dir=context.base_dir)
        edited = result["images"][result["adapter_label"]]
        lines = [f"- **{label}**: {seconds * 1000:.0f} ms" for label, seconds in result["latency"].items()]
        text = (f"Latency on {SETTINGS.device_label}, one image at {edited.width}x{edited.height}:\n"
                + "\n".join(lines + [f"- {plain_message(note)}" for note in result["notes"]]))
        rows = comparing.metric_rows(workspace.current())
        before = picture.convert("RGB").resize(edited.size)
        return (workspace.id, (before, edited), list(map(tuple, zip(result["images"].values(),
                                                                      result["images"].keys()))),
                text, metrics_rows(rows), metrics_caption(rows))

    @user_errors
    def fill_fid(workspace_id):
        """FID/KID for every row made without them: about 0.3 s an image on a CPU core."""
        workspace = context.workspace(workspace_id)
        folder = workspace.current()
        complete_distribution_metrics(folder, context.base_dir)
        complete_pix2pix_fid(folder)
        rows = comparing.metric_rows(folder)
        return workspace.id, metrics_rows(rows), metrics_caption(rows)

    @user_errors
    def apply(workspace_id, path, concept, strength):
        """Public: one image through base + a workspace adapter at a strength."""
        strength = finite_number(strength, "strength")
        picture = read_picture(path)
        workspace = context.workspace(workspace_id)
        files = comparing.adapter_files(workspace)
        concept = concept or workspace.current_name()
        if concept not in files:
            raise E2GANError(f"no adapter {concept!r} in this workspace")
        edited, seconds = comparing.apply_adapter(files[concept], picture, strength,
                                                  comparing.shown_size(picture),
                                                  base_dir=context.base_dir)
        return workspace.id, edited, f"{seconds * 1000:.0f} ms"

    def live(workspace_id, path, strength):
        """Re-render the adapter only, as the strength slider moves (private, UI only)."""
        if not workspace_id or not path:
            return gr.skip()
        workspace = context.workspace(workspace_id)
        try:
            picture = read_picture(path)
            folder = workspace.current()
            if not folder.has_adapter():
                return gr.skip()
            edited, _ = comparing.apply_adapter(folder.adapter_file, picture, float(strength),
                                                size=comparing.shown_size(picture),
                                                base_dir=context.base_dir)
        except Exception:
            return gr.skip()
        return (picture.convert("RGB").resize(edited.size), edited)

    @user_errors
    def run_video(workspace_id, path, strength, size_value):
        strength = finite_number(strength, "strength")
        size = whole_number(size_value, "short side") if size_value else None
        workspace = context.workspace(workspace_id)
        for event in video.stream_video_edit(workspace, path, strength, size, context.base_dir):
            match event:
                case Reattached():
                    gr.Info("a video edit is running in this workspace: its progress is shown "
                            "here (the video sent now is not used)")
                case VideoProgress(frames_done=done, frames_total=total):
                    line = progress_line(done / total if total else 0.0,
                                         f"{done}/{total or '?'} frames · "
                                         f"{event.frames_per_second:.2f} fps · about "
                                         f"{seconds_text(event.eta_seconds)} left")
                    yield workspace.id, line, gr.skip()
                case JobDone(result=report):
                    ratio = report["flicker_ratio"]
                    text = (f"**{'stopped' if report['stopped'] else 'finished'}**: "
                            f"{report['frames']} frames at {report['width']}x{report['height']} "
                            f"in {seconds_text(report['seconds'])} "
                            f"({report['frames_per_second']:.2f} frames per second on "
                            f"{SETTINGS.device_label}); sound {'kept' if report['audio'] else 'none'}"
                            + (f"; flicker {ratio:.2f}x the source's" if ratio else "") + ".")
                    yield workspace.id, text, report["output"]

    def on_open(workspace_id):
        if not workspace_id:
            return gr.skip(), gr.skip(), gr.skip()
        workspace = context.workspace(workspace_id)
        names = list(comparing.adapter_files(workspace))
        try:
            rows = comparing.metric_rows(workspace.current())
        except E2GANError:  # no concept chosen yet
            rows = []
        return gr.update(choices=names), metrics_rows(rows), metrics_caption(rows)

    heavy = dict(concurrency_limit=SETTINGS.heavy_concurrency, concurrency_id=HEAVY)
    run_button.click(run, [workspace_state, image, scale, other],
                     [workspace_state, slider, gallery, latency, metrics, caption], api_name="compare",
                     **heavy)
    fid_button.click(fill_fid, workspace_state, [workspace_state, metrics, caption],
                     api_name="complete_fid", **heavy)
    scale.release(live, [workspace_state, image, scale], slider, api_visibility="private",
                  trigger_mode="always_last", **heavy)
    hidden.click(apply, [workspace_state, image, concept_name, scale], [workspace_state, output, timing],
                 api_name="apply_adapter", **heavy)
    video_job = video_button.click(run_video, [workspace_state, video_in, scale, video_size],
                                   [workspace_state, video_report, video_out],
                                   api_name="edit_video", **heavy)
    video_stop.click(stop_job, workspace_state, video_report, cancels=[video_job],
                     api_visibility="private")
    # Entering the tab shows what the earlier steps left there.
    tab.select(on_open, [workspace_state], [other, metrics, caption], api_visibility="private")
    return {}
