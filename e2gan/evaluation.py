"""Judge any image maker against a dataset's held-out teacher edits.

`evaluate_pairs` takes a callable (list of PIL sources -> list of PIL edits), not a model class, so a
teacher, a base model, an adapter or an exported ONNX session are judged the same way. Paired
metrics here: PSNR, SSIM (scikit-image) and mean absolute error, all against the teacher's edit;
distribution metrics (FID/KID) build on the same callable.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from e2gan.data.dataset import PairDataset
from e2gan.data.torch_data import resize_and_center_crop
from e2gan.errors import E2GANError

MAX_PSNR = 100.0
ImageMaker = Callable[[list[Image.Image]], list[Image.Image]]


def paired_metrics(outputs: list[np.ndarray], targets: list[np.ndarray]) -> dict[str, float]:
    """Mean PSNR (dB), SSIM and MAE (0-255 scale) over uint8 HxWx3 pairs."""
    psnr, ssim, mae = [], [], []
    for output, target in zip(outputs, targets):
        # Identical images have infinite PSNR; cap it so reports stay valid JSON.
        psnr.append(min(MAX_PSNR, peak_signal_noise_ratio(target, output, data_range=255)))
        ssim.append(structural_similarity(target, output, channel_axis=2, data_range=255))
        mae.append(np.abs(output.astype(np.float64) - target.astype(np.float64)).mean())
    return {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim)), "mae": float(np.mean(mae))}


def evaluate_pairs(make_images: ImageMaker, dataset: PairDataset, split: str = "test",
                   size: int = 128, limit: int | None = None, batch_size: int = 16) -> dict:
    """Run `make_images` on the split's sources (resized and centre-cropped to `size`) and compare
    with the teacher's edits cropped the same way."""
    records = dataset.split(split)[:limit] if limit else dataset.split(split)
    if not records:
        raise E2GANError(f"dataset {dataset.root} has no {split!r} pairs to evaluate on")
    outputs, targets = [], []
    seconds = 0.0
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        pairs = [dataset.load_pair(record) for record in chunk]
        sources = [resize_and_center_crop(source, size) for source, _ in pairs]
        started = time.perf_counter()
        made = make_images(sources)
        seconds += time.perf_counter() - started
        for image, (_, edited), source in zip(made, pairs, sources):
            if image.size != source.size:
                image = image.resize(source.size, Image.BICUBIC)
            outputs.append(np.asarray(image.convert("RGB")))
            targets.append(np.asarray(resize_and_center_crop(edited, size)))
    metrics = paired_metrics(outputs, targets)
    return {**{k: round(v, 4) for k, v in metrics.items()}, "pairs": len(records), "split": split,
            "size": size, "seconds_per_image": round(seconds / len(records), 5)}
