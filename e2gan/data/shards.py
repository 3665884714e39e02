"""Several processes writing one dataset (a sharded generation, `e2gan.data.generate`).

Each process appends its pairs to its own ``metadata-<shard>.jsonl`` (images have distinct ids, so
no file is written by two processes); readers take the union of ``metadata.jsonl`` and the shard
files, and `merge_metadata_shards` folds the shards into ``metadata.jsonl`` once the processes are
done. A merge cut off half way leaves records in both places; they count once.
"""

from __future__ import annotations

import os
from pathlib import Path

from e2gan.data.pair_format import METADATA_FILE, PairRecord, metadata_line, parse_metadata
from e2gan.errors import E2GANError
from e2gan.files import atomic_write_bytes

SHARD_METADATA_PREFIX = "metadata-"


def shard_metadata_path(root: Path, shard: int) -> Path:
    return Path(root) / f"{SHARD_METADATA_PREFIX}{int(shard):05d}.jsonl"


def shard_metadata_paths(root: Path) -> list[Path]:
    """The per-process metadata files of a sharded generation, in shard order."""
    return sorted(Path(root).glob(f"{SHARD_METADATA_PREFIX}*.jsonl"))


def read_all_metadata(root: Path) -> list[PairRecord]:
    """Records of metadata.jsonl followed by those of any shard files not already in it.

    A record found in both with identical content is what a merge cut off between writing
    metadata.jsonl and deleting the shard files leaves; it counts once.
    """
    path = root / METADATA_FILE
    records, _ = parse_metadata(path.read_bytes(), path)
    by_id = {record.id.casefold(): record for record in records}
    for shard_path in shard_metadata_paths(root):
        for record in parse_metadata(shard_path.read_bytes(), shard_path)[0]:
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
    records = read_all_metadata(root)
    merged = records
    if order is not None:
        merged = sorted(records, key=order_key(order, lambda record: record.id))
    if shard_paths or [r.id for r in merged] != [r.id for r in records]:
        atomic_write_bytes(root / METADATA_FILE, b"".join(metadata_line(r) for r in merged))
        for shard_path in shard_paths:
            shard_path.unlink()
    return merged


def order_key(order: list[str], id_of):
    """A sort key putting items in the order of their ids in `order` (unknown ids last, stable)."""
    position = {pair_id: index for index, pair_id in enumerate(order)}
    return lambda item: position.get(id_of(item), len(position))
