"""A stand-in for the FID Inception network, for studio tests that check wiring, not the network.

Features are a fixed random projection of each image's 8x8 thumbnail: deterministic, 2048-d like
Inception's, and different images give different features, so FID/KID still move with the
images. `use_stand_in(monkeypatch)` routes `e2gan.evaluation.metrics.fid` to it (with an in-memory stand-in for
the reference-feature cache) and counts the images it runs on.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_PROJECTION = np.random.default_rng(0).standard_normal((8 * 8 * 3, 2048)).astype(np.float32)


def stand_in_features(images, batch_size=32, device="cpu") -> np.ndarray:
    thumbs = [np.asarray(image.convert("RGB").resize((8, 8), Image.BILINEAR), np.float32) / 255
              for image in images]
    return np.maximum(np.stack([thumb.reshape(-1) for thumb in thumbs]) @ _PROJECTION, 0)


def use_stand_in(monkeypatch) -> list[int]:
    """Patch FID/KID to the stand-in; returns a list that records each batch of images seen."""
    from e2gan.evaluation.metrics import fid

    seen: list[int] = []

    def features(images, batch_size=32, device="cpu"):
        seen.append(len(images))
        return stand_in_features(images)

    cache: dict[bytes, np.ndarray] = {}

    def cached(images, batch_size=32, device="cpu"):
        """Like the real cache: keyed by the images' pixels, so a reference set runs once."""
        key = b"".join(image.convert("RGB").tobytes() for image in images)
        hit = key in cache
        if not hit:
            cache[key] = features(images)
        return cache[key], hit

    monkeypatch.setattr(fid, "inception_features", features)
    monkeypatch.setattr(fid, "cached_inception_features", cached)
    return seen
