"""Commands over the whole method: the end-to-end demo (`demo`), the paper's tables in miniature
(`bench`) and the list of teachers and their concepts (`concepts`)."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from e2gan.cli.common import command, log_lines
from e2gan.errors import E2GANError


@command("demo")
def cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.bench.demo import DemoSettings, run_demo

    settings = DemoSettings(concept=args.concept, size=args.size, pairs=args.pairs,
                            subset=args.subset, finetune_minutes=args.minutes, seed=args.seed,
                            base=args.base, device=args.device)
    return run_demo(args.out, settings, log=log_lines(args))


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
    if args.selection_steps:
        overrides["selection_steps"] = args.selection_steps
    if args.selection_seeds:
        overrides["selection_seeds"] = args.selection_seeds
    if args.looks_concepts:
        overrides["looks_concepts"] = [c.strip() for c in args.looks_concepts.split(",") if c.strip()]
    if args.looks_seconds:
        overrides["looks_unit_seconds"] = args.looks_seconds
    settings = quick_settings(**overrides) if args.quick else BenchSettings(**overrides)
    sections = [name.strip() for name in args.sections.split(",") if name.strip()] if args.sections else None
    report = run_bench(settings, args.out, args.report_dir, sections, args.data,
                       log=log_lines(args))
    return {"report": report["report"], "notes": report["notes"],
            "sections": {name: section["seconds"] for name, section in report["sections"].items()},
            "total_seconds": report["run"]["total_seconds"],
            "main_verdicts": report["sections"].get("main", {}).get("verdicts"),
            "selection_summary": report["sections"].get("data", {}).get("summary"),
            "looks_verdicts": report["sections"].get("looks", {}).get("verdicts")}


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


@command("fetch-weights")
def cmd_fetch_weights(args: argparse.Namespace) -> dict[str, Any]:
    """Download once, into the Hugging Face cache, what a teacher or CLIP needs; a later run
    finds it there offline. Progress on stderr; what is already cached is not fetched again."""
    from e2gan.teachers import TEACHERS
    from e2gan.teachers.weights import resolve_model_folder
    from e2gan.text import resolve_open_clip_weights

    target = args.target
    if target in TEACHERS.names():
        if not TEACHERS.get(target).default_model:
            raise E2GANError(f"teacher {target!r} has no weights to fetch")
        paths = TEACHERS.get(target).fetch_weights(args.model)
    elif target == "clip" or target.startswith("clip:"):
        from e2gan.teachers.clip_scores import DEFAULT_MODEL, default_pretrained

        model_name, _, tag = target.partition(":")[2].partition(":")
        model_name = model_name or DEFAULT_MODEL
        paths = [resolve_open_clip_weights(model_name, tag or default_pretrained(model_name),
                                           allow_download=True)]
    elif "/" in target:
        paths = [str(resolve_model_folder(target, allow_download=True))]
    else:
        raise E2GANError(f"unknown target {target!r}: give a teacher ({', '.join(TEACHERS.names())}), "
                         "clip[:MODEL[:TAG]] or a diffusers repo id like org/name")
    return {"target": target, "paths": paths}


def add_parsers(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """This area's subcommands and flags; `add` makes a subparser with --json and --quiet."""
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
                                      "inference, looks (default: all)")
    p.add_argument("--unit-seconds", type=float, default=None,
                   help="E2GAN's training budget; pix2pix gets 5x, bases 4x (default 60; quick 1)")
    p.add_argument("--size", type=int, default=None, help="training and judging size (default 128)")
    p.add_argument("--eval-images", type=int, default=None, help="held-out pairs judged per run")
    p.add_argument("--no-fid", action="store_true", help="paired metrics only (no Inception)")
    p.add_argument("--concepts", help="main table's concepts, e.g. scenes:winter,faces:silver_sculpture")
    p.add_argument("--data-sizes", type=int, nargs="+", help="data curve's subset sizes (default 25 50 100 200)")
    p.add_argument("--selection-concepts", help="cluster-vs-random grid's concepts (default: "
                                                "scenes:winter,scenes:watercolor,scenes:thermal_camera)")
    p.add_argument("--selection-steps", type=int, help="section 5's runs train exactly this many "
                                                        "steps instead of the wall-clock unit")
    p.add_argument("--selection-seeds", type=int, nargs="+", help="cluster-vs-random grid's seeds (default 0 1 2)")
    p.add_argument("--looks-concepts", help="section 7's concepts (default: the eight looks)")
    p.add_argument("--looks-seconds", type=float, default=None,
                   help="section 7's E2GAN time (default 300: the studio's five minutes)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--base", default=None, help="base model folder (default: the shipped one)")
    p.add_argument("--device", default=None)
    p.add_argument("--data", default=None, help="folder with scenes/ and faces/ "
                                                "(default: $E2GAN_BENCH_DATA or ../shared/data)")
    p.add_argument("--out", default="runs/bench", help="work folder (cached runs; resumable)")
    p.add_argument("--report-dir", default=None, help="where report.md/json and plots go "
                                                      "(default: the work folder)")

    add("concepts", "list teachers, whether they and their weights are here, and their concepts")

    p = add("fetch-weights", "download a teacher's or CLIP's weights once into the Hugging Face cache")
    p.add_argument("target", help="a teacher (instruct-pix2pix, sd-img2img, sd-turbo, controlnet), "
                                  "clip[:MODEL[:TAG]] (default ViT-B-32:laion2b_s34b_b79k) or a "
                                  "diffusers repo id org/name")
    p.add_argument("--model", help="a teacher's model repo instead of its default")
