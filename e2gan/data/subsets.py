"""Whole new datasets written atomically: into ``<out>.partial/``, moved to ``<out>`` when done.

Importers, subsets (`write_subset`, the selected pairs of `e2gan select`) and exports use this so
an interrupted or failed write never leaves half a dataset where a whole one is expected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from e2gan.data.pair_format import DatasetInfo, now_iso
from e2gan.data.reader import PairDataset
from e2gan.data.writer import PairDatasetWriter
from e2gan.errors import E2GANError
from e2gan.files import replace_folder

PARTIAL_SUFFIX = ".partial"


def partial_path(out_root: Path) -> Path:
    if not out_root.name or out_root.name == "..":
        raise E2GANError(f"give the dataset its own folder name, not {str(out_root)!r}")
    return out_root.with_name(out_root.name + PARTIAL_SUFFIX)


@contextlib.contextmanager
def atomic_dataset_writer(
    out_root: str | os.PathLike, info: DatasetInfo, overwrite: bool = False
) -> Iterator[PairDatasetWriter]:
    """Write a whole new dataset into ``<out_root>.partial/`` and move it to out_root only when done.

    An interrupted or failed write never leaves a half dataset at out_root. With overwrite, an
    existing out_root is replaced only after the new dataset is complete.
    """
    out_root = Path(out_root)
    if out_root.exists() and not overwrite:
        raise E2GANError(f"{out_root} already exists; choose another folder or overwrite it")
    partial = partial_path(out_root)
    if partial.exists():
        shutil.rmtree(partial)  # left by an earlier interrupted run; never a valid dataset
    writer = PairDatasetWriter(partial, info)
    try:
        yield writer
        writer.finalize()
        replace_folder(partial, out_root, overwrite)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def write_subset(
    dataset: PairDataset, ids: Iterable[str], out_root: str | os.PathLike, overwrite: bool = False
) -> PairDataset:
    """A new dataset at out_root holding just the pairs `ids` (in dataset order, images copied)."""
    wanted = set(ids)
    unknown = sorted(wanted - set(dataset.ids))
    if unknown:
        raise E2GANError(f"{len(unknown)} id(s) not in dataset {dataset.root}: {', '.join(unknown[:5])}")
    out_root = Path(out_root)
    if out_root.resolve() == dataset.root.resolve():
        raise E2GANError(f"write the subset of {dataset.root} to another folder than the dataset itself")
    info = dataclasses.replace(dataset.info, created=now_iso(), complete=False, num_pairs=0)
    with atomic_dataset_writer(out_root, info, overwrite=overwrite) as writer:
        for record in dataset.records:
            if record.id in wanted:
                writer.add_files(record, dataset.path_of(record, "source"), dataset.path_of(record, "edited"))
    return PairDataset.open(out_root)
