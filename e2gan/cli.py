"""The `e2gan` command line: one subcommand per step of the method, over the same functions the
studio calls.

Every subcommand takes `--json`, and then prints exactly one JSON object as its last stdout line
(paths, counts, metrics, timings) for scripts and benchmarks. Progress goes to stderr. A user
error (`E2GANError`: missing file, odd image, unknown concept, wrong base) is one line on stderr
and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from e2gan.errors import E2GANError

COMMANDS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {}


def command(name: str):
    def decorator(function):
        COMMANDS[name] = function
        return function
    return decorator


def _progress(args: argparse.Namespace, label: str):
    def report(event: dict[str, Any]) -> None:
        if args.quiet:
            return
        if "step" in event:
            losses = " ".join(f"{k}={v:.3f}" for k, v in event["losses"].items())
            print(f"[{label}] step {event['step']}/{event['total_steps']} {losses} "
                  f"{event['images_per_second']:.1f} img/s eta {event['eta_seconds']:.0f}s",
                  file=sys.stderr, flush=True)
        elif "done" in event:
            print(f"[{label}] {event['done']}/{event['total']} pairs", file=sys.stderr, flush=True)
    return report


# --- data -------------------------------------------------------------------------------------

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
                            on_progress=_progress(args, label), phrasings=phrasings,
                            candidates=args.candidates, candidate_filter=candidate_filter,
                            distributed=state)
    return result.summary() if result.process_index == 0 else None  # the main process reports


@command("import")
def cmd_import(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.data.importers import import_folders, import_img2img_turbo

    if args.layout == "folders":
        if not (args.source_dir and args.edited_dir and args.prompt):
            raise E2GANError("import folders needs --source-dir, --edited-dir and --prompt")
        dataset = import_folders(args.source_dir, args.edited_dir, args.prompt, args.out,
                                 test_fraction=args.test_fraction, seed=args.seed)
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
    from e2gan.selection import select

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
            "out": str(subset.root) if subset else None}


@command("dataset-export")
def cmd_dataset_export(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.data.dataset import PairDataset
    from e2gan.data.export import export_dataset

    return export_dataset(PairDataset.open(args.dataset), args.out, args.format,
                          overwrite=args.overwrite)


# --- training ---------------------------------------------------------------------------------

def _settings(args: argparse.Namespace, default_lr: float | None = None):
    from e2gan.training.recipes import FULL_LEARNING_RATE, TrainingSettings

    lr = args.lr if args.lr is not None else (default_lr or FULL_LEARNING_RATE)
    return TrainingSettings(size=args.size, steps=args.steps, batch_size=args.batch_size,
                            learning_rate=lr, discriminator_learning_rate=args.d_lr,
                            seed=args.seed, device=args.device,
                            max_seconds=args.max_minutes * 60 if args.max_minutes is not None else None)


@command("train-base")
def cmd_train_base(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.data.dataset import PairDataset
    from e2gan.training.recipes import train_base

    datasets = [PairDataset.open(path) for path in args.dataset]
    outcome = train_base(datasets, args.out, _settings(args), resume=not args.restart,
                         text_encoder=_base_text_encoder(args, datasets),
                         on_progress=_progress(args, "train-base"))
    return {"out": str(outcome.output), **outcome.summary}


def _base_text_encoder(args: argparse.Namespace, datasets):
    from e2gan.text import text_encoder_from_option

    # teacher-clip defaults to the pipeline that made the pairs, when they all name the same one.
    models = list(dict.fromkeys(m for dataset in datasets for m in dataset.info.teacher_models()))
    return text_encoder_from_option(args.text_encoder, args.text_model,
                                    default_teacher_model=models[0] if len(models) == 1 else None,
                                    allow_download=args.allow_download)


@command("finetune")
def cmd_finetune(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.data.dataset import PairDataset
    from e2gan.training.recipes import LORA_LEARNING_RATE, finetune

    dataset = PairDataset.open(args.dataset)
    ranks = _load_ranks(args) if args.mode == "lora" else None
    settings = _settings(args, LORA_LEARNING_RATE if args.mode == "lora" else None)
    outcome = finetune(args.base, dataset, args.out, settings, mode=args.mode, ranks=ranks,
                       resume=not args.restart, on_progress=_progress(args, "finetune"))
    return {"out": str(outcome.output), **outcome.summary}


def _load_ranks(args: argparse.Namespace) -> dict[str, int] | None:
    from e2gan.checkpoint import load_generator, load_rank_table
    from e2gan.training.recipes import uniform_ranks

    if args.rank:
        return uniform_ranks(load_generator(args.base).generator, args.rank)
    return load_rank_table(args.ranks) if args.ranks else None  # None: the base's ranks.json


@command("train-pix2pix")
def cmd_train_pix2pix(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.data.dataset import PairDataset
    from e2gan.training.recipes import train_pix2pix

    dataset = PairDataset.open(args.dataset)
    outcome = train_pix2pix(dataset, args.out, _settings(args), resume=not args.restart,
                            on_progress=_progress(args, "pix2pix"))
    return {"out": str(outcome.output), **outcome.summary}


@command("rank-search")
def cmd_rank_search(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.data.dataset import PairDataset
    from e2gan.rank_search import RankSearchSettings, format_rank_table, search_ranks

    datasets = [PairDataset.open(path) for path in args.dataset]
    settings = RankSearchSettings(steps_per_round=args.steps_per_round, size=args.size,
                                  batch_size=args.batch_size, learning_rate=args.lr,
                                  seed=args.seed, device=args.device, max_rounds=args.max_rounds)
    result = search_ranks(args.base, datasets, settings, on_progress=_progress(args, "rank-search"))
    if not args.json:
        print(format_rank_table(result))
    if args.out:
        from e2gan.files import atomic_write_json
        atomic_write_json(args.out, result)
    return result


# --- judging ----------------------------------------------------------------------------------

@command("evaluate")
def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.data.dataset import PairDataset
    from e2gan.evaluation import evaluate_pairs

    dataset = PairDataset.open(args.dataset)
    if bool(args.model) == bool(args.onnx):
        raise E2GANError("evaluate needs exactly one of --model MODEL or --onnx FILE")
    if args.onnx:  # an exported file, judged through the same callable interface
        from e2gan.export.formats import OnnxImageMaker
        from e2gan.training.recipes import resolve_device

        maker, device = OnnxImageMaker(args.onnx), str(resolve_device(args.device))
    else:
        from e2gan.pipeline import EditPipeline

        pipeline = EditPipeline.from_pretrained(args.model, device=args.device)
        if args.adapter:
            pipeline.load_adapter(args.adapter)
        prompt = pipeline.default_prompt(dataset.info.prompt)
        maker, device = (lambda images: pipeline(images, prompt, size=args.size)), str(pipeline.device)
    metrics = evaluate_pairs(maker, dataset, split=args.split, size=args.size, limit=args.limit,
                             fid=args.fid, clip=args.clip, device=device, cache=not args.no_cache)
    return {"model": args.model or args.onnx, "adapter": args.adapter,
            "dataset": str(dataset.root), **metrics}


@command("profile")
def cmd_profile(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.profiling import profile_architecture

    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    return profile_architecture(args.arch, size=args.size, repeats=args.repeats, onnx=args.onnx,
                                floor=args.floor or args.onnx)


@command("export")
def cmd_export(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.export import export_concept

    return export_concept(args.model, args.out, adapter=args.adapter, prompt=args.prompt,
                          scale=args.scale, size=args.size, formats=tuple(args.format),
                          dynamic=not args.static_only, repeats=args.repeats, threads=args.threads,
                          floor=args.floor)


@command("edit")
def cmd_edit(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.files import atomic_save_image, load_image
    from e2gan.pipeline import EditPipeline

    pipeline = EditPipeline.from_pretrained(args.model, device=args.device)
    if args.adapter:
        pipeline.load_adapter(args.adapter, scale=args.scale)
    prompt = pipeline.default_prompt(args.prompt)
    image = load_image(args.image)
    started = time.perf_counter()
    edited = pipeline([image], prompt, size=args.size)[0]
    seconds = time.perf_counter() - started
    atomic_save_image(args.out, edited)
    return {"out": str(args.out), "prompt": prompt, "seconds": round(seconds, 4)}


@command("adapter")
def cmd_adapter(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan import lora
    from e2gan.checkpoint import (apply_adapter, blend_adapters, load_generator, read_adapter,
                                  save_adapter, save_generator)

    first = read_adapter(args.adapter)
    if args.action == "info":
        meta = first.metadata
        return {"adapter": args.adapter, "bytes": Path(args.adapter).stat().st_size,
                **{k: meta[k] for k in ("concept", "prompt", "ranks", "base_sha256",
                                        "text_encoder", "trainable_parameters", "training")}}
    if not args.out:
        raise E2GANError(f"adapter {args.action} needs --out")
    if args.action == "blend":
        if not args.other:
            raise E2GANError("adapter blend needs --other ADAPTER")
        weight = 0.5 if args.weight is None else args.weight
        blended = blend_adapters(first, read_adapter(args.other), weight, prompt=args.prompt)
        save_adapter(args.out, blended)
        return {"out": args.out, "concept": blended.concept, "ranks": blended.metadata["ranks"],
                "bytes": Path(args.out).stat().st_size}
    # merge: a plain model folder with the concept folded in (what export and devices want)
    if not args.base:
        raise E2GANError("adapter merge needs --base MODEL")
    loaded = load_generator(args.base)
    name = apply_adapter(loaded, first)
    lora.set_adapter_scale(loaded.generator, name, 1.0 if args.weight is None else args.weight)
    lora.remove_adapters(loaded.generator, merge=True)
    save_generator(args.out, loaded.generator, loaded.text_encoder,
                   {"merged_from": {"base": args.base, "adapter": args.adapter, "scale": args.weight}})
    return {"out": args.out, "concept": first.concept, "prompt": first.prompt}


@command("demo")
def cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.demo import DemoSettings, run_demo

    settings = DemoSettings(concept=args.concept, size=args.size, pairs=args.pairs,
                            subset=args.subset, finetune_minutes=args.minutes, seed=args.seed,
                            base=args.base, device=args.device)
    return run_demo(args.out, settings, log=None if args.quiet else
                    (lambda line: print(line, file=sys.stderr, flush=True)))


@command("bench")
def cmd_bench(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.bench import BenchSettings, quick_settings, run_bench

    overrides = {key: value for key, value in {
        "unit_seconds": args.unit_seconds, "size": args.size, "eval_images": args.eval_images,
        "seed": args.seed, "base": args.base, "device": args.device}.items() if value is not None}
    if args.no_fid:
        overrides["fid"] = False
    if args.concepts:
        overrides["main_concepts"] = [c.strip() for c in args.concepts.split(",") if c.strip()]
    if args.data_sizes:
        overrides["data_sizes"] = args.data_sizes
    if args.selection_concepts:
        overrides["selection_concepts"] = [c.strip() for c in args.selection_concepts.split(",")
                                           if c.strip()]
    if args.selection_seeds:
        overrides["selection_seeds"] = args.selection_seeds
    settings = quick_settings(**overrides) if args.quick else BenchSettings(**overrides)
    sections = [name.strip() for name in args.sections.split(",") if name.strip()] if args.sections else None
    report = run_bench(settings, args.out, args.report_dir, sections, args.data,
                       log=None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True)))
    return {"report": report["report"], "notes": report["notes"],
            "sections": {name: section["seconds"] for name, section in report["sections"].items()},
            "total_seconds": report["run"]["total_seconds"],
            "main_verdicts": report["sections"].get("main", {}).get("verdicts"),
            "selection_summary": report["sections"].get("data", {}).get("summary")}


@command("concepts")
def cmd_concepts(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.teachers import describe_teachers

    teachers = describe_teachers()
    for name, entry in teachers.items():
        if args.json:
            continue
        if not entry["available"]:
            print(f"{name}: cannot run here ({entry['reason']})")
            continue
        print(f"{name}: " + ", ".join(entry["concepts"] or ["any prompt"]))
        if "model" in entry:
            print(f"  weights {entry['model']}: " + (f"present ({entry['weights']})"
                  if entry["weights_present"] else f"missing ({entry['weights_reason']})"))
    return {"teachers": teachers}


# --- parser -----------------------------------------------------------------------------------

def _training_arguments(parser: argparse.ArgumentParser, steps: int, size: int = 128) -> None:
    parser.add_argument("--size", type=int, default=size, help="training resolution (pixels)")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=None,
                        help="Adam learning rate, generator side (default: 3e-3 for LoRA, "
                             "2e-4 otherwise)")
    parser.add_argument("--d-lr", type=float, default=None,
                        help="discriminator learning rate (default: same as --lr)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop cleanly after this much training time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--restart", action="store_true",
                        help="ignore a training checkpoint left by an interrupted run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="e2gan", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
        p.add_argument("--quiet", action="store_true", help="no progress on stderr")
        return p

    p = add("pairs", "make a paired dataset with a teacher")
    p.add_argument("--concept", required=True, help="a built-in concept name, or a prompt")
    p.add_argument("--teacher", default="builtin")
    p.add_argument("--source", default="builtin", help="'builtin', a folder or a .zip of images")
    p.add_argument("--count", type=int, default=None, help="number of source images")
    p.add_argument("--size", type=int, default=256, help="side of built-in photo crops")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--batch-size", type=int, default=8, help="images per teacher call")
    p.add_argument("--instruction", help="the concept phrased as an instruction (InstructPix2Pix)")
    p.add_argument("--description", help="the concept phrased as a description (img2img)")
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

    p = add("import", "import your own pairs")
    p.add_argument("layout", choices=["folders", "img2img-turbo"])
    p.add_argument("--source-dir")
    p.add_argument("--edited-dir")
    p.add_argument("--prompt")
    p.add_argument("--root", help="img2img-turbo dataset folder")
    p.add_argument("--out", required=True)
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)

    p = add("select", "choose a representative subset of a dataset's training pairs")
    p.add_argument("--dataset", required=True)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--method", default="cluster", choices=["cluster", "random"],
                   help="cluster: K-means on pair embeddings, nearest pair to each centre")
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

    p = add("train-base", "train the shared base generator on several concepts")
    p.add_argument("--dataset", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--text-encoder", default="learned", choices=["learned", "clip", "teacher-clip"],
                   help="learned: a small table per concept (no text model); clip: open_clip's "
                        "text tower; teacher-clip: the diffusion teacher's own CLIP text encoder")
    p.add_argument("--text-model", default=None,
                   help="clip: MODEL or MODEL:PRETRAINED (default ViT-B-32:laion2b_s34b_b79k); "
                        "teacher-clip: pipeline folder or repo id (default: the model that made "
                        "the pairs, else timbrooks/instruct-pix2pix)")
    p.add_argument("--allow-download", action="store_true",
                   help="let the text model download when it is not on this machine")
    _training_arguments(p, steps=5000)

    p = add("finetune", "teach a base model a new concept (LoRA adapter or full fine-tune)")
    p.add_argument("--base", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True, help="adapter file (lora) or model folder (full)")
    p.add_argument("--mode", default="lora", choices=["lora", "full"])
    p.add_argument("--ranks", help="rank table json (default: the base's ranks.json)")
    p.add_argument("--rank", type=int, help="one rank for every crucial layer")
    _training_arguments(p, steps=600)

    p = add("train-pix2pix", "train the pix2pix baseline from scratch")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True)
    _training_arguments(p, steps=600)

    p = add("rank-search", "search LoRA ranks per crucial layer (Algorithm 1)")
    p.add_argument("--base", required=True)
    p.add_argument("--dataset", nargs="+", required=True, help="sample concepts' datasets")
    p.add_argument("--steps-per-round", type=int, default=100)
    p.add_argument("--max-rounds", type=int, default=5)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-3, help="LoRA learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="write the rank table json here (e.g. BASE/ranks.json)")

    p = add("evaluate", "judge a model (+ adapter) against a dataset's held-out teacher edits")
    p.add_argument("--model", help="a model folder (base, full fine-tune, pix2pix)")
    p.add_argument("--onnx", help="an exported .onnx file instead of --model (e2gan export)")
    p.add_argument("--adapter")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--limit", type=int, default=None, help="judge only the first N pairs")
    p.add_argument("--fid", action="store_true",
                   help="also FID and KID against the teacher's edits (Inception, Clean-FID way)")
    p.add_argument("--clip", action="store_true",
                   help="also CLIP directional similarity and CMMD (needs local CLIP weights)")
    p.add_argument("--no-cache", action="store_true",
                   help="do not read or write the cache of the teacher side's Inception features")

    p = add("profile", "parameters, MACs and latency of an architecture")
    p.add_argument("--arch", default="e2gan", choices=["e2gan", "pix2pix"])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--onnx", action="store_true",
                   help="also onnxruntime latency, and the floor (implies --floor)")
    p.add_argument("--floor", action="store_true",
                   help="the latency floor: MACs over a measured sgemm rate (1 and all threads)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")

    p = add("export", "export one concept as an on-device model (ONNX, TorchScript), checked "
                      "against torch and timed")
    p.add_argument("--model", required=True, help="a model folder (e.g. checkpoints/base)")
    p.add_argument("--adapter", help="the concept's adapter (.safetensors), merged into the weights")
    p.add_argument("--prompt", help="the concept (default: the adapter's); its text is baked in")
    p.add_argument("--scale", type=float, default=1.0, help="adapter strength")
    p.add_argument("--size", type=int, default=256, help="side of the static variant")
    p.add_argument("--format", nargs="+", default=["onnx", "torchscript"],
                   choices=["onnx", "torchscript"])
    p.add_argument("--static-only", action="store_true", help="no dynamic-size ONNX variant")
    p.add_argument("--repeats", type=int, default=10, help="timed runs (median reported)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--floor", action="store_true",
                   help="also the latency floor: MACs over a measured sgemm rate")
    p.add_argument("--out", required=True, help="output folder")

    p = add("edit", "edit one image with a model (+ adapter)")
    p.add_argument("--model", required=True)
    p.add_argument("--adapter")
    p.add_argument("--scale", type=float, default=1.0, help="adapter strength")
    p.add_argument("--prompt", default=None)
    p.add_argument("--image", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=None, help="resize the short side (default: keep)")
    p.add_argument("--device", default="auto")

    p = add("adapter", "inspect, blend or merge concept adapters")
    p.add_argument("action", choices=["info", "blend", "merge"])
    p.add_argument("adapter", help="adapter file (.safetensors)")
    p.add_argument("--other", help="blend: the second adapter")
    p.add_argument("--weight", type=float, default=None,
                   help="blend: weight of the first adapter, 0-1 (default 0.5); "
                        "merge: adapter strength (default 1)")
    p.add_argument("--prompt", help="blend: prompt of the blended concept")
    p.add_argument("--base", help="merge: the base model folder the adapter was trained on")
    p.add_argument("--out", help="blend: adapter file; merge: model folder")

    p = add("demo", "the end-to-end demo: pairs -> subset -> LoRA vs pix2pix -> table")
    p.add_argument("--concept", default="winter")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--pairs", type=int, default=300)
    p.add_argument("--subset", type=int, default=100)
    p.add_argument("--minutes", type=float, default=5.0, help="training time for each model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--base", default=None, help="base model folder (default: the shipped one)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="runs/demo")

    p = add("bench", "the paper's tables in miniature on real photos (report, json, plots)")
    p.add_argument("--quick", action="store_true", help="tiny settings: checks every section runs")
    p.add_argument("--sections", help="comma-separated subset of: main, ranks, layers, base, data, "
                                      "inference (default: all)")
    p.add_argument("--unit-seconds", type=float, default=None,
                   help="E2GAN's training budget; pix2pix gets 5x, bases 4x (default 60; quick 1)")
    p.add_argument("--size", type=int, default=None, help="training and judging size (default 128)")
    p.add_argument("--eval-images", type=int, default=None, help="held-out pairs judged per run")
    p.add_argument("--no-fid", action="store_true", help="paired metrics only (no Inception)")
    p.add_argument("--concepts", help="main table's concepts, e.g. scenes:winter,faces:silver_sculpture")
    p.add_argument("--data-sizes", type=int, nargs="+", help="data curve's subset sizes (default 25 50 100 200)")
    p.add_argument("--selection-concepts", help="cluster-vs-random grid's concepts (default: "
                                                "scenes:winter,scenes:watercolor,scenes:thermal_camera)")
    p.add_argument("--selection-seeds", type=int, nargs="+", help="cluster-vs-random grid's seeds (default 0 1 2)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--base", default=None, help="base model folder (default: the shipped one)")
    p.add_argument("--device", default=None)
    p.add_argument("--data", default=None, help="folder with scenes/ and faces/ "
                                                "(default: $E2GAN_BENCH_DATA or ../shared/data)")
    p.add_argument("--out", default="runs/bench", help="work folder (cached runs; resumable)")
    p.add_argument("--report-dir", default=None, help="where report.md/json and plots go "
                                                      "(default: the work folder)")

    add("concepts", "list teachers, whether they and their weights are here, and their concepts")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = COMMANDS[args.command](args)
        if result is None:  # a non-main process of a sharded run: the main one reports
            return 0
    except E2GANError as error:
        print(f"error: {error}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": str(error)}))
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result, default=str))
    elif args.command not in ("concepts", "rank-search"):
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
