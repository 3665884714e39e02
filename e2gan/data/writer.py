"""Writing a paired dataset (format: `e2gan.data.pair_format`), pair by pair, crash-safely.

A pair's two PNGs are written (atomically) before its metadata line is appended and fsynced, so a
crash leaves at most orphan images or a truncated last line, never a line that points at a
missing file. Reopening with `PairDatasetWriter` repairs both.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from PIL import Image

from e2gan.data.pair_format import (
    IMAGE_FOLDERS,
    INFO_FILE,
    METADATA_FILE,
    SPLITS,
    DatasetInfo,
    PairRecord,
    append_line,
    check_pair_id,
    cut_unfinished_line,
    metadata_line,
    parse_metadata,
    read_info,
)
from e2gan.data.reader import PairDataset, check_images_exist
from e2gan.data.shards import merge_metadata_shards, read_all_metadata, shard_metadata_path
from e2gan.errors import E2GANError
from e2gan.files import atomic_save_image, atomic_write_bytes, atomic_write_json, to_rgb


class PairDatasetWriter:
    """Creates a dataset, or reopens one to append to it (resuming an interrupted generation).

    Reopening repairs what a crash can leave (an unfinished last metadata line, orphan images) and
    marks the dataset incomplete until `finalize`. The concept and teacher must match the existing
    dataset's; its prompt, prompts and teacher_params are updated from `info` (each pair keeps the
    ones it was made with in its own record). Leaving a ``with`` block does not finalize: a
    generation that was stopped early is not complete, and only its caller knows.

    With `shard` (an int), the writer is one of several processes adding to a dataset another
    process created: it appends to ``metadata-<shard>.jsonl`` only, never rewrites dataset.json
    and never deletes files (another process's images may not have their line yet).
    """

    def __init__(self, root: str | os.PathLike, info: DatasetInfo, shard: int | None = None) -> None:
        self.root = Path(root)
        self.info = dataclasses.replace(info, complete=False)
        self.shard = shard
        self._metadata_path = self.root / METADATA_FILE
        if shard is not None:
            self._metadata_path = shard_metadata_path(self.root, shard)
            self._records = self._open_shard()
        elif (self.root / INFO_FILE).is_file():
            self._records = self._reopen()
        elif self.root.exists() and (not self.root.is_dir() or any(self.root.iterdir())):
            raise E2GANError(f"{self.root} exists and is not an e2gan dataset; refusing to write into it")
        else:
            # dataset.json first: a crash right after it leaves a folder that reopens cleanly.
            self._records = []
            self._write_info()
            for folder in IMAGE_FOLDERS:
                (self.root / folder).mkdir(exist_ok=True)
            atomic_write_bytes(self._metadata_path, b"")
        self._ids_folded = {record.id.casefold() for record in self._records}
        self._write_info()

    def _check_same_dataset(self) -> None:
        existing = read_info(self.root)
        for name in ("concept", "teacher"):
            if getattr(existing, name) != getattr(self.info, name):
                raise E2GANError(
                    f"dataset {self.root} was made with {name} {getattr(existing, name)!r}, not "
                    f"{getattr(self.info, name)!r}; use another folder or the same {name}"
                )
        # The pairs of one dataset must be one teacher's one look: a resume by another version of
        # the teacher, or with the built-in teacher's other look, would mix two looks in it.
        for key in ("version", "look_seed"):
            before, now = existing.teacher_params.get(key), self.info.teacher_params.get(key)
            if before != now:
                raise E2GANError(
                    f"dataset {self.root} was made with teacher {key} {before!r}, not {now!r}; "
                    "its pairs would mix two looks: use another folder")
        self.info.created = existing.created

    def _open_shard(self) -> list[PairRecord]:
        if not (self.root / INFO_FILE).is_file():
            raise E2GANError(f"{self.root} is not an e2gan dataset yet; the main process creates it "
                             "before the shard writers open it")
        self._check_same_dataset()
        cut_unfinished_line(self._metadata_path)
        return read_all_metadata(self.root)

    def _reopen(self) -> list[PairRecord]:
        self._check_same_dataset()
        if (self.root / METADATA_FILE).is_file():
            merge_metadata_shards(self.root)  # shards left by a killed sharded run
        for folder in IMAGE_FOLDERS:
            (self.root / folder).mkdir(exist_ok=True)
        cut_unfinished_line(self._metadata_path)
        records, _ = parse_metadata(self._metadata_path.read_bytes(), self._metadata_path)
        self._remove_orphans(records)
        check_images_exist(self.root, records)
        return records

    def _remove_orphans(self, records: list[PairRecord]) -> None:
        """Delete images that no metadata line refers to, and temporaries of interrupted writes."""
        for path in self.root.glob(".*.tmp"):
            path.unlink()
        for folder in IMAGE_FOLDERS:
            referenced = {Path(getattr(record, folder)).name for record in records}
            for path in (self.root / folder).iterdir():
                is_temporary = path.name.startswith(".") and path.name.endswith(".tmp")
                is_orphan = path.suffix == ".png" and path.name not in referenced
                if path.is_file() and (is_temporary or is_orphan):
                    path.unlink()

    def _write_info(self) -> None:
        if self.shard is not None:
            return  # dataset.json belongs to the main process
        self.info.num_pairs = len(self._records)
        atomic_write_json(self.root / INFO_FILE, self.info.to_dict())

    @property
    def records(self) -> list[PairRecord]:
        return list(self._records)

    def existing_ids(self) -> set[str]:
        return {record.id for record in self._records}

    def __len__(self) -> int:
        return len(self._records)

    def add(
        self,
        pair_id: str,
        source_image: Image.Image,
        edited_image: Image.Image,
        *,
        prompt: str | None = None,
        seed: int | None = None,
        split: str = "train",
        origin: str = "",
        scores: dict[str, Any] | None = None,
        teacher: str | None = None,
        teacher_params: dict[str, Any] | None = None,
    ) -> PairRecord:
        """Store one pair. Prompt, teacher and teacher_params default to the dataset's."""
        record = self._new_record(pair_id, prompt, seed, split, origin, scores, teacher, teacher_params)
        atomic_save_image(self.root / record.source, to_rgb(source_image, f"source image of pair {pair_id}"))
        atomic_save_image(self.root / record.edited, to_rgb(edited_image, f"edited image of pair {pair_id}"))
        return self._append(record)

    def add_files(self, record: PairRecord, source_png: Path, edited_png: Path) -> PairRecord:
        """Store a pair whose PNGs already exist elsewhere (copied byte for byte, not re-encoded)."""
        record = self._new_record(
            record.id, record.prompt, record.seed, record.split, record.origin,
            record.scores, record.teacher, record.teacher_params,
        )
        atomic_write_bytes(self.root / record.source, Path(source_png).read_bytes())
        atomic_write_bytes(self.root / record.edited, Path(edited_png).read_bytes())
        return self._append(record)

    def _new_record(
        self,
        pair_id: str,
        prompt: str | None,
        seed: int | None,
        split: str,
        origin: str,
        scores: dict[str, Any] | None,
        teacher: str | None,
        teacher_params: dict[str, Any] | None,
    ) -> PairRecord:
        check_pair_id(pair_id)
        if pair_id.casefold() in self._ids_folded:
            raise E2GANError(f"pair {pair_id!r} is already in dataset {self.root}")
        if split not in SPLITS:
            raise E2GANError(f"split must be one of {SPLITS}, got {split!r}")
        return PairRecord(
            id=pair_id,
            prompt=self.info.prompt if prompt is None else prompt,
            teacher=self.info.teacher if teacher is None else teacher,
            teacher_params=dict(self.info.teacher_params if teacher_params is None else teacher_params),
            seed=seed,
            scores=dict(scores or {}),
            split=split,
            origin=origin,
        )

    def _append(self, record: PairRecord) -> PairRecord:
        append_line(self._metadata_path, metadata_line(record))
        self._records.append(record)
        self._ids_folded.add(record.id.casefold())
        return record

    def finalize(self) -> PairDataset:
        """Mark the dataset complete (dataset.json: complete=true, num_pairs) and open it."""
        if self.shard is not None:
            raise E2GANError("a shard writer cannot finalize; the main process merges and finalizes")
        self.info.complete = True
        self._write_info()
        return PairDataset.open(self.root)

    def __enter__(self) -> PairDatasetWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None
