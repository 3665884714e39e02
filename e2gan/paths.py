"""Where the shipped files live."""

from __future__ import annotations

import os
from pathlib import Path

from e2gan.errors import E2GANError

REPOSITORY = Path(__file__).resolve().parents[1]


def default_base_dir() -> Path:
    """The base model to start from: $E2GAN_BASE, else the repository's `checkpoints/base`."""
    path = Path(os.environ.get("E2GAN_BASE", REPOSITORY / "checkpoints" / "base"))
    if not (path / "config.json").is_file():
        raise E2GANError(f"no base model at {path}; set E2GAN_BASE or pass --base")
    return path


def cache_root() -> Path:
    """Where computed things are kept between runs (FID features, counted teacher costs, the web
    runtime): $E2GAN_CACHE, else $XDG_CACHE_HOME/e2gan, else ~/.cache/e2gan."""
    if os.environ.get("E2GAN_CACHE"):
        return Path(os.environ["E2GAN_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "e2gan"
