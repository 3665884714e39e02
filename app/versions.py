"""Versions of a concept's adapter: a new fine-tune never overwrites a finished one silently.

    concepts/<slug>/<slug>.safetensors, training.json, samples.png   the current version
    concepts/<slug>/versions/v<N>/...                                  earlier ones, same files

Starting a fresh fine-tune (not "continue") first copies the current adapter, its record and its
samples to the next `versions/v<N>`; "continue" extends the current version. Any version can be
made current again (`restore`); the one it replaces is kept as a version too. Versions are ranked
by their held-out PSNR against the teacher (the metric every finished fine-tune records).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from e2gan.errors import E2GANError

from app.workspace import ConceptFolder, read_json

CURRENT = "current"
_VERSION = re.compile(r"v(\d+)")


def _files(folder: ConceptFolder) -> list[Path]:
    return [folder.adapter_file, folder.training_file, folder.root / "samples.png"]


def _archived(folder: ConceptFolder) -> list[Path]:
    versions = folder.root / "versions"
    found = [p for p in versions.iterdir() if _VERSION.fullmatch(p.name)] if versions.is_dir() else []
    return sorted(found, key=lambda p: int(p.name[1:]))


def archive_current(folder: ConceptFolder) -> str | None:
    """Copy the current version to the next `versions/v<N>`; its name, or None without one.
    Copied into a hidden folder first and then renamed, so a crash leaves no half version."""
    if not folder.has_adapter():
        return None
    archived = _archived(folder)
    name = f"v{int(archived[-1].name[1:]) + 1 if archived else 1}"
    target = folder.root / "versions" / name
    partial = target.with_name(f".{name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for path in _files(folder):
        if path.is_file():
            shutil.copy2(path, partial / path.name)
    partial.rename(target)
    return name


def _row(name: str, adapter: Path, training: dict[str, Any] | None) -> dict[str, Any]:
    training = training or {}
    metrics = (training.get("metrics") or [{}])[0]
    return {"version": name, "psnr": metrics.get("psnr"), "mae": metrics.get("mae"),
            "fid": metrics.get("fid"), "steps": training.get("steps"),
            "train_seconds": training.get("train_seconds"), "finished": training.get("finished"),
            "adapter": str(adapter)}


def list_versions(folder: ConceptFolder) -> list[dict[str, Any]]:
    """The current version first, then the archived ones, newest first; `best` marks the one
    with the highest held-out PSNR (versions without metrics are not ranked)."""
    rows = []
    if folder.has_adapter():
        rows.append(_row(CURRENT, folder.adapter_file, folder.training()))
    for path in reversed(_archived(folder)):
        rows.append(_row(path.name, path / folder.adapter_file.name, read_json(path / "training.json")))
    scored = [row for row in rows if isinstance(row["psnr"], (int, float))]
    best = max(scored, key=lambda row: row["psnr"], default=None)
    for row in rows:
        row["best"] = row is best
    return rows


def better_version(folder: ConceptFolder) -> dict[str, Any] | None:
    """An archived version that scores higher than the current one, if any."""
    rows = list_versions(folder)
    current = next((row for row in rows if row["version"] == CURRENT), None)
    best = next((row for row in rows if row["best"]), None)
    if current is None or best is None or best is current:
        return None
    return best if current["psnr"] is None or best["psnr"] > current["psnr"] else None


def restore(folder: ConceptFolder, version: str) -> str | None:
    """Make `version` current; the version it replaces is archived first (its name returned).
    The resumable training state belonged to the replaced run, so it is removed: a fine-tune
    after a restore starts afresh (and archives the restored version first)."""
    source = folder.root / "versions" / version
    if not _VERSION.fullmatch(version or "") or not (source / folder.adapter_file.name).is_file():
        names = ", ".join(path.name for path in _archived(folder)) or "none"
        raise E2GANError(f"no version {version!r} of concept {folder.name!r} (versions: {names})")
    kept = archive_current(folder)
    for path in _files(folder):
        copied = source / path.name
        if copied.is_file():
            partial = path.with_name(f".{path.name}.restoring")
            shutil.copy2(copied, partial)
            partial.replace(path)
        else:
            path.unlink(missing_ok=True)
    shutil.rmtree(folder.adapter_file.with_name(folder.adapter_file.name + ".training_state"),
                  ignore_errors=True)
    return kept
