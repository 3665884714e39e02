"""What every section of a benchmark run shares: settings, data, the run store, the bases."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from e2gan.bench.data import BenchData
from e2gan.bench.settings import BenchSettings
from e2gan.bench.store import RunStore
from e2gan.checkpoint import load_generator
from e2gan.errors import E2GANError
from e2gan.files import sha256_file
from e2gan.paths import default_base_dir
from e2gan.teachers import resolve_builtin_concept
from e2gan.text import concept_key

SHIPPED_BASE = "shipped"


@dataclass
class BenchContext:
    settings: BenchSettings
    work_dir: Path
    data: BenchData
    store: RunStore
    report_dir: Path
    log: Callable[[str], None] = print
    bases: dict[str, Path] = field(default_factory=dict)  # name -> model folder
    notes: list[str] = field(default_factory=list)  # run-wide caveats for the report
    _base_hashes: dict[str, str] = field(default_factory=dict)

    def base_dir(self, name: str = SHIPPED_BASE) -> Path:
        if name == SHIPPED_BASE and name not in self.bases:
            self.bases[name] = Path(self.settings.base) if self.settings.base else default_base_dir()
        if name not in self.bases:
            raise E2GANError(f"no base model named {name!r} in this benchmark run")
        return self.bases[name]

    def base_key(self, name: str = SHIPPED_BASE) -> dict[str, str]:
        """What identifies a base in a cached run's key: its weights' sha256, so a base trained
        further in place is never judged by an older base's cached runs (and one moved or
        copied keeps its cache)."""
        if name not in self._base_hashes:
            self._base_hashes[name] = sha256_file(self.base_dir(name) / "model.safetensors")
        return {"base_sha256": self._base_hashes[name]}

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            self.log(f"note: {text}")

    def check_unseen(self, concept_names: list[str]) -> None:
        """Refuse to judge the base's transfer on a concept it was trained on."""
        seen = load_generator(self.base_dir()).info.get("training", {}).get("concepts", [])
        seen_keys = {concept_key(c) for c in seen}
        for name in concept_names:
            concept = resolve_builtin_concept(name)
            if concept_key(concept.prompt) in seen_keys:
                raise E2GANError(f"the base model was trained on {concept.name!r}; benchmark "
                                 f"concepts must be new to it (it saw: {', '.join(seen)})")
