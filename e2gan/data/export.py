"""Export a paired dataset for other tools: Hugging Face `imagefolder`, img2img-turbo's layout.

``imagefolder`` (load with ``datasets.load_dataset("imagefolder", data_dir=OUT)``, or push the
folder to the Hub as is)::

    OUT/README.md                      dataset card: concept, prompt, teacher, how to load
    OUT/train/metadata.jsonl           one row per pair
    OUT/train/input_image/<id>.png     the source image
    OUT/train/edited_image/<id>.png    the teacher's edit
    OUT/test/...                       the same for the held-out pairs

`datasets` turns every metadata column named ``*_file_name`` into an image column named by its
prefix, so each row has ``input_image``, ``edited_image`` and ``edit_prompt``: the column names
diffusers' ``train_instruct_pix2pix.py`` reads by default. The other columns are ``pair_id``,
``teacher``, ``teacher_params`` (JSON text), ``origin``, ``seed`` (when every pair has one) and one
float column per stored score that every pair has (e.g. ``direction_similarity``). `datasets`
requires the metadata files of all splits to have the same column types, hence the "every pair"
rules.

``img2img-turbo`` (GaParmar/img2img-turbo's paired layout, the exact inverse of
`e2gan.data.importers.import_img2img_turbo`)::

    OUT/train_A/<id>.png  OUT/train_B/<id>.png  OUT/train_prompts.json  {"<id>.png": prompt}
    OUT/test_A/<id>.png   OUT/test_B/<id>.png   OUT/test_prompts.json

Images are copied byte for byte. Everything is written into ``OUT.partial/`` and renamed to OUT
when complete, so a failed export leaves nothing at OUT; an existing OUT is replaced only with
``overwrite``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from numbers import Real
from pathlib import Path
from typing import Any, Callable

from e2gan.data.dataset import SPLITS, PairDataset, PairRecord, partial_path
from e2gan.files import replace_folder
from e2gan.errors import E2GANError

FORMATS = ("imagefolder", "img2img-turbo")
IMAGE_COLUMNS = ("input_image", "edited_image")  # diffusers' InstructPix2Pix training defaults
PROMPT_COLUMN = "edit_prompt"


@contextlib.contextmanager
def _atomic_folder(out_root: Path, overwrite: bool) -> Iterator[Path]:
    """A fresh ``<out_root>.partial/`` to write into, moved to out_root when the block succeeds."""
    if out_root.exists() and not overwrite:
        raise E2GANError(f"{out_root} already exists; choose another folder or pass --overwrite")
    partial = partial_path(out_root)
    if partial.exists():
        shutil.rmtree(partial)  # left by an interrupted export
    partial.mkdir(parents=True)
    try:
        yield partial
        replace_folder(partial, out_root, overwrite)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _shared_numeric_scores(records: list[PairRecord]) -> list[str]:
    """Score names that every pair has as a number (bools are not scores)."""
    def numeric(record: PairRecord) -> set[str]:
        return {name for name, value in record.scores.items()
                if isinstance(value, Real) and not isinstance(value, bool)}
    names = set.intersection(*(numeric(record) for record in records)) if records else set()
    return sorted(names)


def _imagefolder_row(record: PairRecord, scores: list[str], with_seed: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        f"{IMAGE_COLUMNS[0]}_file_name": f"{IMAGE_COLUMNS[0]}/{record.id}.png",
        f"{IMAGE_COLUMNS[1]}_file_name": f"{IMAGE_COLUMNS[1]}/{record.id}.png",
        PROMPT_COLUMN: record.prompt,
        "pair_id": record.id,
        "teacher": record.teacher,
        # Free-form settings differ in shape between teachers; text keeps every row one type.
        "teacher_params": json.dumps(record.teacher_params, sort_keys=True),
        "origin": record.origin,
    }
    if with_seed:
        row["seed"] = int(record.seed)
    row.update({name: float(record.scores[name]) for name in scores})
    return row


def _counts(dataset: PairDataset) -> dict[str, int]:
    return {split: len(dataset.split(split)) for split in SPLITS}


def _dataset_card(dataset: PairDataset) -> str:
    info = dataset.info
    splits = ", ".join(f"{split}: {count}" for split, count in _counts(dataset).items() if count)
    return (f"# {info.concept}\n\n"
            f"Paired image-editing data exported by e2gan: source images (`input_image`), their "
            f"edits (`edited_image`) and the instruction (`edit_prompt`).\n\n"
            f"- concept: {info.concept}\n- prompt: {info.prompt}\n"
            f"- teacher: {info.teacher} {json.dumps(info.teacher_params, sort_keys=True)}\n"
            f"- pairs: {splits}\n\n"
            "```python\nfrom datasets import load_dataset\n"
            'pairs = load_dataset("imagefolder", data_dir="path/to/this/folder")\n```\n')


def _copy_pairs(dataset: PairDataset, records: list[PairRecord], source_folder: Path,
                edited_folder: Path) -> None:
    """Each pair's two PNGs, byte for byte, as ``<id>.png`` in the two folders."""
    source_folder.mkdir(parents=True)
    edited_folder.mkdir(parents=True)
    for record in records:
        shutil.copyfile(dataset.path_of(record, "source"), source_folder / f"{record.id}.png")
        shutil.copyfile(dataset.path_of(record, "edited"), edited_folder / f"{record.id}.png")


def _splits(dataset: PairDataset) -> Iterator[tuple[str, list[PairRecord]]]:
    """(split, its pairs) for each split that has pairs. An empty split gets no folders: the
    importer reads an existing test_A/ as a test split that must list images."""
    for split in SPLITS:
        records = dataset.split(split)
        if records:
            yield split, records


def _write_imagefolder(dataset: PairDataset, folder: Path) -> None:
    scores = _shared_numeric_scores(dataset.records)
    with_seed = all(isinstance(record.seed, int) for record in dataset.records)
    for split, records in _splits(dataset):
        _copy_pairs(dataset, records, *(folder / split / column for column in IMAGE_COLUMNS))
        lines = [json.dumps(_imagefolder_row(record, scores, with_seed), ensure_ascii=False)
                 for record in records]
        (folder / split / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(_dataset_card(dataset), encoding="utf-8")


def _write_img2img_turbo(dataset: PairDataset, folder: Path) -> None:
    for split, records in _splits(dataset):
        _copy_pairs(dataset, records, folder / f"{split}_A", folder / f"{split}_B")
        prompts = {f"{record.id}.png": record.prompt for record in records}
        (folder / f"{split}_prompts.json").write_text(
            json.dumps(prompts, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


WRITERS: dict[str, Callable[[PairDataset, Path], None]] = {
    "imagefolder": _write_imagefolder,
    "img2img-turbo": _write_img2img_turbo,
}


def export_dataset(dataset: PairDataset, out_root: str | os.PathLike, format: str = "imagefolder",
                   overwrite: bool = False) -> dict[str, Any]:
    """Write `dataset` at out_root in `format`; returns {"out", "format", "pairs": {split: n}}."""
    if format not in WRITERS:
        raise E2GANError(f"unknown export format {format!r}; known: {', '.join(FORMATS)}")
    if not dataset.records:
        raise E2GANError(f"dataset {dataset.root} has no pairs to export")
    out_root = Path(out_root)
    if out_root.resolve() == dataset.root.resolve() or dataset.root.resolve() in out_root.resolve().parents:
        raise E2GANError(f"export {dataset.root} to a folder outside the dataset itself")
    with _atomic_folder(out_root, overwrite) as folder:
        WRITERS[format](dataset, folder)
    return {"out": str(out_root), "format": format, "pairs": _counts(dataset)}
