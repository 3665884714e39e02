"""Atomic file writes and careful image reading.

Every file the project writes goes through here: written to a temporary name in the same folder,
flushed, then renamed over the target, so an interrupted run leaves either the old file or the new
one, never half of one.

Every user image is opened here too (`open_image`), so the pixel limit is checked from the
header before any pixel is decoded: a 290 KB PNG can declare 10000x10000 pixels.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import re
import tempfile
import warnings
from pathlib import Path
from typing import IO, Any, NoReturn

import numpy as np
from PIL import Image, UnidentifiedImageError

from e2gan.errors import E2GANError
from e2gan.limits import MAX_IMAGE_PIXELS

# Smaller than this and a 7x7 reflect-padded stem plus three stride-2 convs has nothing to see.
MIN_IMAGE_SIDE = 16
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically. A full disk or an unwritable place is an `OSError`
    naming `path` (not the temporary name), which the CLI prints as one line."""
    path = Path(path)
    if path.is_dir():
        raise E2GANError(f"{path} is a folder; give a file name to write")
    existing = next(parent for parent in path.parents if parent.exists())
    if not existing.is_dir():
        raise E2GANError(f"cannot write {path}: {existing} is a file, not a folder")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno is not None:
            # OSError(errno, ...) keeps the subclass (PermissionError, ...) callers may catch.
            raise OSError(error.errno, f"cannot write {path}: {error.strerror}") from None
        raise
    return path


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete what interrupted `atomic_write_bytes` calls left for `path` (a file: its
    `.NAME.*.tmp` siblings; a folder: every `.*.tmp` directly in it). Only the one writer of
    `path` may call this, before it writes: a live writer's temporary looks the same."""
    path = Path(path)
    found = list(path.glob(".*.tmp")) if path.is_dir() else list(path.parent.glob(f".{path.name}.*.tmp"))
    for temporary in found:
        temporary.unlink(missing_ok=True)
    return found


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_save_image(path: str | os.PathLike, image: Image.Image) -> Path:
    """Save as PNG (lossless: the teacher's edit is the training target)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def to_rgb(image: Image.Image, name: str = "image") -> Image.Image:
    """Any PIL image (L, LA, P, RGBA, I;16, I, F, CMYK, ...) as 8-bit RGB.

    16-bit and float images are rescaled by their own range rather than clipped, so a 16-bit
    photo does not come out white. Alpha is composited over white, the convention of image viewers.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        image = Image.fromarray(((array - low) * scale).round().astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    image = image.convert("RGB")
    if min(image.size) < MIN_IMAGE_SIDE:
        raise E2GANError(
            f"{name} is {image.size[0]}x{image.size[1]} pixels; images need at least "
            f"{MIN_IMAGE_SIDE} pixels on each side"
        )
    return image


# What PIL raises for a file that is not an image, or is truncated or damaged.
IMAGE_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)


def check_image_pixels(size: tuple[int, int], name: str) -> None:
    """Refuse an image whose decoded size is over `E2GAN_MAX_IMAGE_PIXELS`."""
    width, height = size
    MAX_IMAGE_PIXELS.check(width * height, f"image {name} is {width}x{height} "
                                           f"({MAX_IMAGE_PIXELS.show(width * height)})")


def _raise_pil_bomb_error(error: Image.DecompressionBombError, name: str) -> NoReturn:
    # PIL's own guard (over twice Image.MAX_IMAGE_PIXELS) fires inside Image.open, before the
    # size is ours to see; its message still has the pixel count.
    found = re.search(r"\((\d+) pixels\)", str(error))
    amount = int(found.group(1)) if found else 2 * (Image.MAX_IMAGE_PIXELS or 0) + 1
    MAX_IMAGE_PIXELS.check(amount, f"image {name} has {MAX_IMAGE_PIXELS.show(amount)}")
    raise E2GANError(f"cannot read image {name}: {error}") from None


def open_image(source: str | os.PathLike | IO[bytes], name: str) -> Image.Image:
    """Open an image lazily (only its header is read) and refuse it when its decoded size is over
    the pixel limit, before anything is decoded. The caller decodes it (`load`, `draft`,
    `to_rgb`) and closes it (`with open_image(...) as image:`)."""
    limit = MAX_IMAGE_PIXELS.value()
    # PIL refuses over twice its own limit before we see the size; a raised E2GAN limit must
    # win over it (PIL's limit is the process's to set, and this process is e2gan's).
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            # PIL warns past its own limit; ours is checked below, and a warning is no answer.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(source)
    except Image.DecompressionBombError as error:
        _raise_pil_bomb_error(error, name)
    except FileNotFoundError:
        raise E2GANError(f"image not found: {name}") from None
    except IMAGE_READ_ERRORS as error:
        raise E2GANError(f"cannot read image {name}: {error}") from None
    try:
        check_image_pixels(opened.size, name)
    except E2GANError:
        opened.close()
        raise
    return opened


def read_image(source: str | os.PathLike | IO[bytes], name: str) -> Image.Image:
    """Open (see `open_image`), decode and convert an image to RGB, or raise `E2GANError`."""
    with open_image(source, name) as opened:
        try:
            opened.load()
        except IMAGE_READ_ERRORS as error:
            raise E2GANError(f"cannot read image {name}: {error}") from None
        return to_rgb(opened, name=name)


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file as RGB, or raise `E2GANError` naming the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise E2GANError(f"image not found: {path}")
    if not path.is_file():
        raise E2GANError(f"not a file: {path}")
    return read_image(path, str(path))


def is_within(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Whether `path`, symlinks resolved, is `root` or lies under it."""
    base, resolved = Path(root).resolve(), Path(path).resolve()
    return resolved == base or base in resolved.parents


def inside(root: str | os.PathLike, path: str | os.PathLike, what: str = "file") -> Path:
    """`path` with symlinks resolved, refused unless it stays inside `root`.

    Names written by somebody else (a prompts file, an archive, a shared folder) must not reach
    files outside the folder the user pointed at: not by `../`, an absolute name, or a symlink.
    """
    resolved = Path(path).resolve()
    if not is_within(root, resolved):
        raise E2GANError(f"{what} {path} points outside {root} (to {resolved}); "
                         "only files inside it are read")
    return resolved


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in `folder`, sorted by name (hidden files skipped). A symlink that
    leads out of the folder is refused (see `inside`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise E2GANError(f"folder not found: {folder}")
    images = sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    for image in images:
        if image.is_symlink():
            inside(folder, image, "image")
    return images


def replace_folder(new: Path, target: Path, overwrite: bool) -> None:
    """Move the folder `new` to `target`, replacing an existing target only with `overwrite`."""
    if not target.exists():
        os.replace(new, target)
        return
    if not overwrite:
        raise E2GANError(f"{target} already exists; choose another folder or overwrite it")
    # Directories cannot be swapped atomically; move the old one aside first so that at every
    # moment target is either the whole old dataset, absent, or the whole new one.
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)
