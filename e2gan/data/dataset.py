"""The one on-disk format for a paired dataset (source image, edited image, prompt).

Every way of making a dataset (a teacher editing photos, importing your own pairs) writes this,
and training, evaluation and the studio read only this::

    <root>/
      dataset.json     what the dataset is (below); rewritten atomically
      metadata.jsonl   one JSON object per pair, one pair per line, appended as pairs are made
      source/<id>.png  the unedited image
      edited/<id>.png  the teacher's (or your) edit of it: the training target

``dataset.json``::

    {"format": "e2gan-pairs", "version": 1,
     "concept": "snowy",                  the name the distilled adapter will carry
     "prompt": "make it snowy",           the prompt of the concept
     "prompts": ["make it snowy", ...],   phrasings of the concept (for prompt embeddings)
     "teacher": "instruct-pix2pix",       what made the edits ("imported" for your own pairs)
     "teacher_params": {...},             its settings (guidance scales, steps, ...)
     "created": "2025-01-01T00:00:00+00:00",
     "complete": true,                    false while a generation is still running or was cut off
     "num_pairs": 120}

A line of ``metadata.jsonl``::

    {"id": "000042", "source": "source/000042.png", "edited": "edited/000042.png",
     "prompt": "make it snowy", "teacher": "instruct-pix2pix", "teacher_params": {...},
     "seed": 42, "scores": {"clip_direction": 0.21}, "split": "train", "origin": "coco:000000139"}

``split`` is ``"train"`` or ``"test"``; ``seed`` may be null (imported pairs); ``scores`` holds
whatever quality filters measured; ``origin`` says where the source image came from. Ids are
ASCII letters, digits, ``.``, ``_`` and ``-`` (they are file names on every operating system).
``metadata.jsonl`` is the truth about which pairs exist; ``num_pairs`` is a summary.

Sharded writing (several processes making one dataset, `e2gan.data.generate`): each process
appends its pairs to its own ``metadata-<shard>.jsonl`` (images have distinct ids, so no file is
written by two processes); readers take the union of ``metadata.jsonl`` and the shard files, and
`merge_metadata_shards` folds the shards into ``metadata.jsonl`` once the processes are done.

Crash safety: a pair's two PNGs are written (atomically) before its metadata line is appended and
fsynced, so a crash leaves at most orphan images or a truncated last line, never a line that points
at a missing file. Reopening with `PairDatasetWriter` repairs both; `PairDataset.open` ignores an
unfinished last line so a dataset can be read while a generation is running.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image

from e2gan.errors import E2GANError
from e2gan.files import atomic_save_image, atomic_write_bytes, atomic_write_json, load_image, to_rgb

FORMAT_NAME = "e2gan-pairs"
FORMAT_VERSION = 1
INFO_FILE = "dataset.json"
METADATA_FILE = "metadata.jsonl"
IMAGE_FOLDERS = ("source", "edited")
SPLITS = ("train", "test")
PARTIAL_SUFFIX = ".partial"
SHARD_METADATA_PREFIX = "metadata-"

_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class DatasetInfo:
    """The fields of ``dataset.json``."""

    concept: str
    prompt: str
    prompts: list[str] = field(default_factory=list)
    teacher: str = "imported"
    teacher_params: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=now_iso)
    complete: bool = False
    num_pairs: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_NAME, "version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Any, where: str = INFO_FILE) -> DatasetInfo:
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise E2GANError(f"{where} is not an e2gan dataset description (format != {FORMAT_NAME!r})")
        version = data.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise E2GANError(
                f"{where} has dataset format version {version!r}; this e2gan reads up to "
                f"version {FORMAT_VERSION} (upgrade e2gan)"
            )
        missing = [name for name in ("concept", "prompt") if not isinstance(data.get(name), str)]
        if missing:
            raise E2GANError(f"{where} lacks {', '.join(missing)}")
        # Unknown keys are ignored so a newer minor writer does not lock out an older reader.
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in data.items() if name in known})


@dataclass
class PairRecord:
    """One line of ``metadata.jsonl``: one (source, edited, prompt) pair."""

    id: str
    prompt: str
    source: str = ""
    edited: str = ""
    teacher: str = "imported"
    teacher_params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    split: str = "train"
    origin: str = ""

    def __post_init__(self) -> None:
        # The paths are fixed by the id; storing them anyway keeps each line self-describing.
        self.source = self.source or f"source/{self.id}.png"
        self.edited = self.edited or f"edited/{self.id}.png"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> PairRecord:
        if not isinstance(data, dict):
            raise E2GANError(f"{where}: expected a JSON object, got {type(data).__name__}")
        for name in ("id", "prompt"):
            if not isinstance(data.get(name), str):
                raise E2GANError(f"{where}: missing or non-text {name!r}")
        check_pair_id(data["id"], where)
        known = {f.name for f in dataclasses.fields(cls)}
        record = cls(**{name: value for name, value in data.items() if name in known})
        for folder in IMAGE_FOLDERS:
            # Paths other than the fixed layout could point outside the dataset folder.
            expected = f"{folder}/{record.id}.png"
            if getattr(record, folder) != expected:
                raise E2GANError(f"{where}: {folder} must be {expected!r}, got {getattr(record, folder)!r}")
        if record.split not in SPLITS:
            raise E2GANError(f"{where}: split must be one of {SPLITS}, got {record.split!r}")
        return record


def check_pair_id(pair_id: str, where: str = "pair id") -> str:
    if not isinstance(pair_id, str) or not _ID_PATTERN.fullmatch(pair_id):
        raise E2GANError(
            f"{where}: id {pair_id!r} must be 1-128 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return pair_id


def safe_pair_id(text: str) -> str:
    """A valid id made from arbitrary text (a user's file stem), e.g. 'Café photo (2)' -> 'Cafe_photo_2'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_text)
    cleaned = re.sub(r"^[^A-Za-z0-9]+", "", cleaned)[:100].rstrip("._-")
    return cleaned or "pair"


def unique_pair_ids(names: Iterable[str]) -> list[str]:
    """`safe_pair_id` of each name, suffixed -2, -3, ... where two would clash.

    Clashes are judged case-insensitively: on macOS and Windows 'A.png' and 'a.png' are one file.
    """
    taken: set[str] = set()
    result = []
    for name in names:
        base = safe_pair_id(name)
        candidate, counter = base, 2
        while candidate.casefold() in taken:
            candidate, counter = f"{base}-{counter}", counter + 1
        taken.add(candidate.casefold())
        result.append(candidate)
    return result


def assign_splits(ids: Iterable[str], test_fraction: float, seed: int = 0) -> dict[str, str]:
    """Deterministic train/test assignment with exactly round(n * test_fraction) test ids.

    Ids are ranked by a hash of (seed, id) rather than shuffled, so the result does not depend on
    the order ids are given in, and adding ids moves few existing ones between splits.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise E2GANError(f"test fraction must be in [0, 1), got {test_fraction}")
    unique_ids = list(dict.fromkeys(ids))
    num_test = round(len(unique_ids) * test_fraction)
    if test_fraction > 0 and len(unique_ids) >= 2:
        # A tiny dataset still gets one test pair to evaluate on, and keeps one to train on.
        num_test = min(max(num_test, 1), len(unique_ids) - 1)
    ranked = sorted(unique_ids, key=lambda pair_id: hashlib.sha256(f"{seed}:{pair_id}".encode()).hexdigest())
    test_ids = set(ranked[:num_test])
    return {pair_id: ("test" if pair_id in test_ids else "train") for pair_id in unique_ids}


def _read_info(root: Path) -> DatasetInfo:
    path = root / INFO_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise E2GANError(f"{path} is not valid JSON: {error}") from None
    return DatasetInfo.from_dict(data, where=str(path))


def _parse_metadata(data: bytes, path: Path) -> tuple[list[PairRecord], int]:
    """Records of the complete lines of metadata.jsonl, and the byte length those lines span.

    A last line without its newline is what a crash during the append leaves; it is left out and
    the caller decides whether to cut it off (the writer) or just ignore it (readers).
    """
    complete_length = data.rfind(b"\n") + 1
    records: list[PairRecord] = []
    seen: set[str] = set()
    for line_number, line in enumerate(data[:complete_length].split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        where = f"{path} line {line_number}"
        try:
            record = PairRecord.from_dict(json.loads(line.decode("utf-8")), where)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise E2GANError(f"{where} is not valid JSON: {error}") from None
        if record.id.casefold() in seen:
            raise E2GANError(f"{where}: pair id {record.id!r} appears twice")
        seen.add(record.id.casefold())
        records.append(record)
    return records, complete_length


def _metadata_line(record: PairRecord) -> bytes:
    return (json.dumps(record.to_dict(), sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def shard_metadata_paths(root: Path) -> list[Path]:
    """The per-process metadata files of a sharded generation, in shard order."""
    return sorted(Path(root).glob(f"{SHARD_METADATA_PREFIX}*.jsonl"))


def _read_all_metadata(root: Path) -> list[PairRecord]:
    """Records of metadata.jsonl followed by those of any shard files not already in it.

    A record found in both with identical content is what a merge cut off between writing
    metadata.jsonl and deleting the shard files leaves; it counts once.
    """
    path = root / METADATA_FILE
    records, _ = _parse_metadata(path.read_bytes(), path)
    by_id = {record.id.casefold(): record for record in records}
    for shard_path in shard_metadata_paths(root):
        for record in _parse_metadata(shard_path.read_bytes(), shard_path)[0]:
            known = by_id.get(record.id.casefold())
            if known is None:
                records.append(record)
                by_id[record.id.casefold()] = record
            elif known.to_dict() != record.to_dict():
                raise E2GANError(f"{shard_path}: pair id {record.id!r} is also in another metadata "
                                 "file, with different content")
    return records


def merge_metadata_shards(root: str | os.PathLike, order: list[str] | None = None) -> list[PairRecord]:
    """Fold the shard files into metadata.jsonl (atomically), ordering the records by their
    position in `order` (ids) when given, so a sharded run ends with the lines a single process
    would have written. Call only while no process is writing. Returns the records."""
    root = Path(root)
    shard_paths = shard_metadata_paths(root)
    records = _read_all_metadata(root)
    merged = records
    if order is not None:
        position = {pair_id: index for index, pair_id in enumerate(order)}
        merged = sorted(records, key=lambda record: position.get(record.id, len(position)))
    if shard_paths or [r.id for r in merged] != [r.id for r in records]:
        atomic_write_bytes(root / METADATA_FILE, b"".join(_metadata_line(r) for r in merged))
        for shard_path in shard_paths:
            shard_path.unlink()
    return merged


def _check_images_exist(root: Path, records: list[PairRecord]) -> None:
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
        info = _read_info(root)
        metadata_path = root / METADATA_FILE
        if not metadata_path.is_file():
            raise E2GANError(f"{root} is not an e2gan dataset (no {METADATA_FILE})")
        records = _read_all_metadata(root)
        _check_images_exist(root, records)
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
            self._metadata_path = self.root / f"{SHARD_METADATA_PREFIX}{int(shard):05d}.jsonl"
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
        existing = _read_info(self.root)
        for name in ("concept", "teacher"):
            if getattr(existing, name) != getattr(self.info, name):
                raise E2GANError(
                    f"dataset {self.root} was made with {name} {getattr(existing, name)!r}, not "
                    f"{getattr(self.info, name)!r}; use another folder or the same {name}"
                )
        self.info.created = existing.created

    def _truncate_unfinished_line(self) -> None:
        """Cut a last line left without its newline by a crash (safe to repeat)."""
        data = self._metadata_path.read_bytes() if self._metadata_path.is_file() else b""
        complete_length = data.rfind(b"\n") + 1
        if complete_length < len(data) or not self._metadata_path.is_file():
            with open(self._metadata_path, "ab") as handle:
                handle.truncate(complete_length)
                handle.flush()
                os.fsync(handle.fileno())

    def _open_shard(self) -> list[PairRecord]:
        if not (self.root / INFO_FILE).is_file():
            raise E2GANError(f"{self.root} is not an e2gan dataset yet; the main process creates it "
                             "before the shard writers open it")
        self._check_same_dataset()
        self._truncate_unfinished_line()
        return _read_all_metadata(self.root)

    def _reopen(self) -> list[PairRecord]:
        self._check_same_dataset()
        if (self.root / METADATA_FILE).is_file():
            merge_metadata_shards(self.root)  # shards left by a killed sharded run
        for folder in IMAGE_FOLDERS:
            (self.root / folder).mkdir(exist_ok=True)
        data = self._metadata_path.read_bytes() if self._metadata_path.is_file() else b""
        records, complete_length = _parse_metadata(data, self._metadata_path)
        if complete_length < len(data) or not self._metadata_path.is_file():
            # Truncating in place is safe to repeat: a crash here is repaired on the next reopen.
            with open(self._metadata_path, "ab") as handle:
                handle.truncate(complete_length)
                handle.flush()
                os.fsync(handle.fileno())
        self._remove_orphans(records)
        _check_images_exist(self.root, records)
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
        # One write call per line, then fsync: a crash leaves a whole line or an unterminated tail.
        with open(self._metadata_path, "ab") as handle:
            handle.write(_metadata_line(record))
            handle.flush()
            os.fsync(handle.fileno())
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
        _replace_folder(partial, out_root, overwrite)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _replace_folder(new: Path, target: Path, overwrite: bool) -> None:
    if not target.exists():
        os.replace(new, target)
        return
    if not overwrite:
        raise E2GANError(f"{target} already exists; choose another folder or overwrite it")
    # Directories cannot be swapped atomically; move the old one aside first so that at every
    # moment target is either the whole old dataset, absent, or the whole new one.
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


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
