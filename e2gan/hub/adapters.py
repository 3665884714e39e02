"""Concept adapters by Hub id: an adapter reference (`resolve_adapter`) is a local path when that
file exists, else a Hub id, `org/name` (the repo's one adapter) or `org/name/file.safetensors`:
the Hugging Face cache first, then a download (`e2gan.hub.download.download_snapshot`: progress,
cancel, one-line errors). Publishing one is `e2gan.hub.publish`.

    EditPipeline.from_pretrained("checkpoints/base").load_adapter("you/winter")
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from e2gan.checkpoint import is_adapter_file
from e2gan.errors import E2GANError
from e2gan.hub.download import cached_snapshot, download_snapshot

_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"


def hub_reference(text: str) -> tuple[str, str | None] | None:
    """(repo id, file or None) when `text` reads as `org/name` or `org/name/file.safetensors`."""
    parts = str(text).strip().split("/")
    if len(parts) < 2 or not all(re.fullmatch(_PART, part) and ".." not in part for part in parts):
        return None
    if len(parts) == 2 and not parts[1].endswith(".safetensors"):
        return "/".join(parts), None
    if len(parts) > 2 and parts[-1].endswith(".safetensors"):
        return "/".join(parts[:2]), "/".join(parts[2:])
    return None


def resolve_adapter(reference: str | os.PathLike) -> Path:
    """The adapter file a reference names: a local file when it exists (a `Path` is always
    local), else the file of a Hub id, from the Hugging Face cache or downloaded into it."""
    path = Path(reference).expanduser()
    parsed = None if isinstance(reference, Path) or path.exists() else hub_reference(str(reference))
    if parsed is None:
        return path
    repo_id, filename = parsed
    patterns = [filename or "*.safetensors"]
    try:
        folder = cached_snapshot(repo_id, patterns) or download_snapshot(repo_id,
                                                                        allow_patterns=patterns)
    except E2GANError as error:
        raise E2GANError(f"no adapter file {reference} here, and {error}") from None
    if folder is None:
        raise E2GANError(f"{repo_id} on the Hub has no {filename or '.safetensors file'}")
    return _adapter_in(folder, repo_id, filename)


def _adapter_in(folder: Path, repo_id: str, filename: str | None) -> Path:
    if filename:
        return folder / filename
    found = sorted(p for p in folder.rglob("*.safetensors") if is_adapter_file(p))
    if not found:
        raise E2GANError(f"{repo_id} on the Hub holds no e2gan adapter")
    if len(found) > 1:
        names = ", ".join(p.relative_to(folder).as_posix() for p in found)
        raise E2GANError(f"{repo_id} holds several adapters ({names}): name one as "
                         f"{repo_id}/<file>")
    return found[0]
