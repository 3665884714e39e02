"""The Live tab: the visitor's webcam through a concept, side by side or before/after, with the
frames per second and each edit's latency (the work is `app.live`'s).

Gradio's own streaming image input carries the frames (the page sends a JPEG of the camera's
current picture each time the last one has come back, at most every `STREAM_EVERY` seconds); one
stream holds one of `LIVE_STREAMS` slots for at most `LIVE_SECONDS`, then the visitor presses
record again.
"""

from __future__ import annotations

import gradio as gr

from e2gan.errors import E2GANError

from app import live
from app.form import finite_number
from app.settings import SETTINGS
from app.ui import Context, page_error, plain_message

STREAM_EVERY = 0.05  # seconds between frames at most; the edit's own time sets the real rate
LIVE_SECONDS = 300  # one stream's length; pressing record again starts another
LIVE_STREAMS = 2  # streams served at once (each frame waits for the pipeline's lock anyway)


def build_live_tab(context: Context, workspace_state: gr.State) -> dict:
    with gr.Tab("Live", id="live") as tab:
        gr.Markdown("Your webcam through a concept of this workspace, one of the base model's "
                    "own concepts, or an adapter on the Hub (type its id, `user/name`). Press "
                    "record under the camera; frames are edited at the short side below, lowered "
                    "by itself when frames take too long.")
        with gr.Row():
            camera = gr.Image(sources=["webcam"], streaming=True, type="pil", label="camera",
                              elem_id="live-camera", height=320)
            shown = gr.Image(type="pil", label="source | edited", interactive=False,
                             format="jpeg", elem_id="live-output", height=320)
        info = gr.Markdown("Press record under the camera to start.", elem_id="live-info")
        with gr.Row():
            choice = gr.Dropdown([], value=None, label="concept", allow_custom_value=True,
                                 info="one of this workspace, the base model's, or a Hub id "
                                      "(user/name); empty: the current concept",
                                 elem_id="live-choice")
            strength = gr.Slider(0.0, 1.5, value=1.0, step=0.05, label="adapter strength",
                                 info="no effect on the base model's own concepts")
        with gr.Row():
            size = gr.Slider(live.MIN_LIVE_SIZE, 512, value=live.DEFAULT_SIZE, step=16,
                             label="short side (px)", elem_id="live-size")
            adaptive = gr.Checkbox(value=True, label="lower the size when frames take too long")
            layout = gr.Radio(list(live.LAYOUTS), value=live.LAYOUTS[0], label="show",
                              elem_id="live-layout")
            split = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="before / after line")
        state = gr.State(None)

    def frame(workspace_id, picture, chosen, strength_value, size_value, layout_value,
              split_value, adaptive_value, live_state):
        """One frame. An error does not end the stream (the camera keeps sending): it is told
        once as a warning and stays in the line under the pictures until a frame edits again,
        e.g. once a concept with an adapter is picked."""
        workspace = None
        try:
            workspace = context.workspace(workspace_id)
            image, text, live_state = live.live_frame(
                workspace, picture, chosen, finite_number(strength_value, "strength"),
                size_value, layout_value, finite_number(split_value, "before / after line"),
                live_state, context.base_dir, SETTINGS.device_label, adaptive=bool(adaptive_value))
        except E2GANError as error:
            message = plain_message(str(error))
            live_state = live_state or live.LiveState()
            if message != live_state.error:
                page_error(str(error))  # logged once, whole
                gr.Warning(message)
            live_state.error = message
            return (workspace.id if workspace else gr.skip(), gr.skip(),
                    f"**Not editing:** {message}", live_state)
        live_state.error = ""
        return workspace.id, image, text, live_state

    def prepare(workspace_id, chosen):
        """Load (or download) the chosen model before any frame needs it; a bad choice is told
        here, in the status line, before the stream starts."""
        if not workspace_id:
            return gr.skip()
        try:
            model = live.live_model(context.workspace(workspace_id), chosen, context.base_dir)
        except E2GANError as error:
            page_error(str(error))  # logged; shown in the line below instead of a toast
            return f"**Not ready:** {plain_message(str(error))}"
        return f"**{model.label}** ready: press record under the camera."

    def on_open(workspace_id):
        workspace = context.workspace(workspace_id) if workspace_id else None
        try:
            names = live.live_choices(workspace, context.base_dir)
        except E2GANError:
            names = []
        return gr.update(choices=names)

    camera.stream(frame, [workspace_state, camera, choice, strength, size, layout, split,
                          adaptive, state],
                  [workspace_state, shown, info, state], stream_every=STREAM_EVERY,
                  time_limit=LIVE_SECONDS, concurrency_limit=LIVE_STREAMS,
                  concurrency_id="live", show_progress="hidden", api_visibility="private")
    choice.change(prepare, [workspace_state, choice], info, api_visibility="private")
    layout.change(lambda value: gr.update(label="source | edited" if value == "side by side"
                                          else "before | after" if value == "before / after"
                                          else "edited"), layout, shown,
                  api_visibility="private")
    tab.select(on_open, workspace_state, choice, api_visibility="private")
    return {}
