"""Step 2, Pairs: the teacher edits N source images into the concept, streamed and resumable.

`generate_pairs` writes each pair atomically and skips ids already present, so a stopped run
keeps what it made and generating again continues where it stopped.
"""

from __future__ import annotations

from typing import Any, Iterator

from PIL import Image

from e2gan.data.dataset import PairDataset
from e2gan.data.generate import generate_pairs
from e2gan.errors import E2GANError

from app.concepts import get_teacher, open_concept_source
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


def pair_sheet(dataset: PairDataset, pair_id: str) -> tuple[Image.Image, Image.Image]:
    return dataset.load_pair(dataset.get(pair_id))


def dataset_line(folder: ConceptFolder) -> str:
    dataset = folder.dataset()
    if dataset is None:
        return f"**{folder.name}**: no pairs yet"
    train, test = len(dataset.split("train")), len(dataset.split("test"))
    state = "complete" if dataset.info.complete else "incomplete (generate again to resume)"
    return (f"**{folder.name}**: {len(dataset)} pairs ({train} train / {test} held out) from "
            f"teacher `{dataset.info.teacher}`, {state}")


def stream_generation(workspace: Workspace, count: int) -> Iterator[dict[str, Any]]:
    """Generate up to `count` pairs of the current concept; yields progress events
    ({"done", "total", "eta_seconds", ...}), then a final {"done": True, "result": summary}."""
    count = whole_number(count, "number of pairs")
    if not 1 <= count <= SETTINGS.max_pairs:
        raise E2GANError(f"number of pairs must be between 1 and {SETTINGS.max_pairs}, got {count}")
    folder = workspace.current()
    spec = folder.spec()
    teacher = get_teacher(spec.teacher, spec.teacher_params)
    source = open_concept_source(spec, count)
    if len(source) < count:
        count = len(source)

    def work(report, should_stop) -> dict[str, Any]:
        result = generate_pairs(teacher, source, spec.prompt, folder.pairs_dir, concept=spec.name,
                                seed=spec.seed, batch_size=4, on_progress=report,
                                should_stop=should_stop)
        return result.summary()

    yield {"done": 0, "total": count, "made": 0, "eta_seconds": None}
    yield from BOARD.stream(workspace.id, "pair generation", work)
