"""An image source: a fixed, ordered list of ids plus a way to load any one of them (see
`e2gan.data.sources` for folders and zips, `e2gan.data.builtin` for the built-in photos,
`e2gan.data.photo_pool` for the pool), and the real photos that ship inside the scikit-image and
scikit-learn wheels (the pool's).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from e2gan.errors import E2GANError


@dataclass
class ImageSource:
    """An ordered list of image ids and a loader for one id (lazy, deterministic)."""

    ids: list[str]
    loader: Callable[[str], Image.Image]
    description: str
    # Every image is a square crop of this side (built-in and pool photos); None when images
    # keep their own size. A resumed dataset must keep it (`generate_pairs` checks).
    crop_size: int | None = None

    def __post_init__(self) -> None:
        self._known = set(self.ids)

    def load(self, source_id: str) -> Image.Image:
        """The RGB image for `source_id`; unreadable images raise `E2GANError` naming them."""
        if source_id not in self._known:
            raise KeyError(f"{source_id!r} is not in {self.description}")
        return self.loader(source_id)

    def take(self, count: int | None) -> ImageSource:
        """The first `count` images (all of them when `count` is None)."""
        if count is None:
            return self
        if count < 1:
            raise E2GANError(f"image count must be at least 1, got {count}")
        return ImageSource(self.ids[:count], self.loader, self.description, self.crop_size)

    # A source that holds whole photos out for judging (the built-in photos) overrides these two.
    def origin(self, source_id: str) -> str:
        """Where the image came from, for its pair's record: the id itself unless the source
        knows the photo it was cut from."""
        return source_id

    def photo_splits(self, test_fraction: float) -> tuple[ImageSource, dict[str, str]] | None:
        """None: the pair maker draws each image's split on its own (`assign_splits`). A source
        that holds whole photos out returns itself dealt for `test_fraction` and each id's split,
        so that no test image is cut from a photo a training image comes from."""
        return None

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[tuple[str, Image.Image]]:
        for source_id in self.ids:
            yield source_id, self.loader(source_id)



# Real colour photos that load offline: they ship inside scikit-image and scikit-learn wheels
# (other skimage.data images need a download through pooch).
_SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


@lru_cache(maxsize=1)
def packaged_photos() -> tuple[np.ndarray, ...]:
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = [getattr(skimage.data, name)() for name in _SKIMAGE_PHOTOS]
    photos.append(skimage.data.stereo_motorcycle()[0])
    photos.extend(load_sample_images().images)  # china, flower
    return tuple(np.ascontiguousarray(photo[..., :3]) for photo in photos)
