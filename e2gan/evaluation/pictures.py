"""Pictures of results, drawn one way everywhere: rows of photos, one column per image maker.

The demo, the benchmark, a published adapter's `samples.png` and the studio's live samples are all
a `contact_sheet`: the source, the teacher's edit where there is one, then each maker's edit.
"""

from __future__ import annotations

from typing import Callable, Sequence

from PIL import Image

from e2gan.data.dataset import PairDataset
from e2gan.data.torch_data import resize_and_center_crop

Maker = Callable[[list[Image.Image]], list[Image.Image]]
# (column name, maker); a maker of None is the teacher: its column shows the pairs' edits
Column = tuple[str, Maker | None]


def contact_sheet(sources: list[Image.Image], edits: list[Image.Image], size: int,
                  makers: Sequence[Column]) -> Image.Image:
    """One row per source: the source, then one column per (name, maker) in `makers` (a maker of
    None shows `edits`, the teacher's)."""
    columns = [sources]
    for _, maker in makers:
        columns.append(edits if maker is None else maker(sources))
    sheet = Image.new("RGB", (size * len(columns), size * len(sources)), "white")
    for x, column in enumerate(columns):
        for y, image in enumerate(column):
            sheet.paste(image.resize((size, size)), (x * size, y * size))
    return sheet


def sheet_records(dataset: PairDataset, count: int = 4) -> list:
    """The pairs `held_out_sheet` shows: the first `count` held-out ones, else training ones."""
    return (dataset.split("test") or dataset.split("train"))[:count]


def held_out_sheet(dataset: PairDataset, size: int, makers: Sequence[Column],
                   count: int = 4) -> Image.Image:
    """A contact sheet of the first `count` held-out pairs (training pairs when the dataset holds
    none out), centre-cropped to `size`: the source, then one column per maker."""
    records = sheet_records(dataset, count)
    pairs = [dataset.load_pair(record) for record in records]
    sources = [resize_and_center_crop(source, size) for source, _ in pairs]
    edits = [resize_and_center_crop(edited, size) for _, edited in pairs]
    return contact_sheet(sources, edits, size, makers)
