"""Where each finished piece of a benchmark run is kept, so a killed run resumes where it stopped.

A piece (one training run with its evaluation, a base model, a profile) is identified by its
spec, a plain dict of everything that decides its outcome. Its result is stored as
`<work>/runs/<slug>-<hash of spec>/result.json`, written atomically after the piece is complete;
a rerun with the same spec reads it instead of training again, a changed spec (another budget,
seed or size) gets a new folder. The store remembers when each result it hands out was computed
(its file's time), so a report rendered from the cache says when its numbers were made, not
only when the file was written.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any, Callable

from e2gan.files import atomic_write_json

RESULT_FILE = "result.json"


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:10]


class RunStore:
    def __init__(self, work_dir: Path) -> None:
        self.root = Path(work_dir) / "runs"
        self.computed_at: list[float] = []  # epoch seconds of every result handed out

    def computed_between(self) -> tuple[str, str] | None:
        """When the earliest and the latest result handed out were computed (UTC), if any."""
        if not self.computed_at:
            return None
        stamp = lambda t: time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
        return stamp(min(self.computed_at)), stamp(max(self.computed_at))

    def folder(self, slug: str, spec: dict[str, Any]) -> Path:
        clean = re.sub(r"[^A-Za-z0-9._-]+", "-", slug).strip("-") or "run"
        return self.root / f"{clean}-{spec_hash(spec)}"

    def get(self, slug: str, spec: dict[str, Any]) -> dict[str, Any] | None:
        path = self.folder(slug, spec) / RESULT_FILE
        if not path.is_file():
            return None
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # cut off while written elsewhere: recompute
        return result if result.get("spec") == json.loads(json.dumps(spec, default=str)) else None

    def put(self, slug: str, spec: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        result = {"spec": spec, **result}
        atomic_write_json(self.folder(slug, spec) / RESULT_FILE, result)
        return json.loads(json.dumps(result, default=str))

    def cached(self, slug: str, spec: dict[str, Any],
               compute: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """The stored result of `spec`, else `compute(folder)` stored and returned."""
        found = self.get(slug, spec)
        if found is not None:
            self.computed_at.append((self.folder(slug, spec) / RESULT_FILE).stat().st_mtime)
            return {**found, "reused": True}
        folder = self.folder(slug, spec)
        folder.mkdir(parents=True, exist_ok=True)
        result = self.put(slug, spec, compute(folder))
        self.computed_at.append(time.time())
        return {**result, "reused": False}
