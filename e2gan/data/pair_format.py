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
     "phrasings": {"description": "a snowy scene", "instruction": "make it snowy"},
                                          each phrasing the teachers were given, by kind
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

This module holds the two record types, the id and split rules, and the parsing of the files;
`e2gan.data.reader` opens a dataset, `e2gan.data.writer` writes one (with crash repair),
`e2gan.data.shards` lets several processes write one, `e2gan.data.subsets` writes whole new
datasets atomically. `e2gan.data.dataset` gathers their public names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from e2gan.errors import E2GANError

FORMAT_NAME = "e2gan-pairs"
FORMAT_VERSION = 1
INFO_FILE = "dataset.json"
METADATA_FILE = "metadata.jsonl"
IMAGE_FOLDERS = ("source", "edited")
SPLITS = ("train", "test")

_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class DatasetInfo:
    """The fields of ``dataset.json``."""

    concept: str
    prompt: str
    prompts: list[str] = field(default_factory=list)
    # The concept's phrasings by kind (`e2gan.teachers.PHRASINGS`) as the generation used them;
    # empty for imported pairs.
    phrasings: dict[str, str] = field(default_factory=dict)
    teacher: str = "imported"
    teacher_params: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=now_iso)
    complete: bool = False
    num_pairs: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_NAME, "version": FORMAT_VERSION, **dataclasses.asdict(self)}

    def teacher_models(self) -> list[str]:
        """The models (folders or repo ids) the dataset's diffusion teacher(s) loaded, from
        teacher_params as generation stores them: one teacher's, or each of several teachers'."""
        params = self.teacher_params
        each = params.get("teachers") if isinstance(params.get("teachers"), list) else [params]
        models = [entry.get("model") for entry in each if isinstance(entry, dict)]
        return list(dict.fromkeys(model for model in models if isinstance(model, str) and model))

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
        phrasings = data.get("phrasings", {})
        if not isinstance(phrasings, dict) or not all(
                isinstance(key, str) and isinstance(value, str) for key, value in phrasings.items()):
            raise E2GANError(f"{where}: phrasings must map each kind of phrasing to its text")
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


def read_json_file(path: Path) -> Any:
    """A JSON file's content; a damaged file is a one-line error naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise E2GANError(f"{path} is not valid JSON: {error}") from None


def read_info(root: Path) -> DatasetInfo:
    path = root / INFO_FILE
    return DatasetInfo.from_dict(read_json_file(path), where=str(path))


def parse_metadata(data: bytes, path: Path) -> tuple[list[PairRecord], int]:
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


def metadata_line(record: PairRecord) -> bytes:
    return (json.dumps(record.to_dict(), sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


# --- append-only JSON-lines files (metadata, and the generator's rejection log) ----------------

def append_line(path: Path, line: bytes) -> None:
    """Append one whole line and fsync: a crash leaves the line, or an unterminated tail of it."""
    with open(path, "ab") as handle:
        handle.write(line)  # one write call per line
        handle.flush()
        os.fsync(handle.fileno())


def cut_unfinished_line(path: Path) -> None:
    """Cut a last line a crash left without its newline (or the next append would join it), and
    create the file when missing. Truncating in place is safe to repeat after another crash."""
    data = path.read_bytes() if path.is_file() else b""
    complete_length = data.rfind(b"\n") + 1
    if complete_length < len(data) or not path.is_file():
        with open(path, "ab") as handle:
            handle.truncate(complete_length)
            handle.flush()
            os.fsync(handle.fileno())
