"""Commands over trained models: edit an image (`edit`) or a video (`edit-video`), inspect, blend
or merge concept adapters (`adapter`), and publish one to the Hugging Face Hub (`publish`).
Wherever an adapter is asked for, a Hub id (`org/name`, `org/name/file.safetensors`) does too."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable

from e2gan.checks import check_adapter_scale, check_edit_size, check_model_folder
from e2gan.cli.common import command
from e2gan.errors import E2GANError
from e2gan.precision import PRECISIONS


def _checked_edit_size(args: argparse.Namespace) -> int | None:
    """What an edit command's flags say that needs no model, refused before torch is imported
    (see e2gan/cli/__init__.py); returns the edit size."""
    check_model_folder(args.model)
    if args.adapter:
        check_adapter_scale(args.scale)
    return check_edit_size(args.size)


def _pipeline(args: argparse.Namespace):
    """The model with its adapter at its strength, and the prompt to edit with."""
    from e2gan.inference.pipeline import EditPipeline

    pipeline = EditPipeline.from_pretrained(args.model, device=args.device, precision=args.precision)
    if args.adapter:
        pipeline.load_adapter(args.adapter, scale=args.scale)
    return pipeline, pipeline.default_prompt(args.prompt)


@command("edit")
def cmd_edit(args: argparse.Namespace) -> dict[str, Any]:
    size = _checked_edit_size(args)

    from e2gan.files import atomic_save_image, load_image  # numpy and PIL, no torch

    image = load_image(args.image)
    pipeline, prompt = _pipeline(args)
    started = time.perf_counter()
    edited = pipeline([image], prompt, size=size)[0]
    seconds = time.perf_counter() - started
    atomic_save_image(args.out, edited)
    return {"out": str(args.out), "prompt": prompt, "seconds": round(seconds, 4),
            "precision": pipeline.precision}


@command("edit-video")
def cmd_edit_video(args: argparse.Namespace) -> dict[str, Any]:
    size = _checked_edit_size(args)
    if not Path(args.video).is_file():
        raise E2GANError(f"no video file at {args.video}")
    if args.batch_size < 1:
        raise E2GANError(f"--batch-size must be at least 1, got {args.batch_size}")

    import signal
    import sys

    from e2gan.inference.video import edit_video

    pipeline, prompt = _pipeline(args)
    last_line = [float("-inf")]

    def report(progress) -> None:
        if args.quiet or time.monotonic() - last_line[0] < 5.0:
            return
        last_line[0] = time.monotonic()
        left = progress.eta_seconds
        print(f"[edit-video] {progress.frames_done}/{progress.frames_total or '?'} frames, "
              f"{progress.frames_per_second:.2f} fps" + (f", {left:.0f} s left" if left else ""),
              file=sys.stderr, flush=True)

    # Ctrl-C is Stop: the frames done so far become a playable file (a second one aborts).
    stop = []
    previous = signal.signal(signal.SIGINT, lambda *_: (stop.append(True),
                                                        signal.signal(signal.SIGINT, previous)))
    try:
        result = edit_video(args.video, args.out, lambda images: pipeline(images, prompt, size=size),
                            batch_size=args.batch_size, on_progress=report,
                            should_stop=lambda: bool(stop))
    finally:
        signal.signal(signal.SIGINT, previous)
    return {**result.to_dict(), "prompt": prompt, "precision": pipeline.precision}


@command("adapter")
def cmd_adapter(args: argparse.Namespace) -> dict[str, Any]:
    if args.action != "info" and not args.out:
        raise E2GANError(f"adapter {args.action} needs --out")
    if args.action == "blend" and not args.other:
        raise E2GANError("adapter blend needs --other ADAPTER")
    if args.action == "merge":
        if not args.base:
            raise E2GANError("adapter merge needs --base MODEL")
        check_model_folder(args.base)
        check_adapter_scale(1.0 if args.weight is None else args.weight)

    from e2gan.models import lora
    from e2gan.checkpoint import (apply_adapter, blend_adapters, load_generator, read_adapter,
                                  save_adapter, save_generator)
    from e2gan.hub.adapters import resolve_adapter

    path = resolve_adapter(args.adapter)
    first = read_adapter(path)
    if args.action == "info":
        meta = first.metadata
        return {"adapter": args.adapter, "bytes": path.stat().st_size,
                **{k: meta[k] for k in ("concept", "prompt", "ranks", "base_sha256",
                                        "text_encoder", "trainable_parameters", "training")}}
    if args.action == "blend":
        weight = 0.5 if args.weight is None else args.weight
        blended = blend_adapters(first, read_adapter(resolve_adapter(args.other)), weight,
                                 prompt=args.prompt)
        save_adapter(args.out, blended)
        return {"out": args.out, "concept": blended.concept, "ranks": blended.metadata["ranks"],
                "bytes": Path(args.out).stat().st_size}
    # merge: a plain model folder with the concept folded in (what export and devices want)
    loaded = load_generator(args.base)
    name = apply_adapter(loaded, first)
    lora.set_adapter_scale(loaded.generator, name, 1.0 if args.weight is None else args.weight)
    lora.remove_adapters(loaded.generator, merge=True)
    save_generator(args.out, loaded.generator, loaded.text_encoder,
                   {"merged_from": {"base": args.base, "adapter": args.adapter, "scale": args.weight}})
    return {"out": args.out, "concept": first.concept, "prompt": first.prompt}


@command("publish")
def cmd_publish(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.data.dataset import PairDataset
    from e2gan.hub.publish import publish_adapter

    published = publish_adapter(args.adapter, args.repo, token=args.token, private=args.private,
                                pairs_dataset=PairDataset.open(args.pairs) if args.pairs else None,
                                pairs_repo_id=args.pairs_repo, base=args.base,
                                base_model=args.base_model, license=args.license)
    return {"repo": published.repo_id, "url": published.url, "commit": published.commit_url,
            "files": published.files, "pairs_repo": published.pairs_repo_id,
            "pairs_url": published.pairs_url}


def add_parsers(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """This area's subcommands and flags; `add` makes a subparser with --json and --quiet."""
    p = add("edit", "edit one image with a model (+ adapter)")
    p.add_argument("--model", required=True)
    p.add_argument("--adapter", help="adapter file (.safetensors) or Hub id (org/name)")
    p.add_argument("--scale", type=float, default=1.0, help="adapter strength")
    p.add_argument("--prompt", default=None)
    p.add_argument("--image", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=None, help="resize the short side (default: keep)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                   help="auto: bf16 where the hardware multiplies it, else fp32")

    p = add("edit-video", "edit every frame of a video file with a model (+ adapter), keeping its "
                          "audio; reports frames per second and flicker")
    p.add_argument("video", help="the video file (anything FFmpeg reads)")
    p.add_argument("out", help="the edited video (.mp4, .mkv or .mov; H.264)")
    p.add_argument("--model", required=True)
    p.add_argument("--adapter", help="adapter file (.safetensors) or Hub id (org/name)")
    p.add_argument("--scale", "--strength", type=float, default=1.0, dest="scale",
                   help="adapter strength")
    p.add_argument("--prompt", default=None)
    p.add_argument("--size", type=int, default=None,
                   help="edit (and write) at this short side (default: the video's own size)")
    p.add_argument("--batch-size", type=int, default=4, help="frames edited at once")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                   help="auto: bf16 where the hardware multiplies it, else fp32")

    p = add("adapter", "inspect, blend or merge concept adapters")
    p.add_argument("action", choices=["info", "blend", "merge"])
    p.add_argument("adapter", help="adapter file (.safetensors) or Hub id (org/name)")
    p.add_argument("--other", help="blend: the second adapter")
    p.add_argument("--weight", type=float, default=None,
                   help="blend: weight of the first adapter, 0-1 (default 0.5); "
                        "merge: adapter strength (default 1)")
    p.add_argument("--prompt", help="blend: prompt of the blended concept")
    p.add_argument("--base", help="merge: the base model folder the adapter was trained on")
    p.add_argument("--out", help="blend: adapter file; merge: model folder")

    p = add("publish", "push a concept adapter to the Hugging Face Hub with a model card and a "
                       "sample grid (and its pairs as a dataset repo)")
    p.add_argument("adapter", help="adapter file (.safetensors)")
    p.add_argument("--repo", required=True, help="model repo, user/name (a bare name: your account)")
    p.add_argument("--pairs", help="the concept's pair dataset: pushed to the dataset repo "
                                   "--pairs-repo, and its held-out pairs make the sample grid")
    p.add_argument("--pairs-repo", help="dataset repo for --pairs (default: REPO-pairs)")
    p.add_argument("--private", action="store_true", help="make the new repos private")
    p.add_argument("--token", help="a token with write access (default: HF_TOKEN, else the one "
                                   "`hf auth login` saved)")
    p.add_argument("--base", help="the base model folder the adapter was trained on (default: "
                                  "$E2GAN_BASE or the shipped base)")
    p.add_argument("--base-model", help="the base's Hub id, for the card's base_model")
    p.add_argument("--license", default="apache-2.0", help="the card's license (default apache-2.0)")
