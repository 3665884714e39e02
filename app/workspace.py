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
        owner.json                     who made it (a hash of the visitor), for the per-visitor bound
    <root>/.removed/<workspace id>.json  what became of a removed workspace that held work

Workspace ids are random and unguessable (the session holds its own id in a `gr.State`), and an
id is checked to be plain hex before it becomes a path, so a client can never reach another
session's folder or anything outside the root. Messages show an id shortened (`short_id`).

A workspace's folder time is its last use (every open touches it). `prune_workspaces` keeps the
workspaces within bounds that strangers' traffic cannot move: an age limit, the disk they fill
together, and a count per visitor that only removes that visitor's own. It never removes one
whose job is running, and it leaves a note for each one that held work, so its owner's page
says what happened instead of showing an empty workspace.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from e2gan.data.dataset import PairDataset
from e2gan.errors import E2GANError
from e2gan.files import atomic_write_json
from e2gan.limits import WORKSPACE_IDLE_HOURS
from e2gan.paths import REPOSITORY
from e2gan.text import concept_key

from app.settings import WORKSPACE_DISK_MB, WORKSPACES_PER_VISITOR

WORKSPACE_ENV = "E2GAN_WORKSPACE"
_ID_PATTERN = re.compile(r"[0-9a-f]{16}")
OWNER_FILE = "owner.json"
REMOVED_DIR = ".removed"  # under the root: one note per removed workspace that held work
NOTES_KEPT = 5000  # the newest notes; a note is a few hundred bytes
NOTE_DAYS = 30  # an address older than this has long been forgotten
SHORT_ID = 12  # characters a message shows of an id longer than a workspace id


def short_id(value: Any) -> str:
    """An id as a message shows it: whole up to a workspace id's 16 characters, else its first 12
    and "…" (a 5,000-character id typed into an address is not echoed back whole)."""
    text = " ".join(str(value).split())
    return text if len(text) <= 16 else text[:SHORT_ID] + "…"


def visitor_key(visitor: str) -> str:
    """What a workspace records of its visitor: a hash, so no address is written to disk."""
    return hashlib.sha256(visitor.encode("utf-8")).hexdigest()[:16]


class WorkspaceGone(E2GANError):
    """A well-formed id that names no workspace (any more); the message says what happened."""


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
    def create(cls, parent: str | os.PathLike | None = None,
               visitor: str | None = None) -> Workspace:
        """A new, empty workspace; `visitor` (who asked: "user:<name>" or "address:<ip>") is
        recorded, as a hash, for the per-visitor bound."""
        parent = Path(parent) if parent else default_workspace_root()
        while True:
            root = parent / secrets.token_hex(8)
            if not root.exists():
                break
        (root / "concepts").mkdir(parents=True)
        if visitor:
            atomic_write_json(root / OWNER_FILE, {"visitor": visitor_key(visitor)})
        return cls(root)

    @classmethod
    def open(cls, workspace_id: str, parent: str | os.PathLike | None = None) -> Workspace:
        if not isinstance(workspace_id, str) or not _ID_PATTERN.fullmatch(workspace_id):
            shown = short_id(workspace_id) if isinstance(workspace_id, str) else workspace_id
            raise E2GANError(f"not a workspace id: {shown!r}")
        parent = Path(parent) if parent else default_workspace_root()
        root = parent / workspace_id
        if not root.is_dir():
            raise WorkspaceGone(removal_notice(parent, workspace_id))
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


@dataclass
class _Survey:
    """What the clean-up weighs of one workspace."""

    root: Path
    used: float  # the folder's time: its last use
    disk_bytes: int
    empty: bool  # nothing made or uploaded yet
    concepts: list[str]
    adapters: list[str]  # the concepts with an adapter: the work its owner cares most about
    owner: str | None  # `visitor_key` of whoever made it; None before owners were recorded

    @property
    def id(self) -> str:
        return self.root.name


# A survey walks every file of a workspace; it is kept while the folder is neither touched (every
# open touches it, and only requests and jobs write into it) nor busy, for at most an hour.
_SURVEYS: dict[Path, tuple[float, float, bool, _Survey]] = {}  # root -> (mtime, when, busy, survey)
RESURVEY_SECONDS = 3600.0
SETTLE_SECONDS = 600.0  # a request may still be writing into a workspace it opened this long ago
_PRUNING = threading.Lock()


def _disk_bytes(info: os.stat_result) -> int:
    blocks = getattr(info, "st_blocks", None)  # what the file takes on disk (not on Windows)
    return blocks * 512 if blocks is not None else info.st_size


def _survey(root: Path, used: float) -> _Survey:
    disk_bytes, holds_files = 0, False
    for folder, subfolders, files in os.walk(root):
        for name in subfolders + files:
            try:
                disk_bytes += _disk_bytes(os.lstat(os.path.join(folder, name)))
            except FileNotFoundError:
                continue
        holds_files = holds_files or (bool(files) and folder != str(root))
    concepts = [ConceptFolder(path.parent) for path in sorted(root.glob("concepts/*/concept.json"))]
    try:
        owner = (read_json(root / OWNER_FILE, {}) or {}).get("visitor")
    except (E2GANError, AttributeError):
        owner = None
    return _Survey(root, used, disk_bytes, not holds_files, [folder.name for folder in concepts],
                   [folder.name for folder in concepts if folder.has_adapter()], owner)


def _surveyed(root: Path, busy: bool, clock: float) -> _Survey:
    used = root.stat().st_mtime
    kept = _SURVEYS.get(root)
    if kept is not None:
        mtime, when, was_busy, survey = kept
        if (mtime == used and not busy and not was_busy and used < when - SETTLE_SECONDS
                and clock - when < RESURVEY_SECONDS):
            return survey
    survey = _survey(root, used)
    _SURVEYS[root] = (used, clock, busy, survey)
    return survey


def _remove(survey: _Survey, why: str, now: float) -> bool:
    """Rename out of reach, leave a note if it held work, then delete."""
    doomed = survey.root.with_name(f".removing-{survey.id}")
    try:
        os.replace(survey.root, doomed)
    except OSError:  # removed by another process meanwhile
        return False
    _SURVEYS.pop(survey.root, None)
    if not survey.empty:
        notes = survey.root.parent / REMOVED_DIR
        notes.mkdir(exist_ok=True)
        atomic_write_json(notes / f"{survey.id}.json",
                          {"id": survey.id, "removed": now, "why": why,
                           "concepts": survey.concepts, "adapters": survey.adapters})
    shutil.rmtree(doomed, ignore_errors=True)
    return True


def _forget_old_notes(parent: Path, now: float) -> None:
    notes = []
    for note in (parent / REMOVED_DIR).glob("*.json"):
        try:
            notes.append((note.stat().st_mtime, note))
        except FileNotFoundError:
            continue
    notes.sort(reverse=True)
    for index, (written, note) in enumerate(notes):
        if index >= NOTES_KEPT or now - written > NOTE_DAYS * 86400:
            note.unlink(missing_ok=True)


def removal_notice(parent: str | os.PathLike, workspace_id: str) -> str:
    """What became of workspace `workspace_id`, in a sentence for its owner's page."""
    shown = short_id(workspace_id)
    try:
        note = read_json(Path(parent) / REMOVED_DIR / f"{workspace_id}.json")
    except E2GANError:
        note = None
    if not isinstance(note, dict) or not isinstance(note.get("removed"), (int, float)):
        return (f"there is no workspace {shown} on this studio: its id is mistyped, or it was "
                "removed while it held nothing yet")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(note["removed"]))
    adapters = set(note.get("adapters") or [])
    held = [f"{name} (with its adapter)" if name in adapters else name
            for name in note.get("concepts") or []]
    held_text = (f"it held the concept(s) {', '.join(held)}" if held
                 else "it held uploaded images")
    return f"workspace {shown} was removed on {when}, {note.get('why', '')}; {held_text}"


def prune_workspaces(parent: str | os.PathLike, busy: set[str] = frozenset(),
                     now: float | None = None, visitor: str | None = None) -> list[str]:
    """Keep the workspaces under `parent` within bounds that strangers' traffic cannot move, in
    this order, never touching one in `busy` (ids with a running job, and the caller's own):

    1. the age limit: a workspace unused for more than `E2GAN_WORKSPACE_IDLE_HOURS` goes;
    2. with `visitor` (who was just given a new workspace): past `E2GAN_WORKSPACES_PER_VISITOR`
       of that visitor's own, their surplus goes, empty ones first, then the least recently
       used; never one with an adapter, never anyone else's;
    3. the disk bound: while all workspaces together take more than `E2GAN_WORKSPACE_DISK_MB`,
       the least recently used go: empty ones, then ones without an adapter, then the others.

    Each removed workspace that held work leaves a note its owner's page shows
    (`removal_notice`). Returns the removed ids. A workspace is first renamed out of reach, so a
    request arriving meanwhile finds it gone (and is told so) rather than half-deleted."""
    parent = Path(parent)
    clock = time.time()
    now = clock if now is None else now
    with _PRUNING:
        surveys = []
        for folder in parent.iterdir() if parent.is_dir() else []:
            if _ID_PATTERN.fullmatch(folder.name) and folder.is_dir() and not folder.is_symlink():
                try:
                    surveys.append(_surveyed(folder, folder.name in busy, clock))
                except FileNotFoundError:  # removed by another process meanwhile
                    continue
        for gone in set(_SURVEYS) - {survey.root for survey in surveys}:
            _SURVEYS.pop(gone, None)
        removed: list[str] = []

        def remove(survey: _Survey, why: str) -> None:
            if _remove(survey, why, now):
                removed.append(survey.id)

        hours = WORKSPACE_IDLE_HOURS.value()
        live = []
        for survey in surveys:
            if survey.id not in busy and now - survey.used > hours * 3600:
                remove(survey, f"after more than {hours} hours unused, the studio's age limit "
                               f"({WORKSPACE_IDLE_HOURS.variable})")
            else:
                live.append(survey)

        if visitor:
            own = [survey for survey in live if survey.owner == visitor_key(visitor)]
            surplus = len(own) - WORKSPACES_PER_VISITOR.value()
            spare = sorted((survey for survey in own if survey.id not in busy and not survey.adapters),
                           key=lambda survey: (not survey.empty, survey.used))
            for survey in spare[:max(surplus, 0)]:
                remove(survey, f"when the same visitor opened more than "
                               f"{WORKSPACES_PER_VISITOR.value()} workspaces "
                               f"({WORKSPACES_PER_VISITOR.variable}): it was their least recently "
                               "used one without an adapter")
            live = [survey for survey in live if survey.id not in removed]

        limit_mb = WORKSPACE_DISK_MB.value()
        total = sum(survey.disk_bytes for survey in live)
        order = sorted((survey for survey in live if survey.id not in busy),
                       key=lambda survey: (0 if survey.empty else 2 if survey.adapters else 1,
                                           survey.used))
        for survey in order:
            if total <= limit_mb * 1024 * 1024:
                break
            remove(survey, f"when the studio's workspaces reached their disk limit of "
                           f"{limit_mb:,} MB ({WORKSPACE_DISK_MB.variable}): it was among the "
                           "least recently used")
            total -= survey.disk_bytes

        for leftover in parent.glob(".removing-*"):  # a clean-up killed midway
            shutil.rmtree(leftover, ignore_errors=True)
        if removed:
            _forget_old_notes(parent, clock)
    return removed
