"""The benchmark's report: `report.md` (tables, plots, the command, the machine, the budgets and
the notes), `report.json` (every number behind it), both written atomically."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from e2gan.bench.settings import SECTION_TITLES
from e2gan.files import atomic_write_json, atomic_write_text


def fmt(value: Any, spec: str = ".3f", missing: str = "–") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    if isinstance(value, (int, float)) and spec:
        return format(value, spec)
    return str(value)


def megabytes(value: float | None) -> str:
    return "–" if value is None else f"{value / 1e6:.2f} MB"


def markdown_table(headers: list[str], rows: Iterable[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def metric_cells(result: dict[str, Any]) -> list[str]:
    """FID, KID (x1000, ± its std over subsets), PSNR, SSIM of a judged run."""
    kid = result.get("kid")
    kid_text = "–" if kid is None else f"{kid * 1000:.1f}"
    # With both sets under KID's subset size every subset is the whole set and the std is 0:
    # that is no error bar, so it is shown only when the subsets really differ.
    if kid is not None and result.get("kid_std"):
        kid_text += f" ± {result['kid_std'] * 1000:.1f}"
    return [fmt(result.get("fid"), ".1f"), kid_text, fmt(result.get("psnr"), ".2f"),
            fmt(result.get("ssim"), ".3f")]


def best_rows(rows: list[dict[str, Any]], label: str) -> str:
    """One line per metric naming the row that scored best (lower FID/KID, higher PSNR)."""
    lines = []
    for metric, lower_is_better in (("fid", True), ("kid", True), ("psnr", False)):
        scored = [row for row in rows if row.get(metric) is not None]
        if scored:
            best = (min if lower_is_better else max)(scored, key=lambda row: row[metric])
            lines.append(f"best {metric.upper()}: {best[label]}")
    return ("\n\n" + "; ".join(lines) + ".") if lines else ""


METRIC_HEADERS = ["FID ↓", "KID×10³ ↓", "PSNR dB ↑", "SSIM ↑"]


def write_report(report_dir: Path, report: dict[str, Any]) -> Path:
    """Write report.md and report.json; returns the markdown's path."""
    report_dir.mkdir(parents=True, exist_ok=True)
    run = report["run"]
    lines = [
        "# E2GAN benchmark: the paper's tables in miniature", "",
        f"Command: `{run['command']}`  ",
        f"This run: {run['started']} – {run['finished']} ({run['total_seconds'] / 60:.1f} min)  ",
        *([f"Results computed (trained and judged, this run or an earlier one into the same "
           f"folder): {computed[0]} – {computed[1]}  "] if (computed := run.get("results_computed"))
          else []),
        f"Machine: {run['machine']}; torch {run['torch']}, {run['threads']} torch threads  ",
        f"Mode: {'quick (tiny settings: numbers mean nothing)' if run['quick'] else 'full'}", "",
        "## Setup", "", *run["setup"], "",
    ]
    if report.get("notes"):
        lines += ["## Run notes", "", *[f"- {note}" for note in report["notes"]], ""]
    for name, section in report["sections"].items():
        lines += [f"## {SECTION_TITLES[name]}", "", section["markdown"].rstrip(), "",
                  f"_Section time in this run: {section.get('seconds', 0) / 60:.1f} min (runs "
                  "finished by an earlier, interrupted run are read back, not redone)._", ""]
        for plot in section.get("plots", []):
            lines += [f"![{name}]({plot})", ""]
    path = atomic_write_text(report_dir / "report.md", "\n".join(lines))
    atomic_write_json(report_dir / "report.json", report)
    return path
