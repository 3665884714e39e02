"""Step 1, Concept: which teacher, which concept, which source images; preview the teacher's edit.

Plain functions over `e2gan` (no Gradio), so scripts and tests use exactly what the UI uses.
"""

from __future__ import annotations

import inspect
import os
import json
import shutil
import threading
import zipfile
from pathlib import Path
from typing import Callable, Iterator

from PIL import Image

from e2gan.data.generate import phrase_concept
from e2gan.data.importers import IMPORTED_TEACHER, import_hub_imagefolder, import_zip
from e2gan.data.image_source import ImageSource
from e2gan.data.sources import builtin_photos, open_source
from e2gan.errors import E2GANError
from e2gan.files import is_within, open_image, replace_folder
from e2gan.hub.download import ProgressCallback, cache_dir, offline
from e2gan.limits import MAX_ARCHIVE_FILES, MAX_UPLOAD_BYTES
from e2gan.teachers import (TEACHERS, Teacher, create_teacher, describe_teachers,
                            resolve_builtin_concept)
from e2gan.text import concept_key

from app import free_text, gpu
from app.events import JobEvent
from app.jobs import BOARD
from app.settings import SETTINGS
from app.workspace import ConceptFolder, ConceptSpec, Workspace
from e2gan.teachers import BUILTIN_CONCEPTS

# Knobs a teacher may take; each is offered only to teachers whose constructor accepts it.
TEACHER_KNOBS = ("strength", "guidance_scale", "image_guidance_scale", "num_inference_steps")

WEIGHTS_JOB = "weights download"  # the job board's name for fetching a teacher's weights
IMPORT_JOB = "pairs import"  # importing pairs (a Hub dataset's download with it)

_teacher_cache: dict[str, Teacher] = {}  # name -> the teacher whose model is loaded
_teacher_lock = threading.Lock()


def teacher_table() -> list[dict]:
    """Every registered teacher: can it run here (packages and weights found offline), and if
    not, what it needs (`missing`: "weights" or "packages") and whether its weights can be
    downloaded here (`downloadable`: HF_HUB_OFFLINE unset). Built on the engine's
    `describe_teachers`, which only reads the local cache; nothing is downloaded."""
    rows = []
    for name, entry in describe_teachers().items():
        if not entry["available"]:
            rows.append({"name": name, "available": False, "missing": "packages",
                         "reason": entry["reason"], "downloadable": False})
        elif entry.get("weights_present") is False:
            rows.append({"name": name, "available": False, "missing": "weights",
                         "reason": f"weights not on this machine ({entry['weights_reason']})",
                         "downloadable": not offline()})
        else:
            rows.append({"name": name, "available": True, "missing": None, "reason": "",
                         "downloadable": False})
    return rows


def available_teachers() -> list[str]:
    return [row["name"] for row in teacher_table() if row["available"]]


def teacher_choices() -> list[tuple[str, str]]:
    """(label, name) for the teacher picker: the teachers that run here, then those that lack
    only weights the studio can download (so labelled)."""
    rows = teacher_table()
    return ([(row["name"], row["name"]) for row in rows if row["available"]]
            + [(f"{row['name']} · weights to download", row["name"])
               for row in rows if row["downloadable"]])


def weights_offer(name: str) -> tuple[str, bool]:
    """What the Concept tab says about teacher `name`'s weights, and whether it offers to download
    them: nothing for a teacher that runs here; offline, the one-line reason."""
    row = next((row for row in teacher_table() if row["name"] == name), None)
    if row is None or row["missing"] != "weights":
        return "", False
    if not row["downloadable"]:
        return row["reason"], False
    return (f"`{name}` needs `{TEACHERS.get(name).default_model}`, which is not on this machine. "
            f"Download it once into the Hugging Face cache ({cache_dir()}); a cancelled download "
            "keeps the files it finished.", True)


def stream_weights_download(workspace: Workspace, name: str) -> Iterator[JobEvent]:
    """Download teacher `name`'s weights as the workspace's job (Stop cancels it within a chunk);
    yields `DownloadProgress` events, then `JobDone` with its folders."""
    teacher_class = TEACHERS.get(name)

    def work(report, should_stop) -> list[str]:
        return teacher_class.fetch_weights(on_progress=report, should_stop=should_stop)

    yield from BOARD.stream(workspace.id, WEIGHTS_JOB, work)


def teacher_knobs(name: str) -> list[str]:
    teacher_class = TEACHERS.get(name)
    # Diffusion teachers declare their knobs in `defaults`; others take them as arguments.
    accepted = set(getattr(teacher_class, "defaults", {}) or {})
    accepted |= set(inspect.signature(teacher_class).parameters)
    return [knob for knob in TEACHER_KNOBS if knob in accepted]


def get_teacher(name: str, params: dict | None = None) -> Teacher:
    """A teacher with these knobs, its model loaded once per process: a diffusion teacher's weights
    take seconds to load and gigabytes to hold, so every setting of its knobs shares the one
    pipeline (`with_settings`). Keyed by knobs instead, each guidance value a visitor tried loaded
    the model again and kept it for the process's life."""
    params = {key: value for key, value in (params or {}).items()
              if key in teacher_knobs(name) and value is not None}
    with _teacher_lock:
        if name not in _teacher_cache:
            teacher = create_teacher(name)
            teacher.prepare()  # loads weights now, so a missing model is a clear error here
            _teacher_cache[name] = teacher
        loaded = _teacher_cache[name]
    if not params:
        return loaded
    if hasattr(loaded, "with_settings"):  # diffusion teachers: a twin sharing the pipeline
        return loaded.with_settings(**params)
    return create_teacher(name, **params)  # the others hold no model: cheap to build


def builtin_concept_choices(base_dir: Path | None = None) -> list[tuple[str, str]]:
    """(label, name) for the built-in concepts; the label says whether the base model learned
    the concept already (a fine-tune then starts from its own tokens) or never saw it (the
    honest test of what a fine-tune learns). The base's config.json lists its concepts."""
    known = set(base_concepts(base_dir)) if base_dir is not None else set()
    return [(f"{name} · {'in the base' if concept_key(concept.prompt) in known else 'new to the base'}"
             if base_dir is not None else name, name)
            for name, concept in BUILTIN_CONCEPTS.items()]


def base_concepts(base_dir: Path) -> list[str]:
    """The concept keys a base with learned text tokens was trained on ([] for other encoders)."""
    config = Path(base_dir) / "config.json"
    try:
        encoder = json.loads(config.read_text()).get("text_encoder") or {}
    except (OSError, ValueError, AttributeError):
        return []
    concepts = encoder.get("concepts") if isinstance(encoder, dict) else None
    return [c for c in concepts if isinstance(c, str)] if isinstance(concepts, list) else []


def resolve_concept(text: str, teacher: str, description: str | None = None,
                    instruction: str | None = None) -> tuple[str, str, dict[str, str]]:
    """(slug, prompt, phrasings) for what the user typed. The built-in teacher knows named
    concepts only, with fixed phrasings (text it does not know gets the ways to any text);
    other teachers take free text, phrased both ways (`free_text.default_phrasings`) unless
    `description` / `instruction` say otherwise. The prompt is the description."""
    text = " ".join((text or "").split())
    if not text:
        raise E2GANError("type a concept (e.g. 'a snowy winter scene') or pick a built-in one")
    if not free_text.takes_free_text(teacher):
        choice = free_text.choices(text, teacher, teacher_table(), SETTINGS)
        if choice is not None:
            raise E2GANError(free_text.as_line(choice))
        concept = resolve_builtin_concept(text)
        return concept.name, concept.prompt, concept.phrasings()
    name, phrasings = phrase_concept(text, instruction, description)
    return name[:60], phrasings["description"], phrasings


def concept_choices(text: str, teacher: str) -> str:
    """What the Concept tab says under the teacher when `teacher` cannot make `text` here (or
    only slowly, on a CPU): the ways on, as Markdown; "" when it can."""
    return free_text.as_markdown(free_text.choices(text, teacher, teacher_table(), SETTINGS))


def teacher_prompt(spec: ConceptSpec) -> str:
    """The concept phrased the way its teacher wants it (an instruction for InstructPix2Pix);
    the prompt for a concept saved before it had phrasings."""
    phrasing = TEACHERS.get(spec.teacher).phrasing if spec.teacher in TEACHERS else "description"
    return spec.phrasings.get(phrasing) or spec.prompt


def store_upload(workspace: Workspace, files: list[str] | None) -> str | None:
    """Copy uploaded images (or one zip) into the workspace; the source spec to use, or None.

    Each upload replaces the previous one whole (uploading A then B makes pairs from B only), and
    is checked before it replaces anything: every image's header is read (size against the pixel
    limit, format) and a zip must open. A rejected upload leaves nothing behind to fail later.
    """
    if not files:
        return None
    incoming, stored = _receive_upload(workspace, files)
    return _keep_upload(workspace, incoming, stored)


def _receive_upload(workspace: Workspace, files: list[str]) -> tuple[Path, str]:
    """Check the uploaded files and copy them into the workspace's `uploads/incoming/`, beside
    the upload in use; (that folder, the zip's name or "images"). Refused: nothing is left."""
    paths = [Path(file) for file in files]
    # Gradio's server stops an oversized file while it streams; these checks also hold for a
    # studio launched without `launch_options()` and for files handed over by a script.
    MAX_ARCHIVE_FILES.check(len(paths), f"the upload has {len(paths):,} files")
    for path in paths:
        MAX_UPLOAD_BYTES.check(path.stat().st_size, f"uploaded file {path.name} is "
                                                    f"{MAX_UPLOAD_BYTES.show(path.stat().st_size)}")
    incoming = workspace.uploads_dir / "incoming"
    uploads_existed = workspace.uploads_dir.exists()
    if incoming.exists():
        shutil.rmtree(incoming)  # a half-copied upload from a crash
    incoming.mkdir(parents=True)
    try:
        if len(paths) == 1 and paths[0].suffix.lower() == ".zip":
            shutil.copyfile(paths[0], incoming / paths[0].name)
            try:
                with zipfile.ZipFile(incoming / paths[0].name) as archive:
                    entries = len(archive.infolist())
            except zipfile.BadZipFile:
                raise E2GANError(f"{paths[0].name} is not a readable zip file") from None
            MAX_ARCHIVE_FILES.check(entries, f"zip file {paths[0].name} holds {entries:,} files")
            stored = paths[0].name
        else:
            problems = []
            for path in paths:
                try:
                    with open_image(path, path.name):
                        pass
                except E2GANError as error:
                    problems.append(str(error))
            if problems:
                raise E2GANError(f"{len(problems)} of {len(paths)} uploaded files were refused "
                                 f"(nothing was kept): " + "; ".join(problems[:5]))
            (incoming / "images").mkdir()
            for path in paths:
                shutil.copyfile(path, incoming / "images" / path.name)
            stored = "images"
    except BaseException:
        _discard_upload(workspace, incoming, uploads_existed)
        raise
    return incoming, stored


def _keep_upload(workspace: Workspace, incoming: Path, stored: str) -> str:
    """Make a received upload the one in use (replacing the one before); its source spec."""
    current = workspace.uploads_dir / "current"
    replace_folder(incoming, current, overwrite=True)
    return str(current / stored)


def _discard_upload(workspace: Workspace, incoming: Path, uploads_existed: bool) -> None:
    """Forget a received upload that was refused: the workspace is left as it was before it."""
    shutil.rmtree(incoming, ignore_errors=True)
    if not uploads_existed:
        try:
            workspace.uploads_dir.rmdir()
        except OSError:  # not empty: another upload's files
            pass


def resolve_source(kind: str, local_path: str = "", upload: str | None = None,
                   workspace_root: Path | None = None) -> str:
    """The source spec for `open_source` from the UI's choice. A local path may not lead into
    the studio's workspaces (`workspace_root`): those are other sessions' files."""
    if kind == "built-in photos":
        return "builtin"
    if kind == "upload":
        if not upload:
            raise E2GANError("upload images or a zip file first")
        return upload
    if kind == "local path":
        if not SETTINGS.local_paths_allowed:
            raise E2GANError("local paths are off on a hosted Space (set E2GAN_LOCAL_PATHS to the "
                             "folders users may read); upload images instead")
        if not local_path.strip():
            raise E2GANError("type a folder or .zip path")
        path = Path(local_path.strip()).expanduser()
        if SETTINGS.local_path_roots and not any(is_within(root, path) for root in SETTINGS.local_path_roots):
            raise E2GANError(f"{path} is outside the folders this studio may read "
                             f"(E2GAN_LOCAL_PATHS: {os.pathsep.join(SETTINGS.local_path_roots)})")
        if workspace_root is not None and is_within(workspace_root, path):
            raise E2GANError(f"{path} is inside the studio's workspaces: "
                             "use the Library for your own results, or upload the images")
        return str(path)
    raise E2GANError(f"unknown source kind {kind!r}")


def open_concept_source(spec: ConceptSpec, count: int | None) -> ImageSource:
    # Built-in crops are made at 256 px: sharper than any training size the studio offers on CPU.
    return open_source(spec.source, count=count, size=256, seed=spec.seed + 7)


def set_concept(workspace: Workspace, text: str, teacher: str, source: str,
                teacher_params: dict | None = None, seed: int = 0, *,
                description: str | None = None, instruction: str | None = None) -> ConceptSpec:
    """Make `text` the workspace's current concept (its folder keeps earlier pairs: resumable).
    With a teacher that takes free text, `description` / `instruction` replace the phrasings
    made from `text` (the studio's two boxes, as edited)."""
    if teacher not in TEACHERS.names():
        raise E2GANError(f"unknown teacher {teacher!r}; known: {', '.join(TEACHERS.names())}")
    row = next(row for row in teacher_table() if row["name"] == teacher)
    if not row["available"]:  # never a dead end: what would make it run, and the ways around it
        choice = free_text.choices(text, teacher, teacher_table(), SETTINGS)
        raise E2GANError(free_text.as_line(choice) if choice is not None else
                         f"teacher {teacher!r} cannot run here: {row['reason']}")
    name, prompt, phrasings = resolve_concept(text, teacher, description, instruction)
    open_source(source, count=1, size=64)  # a missing folder or empty zip fails now, not later
    params = {key: value for key, value in (teacher_params or {}).items()
              if key in teacher_knobs(teacher) and value is not None}
    spec = ConceptSpec(name=name, prompt=prompt, teacher=teacher, teacher_params=params,
                       source=source, seed=int(seed), phrasings=phrasings)
    folder = workspace.concept(name)
    existing = folder.dataset() if folder.spec_file.is_file() else None
    if existing is not None and len(existing) and existing.info.teacher != teacher:
        raise E2GANError(f"concept {name!r} already has pairs from teacher {existing.info.teacher!r} "
                         "in this workspace; keep that teacher or pick another concept name")
    folder.save_spec(spec)
    workspace.set_current(name)
    return spec


def import_pairs(workspace: Workspace, text: str, files: list[str] | None, dataset_id: str = "",
                 *, on_progress: ProgressCallback | None = None,
                 should_stop: Callable[[], bool] | None = None) -> ConceptSpec:
    """Make pairs brought as one zip (two folders matched by name, img2img-turbo's layout or an
    imagefolder dataset; see `e2gan.data.importers.import_zip`), or named by the id of a Hugging
    Face imagefolder dataset repo (`org/name[@revision]`: from the Hugging Face cache, else
    downloaded with `on_progress` and `should_stop`, within the upload limits), the workspace's
    current concept `text`, ready to curate. Unmatched, unreadable or oversized images refuse the
    import with their names, and a refused import changes nothing. Importing again replaces that
    concept's imported pairs."""
    text, dataset_id = (text or "").strip(), (dataset_id or "").strip()
    if not text:
        raise E2GANError("type the concept the pairs show (e.g. 'a snowy winter scene'): it names "
                         "the adapter and is its text prompt")
    if dataset_id:
        if files:
            raise E2GANError("upload a .zip or type a Hugging Face dataset id, not both")
        return _import_hub_pairs(workspace, text, dataset_id, on_progress, should_stop)
    if not files or len(files) != 1 or Path(files[0]).suffix.lower() != ".zip":
        raise E2GANError("upload the pairs as one .zip file, or type a Hugging Face dataset id")
    name = concept_key(text)[:60]
    folder = _import_target(workspace, name)
    # The zip replaces the upload in use only once its pairs are in: a refused import leaves the
    # workspace exactly as it was (no concept folder, no unpacked files, the last upload kept).
    uploads_existed = workspace.uploads_dir.exists()
    incoming, stored = _receive_upload(workspace, files)
    try:
        dataset = import_zip(incoming / stored, folder.pairs_dir, text, concept=name,
                             overwrite=True)
    except BaseException:
        _discard_upload(workspace, incoming, uploads_existed)
        raise
    archive = Path(_keep_upload(workspace, incoming, stored))
    return _save_imported(workspace, name, dataset.info.prompt, {"archive": archive.name},
                          str(archive))


def _import_hub_pairs(workspace: Workspace, text: str, dataset_id: str,
                      on_progress: ProgressCallback | None,
                      should_stop: Callable[[], bool] | None) -> ConceptSpec:
    name = concept_key(text)[:60]
    folder = _import_target(workspace, name)

    def within_upload_limits(total_bytes: int, files: int) -> None:  # a download is an upload too
        MAX_UPLOAD_BYTES.check(total_bytes, f"dataset {dataset_id} is "
                                            f"{MAX_UPLOAD_BYTES.show(total_bytes)} to download")
        MAX_ARCHIVE_FILES.check(files, f"dataset {dataset_id} holds {files:,} files")

    # A typed id and the Import button ask for the download; HF_HUB_OFFLINE still refuses it.
    dataset = import_hub_imagefolder(dataset_id, folder.pairs_dir, text, concept=name,
                                     overwrite=True, allow_download=True, on_progress=on_progress,
                                     should_stop=should_stop, check_download=within_upload_limits)
    return _save_imported(workspace, name, dataset.info.prompt, {"dataset": dataset_id}, dataset_id)


def stream_pairs_import(workspace: Workspace, text: str, files: list[str] | None,
                        dataset_id: str = "") -> Iterator[JobEvent]:
    """`import_pairs` as the workspace's job (Stop cancels a download within a chunk); yields
    `DownloadProgress` events, then `JobDone` with its ConceptSpec."""
    def work(report, should_stop) -> ConceptSpec:
        return import_pairs(workspace, text, files, dataset_id, should_stop=should_stop,
                            on_progress=report)

    yield from BOARD.stream(workspace.id, IMPORT_JOB, work)


def _import_target(workspace: Workspace, name: str) -> ConceptFolder:
    """The folder of concept `name`, for imported pairs: refused when a teacher made its pairs
    (an import replaces only imported ones). Not created here: the importer makes it, and
    removes it again when the import is refused (no empty concept is left behind)."""
    folder = workspace.concept(name)
    existing = folder.dataset() if folder.spec_file.is_file() else None
    if existing is not None and existing.info.teacher != IMPORTED_TEACHER:
        raise E2GANError(f"concept {name!r} already has pairs from teacher {existing.info.teacher!r} "
                         "in this workspace; import under another concept name")
    return folder


def _save_imported(workspace: Workspace, name: str, prompt: str, params: dict,
                   source: str) -> ConceptSpec:
    spec = ConceptSpec(name=name, prompt=prompt, teacher=IMPORTED_TEACHER, teacher_params=params,
                       source=source)
    workspace.concept(name).save_spec(spec)
    workspace.set_current(name)
    return spec


def preview(spec: ConceptSpec, count: int = 4) -> list[tuple[Image.Image, Image.Image]]:
    """(source, teacher's edit) for the first `count` source images, with the concept's seeds;
    with a diffusion teacher, one GPU call on a ZeroGPU Space (`preview_on_gpu`)."""
    if gpu.teacher_needs_gpu(spec.teacher):
        return gpu.outcome(preview_on_gpu(spec, count))
    return _preview(spec, count)


def _preview(spec: ConceptSpec, count: int = 4) -> list[tuple[Image.Image, Image.Image]]:
    source = open_concept_source(spec, count)
    images = [source.load(source_id) for source_id in source.ids]
    teacher = get_teacher(spec.teacher, spec.teacher_params)
    edits = teacher.edit(images, teacher_prompt(spec),
                         [spec.seed + index for index in range(len(images))])
    return list(zip(images, edits))


def preview_seconds(spec: ConceptSpec, count: int = 4) -> float:
    """GPU seconds for a preview: loading the teacher, then `count` edits, with a margin."""
    load, per_image = gpu.teacher_image_seconds(spec.teacher, spec.teacher_params)
    return (gpu.CALL_START_SECONDS + load + count * per_image) * gpu.SAFETY


preview_on_gpu = gpu.call_task(preview_seconds, _preview)


def example_images(count: int = 6, size: int = 256) -> list[Image.Image]:
    return [image for _, image in builtin_photos(count, size=size, seed=3)]
