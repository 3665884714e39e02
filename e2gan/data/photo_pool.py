"""The photo pool for training the shared base: many varied photos in both benchmark domains.

Three kinds of source, each recorded with its count, its terms and where it came from, so a model
card can name them (`PhotoPool.provenance`):

- the benchmark photos' TRAINING parts, read in place from a folder the user names (never copied
  into the project): BSDS500 scenes `train_*` and `val_*`, faces `face_0001` ... `face_1245`. Their
  judging parts (`test_*` scenes, faces from `face_1246` on) are held-out evaluation data: they are
  never listed, and loading one is refused (`JudgingPhotoRefused`).
- photographic wallpapers from Debian packages (`WALLPAPER_APT_COMMAND` installs them offline
  from the distribution's mirror); only the ones that are photographs, picked by hand below.
- the colour photos that ship inside scikit-image and scikit-learn (always there).

A source that is absent is kept in the provenance with a note and contributes no photos; it is
never an error, so the pool works on a machine that has only the packaged photos.

The pool's training images are square crops, one per index, deterministic for (seed, index) like
`builtin_photos`: scenes are random crops of 50-100% of the shorter side, faces are nearly whole
(85-100%) since the photo is already a loose face crop; both are flipped half the time.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from e2gan.data.attribution import photo_sets
from e2gan.data.image_source import ImageSource, packaged_photos
from e2gan.errors import E2GANError
from e2gan.files import IMAGE_READ_ERRORS, IMAGE_SUFFIXES, MIN_IMAGE_SIDE, open_image, to_rgb
from e2gan.paths import REPOSITORY

SCENES, FACES = "scenes", "faces"
DOMAINS = (SCENES, FACES)
DATA_ENV = "E2GAN_PHOTO_DATA"
WALLPAPER_ROOT_ENV = "E2GAN_WALLPAPER_ROOT"

# The benchmark README's split, by file name: everything else in its folders is judging data or
# unknown, and the pool only ever takes names it knows to be training photos.
SCENE_TRAINING_PREFIXES = ("train_", "val_")
SCENE_JUDGING_PREFIX = "test_"
LAST_TRAINING_FACE = 1245
_FACE_NAME = re.compile(r"^face_(\d{4})$")


class JudgingPhotoRefused(E2GANError):
    """A benchmark photo from the held-out judging part was asked for as training data."""


def judging_reason(domain: str, stem: str) -> str | None:
    """Why a benchmark photo named `stem` may not be trained on, or None for a training photo."""
    if domain == SCENES:
        if stem.startswith(SCENE_TRAINING_PREFIXES):
            return None
        if stem.startswith(SCENE_JUDGING_PREFIX):
            return "BSDS500 test_ photos are the benchmark's judging part"
        return "not a BSDS500 train_/val_ photo name"
    match = _FACE_NAME.match(stem)
    number = int(match.group(1)) if match else 0
    if 1 <= number <= LAST_TRAINING_FACE:
        return None
    if number > LAST_TRAINING_FACE:
        return f"faces after face_{LAST_TRAINING_FACE:04d} are the benchmark's judging part"
    return "not a face_0001-style photo name"


def is_judging_photo(domain: str, stem: str) -> bool:
    """Whether `stem` names a photo of the benchmark's judging part (held-out evaluation only)."""
    if domain == SCENES:
        return stem.startswith(SCENE_JUDGING_PREFIX)
    match = _FACE_NAME.match(stem)
    return bool(match) and int(match.group(1)) > LAST_TRAINING_FACE


def check_training_photo(domain: str, path: Path) -> Path:
    """`path`, or `JudgingPhotoRefused` when it is not one of the benchmark's training photos."""
    reason = judging_reason(domain, path.stem)
    if reason is not None:
        raise JudgingPhotoRefused(f"refusing to train on {path}: {reason} (held-out evaluation "
                                  f"only; see the benchmark data's README)")
    return path


def default_data_dir() -> Path:
    """$E2GAN_PHOTO_DATA, else `../shared/data` beside the repository (the benchmark's photos)."""
    return Path(os.environ.get(DATA_ENV) or REPOSITORY.parent / "shared" / "data")


def default_wallpaper_root() -> Path:
    """Where Debian installs wallpapers: $E2GAN_WALLPAPER_ROOT, else /usr/share."""
    return Path(os.environ.get(WALLPAPER_ROOT_ENV) or "/usr/share")


@dataclass(frozen=True)
class PoolPhoto:
    """One photo of the pool: a file, or an index into the packaged photos."""

    id: str  # file-name safe, unique in the pool
    domain: str
    source: str
    path: Path | None = None
    packaged_index: int | None = None


@dataclass
class PoolSource:
    """One source's record: what a model card's data section says about it."""

    name: str
    domain: str
    count: int
    terms: str
    origin: str
    authors: list[str] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


# --- the benchmark photos -------------------------------------------------------------------

_BENCHMARK = {
    SCENES: ("bsds500", "bsds", "BSDS500 (Berkeley Segmentation Data Set), train_ and val_ photos: "
             "research use"),
    FACES: ("face-mask-detection", "face", "Face-Mask-Detection 'without_mask' images "
            "(web-collected), face_0001-face_1245: research use"),
}


def benchmark_sources(data_dir: str | Path | None) -> list[tuple[PoolSource, list[PoolPhoto]]]:
    """The training parts of `data_dir/scenes` and `data_dir/faces`, one source per domain."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    found = []
    for domain in DOMAINS:
        name, prefix, terms = _BENCHMARK[domain]
        folder = root / domain
        record = PoolSource(name, domain, 0, terms, str(folder))
        photos: list[PoolPhoto] = []
        if not folder.is_dir():
            record.note = f"absent: no folder {folder} (point --data or ${DATA_ENV} at it)"
            found.append((record, photos))
            continue
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                       and not p.name.startswith("."))
        held_out = 0
        for path in files:
            if judging_reason(domain, path.stem) is None:
                photos.append(PoolPhoto(f"{prefix}-{path.stem}", domain, name, path=path))
            else:
                held_out += 1
        record.count = len(photos)
        notes = [f"{held_out} judging or unknown photos left out"] if held_out else []
        if not photos:
            notes.append("no training photos found")
        record.note = "; ".join(notes)
        found.append((record, photos))
    return found


# --- Debian wallpapers ----------------------------------------------------------------------
# Only the photographs (landscapes, nature, close-ups, architecture), checked by eye; the drawn,
# rendered and abstract wallpapers of these packages, and the packages with no photos at all
# (gnome-backgrounds, ukui-wallpapers, sway-backgrounds, desktop-base), are left out, as are
# MATE's Garden, LadyBird and YellowFlower, which its copyright file does not list. Authors and
# licences are those of each package's /usr/share/doc/PACKAGE/copyright (Plasma's own: each
# wallpaper's metadata.json, while its debian/copyright says GPL-2+ for the whole package).

@dataclass(frozen=True)
class _Wallpaper:
    stem: str
    location: str  # under the wallpaper root (/usr/share); a folder means "its largest image"
    author: str
    licence: str


def _plasma(stem: str, author: str) -> _Wallpaper:
    return _Wallpaper(stem, f"wallpapers/{stem}/contents/images", author, "LGPL-3")


_WALLPAPER_PACKAGES: dict[str, tuple[str, str, list[_Wallpaper]]] = {
    "plasma-workspace-wallpapers": (
        "plasma", "https://invent.kde.org/plasma/plasma-workspace-wallpapers; debian/copyright: "
        "GPL-2+, (c) 2014 KDE Visual Design Group",
        [_plasma("BytheWater", "Maciej Wiklo"), _plasma("ColdRipple", "Risto Saukonpää"),
         _plasma("ColorfulCups", "Dmitri Popov"), _plasma("DarkestHour", "Risto Saukonpää"),
         _plasma("EveningGlow", "Ian Hex"), _plasma("FallenLeaf", "Martin Klapetek"),
         _plasma("Grey", "Sigi Sagi"), _plasma("Kite", "Risto Saukonpää"),
         _plasma("OneStandsOut", "Risto Saukonpää"), _plasma("Path", "Risto Saukonpää"),
         _plasma("summer_1am", "Risto Saukonpää")]),
    "mate-backgrounds": (
        "mate", "https://git.mate-desktop.org/mate-backgrounds/",
        [_Wallpaper(stem, f"backgrounds/mate/nature/{stem}.jpg", author, "GPL-2+")
         for stem, author in [
            ("Aqua", "Charles Barbin"), ("Blinds", "Lennart Poettering"), ("Dune", "Marco Cogoni"),
            ("FreshFlower", "Jens Ansorg"), ("GreenMeadow", "Timothy Schellhase"),
            ("RainDrops", "blackcombwhistler07"), ("Storm", "Sergey Nazarov"),
            ("TwoWings", "Charles Barbin"), ("Wood", "Jean-François Fortin Tam")]]),
    "lomiri-wallpapers-16.04": (
        "lomiri", "https://gitlab.com/ubports/development/core/lomiri-wallpapers (16.04 set)",
        [_Wallpaper(stem, f"backgrounds/{stem}.jpg", author, licence) for stem, author, licence in [
            ("Bridge_by_Sander_Klootwijk", "Sander Klootwijk", "CC-BY-SA-4.0"),
            ("Dragonfly_by_Bolly", "Bolly", "CC-BY-SA-4.0"),
            ("Picture_0B_by_freespace", "Trevor 'Freespace'", "CC-BY-4.0"),
            ("Picture_1A_by_freespace", "Trevor 'Freespace'", "CC-BY-4.0"),
            ("Wine_by_Jakkub_Mede", "Jakub Mede", "CC-BY-4.0"),
            ("aitzgorri_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
            ("friends_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
            ("free_by_Peter_Nerlich", "Peter Nerlich", "CC-BY-SA-4.0"),
            ("greentock_by_Peter_Nerlich", "Peter Nerlich", "CC-BY-SA-4.0"),
            ("life_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
            ("picosdeeuropa_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
            ("seeding_by_Clements_Engelhardt", "Clemens Engelhardt", "CC0-1.0"),
            ("sunset_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0")]]),
    "lomiri-wallpapers-20.04": (
        "lomiri", "https://gitlab.com/ubports/development/core/lomiri-wallpapers",
        [_Wallpaper("Kleiber_by_Lukas_Baubkus", "backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
                    "Lukas Baubkus", "CC-BY-SA-3.0")]),
}
WALLPAPER_APT_COMMAND = ("apt-get install -y --no-install-recommends "
                         + " ".join(_WALLPAPER_PACKAGES))
_SIZE_NAME = re.compile(r"^(\d+)x(\d+)$")


def _largest_image(folder: Path) -> Path | None:
    """A Plasma wallpaper's biggest rendition: its files are named WIDTHxHEIGHT.jpg/png."""
    best, best_pixels = None, -1
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        size = _SIZE_NAME.match(path.stem)
        if size and path.suffix.lower() in IMAGE_SUFFIXES:
            pixels = int(size.group(1)) * int(size.group(2))
            if pixels > best_pixels:
                best, best_pixels = path, pixels
    return best


def wallpaper_sources(root: str | Path | None = None) -> list[tuple[PoolSource, list[PoolPhoto]]]:
    """The photographic wallpapers of each package in `_WALLPAPER_PACKAGES` found under `root`."""
    root = Path(root) if root is not None else default_wallpaper_root()
    left_out = not_for_training()
    found = []
    for package, (prefix, upstream, wallpapers) in _WALLPAPER_PACKAGES.items():
        photos, authors, licences, on_disk, kept_out = [], [], [], 0, 0
        for wallpaper in wallpapers:
            location = root / wallpaper.location
            path = _largest_image(location) if not location.suffix else location
            if path is None or not path.is_file():
                continue
            on_disk += 1
            if f"{prefix}-{wallpaper.stem}" in left_out:
                kept_out += 1
                continue
            photos.append(PoolPhoto(f"{prefix}-{wallpaper.stem}", SCENES, package, path=path))
            authors.append(f"{wallpaper.stem}: {wallpaper.author} ({wallpaper.licence})")
            licences.append(wallpaper.licence)
        terms = ", ".join(sorted(set(licences))) or "see the package's copyright file"
        record = PoolSource(package, SCENES, len(photos), terms,
                            f"Debian package {package}: {upstream}", authors)
        if not on_disk:
            record.note = (f"absent: package not installed under {root} "
                           f"(install with: {WALLPAPER_APT_COMMAND})")
        else:
            notes = [f"{kept_out} held out for judging (built-in held-out photos)"] if kept_out else []
            missing = len(wallpapers) - on_disk
            notes += [f"{missing} of its photos missing under {root}"] if missing else []
            record.note = "; ".join(notes)
        found.append((record, photos))
    return found


# --- photos packaged with scikit-image and scikit-learn -----------------------------------

_PACKAGED = [  # in the order of image_source.packaged_photos
    ("astronaut", "NASA (Eileen Collins): public domain"),
    ("chelsea", "Stefan van der Walt: CC0"),
    ("coffee", "Rachel Michetti: CC0"),
    ("rocket", "SpaceX (DSCOVR launch): public domain"),
    ("motorcycle", "Middlebury 2014 stereo benchmark, as shipped in scikit-image"),
    ("china", "danielbuechele on Flickr: CC-BY-2.0"),
    ("flower", "vultilion on Flickr: CC-BY-2.0"),
]


def not_for_training() -> dict[str, str]:
    """Pool photo ids a base may not train on, and why: the studio's built-in held-out photos
    (its held-out pairs are scores on photos no model saw, the base included) and a photo whose
    terms are unknown. Bases trained before 2026-12-07 had them in their pool."""
    reasons = {photo.id: "a built-in held-out photo (judging only)" for photo in photo_sets()[1]}
    reasons["packaged-motorcycle"] = "no licence stated (Middlebury stereo benchmark)"
    return reasons


def packaged_source() -> tuple[PoolSource, list[PoolPhoto]]:
    left_out = not_for_training()
    kept = [(index, name, terms) for index, (name, terms) in enumerate(_PACKAGED)
            if f"packaged-{name}" not in left_out]
    photos = [PoolPhoto(f"packaged-{name}", SCENES, "packaged", packaged_index=index)
              for index, name, _ in kept]
    left = [f"{name}: {left_out[f'packaged-{name}']}" for name, _ in _PACKAGED
            if f"packaged-{name}" in left_out]
    record = PoolSource("packaged", SCENES, len(photos),
                        "public domain, CC0, CC-BY-2.0 (per photo; see authors)",
                        "scikit-image skimage.data and scikit-learn load_sample_images",
                        [f"{name}: {terms}" for _, name, terms in kept],
                        note="left out: " + "; ".join(left) if left else "")
    return record, photos


# --- the pool -------------------------------------------------------------------------------

@dataclass
class PhotoPool:
    """The pool's photos, tagged by domain, and the record of every source looked at."""

    photos: list[PoolPhoto]
    sources: list[PoolSource]

    def counts(self) -> dict[str, int]:
        return {domain: sum(p.domain == domain for p in self.photos) for domain in DOMAINS}

    def provenance(self) -> list[dict]:
        """Each source: name, domain, count, terms, origin, authors and a note (absent, ...)."""
        return [source.as_dict() for source in self.sources]

    def crops(self, count: int | None = None, size: int = 256, seed: int = 0) -> ImageSource:
        """`count` square training crops at `size` px (default: one per photo), reproducible.

        Crop `index` depends only on (seed, index) and the pool's photo list. With both domains
        the indices alternate scenes, faces, so each domain gets half however many photos it has;
        within a domain photos are dealt in a seed-shuffled order, each once per cycle.
        """
        if not self.photos:
            raise E2GANError("the photo pool is empty: " + "; ".join(
                f"{s.name}: {s.note}" for s in self.sources if s.note))
        count = len(self.photos) if count is None else count
        if count < 1:
            raise E2GANError(f"image count must be at least 1, got {count}")
        if size < MIN_IMAGE_SIDE:
            raise E2GANError(f"image size must be at least {MIN_IMAGE_SIDE}, got {size}")
        by_domain = [[p for p in self.photos if p.domain == d] for d in DOMAINS]
        by_domain = [photos for photos in by_domain if photos]

        @lru_cache(maxsize=64)
        def order(domain_index: int, cycle: int) -> np.ndarray:
            return np.random.default_rng([seed, domain_index, cycle]).permutation(
                len(by_domain[domain_index]))

        def photo_at(index: int) -> PoolPhoto:
            domain_index, position = index % len(by_domain), index // len(by_domain)
            photos = by_domain[domain_index]
            cycle, offset = divmod(position, len(photos))
            return photos[int(order(domain_index, cycle)[offset])]

        width = max(5, len(str(count - 1)))
        ids = [f"pool-{index:0{width}d}-{photo_at(index).id}" for index in range(count)]
        photo_of = dict(zip(ids, (photo_at(index) for index in range(count))))
        index_of = {source_id: index for index, source_id in enumerate(ids)}

        def load(source_id: str) -> Image.Image:
            return training_crop(photo_of[source_id], size, seed, index_of[source_id])

        domains = "+".join(sorted({p.domain for p in self.photos}))
        return ImageSource(ids, load,
                           f"photo pool {domains} ({len(self.photos)} photos, seed {seed})",
                           crop_size=size)


def photo_pool(domain: str = "all", data_dir: str | Path | None = None,
               wallpaper_root: str | Path | None = None) -> PhotoPool:
    """The pool for `domain` ('scenes', 'faces' or 'all') from every source that is present."""
    if domain not in (*DOMAINS, "all"):
        raise E2GANError(f"photo pool domain must be scenes, faces or all, got {domain!r}")
    found = [*benchmark_sources(data_dir), *wallpaper_sources(wallpaper_root), packaged_source()]
    wanted = [(record, photos) for record, photos in found if domain in ("all", record.domain)]
    return PhotoPool([p for _, photos in wanted for p in photos], [record for record, _ in wanted])


def open_pool(spec: str, count: int | None = None, size: int = 256, seed: int = 0) -> ImageSource:
    """'pool:DOMAIN[:DATA_FOLDER]' as an image source (DATA_FOLDER: default $E2GAN_PHOTO_DATA)."""
    _, domain, *rest = spec.split(":", 2)
    return photo_pool(domain, data_dir=rest[0] if rest else None).crops(count, size=size, seed=seed)


# --- loading and cropping -------------------------------------------------------------------

def _crop_box(width: int, height: int, domain: str,
              rng: np.random.Generator) -> tuple[int, int, int]:
    short = min(width, height)
    low, high = (0.5, 1.0) if domain == SCENES else (0.85, 1.0)
    side = min(short, max(MIN_IMAGE_SIDE, int(round(short * rng.uniform(low, high)))))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    return left, top, side


def training_crop(photo: PoolPhoto, size: int, seed: int, index: int) -> Image.Image:
    """Crop `index` of `photo`: a random square (by domain), flipped half the time, at `size` px.

    A large JPEG is decoded at a reduced scale (`draft`: 1/2, 1/4 or 1/8, still at least the
    crop's target size) and any image is shrunk with `reduce` before the final resampling, so a
    5120x2880 wallpaper costs little more than a small photo.
    """
    rng = np.random.default_rng([seed, index])
    if photo.packaged_index is not None:
        image = Image.fromarray(packaged_photos()[photo.packaged_index])
        left, top, side = _crop_box(image.width, image.height, photo.domain, rng)
        crop = image.resize((size, size), Image.Resampling.LANCZOS,
                            box=(left, top, left + side, top + side), reducing_gap=3.0)
    else:
        crop = _crop_file(photo, size, rng)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return crop


def _crop_file(photo: PoolPhoto, size: int, rng: np.random.Generator) -> Image.Image:
    path = photo.path
    if photo.source == _BENCHMARK[photo.domain][0]:  # belt and braces: the listing left them out
        check_training_photo(photo.domain, path)
    # open_image checks the header against the pixel limit before anything is decoded.
    with open_image(path, str(path)) as opened:
        width, height = opened.size
        left, top, side = _crop_box(width, height, photo.domain, rng)
        scale = min(1.0, size / side)
        try:
            opened.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
            # 1, 1/2, 1/4 or 1/8 after a JPEG draft, each side rounded up on its own
            x_factor, y_factor = opened.size[0] / width, opened.size[1] / height
            image = to_rgb(opened, name=str(path))
        except IMAGE_READ_ERRORS as error:
            raise E2GANError(f"cannot read image {path}: {error}") from None
    box = (left * x_factor, top * y_factor, min(image.width, (left + side) * x_factor),
           min(image.height, (top + side) * y_factor))
    return image.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
