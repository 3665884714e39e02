"""Judging commands: a model against held-out teacher edits (`evaluate`), an architecture's size
and speed (`profile`), and one concept exported for devices, checked and timed (`export`; a web
page with `--format web`, whose browser runtime `web-runtime` fetches)."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from e2gan.checks import check_adapter_scale, check_model_folder
from e2gan.cli.common import command
from e2gan.errors import E2GANError


@command("evaluate")
def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.data.dataset import PairDataset  # numpy and PIL, no torch

    dataset = PairDataset.open(args.dataset)
    if bool(args.model) == bool(args.onnx):
        raise E2GANError("evaluate needs exactly one of --model MODEL or --onnx FILE")
    if args.model:
        check_model_folder(args.model)

    from e2gan.evaluation.heldout import evaluate_pairs

    if args.onnx:  # an exported file, judged through the same callable interface
        from e2gan.export.formats import OnnxImageMaker
        from e2gan.devices import resolve_device

        maker, device = OnnxImageMaker(args.onnx), str(resolve_device(args.device))
    else:
        from e2gan.inference.pipeline import EditPipeline

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
    from e2gan.export.profile import profile_architecture

    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    return profile_architecture(args.arch, size=args.size, repeats=args.repeats, onnx=args.onnx,
                                floor=args.floor or args.onnx)


@command("export")
def cmd_export(args: argparse.Namespace) -> dict[str, Any]:
    check_model_folder(args.model)
    if args.adapter:
        check_adapter_scale(args.scale)

    from e2gan.export import export_concept

    formats = tuple(dict.fromkeys(args.format))
    others = tuple(name for name in formats if name != "web")
    web = None
    if "web" in formats:  # first: a missing browser runtime is said before any other work
        from e2gan.export.web import export_web

        web = export_web(args.model, args.out, adapter=args.adapter, prompt=args.prompt,
                         scale=args.scale, size=args.size, precision=args.precision,
                         dataset=args.dataset, repeats=args.repeats, threads=args.threads)
        if not others:
            return web
    result = export_concept(args.model, args.out, adapter=args.adapter, prompt=args.prompt,
                            scale=args.scale, size=args.size, formats=others,
                            dynamic=not args.static_only, repeats=args.repeats,
                            threads=args.threads, floor=args.floor, precision=args.precision,
                            dataset=args.dataset)
    return {**result, "web": web} if web else result


@command("web-runtime")
def cmd_web_runtime(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.export import web_runtime

    folder = web_runtime.runtime_folder(fetch=True)
    return {"runtime": f"{web_runtime.PACKAGE} {web_runtime.VERSION}", "folder": str(folder),
            "files": {name: (folder / name).stat().st_size for name in web_runtime.FILES}}


def add_parsers(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """This area's subcommands and flags; `add` makes a subparser with --json and --quiet."""
    p = add("evaluate", "judge a model (+ adapter) against a dataset's held-out teacher edits")
    p.add_argument("--model", help="a model folder (base, full fine-tune, pix2pix)")
    p.add_argument("--onnx", help="an exported .onnx file instead of --model (e2gan export)")
    p.add_argument("--adapter", help="the concept's adapter (.safetensors) or Hub id (org/name)")
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

    p = add("export", "export one concept as an on-device model (ONNX, TorchScript, ExecuTorch), "
                      "checked against torch and timed")
    p.add_argument("--model", required=True, help="a model folder (e.g. checkpoints/base)")
    p.add_argument("--adapter", help="the concept's adapter (.safetensors, or a Hub id "
                                    "org/name), merged into the weights")
    p.add_argument("--prompt", help="the concept (default: the adapter's); its text is baked in")
    p.add_argument("--scale", type=float, default=1.0, help="adapter strength")
    p.add_argument("--size", type=int, default=256, help="side of the static variant")
    p.add_argument("--format", nargs="+", default=["onnx", "torchscript"],
                   choices=["onnx", "torchscript", "executorch", "web"],
                   help="executorch: a .pte for PyTorch's mobile runtime (XNNPACK), static size; "
                        "needs pip install 'e2gan-studio[mobile]'. web: a folder OUT/<concept>_web "
                        "with a page that edits a photo or the camera in the browser "
                        "(onnxruntime-web; the static ONNX file at --size and --precision)")
    p.add_argument("--static-only", action="store_true", help="no dynamic-size ONNX variant")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp32",
                   help="fp16 (ONNX) or int8 (ONNX: static QDQ quantization; ExecuTorch: "
                        "XNNPACK's quantizer), calibrated on the concept's training sources; "
                        "checked on its held-out pairs against fp32 and the teacher, refused past "
                        "a 1 dB loss")
    p.add_argument("--dataset", help="pairs to calibrate and check fp16/int8 on (default: the "
                                     "adapter's training pairs)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs (median reported)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--floor", action="store_true",
                   help="also the latency floor: MACs over a measured sgemm rate")
    p.add_argument("--out", required=True, help="output folder")

    add("web-runtime", "fetch onnxruntime-web's browser runtime (pinned, checked) into the cache "
                       "that `export --format web` copies from")
