"""Where source images come from: a folder, a zip archive, the built-in photos (shipped with the
package, some held out whole for judging: `e2gan.data.builtin`) or the photo pool.

A source is a fixed, ordered list of ids plus a way to load any one of them, so building a dataset
can be resumed by skipping the ids already done, and nothing is decoded until it is asked for.
Every id is safe to use as a file name.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path, PurePosixPath

from PIL import Image

from e2gan.data.builtin import builtin_photos
from e2gan.data.image_source import ImageSource
from e2gan.data.photo_pool import open_pool
from e2gan.errors import E2GANError
from e2gan.files import IMAGE_SUFFIXES, list_images, load_image, read_image
from e2gan.limits import MAX_ARCHIVE_FILES, MAX_ARCHIVE_MEMBER_BYTES

DEFAULT_BUILTIN_COUNT = 200

__all__ = ["DEFAULT_BUILTIN_COUNT", "builtin_photos", "folder_source", "open_source", "zip_source"]


def _unique_ids(paths: list[str]) -> list[str]:
    """File-name-safe ids for relative paths, one per path, in the same order.

    The suffix is dropped ('cats/tom.jpg' -> 'cats__tom') since pairs are saved as PNG anyway.
    Ids that would clash, including only by letter case (one file on macOS and Windows), get the
    suffix back and then a counter.
    """
    ids: list[str] = []
    taken: set[str] = set()
    for path in paths:
        pure = PurePosixPath(path)
        parts = [*pure.parent.parts, pure.stem] if str(pure.parent) != "." else [pure.stem]
        base = "__".join(re.sub(r"[^A-Za-z0-9._-]+", "_", part).strip("._") or "image" for part in parts)
        base = base[:150]
        candidate = base
        if candidate.lower() in taken:
            candidate = f"{base}-{pure.suffix.lstrip('.').lower()}"
        counter = 2
        while candidate.lower() in taken:
            candidate = f"{base}-{counter}"
            counter += 1
        taken.add(candidate.lower())
        ids.append(candidate)
    return ids


def folder_source(path: str | Path) -> ImageSource:
    """The images directly inside a folder, sorted by file name."""
    folder = Path(path)
    files = list_images(folder)
    if not files:
        suffixes = ", ".join(IMAGE_SUFFIXES)
        raise E2GANError(f"no images in folder {folder} (looked for {suffixes})")
    by_id = dict(zip(_unique_ids([file.name for file in files]), files))
    return ImageSource(list(by_id), lambda source_id: load_image(by_id[source_id]), f"folder {folder}")


def _is_image_member(member: zipfile.ZipInfo) -> bool:
    parts = PurePosixPath(member.filename).parts
    return (
        not member.is_dir()
        and not any(part.startswith(".") or part == "__MACOSX" for part in parts)
        and PurePosixPath(member.filename).suffix.lower() in IMAGE_SUFFIXES
    )


def _read_member(archive: zipfile.ZipFile, member: str, name: str) -> bytes:
    """A member's bytes, read in chunks and stopped at the member limit: the header's size can
    lie, and a 1 MB zip can inflate to gigabytes."""
    limit = MAX_ARCHIVE_MEMBER_BYTES.value()
    with archive.open(member) as handle:
        data = handle.read(limit + 1)
    MAX_ARCHIVE_MEMBER_BYTES.check(len(data), f"{name} unpacks to more than "
                                              f"{MAX_ARCHIVE_MEMBER_BYTES.show(limit)}")
    return data


def zip_source(path: str | Path) -> ImageSource:
    """The images anywhere inside a .zip archive, sorted by their path in it."""
    archive_path = Path(path)
    try:
        with zipfile.ZipFile(archive_path) as archive:
            entries = archive.infolist()
            MAX_ARCHIVE_FILES.check(len(entries), f"zip file {archive_path} holds {len(entries):,} files")
            members = sorted(m.filename for m in entries if _is_image_member(m))
    except FileNotFoundError:
        raise E2GANError(f"zip file not found: {archive_path}") from None
    except (zipfile.BadZipFile, OSError) as error:
        raise E2GANError(f"cannot read zip file {archive_path}: {error}") from None
    if not members:
        raise E2GANError(f"no images in zip file {archive_path}")
    by_id = dict(zip(_unique_ids(members), members))

    def load(source_id: str) -> Image.Image:
        member = by_id[source_id]
        name = f"{archive_path}:{member}"
        # Reopened per image so a source holds no file handle and can cross process boundaries.
        try:
            with zipfile.ZipFile(archive_path) as archive:
                data = _read_member(archive, member, name)
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as error:
            raise E2GANError(f"cannot read image {name}: {error}") from None
        return read_image(io.BytesIO(data), name)

    return ImageSource(list(by_id), load, f"zip file {archive_path}")


def open_source(spec: str, count: int | None = None, size: int = 256, seed: int = 0) -> ImageSource:
    """'builtin', 'pool:DOMAIN[:DATA_FOLDER]', a folder or a .zip file, truncated to `count`.

    `size` and `seed` shape the built-in and photo-pool crops only (see `e2gan.data.builtin` and
    `e2gan.data.photo_pool`); folder and zip images keep their own size.
    """
    if count is not None and count < 1:
        raise E2GANError(f"image count must be at least 1, got {count}")
    if spec == "builtin":
        return builtin_photos(count or DEFAULT_BUILTIN_COUNT, size=size, seed=seed)
    if spec.startswith("pool:"):
        return open_pool(spec, count=count, size=size, seed=seed)
    path = Path(spec).expanduser()
    if path.is_dir():
        return folder_source(path).take(count)
    if path.is_file() and path.suffix.lower() == ".zip":
        return zip_source(path).take(count)
    if path.is_file():
        raise E2GANError(f"image source must be a folder, a .zip file or 'builtin' "
                         f"(or 'pool:scenes|faces|all'): {spec}")
    raise E2GANError(f"image source not found: {spec}")
