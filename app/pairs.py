"""Step 2, Pairs: the teacher edits N source images into the concept, streamed and resumable.

`generate_pairs` writes each pair atomically and skips ids already present, so a stopped run
keeps what it made and generating again continues where it stopped. With a diffusion teacher the
edits run inside a GPU call on a ZeroGPU Space (`app.gpu`), which may stop a long run early: the
same resume then continues it.
"""

from __future__ import annotations

from typing import Any, Iterator

from PIL import Image

from e2gan.data.builtin import held_out_photos
from e2gan.data.dataset import PairDataset
from e2gan.data.importers import IMPORTED_TEACHER
from e2gan.data.generate import PairsProgress, generate_pairs
from e2gan.errors import E2GANError
from e2gan.files import atomic_save_image

from app import gpu
from app.concepts import get_teacher, open_concept_source
from app.events import JobEvent
from app.form import whole_number
from app.jobs import BOARD
from app.settings import SETTINGS
from app.workspace import ConceptFolder, Workspace


def gallery_items(dataset: PairDataset | None, limit: int = 48,
                  ids: list[str] | None = None) -> list[tuple[str, str]]:
    """(image path, caption) of edited images, newest pairs last, for a gallery."""
    if dataset is None:
        return []
    records = [dataset.get(pair_id) for pair_id in ids] if ids is not None else dataset.records
    return [(str(dataset.path_of(record, "edited")), f"{record.id} ({record.split})")
            for record in records[-limit:]]


def side_by_side(source: Image.Image, edited: Image.Image, height: int = 192) -> Image.Image:
    """Source and edit next to each other at one height, 4 px apart."""
    left = source.resize((round(source.width * height / source.height), height))
    right = edited.resize((round(edited.width * height / edited.height), height))
    sheet = Image.new("RGB", (left.width + right.width + 4, height), "white")
    sheet.paste(left, (0, 0))
    sheet.paste(right, (left.width + 4, 0))
    return sheet


def pair_gallery_items(folder: ConceptFolder, ids: list[str], height: int = 128
                       ) -> list[tuple[str, str]]:
    """(thumbnail path, caption) of source | edit for each pair in `ids`: what Curate shows, so
    a bad edit is judged against its photo. Thumbnails are made once, under `thumbnails/`."""
    dataset = folder.dataset()
    if dataset is None:
        return []
    cache = folder.root / "thumbnails"
    items = []
    for pair_id in ids:
        record = dataset.get(pair_id)
        path = cache / f"{pair_id}.png"
        if not path.is_file():
            cache.mkdir(exist_ok=True)
            atomic_save_image(path, side_by_side(*dataset.load_pair(record), height=height))
        items.append((str(path), f"{record.id} ({record.split})"))
    return items


def pair_sheet(dataset: PairDataset, pair_id: str) -> tuple[Image.Image, Image.Image]:
    return dataset.load_pair(dataset.get(pair_id))


def held_out_line(dataset: PairDataset | None) -> str:
    """Where the held-out pairs come from, e.g. 'The 40 held-out pairs are crops of 9 photos,
    none of which is used for training.' (built-in photos are held out whole)."""
    return held_out_photos(dataset.records).describe() if dataset is not None else ""


def dataset_line(folder: ConceptFolder) -> str:
    dataset = folder.dataset()
    if dataset is None:
        return f"**{folder.name}**: no pairs yet"
    train, test = len(dataset.split("train")), len(dataset.split("test"))
    state = "complete" if dataset.info.complete else "incomplete (generate again to resume)"
    return (f"**{folder.name}**: {len(dataset)} pairs ({train} train / {test} held out) from "
            f"teacher `{dataset.info.teacher}`, {state}. {held_out_line(dataset)}")


PAIRS_JOB = "pair generation"  # the job board's name for this kind of job


def stream_generation(workspace: Workspace, count: int) -> Iterator[JobEvent]:
    """Generate up to `count` pairs of the current concept; yields the pair maker's
    `PairsProgress` (nothing done first), then `JobDone` with its summary."""
    count = whole_number(count, "number of pairs")
    if not 1 <= count <= SETTINGS.max_pairs:
        raise E2GANError(f"number of pairs must be between 1 and {SETTINGS.max_pairs}, got {count}")
    folder = workspace.current()
    spec = folder.spec()
    if spec.teacher == IMPORTED_TEACHER:
        raise E2GANError(f"concept {spec.name!r} has imported pairs and no teacher to make more: "
                         "go on to 3 · Curate (or import another zip on 1 · Concept)")
    get_teacher(spec.teacher, spec.teacher_params)  # a missing model is an error now, not later
    count = min(count, len(open_concept_source(spec, count)))
    on_gpu = gpu.teacher_needs_gpu(spec.teacher)  # the built-in filters spend no GPU quota

    def work(report, should_stop) -> dict[str, Any]:
        return gpu.run_job(generate_on_gpu, make_pairs, (workspace, count), report, should_stop,
                           on_gpu=on_gpu)

    yield PairsProgress(done=0, total=count)
    yield from BOARD.stream(workspace.id, PAIRS_JOB, work)


def make_pairs(workspace: Workspace, count: int, report, should_stop) -> dict[str, Any]:
    """The teacher edits `count` source images of the current concept (resuming what is there);
    run where the GPU is (`generate_on_gpu`), so it rebuilds what it needs from the workspace."""
    folder = workspace.current()
    spec = folder.spec()
    teacher = get_teacher(spec.teacher, spec.teacher_params)
    source = open_concept_source(spec, count)
    # The teacher is given its own phrasing (an instruction for InstructPix2Pix); the prompt,
    # the description, is what the GAN will be conditioned on.
    result = generate_pairs(teacher, source, spec.prompt, folder.pairs_dir, concept=spec.name,
                            seed=spec.seed, batch_size=4, on_progress=report, should_stop=should_stop,
                            phrasings=spec.phrasings)
    return result.summary()


def pair_generation_seconds(workspace: Workspace, count: int, stop_file: str | None = None) -> float:
    """GPU seconds to make `count` pairs with the concept's teacher: loading it, then each edit
    (denoising steps x resolution), with a margin."""
    spec = workspace.current().spec()
    load, per_image = gpu.teacher_image_seconds(spec.teacher, spec.teacher_params)
    return (gpu.CALL_START_SECONDS + load + count * per_image) * gpu.SAFETY


generate_on_gpu = gpu.generator_task(pair_generation_seconds, make_pairs)
