"""kill -9 trials: start a job, SIGKILL it at a random moment, run it again to the end, and
compare what it wrote with an uninterrupted run's.

    .venv/bin/python experiments/kill_trials.py [--trials 10] [--work /tmp/e2gan-kill] [--out report.json]

Jobs: `e2gan pairs` (200 pairs at 128 px), `e2gan train-base` and `e2gan finetune` (tiny models,
32 px, a resumable state every 25 steps), and the studio's fine-tune (the server killed after its
first 45 s slice; its files then read as a restarted studio would). A trial counts only when the
kill landed before the job ended (else it is drawn again). For each: was it killed, did the rerun
resume (a state or partial dataset was there) or start over, is the result whole and equal to the
uninterrupted one, and did any temporary file stay behind.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
E2GAN = str(Path(sys.executable).with_name("e2gan"))
TINY = '{"num_filters": 8, "text_dim": 16, "num_heads": 2, "mlp_mult": 2}'


def run(args: list[str], kill_after: float | None = None) -> tuple[int, str]:
    process = subprocess.Popen([E2GAN, *args, "--quiet"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    if kill_after is None:
        _, err = process.communicate()
        return process.returncode, err.decode()[-300:]
    try:
        process.wait(timeout=kill_after)
        return process.returncode, "finished before the kill"
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return -9, ""


def timed(args: list[str]) -> float:
    started = time.time()
    code, err = run(args)
    if code:
        raise SystemExit(f"{args[0]} failed: {err}")
    return time.time() - started


def leftovers(folder: Path) -> list[str]:
    """Temporaries of interrupted writes still there after the rerun."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.name.endswith(".tmp") or p.name.endswith(".partial"))


def digest(folder: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        sha.update(path.name.encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()


def max_difference(first: dict, second: dict) -> float:
    return max(float((first[name].float() - second[name].float()).abs().max()) for name in first)


def trials(kind: str, count: int, duration: float, rng: random.Random, attempt) -> list[dict]:
    """`attempt(index, kill_after)` kills, reruns and judges one run: a dict with "killed"."""
    rows, index = [], 0
    while len(rows) < count and index < 4 * count:
        row = attempt(index, rng.uniform(0.3 * duration, 0.9 * duration))
        index += 1
        if row["killed"]:
            rows.append(row)
    print(kind, json.dumps(rows), flush=True)
    return rows


def pairs_trials(work: Path, count: int, rng: random.Random) -> list[dict]:
    from e2gan.data.dataset import PairDataset

    args = lambda out: ["pairs", "--source", "builtin", "--count", "200", "--size", "128",
                        "--concept", "oil_painting", "--out", str(out)]
    duration = timed(args(work / "pairs-ref"))
    reference = digest(work / "pairs-ref" / "edited")

    def attempt(index: int, kill_after: float) -> dict:
        out = work / f"pairs-{index}"
        code, _ = run(args(out), kill_after)
        if code != -9:
            return {"killed": False}
        made = len(PairDataset.open(out)) if (out / "dataset.json").is_file() else 0
        rerun, err = run(args(out))
        dataset = PairDataset.open(out)
        return {"killed": True, "kill_after_s": round(kill_after, 1), "pairs_at_kill": made,
                "resumed": made > 0, "rerun_exit": rerun, "complete": dataset.info.complete,
                "pairs": len(dataset), "identical_to_uninterrupted": digest(out / "edited") == reference,
                "leftovers": leftovers(out), "error": err if rerun else ""}

    return trials("pairs", count, duration, rng, attempt)


def model_trials(kind: str, work: Path, count: int, rng: random.Random, args, output, load) -> list[dict]:
    reference = work / f"{kind}-ref"
    duration = timed(args(output(reference)))

    def attempt(index: int, kill_after: float) -> dict:
        folder = work / f"{kind}-{index}"
        out = output(folder)
        code, _ = run(args(out), kill_after)
        if code != -9:
            return {"killed": False}
        state = [p for p in folder.rglob("trainer.pt")]
        rerun, err = run(args(out))
        try:
            difference, loads = max_difference(load(out), load(output(reference))), True
        except Exception as error:  # noqa: BLE001 - a result that does not load is the finding
            difference, loads, err = None, False, f"{type(error).__name__}: {error}"
        return {"killed": True, "kill_after_s": round(kill_after, 1), "resumed": bool(state),
                "rerun_exit": rerun, "loads": loads, "max_difference_vs_uninterrupted": difference,
                "leftovers": leftovers(folder), "error": err if rerun or not loads else ""}

    return trials(kind, count, duration, rng, attempt)


def studio_trials(work: Path, count: int) -> list[dict]:
    """The studio killed mid fine-tune, after its first slice wrote adapter, state and record."""
    import gradio_client

    sys.path.insert(0, str(REPOSITORY))
    sys.path.insert(0, str(REPOSITORY / "tools"))
    from soak_studio import free_port, launch, wait_until_up

    from e2gan.checkpoint import read_adapter

    rows = []
    for index in range(count):
        root, port = work / f"studio-{index}", free_port()
        url = f"http://127.0.0.1:{port}/"
        server = launch(root, port, dict(os.environ))
        try:
            wait_until_up(url, server)
            client = gradio_client.Client(url, verbose=False, download_files=False)
            client.predict("winter", "builtin", "built-in photos", "", None, index, 0.75, 7.5,
                           api_name="/concept")
            client.predict(24, api_name="/generate_pairs")
            job = client.submit(2.0, 0, 64, 0.003, 0, False, api_name="/finetune")
            started = time.time()
            while time.time() - started < 300 and not any(out[2] for out in job.outputs()):
                time.sleep(0.5)  # until the first slice's samples are shown
            time.sleep(random.Random(index).uniform(0, 20))
        finally:
            server.send_signal(signal.SIGKILL)
            server.wait()
        concept = next(root.glob("*/concepts/winter"))
        record = json.loads((concept / "training.json").read_text())
        sys.path.insert(0, str(REPOSITORY))
        from app.training import run_state
        from app.workspace import ConceptFolder

        try:
            steps, loads = read_adapter(concept / "winter.safetensors").metadata["training"]["steps"], True
        except Exception:  # noqa: BLE001
            steps, loads = None, False
        rows.append({"killed": True, "record_state": record.get("state"),
                     "reads_as": run_state(ConceptFolder(concept)), "record_steps": record.get("steps"),
                     "adapter_loads": loads, "adapter_steps": steps,
                     "state_saved": (concept / "winter.safetensors.training_state" / "trainer.pt").is_file(),
                     "leftovers": leftovers(concept)})
    print("studio", json.dumps(rows), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--studio-trials", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/e2gan-kill"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from safetensors.torch import load_file

    from e2gan.checkpoint import read_adapter

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    rng = random.Random(args.seed)
    results = {"pairs": pairs_trials(args.work, args.trials, rng)}
    for name, concept in (("d1", "pencil_sketch"), ("d2", "cartoon"), ("d3", "black_and_white")):
        run(["pairs", "--source", "builtin", "--count", "24", "--size", "32", "--concept", concept,
             "--out", str(args.work / name)])
    base = lambda out: ["train-base", "--dataset", str(args.work / "d1"), str(args.work / "d2"),
                        "--out", str(out), "--generator-config", TINY, "--size", "32",
                        "--steps", "400", "--checkpoint-every", "25"]
    results["train-base"] = model_trials("base", args.work, args.trials, rng, base, lambda f: f,
                                         lambda out: load_file(out / "model.safetensors"))
    finetune = lambda out: ["finetune", "--base", str(args.work / "base-ref"), "--dataset",
                            str(args.work / "d3"), "--out", str(out), "--size", "32", "--steps", "400",
                            "--checkpoint-every", "25"]
    results["finetune"] = model_trials("finetune", args.work, args.trials, rng, finetune,
                                       lambda f: f / "bw.safetensors",
                                       lambda out: read_adapter(out).tensors)
    if args.studio_trials:
        results["studio-finetune"] = studio_trials(args.work, args.studio_trials)
    summary = {}
    for kind, rows in results.items():
        summary[kind] = {
            "killed": sum(r["killed"] for r in rows),
            "resumed": sum(bool(r.get("resumed", r.get("state_saved"))) for r in rows),
            "corrupted": sum(not (r.get("loads", r.get("adapter_loads", r.get("complete")))) for r in rows),
            "leftovers": sum(bool(r["leftovers"]) for r in rows),
        }
    report = {"summary": summary, "trials": results}
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
