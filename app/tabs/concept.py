"""Tabs 1 and 2: choose and preview a concept, then generate its pairs (streamed, stoppable)."""

from __future__ import annotations

import time

import gradio as gr

from e2gan.data.generate import PairsProgress
from e2gan.hub.download import DownloadProgress

from app import concepts, free_text, pairs
from app.events import JobDone, Reattached
from app.form import finite_number, whole_number
from app.jobs import BOARD
from app.settings import SETTINGS
from app.ui import (HEAVY, Context, plain_message, progress_line, seconds_text, stop_job,
                    user_errors)

REDRAW_SECONDS = 0.5  # the progress and gallery are redrawn at most this often
FIRST_CONCEPT = "winter"  # what the concept box holds when the page opens
SOURCE_KINDS = ["built-in photos", "upload"] + (["local path"] if SETTINGS.local_paths_allowed else [])


def teacher_note() -> str:
    lines = []
    for row in concepts.teacher_table():
        mark = "✅" if row["available"] else "⛔"
        lines.append(f"- {mark} `{row['name']}`" + ("" if row["available"] else f": {row['reason']}"))
    return "**Teachers on this machine**\n" + "\n".join(lines)


def build_concept_tab(context: Context, workspace_state: gr.State) -> dict:
    with gr.Tab("1 · Concept", id="concept"):
        gr.Markdown("Type a concept or pick a built-in one, choose the teacher and the source "
                    "photos, and preview the teacher's edit before making any pairs.")
        with gr.Row():
            with gr.Column(scale=2):
                concept_text = gr.Textbox(label="concept", value=FIRST_CONCEPT,
                                          info="built-in teacher: a named concept; diffusion "
                                               "teachers: any text")
                builtin = gr.Dropdown(concepts.builtin_concept_choices(context.base_dir), value=None,
                                      label="or pick a built-in concept",
                                      info="'new to the base': concepts the base never saw")
                teacher = gr.Dropdown(concepts.teacher_choices(), value="builtin", label="teacher")
                weights_text = gr.Markdown(visible=False)
                with gr.Row(visible=False) as weights_buttons:
                    download_button = gr.Button("Download weights")
                    cancel_button = gr.Button("Cancel download", variant="stop")
                # A teacher that takes any text gets both phrasings, prefilled from the concept
                # and editable; the built-in teacher's concepts have fixed ones (hidden then).
                first = free_text.default_phrasings(FIRST_CONCEPT)
                with gr.Group(visible=False) as phrasing_boxes:
                    description_box = gr.Textbox(label=free_text.PHRASING_LABELS["description"],
                                                 value=first["description"])
                    instruction_box = gr.Textbox(label=free_text.PHRASING_LABELS["instruction"],
                                                 value=first["instruction"])
                prefilled = gr.State(first)  # what the boxes were last filled with, not edited
                choices_text = gr.Markdown(visible=False)  # when nothing here can make the text
                source_kind = gr.Radio(SOURCE_KINDS, value="built-in photos", label="source images")
                upload = gr.File(label="images or one .zip", file_count="multiple", visible=False)
                local_path = gr.Textbox(label="folder or .zip path", visible=False)
            with gr.Column(scale=1):
                seed = gr.Number(value=0, label="seed")
                strength = gr.Slider(0.1, 1.0, value=0.75, step=0.05, label="strength",
                                     info="diffusion teachers only")
                guidance = gr.Slider(1.0, 15.0, value=7.5, step=0.5, label="guidance",
                                     info="diffusion teachers only")
                gr.Markdown(teacher_note())
        preview_button = gr.Button("Preview the teacher's edit", variant="primary")
        with gr.Accordion("or bring your own pairs", open=False):
            gr.Markdown("One .zip of (before, after) images: two folders matched by file name "
                        "(`source/` + `edited/`, `A/` + `B/`, `before/` + `after/`, `input/` + "
                        "`output/`), img2img-turbo's `train_A/` + `train_B/` + "
                        "`train_prompts.json`, or a Hugging Face imagefolder dataset "
                        "(`train/metadata.jsonl` with `input_image_file_name`, "
                        "`edited_image_file_name`, `edit_prompt`), or the id of such a dataset "
                        "on the Hugging Face Hub (downloaded once into the Hugging Face cache; "
                        "what `e2gan publish --pairs` pushes). The concept typed above names the "
                        "adapter and is its prompt. Unmatched or unreadable images are listed and "
                        "nothing is imported; then go on to **3 · Curate**.")
            with gr.Row():
                pairs_zip = gr.File(label="pairs (.zip)", file_types=[".zip"],
                                    file_count="multiple")
                dataset_id = gr.Textbox(label="or a Hugging Face dataset id",
                                        placeholder="org/name or org/name@revision")
            import_button = gr.Button("Import pairs")
        concept_info = gr.Markdown()
        preview_gallery = gr.Gallery(label="source | teacher's edit", columns=2, height=420,
                                     buttons=["fullscreen"])

    @user_errors
    def preview(workspace_id, text, teacher_name, kind, path, files, seed_value, strength_value,
                guidance_value, description="", instruction="", last=None):
        seed_value = whole_number(seed_value or 0, "seed")
        knobs = {"strength": finite_number(strength_value, "strength"),
                 "guidance_scale": finite_number(guidance_value, "guidance")}
        workspace = context.workspace(workspace_id)
        upload_spec = concepts.store_upload(workspace, files) if kind == "upload" else None
        source = concepts.resolve_source(kind, path or "", upload_spec, context.workspace_root)
        edited = free_text.edited_phrasings(
            {"description": description, "instruction": instruction}, last)
        spec = concepts.set_concept(workspace, text, teacher_name, source, knobs, seed_value,
                                    **edited)
        shown = concepts.preview(spec)
        gallery = [(pairs.side_by_side(a, b), f"{spec.name} · seed {spec.seed + i}")
                   for i, (a, b) in enumerate(shown)]
        told = concepts.teacher_prompt(spec)
        told = f" (told “{told}”)" if told != spec.prompt else ""
        info = (f"Concept **{spec.name}** — prompt “{spec.prompt}”, teacher `{spec.teacher}`"
                f"{told}, source `{plain_message(spec.source)}`. Next: **2 · Pairs**.")
        return workspace.id, info, gallery

    @user_errors
    def import_pairs(workspace_id, text, files, dataset_name=None):  # None: optional for a client
        """Import the pairs as a job of the workspace: a Hub dataset's download shows its progress
        here, and Stop (2 · Pairs) cancels it with a message saying so."""
        workspace = context.workspace(workspace_id)
        spec = None
        for event in concepts.stream_pairs_import(workspace, text, files, dataset_name):
            match event:
                case DownloadProgress():
                    yield (workspace.id, progress_line(event.fraction, event.describe()),
                           gr.skip())
                case JobDone(result=spec):
                    pass
        dataset = workspace.current().require_dataset()
        shown = [dataset.load_pair(record) for record in dataset.records[:4]]
        gallery = [(pairs.side_by_side(a, b), record.id)
                   for (a, b), record in zip(shown, dataset.records)]
        splits = {split: len(dataset.split(split)) for split in ("train", "test")}
        info = (f"Concept **{spec.name}** — prompt “{spec.prompt}”: **{len(dataset)} imported "
                f"pairs** ({splits['train']} to train, {splits['test']} held out). "
                f"{pairs.held_out_line(dataset)} Next: **3 · Curate**.")
        yield workspace.id, info, gallery

    def offer_weights(name):
        text, downloadable = concepts.weights_offer(name)
        return gr.update(value=text, visible=bool(text)), gr.update(visible=downloadable)

    @user_errors
    def download_weights(workspace_id, name):
        """Fetch the chosen teacher's weights (a job of the workspace: Cancel stops it)."""
        workspace = context.workspace(workspace_id)
        yield workspace.id, "starting the download…", gr.skip(), gr.skip()
        for event in concepts.stream_weights_download(workspace, name):
            match event:
                case JobDone():
                    missing, _ = concepts.weights_offer(name)  # "" once the weights are here
                    text = (f"Weights for `{name}` are ready: preview its edit." if not missing
                            else "The download stopped before the weights were complete; "
                                 "download again to fetch the rest.")
                    yield (workspace.id, text,
                           gr.update(choices=concepts.teacher_choices(), value=name),
                           gr.update(visible=bool(missing)))
                    return
                case DownloadProgress():
                    line = progress_line(event.fraction, event.describe())
                    yield workspace.id, line, gr.skip(), gr.skip()

    def follow_text(text, teacher_name, description, instruction, last):
        shown, fresh = free_text.follow_phrasings(
            text, {"description": description, "instruction": instruction}, last)
        message = concepts.concept_choices(text, teacher_name)
        return (shown["description"], shown["instruction"], fresh,
                gr.update(value=message, visible=bool(message)))

    def show_teacher(teacher_name, text):
        notes = free_text.phrasing_notes(teacher_name)
        message = concepts.concept_choices(text, teacher_name)
        return (gr.update(visible=notes is not None),
                gr.update(info=notes["description"]) if notes else gr.skip(),
                gr.update(info=notes["instruction"]) if notes else gr.skip(),
                gr.update(value=message, visible=bool(message)))

    phrasing_outputs = [phrasing_boxes, description_box, instruction_box, choices_text]
    teacher.change(offer_weights, teacher, [weights_text, weights_buttons], api_visibility="private")
    teacher.change(show_teacher, [teacher, concept_text], phrasing_outputs,
                   api_visibility="private", show_progress="hidden")
    concept_text.change(follow_text, [concept_text, teacher, description_box, instruction_box,
                                      prefilled],
                        [description_box, instruction_box, prefilled, choices_text],
                        api_visibility="private", show_progress="hidden")
    download_button.click(download_weights, [workspace_state, teacher],
                          [workspace_state, weights_text, teacher, weights_buttons],
                          api_name="download_weights"
                          ).then(show_teacher, [teacher, concept_text], phrasing_outputs,
                                 api_visibility="private", show_progress="hidden")
    # Stops the job, which ends the download within a chunk; its watcher then shows why.
    cancel_button.click(stop_job, workspace_state, weights_text, api_visibility="private")
    import_button.click(import_pairs, [workspace_state, concept_text, pairs_zip, dataset_id],
                        [workspace_state, concept_info, preview_gallery], api_name="import_pairs",
                        concurrency_limit=SETTINGS.heavy_concurrency, concurrency_id=HEAVY)
    preview_button.click(preview, [workspace_state, concept_text, teacher, source_kind, local_path,
                                   upload, seed, strength, guidance, description_box,
                                   instruction_box, prefilled],
                         [workspace_state, concept_info, preview_gallery], api_name="concept",
                         concurrency_limit=SETTINGS.heavy_concurrency, concurrency_id=HEAVY)
    builtin.change(lambda name: name or gr.skip(), builtin, concept_text, api_visibility="private")
    source_kind.change(lambda kind: (gr.update(visible=kind == "upload"),
                                     gr.update(visible=kind == "local path")),
                       source_kind, [upload, local_path], api_visibility="private")
    return {"concept_info": concept_info}


def build_pairs_tab(context: Context, workspace_state: gr.State) -> dict:
    with gr.Tab("2 · Pairs", id="pairs"):
        gr.Markdown("The teacher edits the source photos into the concept. Stopping keeps every "
                    "pair made so far; generating again resumes where it stopped.")
        with gr.Row():
            count = gr.Slider(4, SETTINGS.max_pairs, value=SETTINGS.num_pairs, step=1,
                              label="number of pairs", elem_id="pairs-count")
            generate = gr.Button("Generate pairs", variant="primary")
            stop = gr.Button("Stop", variant="stop")
        progress = gr.Markdown()
        gallery = gr.Gallery(label="edited images (newest last)", columns=8, height=420,
                             buttons=["fullscreen"])

    def show(workspace, events):
        """The progress line and the newest edits; redrawn at most every `REDRAW_SECONDS` (each
        redraw reads the dataset's index, and a late watcher replays the whole log at once)."""
        folder, drawn, text = workspace.current(), 0.0, None
        for event in events:
            match event:
                case Reattached():
                    gr.Info("pair generation is running in this workspace: its progress is "
                            "shown on 2 · Pairs")
                    continue
                case JobDone(result=summary):
                    state = ("stopped — generate again to resume" if summary["stopped_early"]
                             else "complete")
                    dataset = folder.dataset()
                    yield (workspace.id, f"**{summary['pairs']} pairs** ({summary['made']} new, "
                           f"{summary['skipped_existing']} kept from before) in "
                           f"{seconds_text(summary['seconds'])}: {state}. "
                           f"{pairs.held_out_line(dataset)} Next: **3 · Curate**.",
                           pairs.gallery_items(dataset, limit=24))
                    return
                case PairsProgress(done=done, total=total, eta_seconds=eta):
                    text = progress_line(done / max(total, 1), f"{done}/{total} pairs · "
                                         f"about {seconds_text(eta)} left")
            if text is not None and time.monotonic() - drawn >= REDRAW_SECONDS:
                drawn = time.monotonic()
                yield workspace.id, text, pairs.gallery_items(folder.dataset(), limit=24)
                text = None

    @user_errors
    def run(workspace_id, wanted):
        wanted = whole_number(wanted, "number of pairs")
        workspace = context.workspace(workspace_id)
        yield from show(workspace, pairs.stream_generation(workspace, wanted))

    def follow(workspace_id):
        """A page opened on a workspace whose pairs are being made (a reload, a second tab)
        shows that progress here."""
        if workspace_id and BOARD.get(workspace_id) is not None:
            workspace = context.workspace(workspace_id)
            for outputs in show(workspace, BOARD.follow(workspace.id, pairs.PAIRS_JOB)):
                yield outputs[1:]  # not the workspace: setting it would fire this event again

    job = generate.click(run, [workspace_state, count], [workspace_state, progress, gallery],
                         api_name="generate_pairs", concurrency_limit=SETTINGS.heavy_concurrency,
                         concurrency_id=HEAVY)

    # Public: a script stops whatever job runs in its workspace (pair generation or fine-tuning).
    stop.click(stop_job, workspace_state, progress, cancels=[job], api_name="stop")
    # The page's load sets the workspace (None -> its id): pick up pair generation already
    # running. Watching costs no compute, so it takes no slot of the heavy queue.
    following = workspace_state.change(follow, workspace_state, [progress, gallery],
                                       api_visibility="private", concurrency_limit=None,
                                       show_progress="hidden")
    return {"job_events": [job, following]}
