"""Judge an image maker on a dataset's held-out pairs: paired metrics and FID/KID.

Both come from `e2gan.evaluation.heldout.evaluate_pairs`: PSNR, SSIM and MAE against the teacher's edit,
and FID and KID of the outputs against the teacher's edits of the same held-out sources
(Clean-FID's way with the standard Inception network; the teacher side's features are cached by
content, so judging many models on one dataset computes them once).
"""

from __future__ import annotations

import functools
from typing import Any

from PIL import Image

from e2gan.data.dataset import PairDataset
from e2gan.devices import resolve_device
from e2gan.errors import E2GANError
from e2gan.evaluation.heldout import ImageMaker, evaluate_pairs
from e2gan.evaluation.metrics.inception import inception_weights_path
from e2gan.inference.pipeline import EditPipeline


@functools.lru_cache(maxsize=1)
def fid_unavailable_reason() -> str | None:
    """None when FID/KID can be computed here, else why not (the bench then reports paired
    metrics only and says so)."""
    try:
        inception_weights_path()
    except ImportError as error:
        return f"e2gan.evaluation.metrics is not available ({error})"
    except E2GANError as error:
        return str(error)
    return None


def judge(maker: ImageMaker, dataset: PairDataset, size: int, limit: int,
          fid: bool = True, device: str = "auto") -> dict[str, Any]:
    """`evaluate_pairs` on the held-out split, with FID/KID where the Inception network is here
    (None where it is not, or where `fid` is off); Inception runs on `device`."""
    measure = fid and fid_unavailable_reason() is None
    metrics: dict[str, Any] = {"fid": None, "kid": None, "kid_std": None}
    metrics.update(evaluate_pairs(maker, dataset, "test", size=size, limit=limit, fid=measure,
                                  device=str(resolve_device(device))))
    return metrics


def pipeline_maker(model_dir, prompt: str, adapter=None, device: str = "auto") -> ImageMaker:
    """A maker over the one inference entry point (`EditPipeline`): a model folder, optionally
    with an adapter file, editing with `prompt` ("" for a model without text)."""
    pipeline = EditPipeline.from_pretrained(model_dir, device=device)
    if adapter is not None:
        pipeline.load_adapter(adapter)
    return lambda images: pipeline(images, prompt)


def no_edit(images: list[Image.Image]) -> list[Image.Image]:
    """The floor every model must beat: the source returned unchanged."""
    return list(images)
