"""`e2gan bench`: run the chosen sections in order, each resumable, and write the report.

Everything a section trains or measures is cached in the work folder (`RunStore`), so a killed
run restarts at the run where it stopped and a finished run rewrites its report in seconds. The
report is rewritten after every section, so a long run shows its tables as they complete.
"""

from __future__ import annotations

import importlib
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from e2gan.bench.context import BenchContext
from e2gan.bench.data import BenchData, default_data_root
from e2gan.bench.judge import fid_unavailable_reason
from e2gan.bench.report import write_report
from e2gan.bench.settings import SECTIONS, BenchSettings, parse_concept
from e2gan.bench.store import RunStore
from e2gan.errors import E2GANError
from e2gan.devices import hardware_description, resolve_device


def _section_module(name: str):
    return importlib.import_module(f"e2gan.bench.section_{name}")


def _setup_lines(s: BenchSettings, data_root: Path, base: Path) -> list[str]:
    return [
        f"- Data: real photos from `{data_root}` (scenes: BSDS500, train_/val_ photos train, test_ "
        f"photos are held out; faces: the first {s.face_count} of face_0001-face_1245 train, the "
        f"judging faces face_1246-face_1445 are held out), shorter side resized to {s.source_side} px, edited by the built-in "
        "teacher into concepts the base never saw.",
        f"- Base: `{base}`. Training and judging at {s.size}x{s.size}, batch {s.batch_size}; seeds "
        f"fixed (run seed {s.seed}).",
        f"- Budgets (wall-clock training time): unit = {s.unit_seconds:g} s (an E2GAN LoRA "
        f"fine-tune); pix2pix {s.pix2pix_factor:g} units; full fine-tune {s.full_factor:g}; each "
        f"section-4 base {s.base_factor:g}. Budgets are wall-clock time, so the steps each run "
        "managed (reported) depend on the machine and its load; the seeds fix initialisation, data "
        "order and selection.",
        f"- Judging: up to {s.eval_images} held-out pairs per run; FID and KID (Clean-FID's way, "
        "standard Inception) against the teacher's edits, and PSNR / SSIM against the same edits.",
    ]


def _command_line() -> str:
    threads = " ".join(f"{name}={os.environ[name]}" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
                       if name in os.environ)
    return (threads + " " if threads else "") + "e2gan bench " + shlex.join(sys.argv[2:])


def run_bench(settings: BenchSettings, work_dir: str | Path, report_dir: str | Path | None = None,
              sections: list[str] | None = None, data_root: str | Path | None = None,
              log: Callable[[str], None] | None = None, command: str | None = None) -> dict[str, Any]:
    log = log or (lambda line: None)
    sections = list(sections or SECTIONS)
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise E2GANError(f"unknown bench section(s) {unknown}; known: {', '.join(SECTIONS)}")
    work_dir = Path(work_dir)
    report_dir = Path(report_dir) if report_dir else work_dir
    data = BenchData(Path(data_root) if data_root else default_data_root(), work_dir, settings, log)
    context = BenchContext(settings, work_dir, data, RunStore(work_dir), report_dir, log)
    concepts = [parse_concept(c)[1] for c in [*settings.main_concepts, settings.ablation_concept,
                                              *settings.selection_concepts,
                                              *(settings.looks_concepts if "looks" in sections else [])]]
    context.check_unseen(sorted(set(concepts)))
    if settings.fid and fid_unavailable_reason():
        context.note(f"FID/KID not measured: {fid_unavailable_reason()}")
    started, started_text = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M:%S %Z")
    report: dict[str, Any] = {"settings": settings.to_dict(), "sections": {}, "notes": context.notes}

    def run_info() -> dict[str, Any]:
        computed = context.store.computed_between()
        return {"command": command or _command_line(),
                "started": started_text, "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                "results_computed": list(computed) if computed else None,
                "total_seconds": round(time.perf_counter() - started, 1), "quick": settings.quick,
                "machine": f"{hardware_description(resolve_device(settings.device))}, "
                           f"{platform.platform(terse=True)}",
                "torch": torch.__version__, "threads": torch.get_num_threads(),
                "setup": _setup_lines(settings, data.root, context.base_dir())}

    for name in sections:
        log(f"section {name}")
        section_started = time.perf_counter()
        result = _section_module(name).run(context)
        result["seconds"] = round(time.perf_counter() - section_started, 1)
        report["sections"][name] = result
        report["run"] = run_info()
        write_report(report_dir, report)
    report["run"] = run_info()
    path = write_report(report_dir, report)
    return {**report, "report": str(path)}
