"""Section 7, strong looks: concepts whose texture or structure is the point (risograph's grain and
two inks, woodcut's gouges, stained glass's lead lines), all held out of the base.

Per concept, the studio's default fine-tune (the same LoRA recipe, for `looks_unit_seconds`: the
studio's five minutes) against no edit and pix2pix from scratch at `pix2pix_factor` times that
time. The main table's concepts are mostly tone edits; these are where an L1-led loss that
averages its pairs shows, so the section states per concept whether E2GAN beats no edit on FID and
KID and by how much PSNR, and draws source / teacher / E2GAN / pix2pix on photos the project ships.
"""

from __future__ import annotations

from typing import Any

from e2gan.bench.context import BenchContext
from e2gan.bench.report import METRIC_HEADERS, markdown_table, metric_cells
from e2gan.bench.runs import RunSpec, execute, maker_for, result_folder
from e2gan.bench.section_main import e2gan_spec, no_edit_row, shippable_examples
from e2gan.bench.settings import parse_concept
from e2gan.evaluation.pictures import contact_sheet
from e2gan.files import atomic_save_image

PSNR_GAIN_DB = 3.0  # the bar: a look is drawn, not just tinted


def run(context: BenchContext) -> dict[str, Any]:
    s = context.settings
    rows, verdicts, plots = [], [], []
    for data in s.looks_concepts:
        source, concept = parse_concept(data)
        e2gan_run = e2gan_spec(context, data, seconds=s.looks_unit_seconds)
        e2gan = execute(context, e2gan_run)
        pix2pix_run = RunSpec("pix2pix", data, [s.looks_unit_seconds * s.pix2pix_factor], seed=s.seed)
        pix2pix = execute(context, pix2pix_run)
        none = no_edit_row(context, data)
        for model, result in [("E2GAN (studio recipe)", e2gan),
                              (f"pix2pix-9RB, {s.pix2pix_factor:g}x the time", pix2pix),
                              ("no edit", none)]:
            rows.append({"concept": data, "model": model, **{k: result.get(k) for k in (
                "fid", "kid", "kid_std", "psnr", "ssim", "mae", "seconds", "steps")}})
        verdicts.append(_verdict(data, e2gan, none))
        dataset = context.data.dataset(source, concept)
        prompt = dataset.info.prompt
        sources, edits = shippable_examples(dataset, s.size)
        picture = contact_sheet(sources, edits, s.size, [("teacher", None)] + [
            (name, maker_for(context, spec, result_folder(context, result), prompt))
            for name, spec, result in [("E2GAN", e2gan_run, e2gan), ("pix2pix", pix2pix_run, pix2pix)]])
        name = f"looks_{source}_{concept}.png"  # columns: source, teacher, E2GAN, pix2pix
        atomic_save_image(context.report_dir / name, picture)
        plots.append(name)
    return {"rows": rows, "verdicts": verdicts, "plots": plots,
            "markdown": markdown(rows, verdicts, s)}


def _verdict(data: str, e2gan: dict[str, Any], none: dict[str, Any]) -> dict[str, Any]:
    below = {metric: e2gan[metric] < none[metric] for metric in ("fid", "kid")
             if e2gan.get(metric) is not None and none.get(metric) is not None}
    gain = (e2gan["psnr"] - none["psnr"]) if e2gan.get("psnr") is not None else None
    return {"concept": data, "below_no_edit": below, "psnr_gain_db": gain,
            "beats_no_edit": bool(below) and all(below.values()),
            "psnr_gain_met": gain is not None and gain >= PSNR_GAIN_DB}


def markdown(rows: list[dict], verdicts: list[dict], s) -> str:
    table = markdown_table(["concept", "model", *METRIC_HEADERS, "train time", "steps"], [
        [r["concept"], r["model"], *metric_cells(r), f"{r['seconds'] or 0:.0f} s", r["steps"] or 0]
        for r in rows])
    beats = sum(v["beats_no_edit"] for v in verdicts)
    gains = sum(v["psnr_gain_met"] for v in verdicts)
    lines = [table, "",
             f"E2GAN: the studio's LoRA recipe for {s.looks_unit_seconds:g} s on {s.subset} "
             f"similarity-clustered pairs; pix2pix from scratch on all training pairs for "
             f"{s.looks_unit_seconds * s.pix2pix_factor:g} s. Judged at {s.size}x{s.size}.", "",
             f"**Targets**: below no edit on FID and KID on {beats} of {len(verdicts)} concepts "
             f"(target: 7 of 8); at least {PSNR_GAIN_DB:g} dB PSNR over no edit on {gains} of "
             f"{len(verdicts)} (target: 6 of 8).", ""]
    for v in verdicts:
        gain = "n/a" if v["psnr_gain_db"] is None else f"{v['psnr_gain_db']:+.2f} dB"
        below = ", ".join(f"{m.upper()} {'below' if ok else 'not below'}"
                          for m, ok in v["below_no_edit"].items()) or "no FID/KID"
        lines.append(f"- {v['concept']}: {below} no edit; PSNR {gain} over no edit")
    return "\n".join(lines)
