"""The built-in photos' list: what `photos/attribution.json` says of each photo (title, author,
licence, whether it is held out), and the credits its licences ask for where a photo is shown.

Apart from `e2gan.data.builtin` (which cuts crops from the photos) so that the base's photo pool
can leave the held-out photos out without importing the crop maker, which imports the pool.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from e2gan.errors import E2GANError

# Package data (pyproject.toml's [tool.setuptools.package-data]), beside this module.
BUILTIN_PHOTOS = Path(__file__).resolve().parent / "photos"
ATTRIBUTION_FILE = "attribution.json"
ORIGIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class BuiltinPhoto:
    """One shipped photo and what attribution.json says about it."""

    id: str
    path: Path
    title: str
    author: str
    licence: str
    held_out: bool
    licence_url: str = ""

    @property
    def credit(self) -> str:
        """The attribution its licence asks for where the photo (or a crop or edit of it) is shown."""
        licence = f"[{self.licence}]({self.licence_url})" if self.licence_url else self.licence
        return f"“{self.title}” by {self.author}, {licence}"


@lru_cache(maxsize=4)
def shipped_photos(folder: Path = BUILTIN_PHOTOS) -> tuple[BuiltinPhoto, ...]:
    """Every photo listed in `folder`'s attribution.json, in its order."""
    manifest = folder / ATTRIBUTION_FILE
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))["photos"]
        photos = tuple(BuiltinPhoto(entry["id"], folder / entry["file"], entry["title"],
                                    entry["author"], entry["licence"], bool(entry["held_out"]),
                                    entry.get("licence_url", ""))
                       for entry in entries)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise E2GANError(f"the built-in photos' list {manifest} is missing or damaged ({error}); "
                         "reinstall the package") from None
    missing = [photo.path.name for photo in photos if not photo.path.is_file()]
    if missing:
        raise E2GANError(f"built-in photos missing from {folder}: {', '.join(missing[:5])}")
    return photos


def credits(origins: Iterable[str], folder: Path = BUILTIN_PHOTOS) -> list[str]:
    """The credits of the built-in photos among pairs' `origins` (`builtin:<photo id>`), each once,
    in order; other origins (a user's photos, a dataset's) name nothing to credit."""
    by_id = {photo.id: photo for photo in shipped_photos(folder)}
    wanted = dict.fromkeys(origin.removeprefix(ORIGIN_PREFIX) for origin in origins
                           if origin.startswith(ORIGIN_PREFIX))
    return [by_id[photo_id].credit for photo_id in wanted if photo_id in by_id]


def photo_sets(folder: Path = BUILTIN_PHOTOS) -> tuple[list[BuiltinPhoto], list[BuiltinPhoto]]:
    """(training photos, held-out photos)."""
    photos = shipped_photos(folder)
    return [p for p in photos if not p.held_out], [p for p in photos if p.held_out]
