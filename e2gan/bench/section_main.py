"""Section 1, the main table (paper Tab. 3 and Fig. 6): per concept,

- E2GAN: the base + LoRA (searched ranks) on `subset` similarity-clustered pairs, one budget unit;
- pix2pix-9RB from scratch on all training pairs, judged at one unit (equal time) and at
  `pix2pix_factor` units (5: the paper's claim is that E2GAN needs at most a fifth of its time);
- full fine-tuning of the base on all training pairs, `full_factor` units;
- the base without its adapter (the concept's learned tokens, LoRA off): what the base alone does;
- no edit (the source as is), the floor.

The claim tested: E2GAN's training time <= 1/5 of pix2pix's at FID or KID no worse.
"""

from __future__ import annotations

from typing import Any

from e2gan.bench.context import BenchContext
from e2gan.bench.judge import judge, no_edit
from e2gan.bench.plots import bar_chart
from e2gan.bench.report import METRIC_HEADERS, markdown_table, megabytes, metric_cells
from e2gan.bench.runs import RunSpec, base_maker, execute, maker_for, result_folder
from e2gan.bench.settings import parse_concept
from e2gan.data.sources import builtin_photos
from e2gan.evaluation.pictures import contact_sheet
from e2gan.teachers import create_teacher
from e2gan.files import atomic_save_image


def e2gan_spec(context: BenchContext, data: str, seed: int | None = None,
               pairs: int | None = None, method: str = "cluster", seconds: float | None = None,
               **extra: Any) -> RunSpec:
    """The E2GAN run every section compares against (shared, so it is trained once)."""
    s = context.settings
    return RunSpec("lora", data, [seconds or s.unit_seconds], selection=method,
                   pairs=pairs or s.subset, seed=s.seed if seed is None else seed, **extra)


def no_edit_row(context: BenchContext, data: str) -> dict[str, Any]:
    s = context.settings
    spec = {"no_edit": data, **s.data_key()}
    dataset = context.data.dataset(*parse_concept(data))
    return context.store.cached(f"noedit_{data}", spec, lambda folder: judge(
        no_edit, dataset, s.size, s.eval_images, s.fid, s.device))


def _base_row(context: BenchContext, data: str, e2gan: dict[str, Any]) -> dict[str, Any]:
    s = context.settings
    spec = e2gan_spec(context, data)
    dataset = context.data.dataset(*parse_concept(data))
    key = {"base_without_adapter": data, "adapter_run": e2gan["slug"], **s.data_key(),
           **context.base_key(spec.base)}
    def measure(folder):
        maker = base_maker(context, spec, result_folder(context, e2gan), dataset.info.prompt)
        return judge(maker, dataset, s.size, s.eval_images, s.fid, s.device)

    return context.store.cached(f"base_{data}", key, measure)


def _verdict(e2gan: dict, pix2pix: dict) -> dict[str, Any]:
    ratio = e2gan["seconds"] / max(pix2pix["seconds"], 1e-9)
    better = {}
    for metric in ("fid", "kid"):
        if e2gan.get(metric) is not None and pix2pix.get(metric) is not None:
            better[metric] = e2gan[metric] <= pix2pix[metric]
    quality = any(better.values()) if better else None
    return {"time_ratio": round(ratio, 3), "no_worse": better,
            "holds": None if quality is None else bool(quality and ratio <= 0.2 + 0.01)}


def run(context: BenchContext) -> dict[str, Any]:
    s = context.settings
    concepts, rows, verdicts, plots = [], [], [], []
    fid_series: dict[str, list] = {"E2GAN": [], "pix2pix 1x": [], f"pix2pix {s.pix2pix_factor:g}x": [],
                                   "full FT": [], "base, no adapter": [], "no edit": []}
    for data in s.main_concepts:
        source, concept = parse_concept(data)
        concepts.append(data)
        e2gan = execute(context, e2gan_spec(context, data))
        pix2pix_spec = RunSpec("pix2pix", data, [s.unit_seconds, s.pix2pix_seconds], seed=s.seed)
        pix2pix = execute(context, pix2pix_spec)
        full_spec = RunSpec("full", data, [s.full_seconds], seed=s.seed)
        full = execute(context, full_spec)
        none = no_edit_row(context, data)
        entries = [("E2GAN (base + LoRA)", e2gan),
                   (f"pix2pix-9RB, {s.unit_seconds:g} s", {**pix2pix, **pix2pix["milestones"][0]}),
                   (f"pix2pix-9RB, {s.pix2pix_seconds:g} s", pix2pix),
                   ("full fine-tune", full), ("base without adapter", _base_row(context, data, e2gan)),
                   ("no edit", none)]
        for (model, result), series in zip(entries, fid_series.values()):
            rows.append({"concept": data, "model": model, **{k: result.get(k) for k in (
                "fid", "kid", "kid_std", "psnr", "ssim", "mae", "seconds", "steps", "train_flops",
                "trainable_parameters", "stored_bytes", "train_pairs")}})
            series.append(result.get("fid"))
        verdicts.append({"concept": data, **_verdict(e2gan, pix2pix)})
        passes = e2gan["images_seen"] / max(1, e2gan["train_pairs"])
        if passes < 2:
            context.note(f"E2GAN on {data} trained {e2gan['steps']} steps ({passes:.1f} passes over "
                         f"its pairs) in {e2gan['seconds']:.0f} s: the CPU was slow or shared, and "
                         "every model here is under-trained by its time budget")
        dataset = context.data.dataset(source, concept)
        prompt = dataset.info.prompt
        sources, edits = shippable_examples(dataset, s.size)
        picture = contact_sheet(sources, edits, s.size, [("teacher", None)] + [
            (name, maker_for(context, spec, result_folder(context, result), prompt))
            for name, spec, result in [("E2GAN", e2gan_spec(context, data), e2gan),
                                       ("pix2pix", pix2pix_spec, pix2pix), ("full", full_spec, full)]] +
            [("base, no adapter", base_maker(context, e2gan_spec(context, data),
                                             result_folder(context, e2gan), prompt))])
        # Columns: source (= no edit), teacher, E2GAN, pix2pix (5x), full fine-tune, base alone.
        # Rows: the packaged sample photos, not the judged ones (see shippable_examples).
        name = f"main_{source}_{concept}.png"
        atomic_save_image(context.report_dir / name, picture)
        plots.append(name)
    chart = bar_chart(context.report_dir / "main_fid.png",
                      "FID vs teacher on held-out pairs (lower is better)", "FID", concepts, fid_series)
    plots.insert(0, chart.name)
    return {"rows": rows, "verdicts": verdicts, "plots": plots, "markdown": markdown(rows, verdicts, s)}


def markdown(rows: list[dict], verdicts: list[dict], s) -> str:
    headers = ["concept", "model", *METRIC_HEADERS, "train time", "steps", "train TFLOPs",
               "trainable params", "stored", "train pairs"]
    table = markdown_table(headers, [[
        r["concept"], r["model"], *metric_cells(r), f"{r['seconds'] or 0:.0f} s", r["steps"] or 0,
        f"{(r['train_flops'] or 0) / 1e12:.2f}",
        f"{r['trainable_parameters'] or 0:,}", megabytes(r["stored_bytes"] or 0), r["train_pairs"] or 0]
        for r in rows])
    lines = [table, "",
             f"Budgets: E2GAN {s.unit_seconds:g} s on {s.subset} similarity-clustered pairs; pix2pix "
             f"from scratch on all training pairs, judged at {s.unit_seconds:g} s and "
             f"{s.pix2pix_seconds:g} s; full fine-tune {s.full_seconds:g} s on all training pairs. "
             "A fine-tune's budget includes its search for the concept's starting tokens (before "
             "its first step). "
             f"Judged on up to {s.eval_images} held-out pairs at {s.size}x{s.size}. Train TFLOPs = "
             "steps x the FLOPs of one step counted by torch's FlopCounterMode (D step + G step, "
             "forward and backward; 2 FLOPs per multiply-add; transposed convs at input "
             "resolution), plus that search's forward passes. Stored = bytes kept per concept (the "
             "adapter, or the whole generator).",
             "", "**The paper's claim** (E2GAN's training time <= 1/5 of pix2pix's at FID or KID no "
             "worse than pix2pix's):", ""]
    for v in verdicts:
        said = {True: "holds", False: "does not hold", None: "not testable (no FID/KID)"}[v["holds"]]
        detail = ", ".join(f"{m.upper()} {'no worse' if ok else 'worse'}" for m, ok in v["no_worse"].items())
        lines.append(f"- {v['concept']}: {said} (time ratio {v['time_ratio']:.3f}; {detail or 'no FID/KID'})")
    return "\n".join(lines)


def shippable_examples(dataset, size: int, count: int = 4) -> tuple[list, list]:
    """(sources, the teacher's edits) for a report's pictures.

    The benchmark's photos may not go into the project (`../shared/data/README.md`), and a report
    is committed: its pictures show crops of the built-in photos (shipped with the package, each
    with its author and a licence that allows it: e2gan/data/photos/attribution.json), edited by
    the dataset's own teacher. The numbers still come from the judging photos.
    """
    photos = builtin_photos(count=count, size=size, seed=1)
    sources = [image.convert("RGB") for _, image in photos]
    teacher = create_teacher(dataset.info.teacher)  # the bench edits with the built-in teacher
    edits = teacher.edit(sources, dataset.info.prompt, list(range(count)))
    return sources, [edit.convert("RGB").resize((size, size)) for edit in edits]
