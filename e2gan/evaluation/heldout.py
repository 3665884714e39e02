"""Judge any image maker against a dataset's held-out teacher edits.

`evaluate_pairs` takes a callable (list of PIL sources -> list of PIL edits), not a model class, so a
teacher, a base model, an adapter or an exported ONNX session are judged the same way.

- Paired metrics, always: PSNR, SSIM (scikit-image) and mean absolute error against the teacher's
  edit of the same source.
- Distribution metrics, with `fid=True`: FID and KID (Clean-FID's way, `e2gan.evaluation.metrics.fid`) of the
  outputs against the teacher's edits of the split; the teacher side's Inception features are
  cached by content, so judging several models on one dataset runs Inception on it once.
- CLIP metrics, with `clip=True` and only where real CLIP weights are on this machine: CLIP
  directional similarity (did the image change the way the prompt says) and CMMD against the
  teacher's edits (`e2gan.evaluation.metrics.clip`). Where they cannot run, the result says why instead.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from e2gan.data.dataset import PairDataset
from e2gan.data.torch_data import resize_and_center_crop
from e2gan.errors import E2GANError
from e2gan.files import MIN_IMAGE_SIDE

MAX_PSNR = 100.0
ImageMaker = Callable[[list[Image.Image]], list[Image.Image]]


def paired_metrics(outputs: list[np.ndarray], targets: list[np.ndarray]) -> dict[str, float]:
    """Mean PSNR (dB), SSIM and MAE (0-255 scale) over uint8 HxWx3 pairs."""
    psnr, ssim, mae = [], [], []
    for output, target in zip(outputs, targets):
        # Identical images have infinite PSNR; cap it so reports stay valid JSON.
        identical = np.array_equal(output, target)
        psnr.append(MAX_PSNR if identical else
                    min(MAX_PSNR, peak_signal_noise_ratio(target, output, data_range=255)))
        ssim.append(structural_similarity(target, output, channel_axis=2, data_range=255))
        mae.append(np.abs(output.astype(np.float64) - target.astype(np.float64)).mean())
    return {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim)), "mae": float(np.mean(mae))}


def distribution_scores(outputs: list[Image.Image], targets: list[Image.Image],
                        device: str = "cpu", cache: bool = True) -> dict[str, Any]:
    """FID / KID of outputs against targets, rounded for reports."""
    from e2gan.evaluation.metrics.fid import distribution_metrics  # the Inception wheel: on request

    scores = distribution_metrics(outputs, targets, cache=cache, device=device)
    return {"fid": round(scores["fid"], 4), "kid": round(scores["kid"], 6),
            "kid_std": round(scores["kid_std"], 6), "fid_images": scores["images"],
            "kid_subset_size": scores["kid_subset_size"]}


def clip_scores(sources: list[Image.Image], outputs: list[Image.Image],
                targets: list[Image.Image], prompt: str, device: str = "cpu") -> dict[str, Any]:
    """CLIP directional similarity and CMMD, or {"clip_skipped": reason} where they cannot run."""
    try:  # optional: open_clip
        from e2gan.evaluation.metrics import clip as clip_metrics
    except ImportError as error:
        return {"clip_skipped": f"CLIP metrics are not available in this build ({error})"}
    from e2gan.teachers.clip_scores import clip_weights_available  # with the metrics above

    available, where = clip_weights_available()
    if not available:
        return {"clip_skipped": f"no local CLIP weights: {where}"}
    return {f"clip_{k}" if not k.startswith(("clip", "cmmd")) else k: v
            for k, v in clip_metrics.evaluate_edits(sources, outputs, targets, prompt,
                                                    device=device).items()}


def evaluate_pairs(make_images: ImageMaker, dataset: PairDataset, split: str = "test",
                   size: int = 128, limit: int | None = None, batch_size: int = 16,
                   fid: bool = False, clip: bool = False, device: str = "cpu",
                   cache: bool = True) -> dict[str, Any]:
    """Run `make_images` on the split's sources (resized and centre-cropped to `size`) and compare
    with the teacher's edits cropped the same way.

    `device` is where the metric networks (Inception, CLIP) run, not the image maker.
    """
    if limit is not None and limit < 1:  # 0 once meant "all": say so rather than guess
        raise E2GANError(f"the pair limit must be at least 1 (leave it out to judge all), got {limit}")
    if size < MIN_IMAGE_SIDE:
        raise E2GANError(f"size must be at least {MIN_IMAGE_SIDE} pixels, got {size}")
    records = dataset.split(split)[:limit] if limit else dataset.split(split)
    if not records:
        raise E2GANError(f"dataset {dataset.root} has no {split!r} pairs to evaluate on")
    if fid and len(records) < 2:
        raise E2GANError(f"FID/KID need at least 2 {split!r} pairs; {dataset.root} has {len(records)}")
    sources_all, outputs, targets = [], [], []
    seconds = 0.0
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        pairs = [dataset.load_pair(record) for record in chunk]
        sources = [resize_and_center_crop(source, size) for source, _ in pairs]
        started = time.perf_counter()
        made = make_images(sources)
        seconds += time.perf_counter() - started
        if len(made) != len(sources):
            raise E2GANError(f"the image maker returned {len(made)} images for {len(sources)} sources")
        for image, (_, edited), source in zip(made, pairs, sources):
            if image.size != source.size:
                image = image.resize(source.size, Image.BICUBIC)
            outputs.append(image.convert("RGB"))
            targets.append(resize_and_center_crop(edited, size).convert("RGB"))
        sources_all.extend(sources)
    metrics = paired_metrics([np.asarray(i) for i in outputs], [np.asarray(t) for t in targets])
    result: dict[str, Any] = {**{k: round(v, 4) for k, v in metrics.items()},
                              "pairs": len(records), "split": split, "size": size,
                              "seconds_per_image": round(seconds / len(records), 5)}
    if fid:
        result.update(distribution_scores(outputs, targets, device=device, cache=cache))
    if clip:
        prompt = records[0].prompt or dataset.info.prompt
        result.update(clip_scores(sources_all, outputs, targets, prompt, device=device))
    return result
