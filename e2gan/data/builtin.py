"""The built-in photos: 43 photos that ship inside the package, some of them held out whole.

`e2gan/data/photos/` holds them, each resized from its original, with `attribution.json` (title,
author, licence, where it came from; read by `e2gan.data.attribution`) and the licence texts;
`tools/build_builtin_photos.py` rebuilds the folder from the Debian packages and wheels they come
from.

A fixed set of them (`held_out` in attribution.json, 9 of 43) is only ever judged on: a built-in
source deals its crops so that every test crop is cut from a held-out photo and every training
crop from one of the others, for any test fraction. So no held-out pair shares a photo with a
training pair, in one dataset or across datasets (a base trained on built-in pairs of other
concepts has not seen them either), and the held-out scores are scores on photos the model never
saw. The pair's record says which photo a crop came from: its origin is `builtin:<photo id>`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from e2gan.data.attribution import (ATTRIBUTION_FILE, BUILTIN_PHOTOS, ORIGIN_PREFIX, BuiltinPhoto,
                                    photo_sets)
from e2gan.data.image_source import ImageSource
from e2gan.data.pair_format import PairRecord
from e2gan.data.photo_pool import SCENES, PoolPhoto, training_crop
from e2gan.errors import E2GANError
from e2gan.files import MIN_IMAGE_SIDE

DEFAULT_TEST_FRACTION = 0.2  # the pair maker's default (`generate_pairs`, `e2gan pairs`)


def held_out_before(index: int, test_fraction: float) -> int:
    """How many of crops 0 .. index-1 are test crops: floor(index * fraction), so the test crops
    are spread evenly, crop 0 always trains, and the first n crops hold floor(n * fraction) test
    crops whatever the count (a source's first n images are the n-image source)."""
    return math.floor(index * test_fraction + 1e-9)


class BuiltinPhotos(ImageSource):
    """`count` square crops of the shipped photos at `size` px, dealt for `test_fraction`.

    Crop `index` depends only on (seed, index, test_fraction): crop i is a test crop when
    floor((i + 1) * fraction) > floor(i * fraction); test crops take the held-out photos in turn
    and training crops the others, each set dealt in a seed-shuffled order once per cycle. The
    crop itself (50-100% of the shorter side, flipped half the time) is the photo pool's scene
    crop for (seed, index).
    """

    def __init__(self, count: int, size: int = 256, seed: int = 0,
                 test_fraction: float = DEFAULT_TEST_FRACTION, folder: Path = BUILTIN_PHOTOS):
        if count < 1:
            raise E2GANError(f"image count must be at least 1, got {count}")
        if size < MIN_IMAGE_SIDE:
            raise E2GANError(f"image size must be at least {MIN_IMAGE_SIDE}, got {size}")
        if not 0.0 <= test_fraction < 1.0:
            raise E2GANError(f"test fraction must be in [0, 1), got {test_fraction}")
        self.size, self.seed, self.test_fraction, self.folder = size, seed, test_fraction, folder
        self.training_photos, self.held_out_photos = photo_sets(folder)
        if not self.training_photos or (test_fraction > 0 and not self.held_out_photos):
            raise E2GANError(f"{folder / ATTRIBUTION_FILE} needs training photos and, for a test "
                             "split, held-out photos")
        width = max(5, len(str(count - 1)))
        ids = [f"builtin-{index:0{width}d}" for index in range(count)]
        self._dealt = {source_id: self._deal(index) for index, source_id in enumerate(ids)}
        super().__init__(ids, self._crop, f"built-in photos (seed {seed})", crop_size=size)

    def _deal(self, index: int) -> tuple[int, BuiltinPhoto, str]:
        tests = held_out_before(index, self.test_fraction)
        is_test = held_out_before(index + 1, self.test_fraction) > tests
        photos, position, kind = ((self.held_out_photos, tests, 1) if is_test else
                                  (self.training_photos, index - tests, 0))
        cycle, offset = divmod(position, len(photos))
        order = _order(self.seed, kind, cycle, len(photos))
        return index, photos[int(order[offset])], "test" if is_test else "train"

    def _crop(self, source_id: str) -> Image.Image:
        index, photo, _ = self._dealt[source_id]
        return training_crop(PoolPhoto(photo.id, SCENES, "builtin", path=photo.path),
                             self.size, self.seed, index)

    def photo_of(self, source_id: str) -> BuiltinPhoto:
        return self._dealt[source_id][1]

    def origin(self, source_id: str) -> str:
        return ORIGIN_PREFIX + self.photo_of(source_id).id

    @property
    def splits(self) -> dict[str, str]:
        """Each id's split: "test" for a crop of a held-out photo, else "train"."""
        return {source_id: dealt[2] for source_id, dealt in self._dealt.items()}

    def photo_splits(self, test_fraction: float) -> tuple[ImageSource, dict[str, str]]:
        dealt = self if test_fraction == self.test_fraction else BuiltinPhotos(
            len(self), self.size, self.seed, test_fraction, self.folder)
        return dealt, dealt.splits

    def take(self, count: int | None) -> ImageSource:
        if count is None or count >= len(self):
            return self
        return BuiltinPhotos(count, self.size, self.seed, self.test_fraction, self.folder)


@lru_cache(maxsize=256)
def _order(seed: int, kind: int, cycle: int, length: int) -> np.ndarray:
    return np.random.default_rng([seed, kind, cycle]).permutation(length)


def builtin_photos(count: int, size: int = 256, seed: int = 0,
                   test_fraction: float = DEFAULT_TEST_FRACTION) -> BuiltinPhotos:
    """`count` square crops of the shipped photos at `size` pixels, varied and reproducible; the
    pair maker re-deals them for its own test fraction (`ImageSource.photo_splits`)."""
    return BuiltinPhotos(count, size, seed, test_fraction)


# --- what a dataset's held-out pairs were cut from -------------------------------------------

_POOL_ORIGIN = re.compile(r"^pool-\d+-(.+)$")
_OLD_BUILTIN_ORIGIN = re.compile(r"^builtin-\d+$")


def origin_photo(origin: str) -> str | None:
    """The photo a pair's source image was cut from, when its origin says so (built-in and pool
    crops); None for an image that is its own photo (a folder's, a zip's, an import's)."""
    if origin.startswith(ORIGIN_PREFIX):
        return origin.removeprefix(ORIGIN_PREFIX)
    match = _POOL_ORIGIN.match(origin)
    return match.group(1) if match else None


@dataclass(frozen=True)
class HeldOutPhotos:
    """Where a dataset's held-out pairs come from."""

    test_pairs: int
    photos: int  # distinct photos (or images) the held-out pairs were cut from
    shared: int  # of those, how many training pairs were cut from too
    crops: bool  # whether the pairs are crops with a known photo (else whole images)
    unknown: bool = False  # built-in crops made before whole photos were held out

    def describe(self) -> str:
        """One sentence for the studio's page."""
        if not self.test_pairs:
            return "No held-out pairs."
        pairs = f"{self.test_pairs} held-out pair{'s' if self.test_pairs != 1 else ''}"
        if self.unknown:
            return (f"The {pairs} are crops of the same few photos as the training pairs (made "
                    "before built-in photos were held out whole): their scores flatter the result; "
                    "make the pairs again in a new concept for an honest score.")
        if not self.crops:
            return (f"The {pairs} come from {self.photos} image{'s' if self.photos != 1 else ''} "
                    "that no training pair uses.")
        photos = f"{self.photos} photo{'s' if self.photos != 1 else ''}"
        if self.shared:
            return (f"The {pairs} are crops of {photos}, {self.shared} of which training pairs "
                    "are cut from too: their scores flatter the result.")
        return f"The {pairs} are crops of {photos}, none of which is used for training."


def held_out_photos(records: Iterable[PairRecord]) -> HeldOutPhotos:
    """Which photos a dataset's held-out (test) pairs were cut from, and whether any training
    pair shares one."""
    records = list(records)
    test = [record for record in records if record.split == "test"]
    if any(_OLD_BUILTIN_ORIGIN.match(record.origin) for record in test):
        return HeldOutPhotos(len(test), 0, 0, crops=True, unknown=True)
    photos = {origin_photo(record.origin) for record in test}
    crops = bool(test) and None not in photos
    if not crops:  # whole images: each is its own photo
        photos = {record.origin or record.id for record in test}
        trained = {record.origin or record.id for record in records if record.split == "train"}
    else:
        trained = {origin_photo(record.origin) for record in records if record.split == "train"}
    return HeldOutPhotos(len(test), len(photos), len(photos & trained), crops)
