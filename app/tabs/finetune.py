"""Tab 4: LoRA fine-tuning with live loss curves, refreshed sample outputs, an ETA and Stop."""

from __future__ import annotations

import time

import gradio as gr
import plotly.graph_objects as go

from e2gan.errors import E2GANError

from app.concept_metrics import metrics_caption
from app.events import Evaluating, Heartbeat, JobDone, Reattached, SamplesDrawn, TrainingProgress
from app.jobs import BOARD
from app.settings import SETTINGS
from app.training import FINETUNE_JOB, FinetuneRequest, stream_finetune, training_ids
from app.ui import Context, HEAVY, progress_line, seconds_text, stop_job, user_errors

LOSS_NAMES = {"g_l1": "generator L1 (x100 weight)", "g_adv": "generator adversarial",
              "d_real": "discriminator real", "d_fake": "discriminator fake"}


def loss_figure(history: list[dict]) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), template="plotly_white",
                         title="losses", xaxis_title="step")
    keys = sorted({key for row in history for key in row} - {"step", "seconds"})
    for key in keys:
        rows = [row for row in history if key in row]
        figure.add_trace(go.Scatter(x=[row["step"] for row in rows], y=[row[key] for row in rows],
                                    mode="lines+markers", name=LOSS_NAMES.get(key, key)))
    return figure


def _number(value, digits: int):
    return "–" if value is None else round(float(value), digits)


def metrics_rows(metrics: list[dict]) -> list[list]:
    """Table rows; FID / KID show "–" where they were not computed (yet)."""
    rows = []
    for row in metrics:
        kid = (f"{row['kid'] * 1000:.2f} ± {row['kid_std'] * 1000:.2f}" if "kid" in row else "–")
        rows.append([row["model"], row["psnr"], row["ssim"], row["mae"],
                     _number(row.get("fid"), 1), kid, row["pairs"]])
    return rows


REDRAW_SECONDS = 0.5  # the loss plot is redrawn at most this often
FORM_FIELDS = ("minutes", "epochs", "size", "learning_rate", "rank")  # kept across a reload

METRIC_HEADERS = ["model", "PSNR dB ↑", "SSIM ↑", "MAE ↓", "FID ↓", "KID ×10³ ↓", "held-out pairs"]


def build_finetune_tab(context: Context, workspace_state: gr.State,
                       saved: gr.BrowserState) -> dict:
    with gr.Tab("4 · Fine-tune", id="finetune"):
        gr.Markdown(f"LoRA adapters on the base's crucial layers with the searched ranks. Defaults "
                    f"for this machine ({SETTINGS.device_label}): {SETTINGS.train_minutes:g} min at "
                    f"{SETTINGS.train_size} px. Stop keeps the last good adapter.")
        with gr.Row():
            minutes = gr.Number(value=SETTINGS.train_minutes, label="minutes of training",
                                elem_id="train-minutes")
            start = gr.Button("Start fine-tuning", variant="primary")
            stop = gr.Button("Stop", variant="stop")
        with gr.Accordion("advanced", open=False):
            with gr.Row():
                # No `precision`: Gradio would round a raw API's NaN before the handler could
                # refuse it by name (FinetuneRequest.from_form checks whole numbers).
                epochs = gr.Number(value=0, label="epochs (0: the time budget decides)")
                size = gr.Slider(32, 512, value=SETTINGS.train_size, step=32, label="resolution",
                                 elem_id="train-size")
                learning_rate = gr.Number(value=SETTINGS.learning_rate, label="learning rate")
                # Text values, as view_api documents a dropdown's (a string enum); a script that
                # sends the number still passes (custom values): FinetuneRequest.from_form makes
                # either a whole number and refuses anything else by name.
                rank = gr.Dropdown([("searched (base's ranks.json)", "0"), ("2", "2"), ("4", "4"),
                                    ("8", "8"), ("16", "16")], value="0", label="LoRA ranks",
                                   allow_custom_value=True)
                continue_previous = gr.Checkbox(False, label="continue the previous run")
        progress = gr.Markdown()
        with gr.Row():
            losses = gr.Plot(label="loss curves")
            samples = gr.Image(label="held-out samples: source | teacher | adapter", type="filepath",
                               interactive=False, buttons=["download", "fullscreen"], height=320)
        metrics = gr.Dataframe(headers=METRIC_HEADERS, label="against the teacher on held-out pairs",
                               interactive=False)

    def show(workspace, events, described):
        """The progress line, loss curves, samples and (at the end) metrics of a fine-tune's
        events. Step events are drawn at most every `REDRAW_SECONDS`: a watcher that attaches
        late replays the run's whole log at once."""
        history, sample_path, text, drawn, pending = [], None, "", 0.0, False
        for event in events:
            match event:
                case Reattached():
                    # a reload or a second Start while a fine-tune runs: follow it, not restart
                    gr.Info("a fine-tune is running in this workspace: its progress is shown on "
                            "4 · Fine-tune (settings sent with it now are not applied)")
                    continue
                case JobDone(result=result):
                    break
                case Heartbeat():
                    pass
                case SamplesDrawn(path=path, history=logged):
                    sample_path, history, pending = path, logged, True
                case Evaluating():
                    text, pending = ("measuring the adapter against the teacher on held-out pairs "
                                     "(PSNR / SSIM / MAE, and FID / KID through Inception)…"), True
                case TrainingProgress(step=step, seconds=seconds, budget=budget, losses=losses):
                    text = progress_line(seconds / budget, f"step {step} on {described} · about "
                                         f"{seconds_text(event.eta_seconds)} left")
                    if losses:
                        history = history + [{"step": step, **losses}]
                    pending = True
            if pending and (time.monotonic() - drawn >= REDRAW_SECONDS
                            or isinstance(event, (SamplesDrawn, Evaluating))):
                drawn, pending = time.monotonic(), False
                yield workspace.id, text, loss_figure(history), sample_path, gr.skip()
        else:
            return  # no JobDone: nothing was running to follow
        verdict = "stopped" if result["stopped"] else "finished"
        text = (f"**{verdict}** after {result['steps']} steps, "
                f"{seconds_text(result['train_seconds'])} of training on {described}; "
                f"adapter {result['adapter_bytes'] / 1024:.0f} KB. Next: **5 · Compare**."
                f"\n\n{metrics_caption(result['metrics'])}")
        if result.get("archived_previous_as"):
            text += (f"\n\nThe adapter this run replaced is kept as version "
                     f"`{result['archived_previous_as']}` (Library → versions).")
        if result.get("better_version"):
            better = result["better_version"]
            text += (f"\n\n**Version `{better['version']}` scores higher** on the held-out "
                     f"pairs ({better['psnr']:.2f} dB PSNR): restore it in the Library.")
        yield (workspace.id, text, loss_figure(result["history"]), sample_path,
               metrics_rows(result["metrics"]))

    @user_errors
    def run(workspace_id, minutes_value, epochs_value, size_value, lr_value, rank_value, resume):
        request = FinetuneRequest.from_form(minutes_value, epochs_value, size_value, lr_value,
                                            rank_value, resume)
        workspace = context.workspace(workspace_id)
        _, described = training_ids(workspace.current())
        yield from show(workspace, stream_finetune(workspace, request, context.base_dir), described)

    def follow(workspace_id):
        """A page that opens on a workspace whose fine-tune is running (a reload, a second tab)
        shows its progress here, from the start of the run."""
        if not workspace_id or BOARD.get(workspace_id) is None:
            return
        workspace = context.workspace(workspace_id)
        try:
            _, described = training_ids(workspace.current())
        except E2GANError:  # the pairs changed under the run: the numbers still tell
            described = "its pairs"
        for outputs in show(workspace, BOARD.follow(workspace.id, FINETUNE_JOB), described):
            yield outputs[1:]  # not the workspace: setting it would fire this event again

    job = start.click(run, [workspace_state, minutes, epochs, size, learning_rate, rank,
                            continue_previous],
                      [workspace_state, progress, losses, samples, metrics], api_name="finetune",
                      concurrency_limit=SETTINGS.heavy_concurrency, concurrency_id=HEAVY)

    stop.click(stop_job, workspace_state, progress, cancels=[job], api_visibility="private")

    # The form survives a reload: its values live in the browser's storage (`saved`), written as
    # they change and read back when the page (re)opens its workspace.
    form = [minutes, epochs, size, learning_rate, rank]

    def remember(*values):
        return dict(zip(FORM_FIELDS, values))

    def restore(stored):
        stored = stored if isinstance(stored, dict) else {}
        return [stored[name] if name in stored else gr.skip() for name in FORM_FIELDS]

    for field in form:
        field.change(remember, form, saved, api_visibility="private", show_progress="hidden",
                     queue=False)
    workspace_state.change(restore, saved, form, api_visibility="private", show_progress="hidden",
                           queue=False)
    # The page's load sets the workspace (None -> its id): pick up a fine-tune already running.
    # Watching costs no compute, so it takes no slot of the heavy queue.
    following = workspace_state.change(follow, workspace_state, [progress, losses, samples, metrics],
                                       api_visibility="private", concurrency_limit=None,
                                       show_progress="hidden")
    return {"job_events": [job, following]}
