"""Opening a paired dataset (format: `e2gan.data.pair_format`), validated on open.

A dataset can be read while a generation is still writing it: an unfinished last metadata line is
ignored, and the shard files of a sharded generation are read alongside ``metadata.jsonl``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from e2gan.data.pair_format import (
    IMAGE_FOLDERS,
    INFO_FILE,
    METADATA_FILE,
    SPLITS,
    DatasetInfo,
    PairRecord,
    read_info,
)
from e2gan.data.shards import read_all_metadata
from e2gan.errors import E2GANError
from e2gan.files import load_image


def check_images_exist(root: Path, records: list[PairRecord]) -> None:
    missing = [
        getattr(record, folder)
        for record in records
        for folder in IMAGE_FOLDERS
        if not (root / getattr(record, folder)).is_file()
    ]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise E2GANError(f"dataset {root} is missing {len(missing)} image file(s) listed in {METADATA_FILE}: {shown}")


class PairDataset:
    """A dataset on disk, validated on open. Images are read on demand."""

    def __init__(self, root: Path, info: DatasetInfo, records: list[PairRecord]) -> None:
        self.root = root
        self.info = info
        self.records = records
        self._by_id = {record.id: record for record in records}

    @classmethod
    def open(cls, root: str | os.PathLike) -> PairDataset:
        root = Path(root)
        if not root.exists():
            raise E2GANError(f"dataset folder not found: {root}")
        if not root.is_dir():
            raise E2GANError(f"dataset path is not a folder: {root}")
        if not (root / INFO_FILE).is_file():
            raise E2GANError(f"{root} is not an e2gan dataset (no {INFO_FILE})")
        info = read_info(root)
        metadata_path = root / METADATA_FILE
        if not metadata_path.is_file():
            raise E2GANError(f"{root} is not an e2gan dataset (no {METADATA_FILE})")
        records = read_all_metadata(root)
        check_images_exist(root, records)
        return cls(root, info, records)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[PairRecord]:
        return iter(self.records)

    @property
    def ids(self) -> list[str]:
        return [record.id for record in self.records]

    def get(self, pair_id: str) -> PairRecord:
        try:
            return self._by_id[pair_id]
        except KeyError:
            raise E2GANError(f"no pair {pair_id!r} in dataset {self.root}") from None

    def split(self, name: str) -> list[PairRecord]:
        if name not in SPLITS:
            raise E2GANError(f"split must be one of {SPLITS}, got {name!r}")
        return [record for record in self.records if record.split == name]

    def path_of(self, record: PairRecord, which: str) -> Path:
        if which not in IMAGE_FOLDERS:
            raise ValueError(f"which must be one of {IMAGE_FOLDERS}, got {which!r}")
        return self.root / getattr(record, which)

    def load_pair(self, record: PairRecord) -> tuple[Image.Image, Image.Image]:
        return load_image(self.path_of(record, "source")), load_image(self.path_of(record, "edited"))
