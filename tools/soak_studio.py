"""Soak the studio: N concurrent API sessions run the whole flow while one more sends bad input.

    .venv/bin/python tools/soak_studio.py [--clients 8] [--size 32] [--pairs 16] [--minutes 0.1]

Launches the studio (the shipped base, `launch_options()` as `make studio` does) in its own
process on loopback, then in threads: N `gradio_client` sessions each do Concept (its own
concept) -> Pairs -> Curate -> Fine-tune -> Compare -> Library -> Export (adapter), while an
extra session keeps uploading image bombs, a non-image, a zip with too many entries and
non-finite numbers. Meanwhile the server's resident memory (with its children) is sampled.

It checks: every session finishes; its Library lists only its own concept; every file path
handed to it lies in its own workspace or Gradio's cache; every bad input came back as an
error naming the problem. Prints one JSON report (and writes it with --out).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "tests"))

CONCEPTS = ["winter", "night", "pencil sketch", "old photo", "thermal camera", "cyanotype",
            "watercolor", "comic book", "neon glow", "oil painting"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(workspace: Path, port: int, env: dict, log: Path | None = None) -> subprocess.Popen:
    code = ("from app.studio import build_demo, launch_options\n"
            f"demo = build_demo(workspace_root={str(workspace)!r})\n"
            f"demo.launch(server_name='127.0.0.1', server_port={port}, quiet=True, "
            "**launch_options())\n")
    # The server's log goes to a file: a pipe nobody reads would block it once full.
    log = log or workspace.with_name(workspace.name + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPOSITORY, env=env,
                            stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True)


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 180) -> None:
    import httpx

    started = time.time()
    while time.time() - started < timeout:
        if server.poll() is not None:
            raise SystemExit(f"the studio exited (its log: {server.args})")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit("the studio did not come up")


class MemoryWatch(threading.Thread):
    """Samples the resident memory of a process and its children."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        import psutil

        self.process = psutil.Process(pid)
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()

    def rss(self) -> int:
        processes = [self.process, *self.process.children(recursive=True)]
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except Exception:  # noqa: BLE001 - a child that just ended
                pass
        return total

    def run(self) -> None:
        started = time.time()
        while not self.done.is_set():
            self.samples.append((time.time() - started, self.rss()))
            time.sleep(self.every)


def session_flow(url: str, concept: str, args, photo: Path, workspace_root: Path,
                 report: dict) -> None:
    import gradio_client

    c = gradio_client.Client(url, verbose=False, download_files=False)
    timings, paths = {}, []

    def timed(name, *call_args, **kwargs):
        started = time.time()
        result = c.predict(*call_args, api_name=f"/{name}", **kwargs)
        timings[name] = round(time.time() - started, 1)
        return result

    try:
        info, _ = timed("concept", concept, "builtin", "built-in photos", "", None, 0, 0.75, 7.5)
        text, _ = timed("generate_pairs", args.pairs)
        timed("select", args.k, "cluster", "builtin", None, None)
        text, _, samples, _ = timed("finetune", args.minutes, 0, args.size, 0.003, 0, False)
        paths.append(samples["path"] if samples else None)
        _, gallery, _, _, _ = timed("compare", gradio_client.handle_file(str(photo)), 1.0, None)
        paths += [item["image"]["path"] for item in gallery]
        table, *_ = timed("library")
        download, _ = timed("export", table["data"][0][0], "adapter", 0)
        paths += [item["path"] for item in download]
        report.update(ok=True, concepts=[row[0] for row in table["data"]], timings=timings,
                      finetune=text.split("\n")[0][:160], files_received=len([p for p in paths if p]))
    except Exception as error:  # noqa: BLE001 - reported, the soak goes on
        report.update(ok=False, error=f"{type(error).__name__}: {error}"[:500], timings=timings)


def bad_input_flow(url: str, files: dict, stop: threading.Event, report: dict) -> None:
    """Keeps sending bad input until the sessions finish; records each answer."""
    import gradio_client
    import httpx

    from test_hardening_studio import raw_call

    c = gradio_client.Client(url, verbose=False, download_files=False)
    cases = [
        ("upload 100 MP bomb", lambda: c.predict("winter", "builtin", "upload", "",
                                                  [gradio_client.handle_file(str(files["bomb"]))],
                                                  0, 0.75, 7.5, api_name="/concept"), "E2GAN_MAX_IMAGE_PIXELS"),
        ("compare 900 MP bomb", lambda: c.predict(gradio_client.handle_file(str(files["bomb900"])),
                                                  1.0, None, api_name="/compare"), "E2GAN_MAX_IMAGE_PIXELS"),
        ("compare non-image", lambda: c.predict(gradio_client.handle_file(str(files["text"])),
                                                1.0, None, api_name="/compare"), "cannot read image"),
        ("upload zip of 20000 entries", lambda: c.predict(
            "winter", "builtin", "upload", "", [gradio_client.handle_file(str(files["many"]))],
            0, 0.75, 7.5, api_name="/concept"), "E2GAN_MAX_ARCHIVE_FILES"),
        ("raw NaN minutes", lambda: raw_call(url, "finetune", '{"data": [NaN, 0, 32, 0.003, 0, false]}'),
         "training minutes must be a finite number"),
        ("raw 1e9 minutes", lambda: raw_call(url, "finetune", '{"data": [1e9, 0, 32, 0.003, 0, false]}'),
         "E2GAN_MAX_STUDIO_TRAINING_MINUTES"),
    ]
    answers = {name: {"sent": 0, "clear": 0, "seconds_max": 0.0} for name, *_ in cases}
    # Whole rounds: every case is sent at least once, however soon the sessions finish (on a
    # loaded machine one round can outlast them).
    while not stop.is_set():
        for name, call, expected in cases:
            started = time.time()
            try:
                result = call()
                message = json.dumps(result)  # raw_call returns (event, data)
            except Exception as error:  # noqa: BLE001
                message = str(error)
            answer = answers[name]
            answer["sent"] += 1
            answer["clear"] += expected in message
            answer["seconds_max"] = max(answer["seconds_max"], round(time.time() - started, 1))
            if expected not in message:
                answer["last_unclear"] = message[:300]
    try:
        httpx.get(url, timeout=5)
    finally:
        report.update(answers)


def bad_files(folder: Path) -> dict:
    from test_hardening_cli import header_only_png

    (folder / "notes.png").write_text("text, not a picture")
    many = folder / "many.zip"
    with zipfile.ZipFile(many, "w") as archive:
        for index in range(20_000):
            archive.writestr(f"{index}.png", b"")
    return {"bomb": header_only_png(folder / "bomb.png", 10000, 10000),
            "bomb900": header_only_png(folder / "bomb900.png", 30000, 30000),
            "text": folder / "notes.png", "many": many}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=0,
                        help="then the whole flow this many times in a row, memory after each")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="e2gan-soak-"))
    workspace_root = scratch / "workspaces"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    server = launch(workspace_root, port, env)
    try:
        wait_until_up(url, server)
        watch = MemoryWatch(server.pid)
        idle_bytes = watch.rss()
        watch.start()
        from e2gan.data.sources import builtin_photos

        source = builtin_photos(1, size=96, seed=5)
        photo = scratch / "photo.png"
        source.load(source.ids[0]).save(photo)
        files = bad_files(scratch)
        reports = [{"concept": CONCEPTS[i % len(CONCEPTS)]} for i in range(args.clients)]
        bad_report: dict = {}
        stop = threading.Event()
        threads = [threading.Thread(target=session_flow, args=(url, r["concept"], args, photo,
                                                                workspace_root, r))
                   for r in reports]
        attacker = threading.Thread(target=bad_input_flow, args=(url, files, stop, bad_report))
        started = time.time()
        attacker.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(3600)
        stop.set()
        attacker.join(300)
        wall = time.time() - started
        rounds = []
        for index in range(args.rounds):
            round_report: dict = {}
            session_flow(url, CONCEPTS[index % len(CONCEPTS)], args, photo, workspace_root,
                         round_report)
            rounds.append({"ok": bool(round_report.get("ok")), "error": round_report.get("error"),
                           "server_memory_mb": round(watch.rss() / 2**20)})
        watch.done.set()
        watch.join()
    finally:
        server.terminate()
        server.wait(30)

    # Isolation on disk: every session's concept lies in exactly one workspace, and no
    # workspace holds two sessions' concepts (each session has its own concept).
    by_workspace = {folder.name: sorted(p.name for p in folder.glob("concepts/*"))
                    for folder in workspace_root.iterdir() if folder.is_dir()}
    holders = {r["concept"]: [w for w, names in by_workspace.items()
                              if r["concept"].replace(" ", "_") in names] for r in reports}
    peak = max(rss for _, rss in watch.samples)
    result = {
        "clients": args.clients, "size": args.size, "pairs": args.pairs, "k": args.k,
        "minutes": args.minutes, "wall_seconds": round(wall, 1),
        "all_finished": all(r.get("ok") for r in reports),
        "each_library_lists_only_its_concept": all(
            r.get("concepts") == [r["concept"].replace(" ", "_")] for r in reports if r.get("ok")),
        "each_concept_in_one_workspace": all(len(w) == 1 for w in holders.values()),
        "no_workspace_holds_two_sessions": all(len(names) <= 1 for names in by_workspace.values()),
        "server_memory_mb": {"idle": round(idle_bytes / 2**20), "peak": round(peak / 2**20),
                             "end": round(watch.samples[-1][1] / 2**20)},
        "memory_after_each_round_mb": [r["server_memory_mb"] for r in rounds],
        "rounds_failed": [r["error"] for r in rounds if not r["ok"]],
        "bad_input": bad_report,
        "sessions": reports,
        # User errors are messages in the page; a traceback in the server's log is a bug.
        "server_log_tracebacks": (workspace_root.with_name("workspaces.log").read_text()
                                  .count("Traceback")),
        "workspaces_left": len(list(workspace_root.iterdir())) if workspace_root.is_dir() else 0,
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
