"""Data commands: make pairs with a teacher (`pairs`) from photos such as the base-training pool
(`photo-pool` lists it), import your own (`import`), pick the representative subset (`select`)
and write a dataset in other tools' layouts (`dataset-export`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from e2gan.cli.common import command, progress
from e2gan.errors import E2GANError


@command("pairs")
def cmd_pairs(args: argparse.Namespace) -> dict[str, Any] | None:
    from e2gan.data.generate import (build_candidate_filter, distributed_state, generate_pairs,
                                     resolve_concept)
    from e2gan.data.sources import open_source
    from e2gan.teachers import create_teacher

    state = distributed_state()  # under `accelerate launch`: this process's share of the work
    device = args.device if args.device != "auto" or state is None else str(state.device)
    knobs = {"model": args.model, "num_inference_steps": args.steps, "strength": args.strength,
             "guidance_scale": args.guidance, "image_guidance_scale": args.image_guidance,
             "resolution": args.resolution, "negative_prompt": args.negative_prompt,
             "controlnet": args.controlnet, "dtype": args.dtype,
             "allow_download": args.allow_download or None, "device": device}
    teachers = []
    for name in args.teacher.split(","):
        options = {k: v for k, v in knobs.items() if v is not None}
        if name == "builtin":  # runs on the CPU and takes no knobs: a diffusion flag is an error
            options = {k: v for k, v in options.items() if k not in ("device", "dtype")}
        teachers.append(create_teacher(name, **options))
    prompt, concept, phrasings = resolve_concept(teachers, args.concept, args.instruction,
                                                 args.description)
    source = open_source(args.source, count=args.count, size=args.size, seed=args.seed)
    candidate_filter = None
    if args.clip_filter:
        candidate_filter = build_candidate_filter(
            args.clip_filter, device=device if device != "auto" else "cpu",
            source_caption=args.source_caption, min_image_similarity=args.min_image_similarity,
            min_direction_similarity=args.min_direction_similarity,
            min_caption_similarity=args.min_caption_similarity)
    label = "pairs" if state is None else f"pairs {state.process_index}/{state.num_processes}"
    result = generate_pairs(teachers, source, prompt, args.out, concept=concept, seed=args.seed,
                            test_fraction=args.test_fraction, batch_size=args.batch_size,
                            on_progress=progress(args, label), phrasings=phrasings,
                            candidates=args.candidates, candidate_filter=candidate_filter,
                            distributed=state)
    return result.summary() if result.process_index == 0 else None  # the main process reports


@command("import")
def cmd_import(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.data.importers import import_folders, import_imagefolder, import_img2img_turbo

    if args.layout == "folders":
        if not (args.source_dir and args.edited_dir and args.prompt):
            raise E2GANError("import folders needs --source-dir, --edited-dir and --prompt")
        dataset = import_folders(args.source_dir, args.edited_dir, args.prompt, args.out,
                                 test_fraction=args.test_fraction, seed=args.seed)
    elif args.layout == "imagefolder":
        if not args.root:
            raise E2GANError("import imagefolder needs --root")
        # A Hub id's download reports through the command's `reporting_downloads` (stderr).
        dataset = import_imagefolder(args.root, args.out, args.prompt or "",
                                     test_fraction=args.test_fraction, seed=args.seed,
                                     allow_download=args.allow_download)
    else:
        if not args.root:
            raise E2GANError("import img2img-turbo needs --root")
        dataset = import_img2img_turbo(args.root, args.out, test_fraction=args.test_fraction,
                                       seed=args.seed)
    return {"dataset": str(dataset.root), "pairs": len(dataset),
            "train": len(dataset.split("train")), "test": len(dataset.split("test"))}


@command("select")
def cmd_select(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.data.dataset import PairDataset, write_subset
    from e2gan.curation.selection import select

    dataset = PairDataset.open(args.dataset)
    settings = {"weights": args.face_weights} if args.face_weights else {}
    if args.face_weights and args.embedder != "face":
        raise E2GANError("--face-weights goes with --embedder face")
    selection = select(dataset, args.k, method=args.method, seed=args.seed,
                       embedder=args.embedder, embedder_settings=settings)
    ids = selection.ids
    # The subset keeps every held-out pair: it is what the fine-tune is judged on.
    kept = ids + [record.id for record in dataset.split("test")]
    subset = write_subset(dataset, kept, args.out, overwrite=args.overwrite) if args.out else None
    if selection.embedder_note and not args.quiet:
        print(f"embedder: {selection.embedder_note}", file=sys.stderr)
    return {"dataset": str(dataset.root), "method": args.method, "k": len(ids), "ids": ids,
            "embedder": selection.embedder or None, "embedder_note": selection.embedder_note,
            "other_look": selection.other_look_ids, "consistency": selection.consistency,
            "out": str(subset.root) if subset else None}


@command("dataset-export")
def cmd_dataset_export(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.data.dataset import PairDataset
    from e2gan.data.export import export_dataset

    return export_dataset(PairDataset.open(args.dataset), args.out, args.format,
                          overwrite=args.overwrite)


@command("photo-pool")
def cmd_photo_pool(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.data.photo_pool import WALLPAPER_APT_COMMAND, photo_pool

    pool = photo_pool(args.domain, data_dir=args.data, wallpaper_root=args.wallpaper_root)
    return {"domain": args.domain, "photos": pool.counts(), "sources": pool.provenance(),
            "spec": f"pool:{args.domain}" + (f":{args.data}" if args.data else ""),
            "wallpapers_install": WALLPAPER_APT_COMMAND}


def add_parsers(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """This area's subcommands and flags; `add` makes a subparser with --json and --quiet."""
    p = add("pairs", "make a paired dataset with a teacher")
    p.add_argument("--concept", required=True, help="a built-in concept name, or a prompt")
    p.add_argument("--teacher", default="builtin")
    p.add_argument("--source", default="builtin",
                   help="'builtin', 'pool:scenes|faces|all[:DATA]' (see photo-pool), a folder or "
                        "a .zip of images")
    p.add_argument("--count", type=int, default=None, help="number of source images")
    p.add_argument("--size", type=int, default=256, help="side of built-in photo crops")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--batch-size", type=int, default=8, help="images per teacher call")
    p.add_argument("--instruction",
                   help="the concept as an instruction, for InstructPix2Pix (default: a built-in "
                        "concept's own; free text as typed when it is one, else 'make it look "
                        "like TEXT' or 'turn it into A TEXT')")
    p.add_argument("--description",
                   help="the concept as a description, for img2img teachers and the GAN's text "
                        "(default: a built-in concept's prompt; free text as typed, or read off "
                        "an instruction: 'turn him into an old man' -> 'an old man')")
    g = p.add_argument_group("diffusion teachers (instruct-pix2pix, sd-img2img, sd-turbo, controlnet)")
    g.add_argument("--model", help="diffusers folder or Hugging Face repo id (local cache only)")
    g.add_argument("--allow-download", action="store_true", help="fetch a missing model")
    g.add_argument("--steps", type=int, help="denoising steps")
    g.add_argument("--strength", type=float, help="img2img: how far to re-noise, 0-1")
    g.add_argument("--guidance", type=float, help="text guidance scale")
    g.add_argument("--image-guidance", type=float, help="InstructPix2Pix image guidance scale")
    g.add_argument("--resolution", type=int, help="working resolution (short side)")
    g.add_argument("--negative-prompt")
    g.add_argument("--controlnet", help="controlnet: ControlNet folder or repo id")
    g.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    g.add_argument("--device", default="auto")
    g = p.add_argument_group("candidate selection (InstructPix2Pix's CLIP filter)")
    g.add_argument("--candidates", type=int, default=1, help="candidate edits per image and teacher")
    g.add_argument("--clip-filter", nargs="?", const="ViT-B-32", default=None,
                   help="score candidates with CLIP: MODEL[:PRETRAINED] (local weights only)")
    g.add_argument("--source-caption", default="a photo", help="caption of an unedited image")
    g.add_argument("--min-image-similarity", type=float, default=None, help="default 0.7")
    g.add_argument("--min-direction-similarity", type=float, default=None, help="default 0.2")
    g.add_argument("--min-caption-similarity", type=float, default=None, help="default 0.2")

    p = add("photo-pool", "list the base-training photo pool: sources, photos per domain, terms")
    p.add_argument("--data", help="benchmark photos folder holding scenes/ and faces/ (only their "
                                  "training parts are used; default: $E2GAN_PHOTO_DATA, else "
                                  "../shared/data beside the repository)")
    p.add_argument("--domain", default="all", choices=["all", "scenes", "faces"])
    p.add_argument("--wallpaper-root", help="where Debian wallpaper packages install (default: "
                                            "$E2GAN_WALLPAPER_ROOT, else /usr/share)")

    p = add("import", "import your own pairs")
    p.add_argument("layout", choices=["folders", "img2img-turbo", "imagefolder"])
    p.add_argument("--source-dir")
    p.add_argument("--edited-dir")
    p.add_argument("--prompt")
    p.add_argument("--root", help="img2img-turbo or imagefolder dataset folder; imagefolder: or "
                                  "a Hugging Face dataset id, org/name[@revision]")
    p.add_argument("--allow-download", action="store_true",
                   help="imagefolder: fetch a Hub dataset missing from the Hugging Face cache")
    p.add_argument("--out", required=True)
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)

    p = add("select", "choose a representative subset of a dataset's training pairs")
    p.add_argument("--dataset", required=True)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--method", default="cluster", choices=["cluster", "random", "one_look"],
                   help="cluster: K-means on pair embeddings, nearest pair to each centre; "
                        "one_look: first keep the pairs whose edits agree on one look (a "
                        "diffusion teacher's seeds differ), then cluster")
    p.add_argument("--out", help="write the subset as a new dataset here")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--embedder", default=None,
                   help="builtin, clip or face: what embeds the pairs for cluster (default: clip "
                        "where its weights are on this machine, else builtin)")
    p.add_argument("--face-weights", help="face: a face-recognition .onnx (default: "
                                          "$E2GAN_FACE_WEIGHTS, else CLIP over the face crop)")

    p = add("dataset-export", "write a dataset as a Hugging Face imagefolder or img2img-turbo folder")
    p.add_argument("--dataset", required=True)
    p.add_argument("--format", default="imagefolder", choices=["imagefolder", "img2img-turbo"])
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
