"""Per-session workspaces: every browser session (or API client) works in its own folder.

    <root>/<workspace id>/
        workspace.json                 which concept is current
        uploads/                       source images a user uploaded (zip or files)
        concepts/<slug>/concept.json   the concept: name, prompt, teacher and its knobs, source
        concepts/<slug>/pairs/         the paired dataset (e2gan's on-disk format, resumable)
        concepts/<slug>/selection.json the curated subset (chosen ids, clusters, dropped ids)
        concepts/<slug>/<slug>.safetensors  the adapter (+ its resumable training state)
        concepts/<slug>/training.json  loss history, settings, metrics of the last fine-tune
        concepts/<slug>/exports/       files offered for download

Workspace ids are random and unguessable (the session holds its own id in a `gr.State`), and an
id is checked to be plain hex before it becomes a path, so a client can never reach another
session's folder or anything outside the root.

A workspace's folder time is its last use (every open touches it). `prune_workspaces` removes
the ones idle too long and the least recently used past the count limit (`e2gan.limits`), never
one whose job is running.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from e2gan.data.dataset import PairDataset
from e2gan.errors import E2GANError
from e2gan.files import atomic_write_json
from e2gan.limits import MAX_WORKSPACES, WORKSPACE_IDLE_HOURS
from e2gan.paths import REPOSITORY
from e2gan.text import concept_key

WORKSPACE_ENV = "E2GAN_WORKSPACE"
_ID_PATTERN = re.compile(r"[0-9a-f]{16}")


def default_workspace_root() -> Path:
    """$E2GAN_WORKSPACE, else the repository's git-ignored `workspace/` folder."""
    return Path(os.environ.get(WORKSPACE_ENV, REPOSITORY / "workspace"))


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise E2GANError(f"{path} is not valid JSON: {error}") from None


@dataclass
class ConceptSpec:
    """What a concept is made from; saved as concept.json beside its pairs."""

    name: str  # slug: folder and adapter name
    prompt: str  # the description: what the text conditioning (and img2img teachers) are given
    teacher: str = "builtin"
    teacher_params: dict[str, Any] = field(default_factory=dict)
    source: str = "builtin"  # 'builtin', or a folder / zip path
    seed: int = 0
    # The concept's phrasings by kind ({"description", "instruction"}): a teacher is given its own
    # (`app.concepts.teacher_prompt`); empty in a concept.json from before there were two.
    phrasings: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConceptSpec:
        known = cls.__dataclass_fields__
        return cls(**{key: value for key, value in data.items() if key in known})


class ConceptFolder:
    """One concept's files inside a workspace."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = root.name

    @property
    def spec_file(self) -> Path:
        return self.root / "concept.json"

    @property
    def pairs_dir(self) -> Path:
        return self.root / "pairs"

    @property
    def selection_file(self) -> Path:
        return self.root / "selection.json"

    @property
    def adapter_file(self) -> Path:
        return self.root / f"{self.name}.safetensors"

    @property
    def training_file(self) -> Path:
        return self.root / "training.json"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    def spec(self) -> ConceptSpec:
        data = read_json(self.spec_file)
        if data is None:
            raise E2GANError(f"concept {self.name!r} has no concept.json")
        return ConceptSpec.from_dict(data)

    def save_spec(self, spec: ConceptSpec) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.spec_file, asdict(spec))

    def dataset(self) -> PairDataset | None:
        """The concept's pairs so far (also while a generation is still running), or None."""
        if not (self.pairs_dir / "dataset.json").is_file():
            return None
        return PairDataset.open(self.pairs_dir)

    def require_dataset(self) -> PairDataset:
        dataset = self.dataset()
        if dataset is None or len(dataset) == 0:
            raise E2GANError(f"concept {self.name!r} has no pairs yet: generate pairs first")
        return dataset

    def selection(self) -> dict[str, Any] | None:
        return read_json(self.selection_file)

    def training(self) -> dict[str, Any] | None:
        return read_json(self.training_file)

    def has_adapter(self) -> bool:
        return self.adapter_file.is_file()


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.id = root.name

    @classmethod
    def create(cls, parent: str | os.PathLike | None = None) -> Workspace:
        parent = Path(parent) if parent else default_workspace_root()
        while True:
            root = parent / secrets.token_hex(8)
            if not root.exists():
                break
        (root / "concepts").mkdir(parents=True)
        return cls(root)

    @classmethod
    def open(cls, workspace_id: str, parent: str | os.PathLike | None = None) -> Workspace:
        if not isinstance(workspace_id, str) or not _ID_PATTERN.fullmatch(workspace_id):
            raise E2GANError(f"not a workspace id: {workspace_id!r}")
        root = (Path(parent) if parent else default_workspace_root()) / workspace_id
        if not root.is_dir():
            raise E2GANError(f"workspace {workspace_id} no longer exists; reload the page")
        os.utime(root)  # last use, for the clean-up
        return cls(root)

    @property
    def uploads_dir(self) -> Path:
        return self.root / "uploads"

    def concept(self, name: str) -> ConceptFolder:
        slug = concept_key(name)
        return ConceptFolder(self.root / "concepts" / slug)

    def concepts(self) -> list[ConceptFolder]:
        folders = sorted((self.root / "concepts").glob("*/concept.json"))
        return [ConceptFolder(path.parent) for path in folders]

    def current_name(self) -> str | None:
        return (read_json(self.root / "workspace.json", {}) or {}).get("current")

    def set_current(self, name: str) -> None:
        atomic_write_json(self.root / "workspace.json", {"current": name})

    def current(self) -> ConceptFolder:
        """The concept the user is working on; every step after Concept needs one."""
        name = self.current_name()
        if not name or not self.concept(name).spec_file.is_file():
            raise E2GANError("no concept yet: choose one on the Concept step first")
        return self.concept(name)


def prune_workspaces(parent: str | os.PathLike, busy: set[str] = frozenset(),
                     now: float | None = None) -> list[str]:
    """Remove the workspaces idle for more than `E2GAN_WORKSPACE_IDLE_HOURS`, then the least
    recently used past `E2GAN_MAX_WORKSPACES`; never one in `busy` (ids with a running job).
    Returns the removed ids. A workspace is first renamed out of reach, so a request arriving
    meanwhile finds it gone (and gets a new one) rather than half-deleted."""
    parent = Path(parent)
    now = time.time() if now is None else now
    idle_seconds = WORKSPACE_IDLE_HOURS.value() * 3600
    keep = MAX_WORKSPACES.value()
    folders = []
    for folder in parent.iterdir() if parent.is_dir() else []:
        if _ID_PATTERN.fullmatch(folder.name) and folder.is_dir() and not folder.is_symlink():
            try:
                folders.append((folder.stat().st_mtime, folder))
            except FileNotFoundError:  # removed by another process meanwhile
                continue
    folders.sort(reverse=True)  # most recently used first
    removed = []
    for index, (used, folder) in enumerate(folders):
        if folder.name in busy or (now - used <= idle_seconds and index < keep):
            continue
        doomed = folder.with_name(f".removing-{folder.name}")
        try:
            os.replace(folder, doomed)
        except OSError:
            continue
        shutil.rmtree(doomed, ignore_errors=True)
        removed.append(folder.name)
    for leftover in parent.glob(".removing-*"):  # a clean-up killed midway
        shutil.rmtree(leftover, ignore_errors=True)
    return removed
