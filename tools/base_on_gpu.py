"""The next base's three stages on one GPU within one call of a few minutes (issue 29).

On this project's 2-core CPU the recipe of `tools/train_base.sh` is on the order of a hundred
CPU-hours; a lent GPU host runs one command of at most 10 minutes, with the repository and 64 MiB
of files in all and no network. This script is that command:

    python tools/base_on_gpu.py --pool .device/pool --out "$OUT" --minutes 8

1. The photo pool comes packed (`tools/pack_photo_pool.py .device/pool`); it must list the same
   photos as on the machine that packed it, or nothing runs.
2. Pairs: 400 per concept of the candidate's `selection.json` (32 concepts, the benchmark's four
   and the eight looks held out), at 256 px, by the built-in teacher v2, with the seeds of
   `train_base.sh`, one process per core.
3. Stages, each from the last one's EMA weights, the first from
   `checkpoints/candidates/base-v3-64`: 64 px (constant rate, continuing stage 1), 128 px and
   256 px (linear decay). A GPU wants larger batches than the CPU recipe's 8/4/4 (64/32/16
   here); the learning rate and EMA are the recipe's. Each stage gets its share of the minutes
   left (20%, 35%, 45%): a 20-step probe on one concept measures its images/s, which sets its
   step count so that its linear decay ends at its last step; `--max-minutes` (its share plus a
   quarter) guards it.
4. `OUT/base-256/` holds the weights in fp16 with their configs (`OUT/base-128/`, its
   generator); `OUT/run.json` every stage's summary, probe and timing; `OUT/logs.tar.gz` the logs.

`--device cpu --concepts 1 --pairs 4 --batches 2,2,2 --probe-steps 1 --minutes 1` runs the same
steps at a toy scale on any machine (`tests/test_base_on_gpu.py`: the check this script had
before any GPU ran it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
CANDIDATE = REPOSITORY / "checkpoints" / "candidates" / "base-v3-64"
LAYOUT = {"upsampling": "conv_resize", "skip_connections": True, "residual_output": True,
          "downsample_padding": "reflect", "noise_channels": 0, "norm_after_transformer": "pixel"}
# size, share of the training minutes, schedule
STAGES = [(64, 0.2, "constant"), (128, 0.35, "linear"), (256, 0.45, "linear")]
GPU_BATCHES = "64,32,16"


def e2gan(*arguments: str, log: Path | None = None, threads: int | None = None) -> dict:
    """Run an `e2gan` command of this checkout (no install needed); its final JSON line."""
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    if threads:
        environment["OMP_NUM_THREADS"] = str(threads)
    with open(log, "a") if log else open(os.devnull, "w") as stderr:
        done = subprocess.run([sys.executable, "-m", "e2gan", *arguments, "--json"], cwd=REPOSITORY,
                              env=environment, stdout=subprocess.PIPE, stderr=stderr, text=True)
    if done.returncode:
        tail = log.read_text()[-3000:] if log else ""
        raise SystemExit(f"e2gan {arguments[0]} failed ({done.returncode}):\n{tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def host() -> dict:
    """What ran the job: the accelerator and the library versions (the host's, not this repo's pins)."""
    import torch
    from importlib.metadata import PackageNotFoundError, version

    found = {"gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
             "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    # The host CPU's matrix units (issue 28 wants a CPU with bf16/AMX to measure on).
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    flags = set(re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.MULTILINE).group(1).split()
                if "flags" in cpuinfo else [])
    found["cpu"] = model.group(1) if model else None
    found["cpu_matrix_flags"] = sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx512_bf16",
                                                "amx_bf16", "amx_int8", "amx_tile"})
    for package in ("torch", "accelerate", "peft", "transformers", "numpy", "pillow"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def use_packed_pool(pool: Path) -> dict:
    """Point this process and its children at the packed pool, once it lists the packed photos."""
    os.environ["E2GAN_PHOTO_DATA"] = str(pool / "data")
    os.environ["E2GAN_WALLPAPER_ROOT"] = str(pool / "wallpapers")
    sys.path.insert(0, str(REPOSITORY))
    from e2gan.data.photo_pool import photo_pool

    packed = json.loads((pool / "pool.json").read_text())
    here = [photo.id for photo in photo_pool("all").photos]
    if here != packed["ids"]:
        missing = sorted(set(packed["ids"]) - set(here))[:5]
        raise SystemExit(f"the pool here lists {len(here)} photos, the packed one {len(packed['ids'])} "
                         f"(missing here: {missing}): scikit-image or scikit-learn differ?")
    return {"photos": len(here), "counts": packed["photos"]}


def make_pairs(numbered: list[tuple[int, str]], pool: Path, work: Path, count: int,
               logs: Path) -> float:
    """Each (number, concept)'s pairs, seeded number x 1000 as in `train_base.sh`."""
    started = time.perf_counter()
    if not numbered:
        return 0.0

    def one(number_and_concept: tuple[int, str]) -> dict:
        number, concept = number_and_concept
        return e2gan("pairs", "--source", f"pool:all:{pool / 'data'}", "--count", str(count),
                     "--size", "256", "--concept", concept, "--seed", str(number * 1000),
                     "--test-fraction", "0.05", "--out", str(work / "data" / concept), "--quiet",
                     log=logs / f"pairs-{concept}.log", threads=1)

    with ThreadPoolExecutor(max(1, min(len(numbered), os.cpu_count() or 1))) as pool_of_runs:
        made = list(pool_of_runs.map(one, numbered))
    if not all(result.get("complete") for result in made):
        raise SystemExit("some concepts' pairs are incomplete: see the pairs-*.log files")
    return time.perf_counter() - started


def train(size: int, batch: int, steps: int, schedule: str, init: Path, out: Path,
          datasets: list[Path], device: str, minutes: float | None, logs: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    arguments = ["train-base", "--dataset", *map(str, datasets), "--identity", "--out", str(out),
                 "--init-from", str(init), "--generator-config", json.dumps(LAYOUT),
                 "--size", str(size), "--batch-size", str(batch), "--steps", str(steps),
                 "--schedule", schedule, "--ema-decay", "0.999", "--device", device,
                 "--checkpoint-every", "1000000"]
    if minutes is not None:
        arguments += ["--max-minutes", f"{minutes:.3f}"]
    return e2gan(*arguments, log=logs / f"{out.name}.log")


LOGGED_STEP = re.compile(r"\] step (\d+)/\d+ .* ([\d.]+) img/s")


def steady_rate(log: Path, batch: int, summary: dict) -> float:
    """Images/s after start-up, from a run's last two progress lines (each gives the rate since
    the run began, so their step and time differences give the rate between them): the first
    steps of a GPU run carry its warm-up (kernel choice, allocation), which would halve a
    20-step average and so the steps planned."""
    points = [(int(step), int(step) * batch / float(rate))
              for step, rate in LOGGED_STEP.findall(log.read_text()) if float(rate) > 0]
    if len(points) >= 2 and points[-1][1] > points[-2][1]:
        (first_step, first_time), (last_step, last_time) = points[-2:]
        return (last_step - first_step) * batch / (last_time - first_time)
    return summary["images_per_second"]


def store(work: Path, out: Path, size: int, whole: bool) -> None:
    """A stage's weights in fp16 under OUT (the generator only, unless `whole`): written as each
    stage ends, so a call cut off by its time limit still brings back the stages done."""
    subprocess.run([sys.executable, str(REPOSITORY / "tools" / "store_half.py"),
                    str(work / f"base-{size}"), str(out / f"base-{size}")],
                   check=True, stdout=subprocess.DEVNULL)
    if not whole:
        for name in ("discriminator.safetensors", "discriminator.json"):
            (out / f"base-{size}" / name).unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=Path, required=True, help="a folder from tools/pack_photo_pool.py")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/base-on-gpu"))
    parser.add_argument("--minutes", type=float, default=8.0, help="the whole job, pairs included")
    parser.add_argument("--pairs", type=int, default=400, help="pairs per concept")
    parser.add_argument("--concepts", type=int, default=None,
                        help="only the first N concepts (the toy-scale smoke run)")
    parser.add_argument("--batches", default=GPU_BATCHES, help="batch size of each stage")
    parser.add_argument("--probe-steps", type=int, default=20)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    args = parser.parse_args()
    batches = [int(value) for value in args.batches.split(",")]
    if len(batches) != len(STAGES) or min(batches) < 1 or args.probe_steps < 1:
        parser.error(f"--batches takes {len(STAGES)} positive sizes and --probe-steps a positive count")
    started = time.perf_counter()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device here (use --device cpu for the toy-scale smoke run)")
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.work / "logs"
    shutil.rmtree(args.work, ignore_errors=True)
    logs.mkdir(parents=True)
    report: dict = {"device": args.device, "minutes": args.minutes, "host": host(),
                    "pool": use_packed_pool(args.pool), "stages": []}
    concepts = json.loads((CANDIDATE / "selection.json").read_text())["chosen"][:args.concepts]
    datasets = [args.work / "data" / concept for concept in concepts]
    # The first concept's pairs, then the first probe: a trainer that fails on this host fails
    # within a minute, not after all the pairs.
    numbered = list(enumerate(concepts, start=1))
    seconds = make_pairs(numbered[:1], args.pool, args.work, args.pairs, logs)
    probes = {STAGES[0][0]: train(STAGES[0][0], batches[0], args.probe_steps, "constant", CANDIDATE,
                                  args.work / f"probe-{STAGES[0][0]}", datasets[:1], args.device,
                                  None, logs)}
    seconds += make_pairs(numbered[1:], args.pool, args.work, args.pairs, logs)
    report["pairs_seconds"] = round(seconds, 1)
    print(f"pairs: {len(concepts)} concepts x {args.pairs} in {report['pairs_seconds']} s", flush=True)

    deadline = started + args.minutes * 60 - 30  # 30 s kept for storing the weights
    init = CANDIDATE
    for index, ((size, share, schedule), batch) in enumerate(zip(STAGES, batches)):
        probe = probes.get(size) or train(size, batch, args.probe_steps, "constant", init,
                                          args.work / f"probe-{size}", datasets[:1], args.device,
                                          None, logs)
        rate = steady_rate(logs / f"probe-{size}.log", batch, probe)
        # This stage's part of the time left (the probes' start-up comes out of it).
        shares_left = sum(stage[1] for stage in STAGES[index:])
        seconds = max(0.0, deadline - time.perf_counter()) * share / shares_left
        steps = max(1, int(seconds * rate / batch))
        print(f"{size} px: probe {rate:.0f} images/s -> {steps} steps of {batch} in about "
              f"{seconds:.0f} s", flush=True)
        out = args.work / f"base-{size}"
        # The guard: a quarter over the share, but never far past the whole job's deadline.
        guard = min(seconds * 1.25, max(seconds, deadline - time.perf_counter() + 15))
        summary = train(size, batch, steps, schedule, init, out, datasets, args.device,
                        max(guard, 1.0) / 60, logs)
        report["stages"].append({"size": size, "batch": batch, "steps_planned": steps,
                                 "probe_images_per_second": round(rate, 1),
                                 **{key: summary.get(key) for key in (
                                     "steps", "end_reason", "seconds", "images_per_second",
                                     "precision", "hardware", "final_losses", "pairs")}})
        print(f"{size} px: {summary.get('steps')} steps, {summary.get('end_reason')}, "
              f"{summary.get('seconds')} s, losses {summary.get('final_losses')}", flush=True)
        init = out
        if size >= 128:  # the 256 px stage whole, the 128 px one's generator as a fallback
            store(args.work, args.out, size, whole=size == STAGES[-1][0])
        report["images"] = sum(stage["steps"] * stage["batch"] for stage in report["stages"])
        report["seconds"] = round(time.perf_counter() - started, 1)
        (args.out / "run.json").write_text(json.dumps(report, indent=1) + "\n")

    # At most 8 files come back from the GPU host: base-256 (4), base-128's generator (2), the
    # report and the logs.
    with tarfile.open(args.out / "logs.tar.gz", "w:gz") as archive:
        archive.add(logs, arcname="logs")
    print(json.dumps({key: report[key] for key in ("images", "seconds", "pairs_seconds")}))


if __name__ == "__main__":
    main()
