"""Weights (and datasets) from the Hugging Face Hub: the local cache first, a download only when
asked, with progress (size, speed, time left) and a cancel.

huggingface_hub does all the HTTP: HF_ENDPOINT, the token of `hf auth login` or HF_TOKEN, the cache
layout, Xet where the Hub offers it, and a connection dropped mid-file resumed with a Range
request. This module adds what someone waiting on gigabytes needs: `DownloadProgress` events
through a callback, a `should_stop` poll that cancels within one chunk (huggingface_hub reads
10 MB at a time), and one-line `E2GANError`s made from huggingface_hub's own exception types.

What a cancelled or failed download leaves: huggingface_hub records the repo's file list before it
fetches anything and moves each file into the cache only when it is whole, so the next local
look-up refuses a snapshot that misses files (`IncompleteSnapshotError`) instead of passing it
off as complete. The files already finished stay; the next download fetches only the rest (the
file that was in flight starts over: huggingface_hub 2.x keeps no partial file between calls).

A dataset repo is the same with `repo_type="dataset"`; its messages say "dataset org/name" and its
fetch command has `--repo-type dataset`. `repo_reference` reads a typed `org/name[@revision]`.
"""

from __future__ import annotations

import io
import os
import re
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from tqdm.std import tqdm

from e2gan.errors import E2GANError

ProgressCallback = Callable[["DownloadProgress"], None]
REPORT_EVERY_SECONDS = 0.25  # progress events are sent at most this often (and at the end)

# The callback a command sets for every download it causes, however deep (a teacher that loads
# its weights, a text encoder): see `reporting_downloads`.
_REPORTER: ContextVar[ProgressCallback | None] = ContextVar("e2gan_download_reporter", default=None)


class DownloadCancelled(E2GANError):
    """`should_stop` said stop; the files finished so far stay in the cache."""


@dataclass(frozen=True)
class DownloadProgress:
    """One moment of a download: bytes and files of what was missing from the cache."""

    repo_id: str
    done_bytes: int
    total_bytes: int
    files_done: int
    files_total: int
    seconds: float  # since the transfer started
    finished: bool = False  # the last event of this download (complete, cancelled or failed)

    @property
    def fraction(self) -> float:
        return min(self.done_bytes / self.total_bytes, 1.0) if self.total_bytes else 1.0

    @property
    def bytes_per_second(self) -> float:
        return self.done_bytes / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        speed = self.bytes_per_second
        return max(self.total_bytes - self.done_bytes, 0) / speed if speed > 0 else None

    def describe(self) -> str:
        """'org/name: 312 MB of 2.47 GB (13%) · 24.1 MB/s · 1 min 40 s left · 3 of 15 files'."""
        eta = self.eta_seconds
        left = ("done" if self.done_bytes >= self.total_bytes else
                "estimating time left" if eta is None else f"{format_duration(eta)} left")
        done, total = format_size(self.done_bytes), format_size(self.total_bytes)
        return (f"{self.repo_id}: {done} of {total} ({self.fraction * 100:.0f}%) · "
                f"{format_size(self.bytes_per_second)}/s · {left} · "
                f"{self.files_done} of {self.files_total} files")


def format_size(count: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{int(count)} B"


def format_duration(seconds: float) -> str:
    """'42 s' or '3 min 05 s' (the studio's progress lines use the same)."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


@contextmanager
def reporting_downloads(on_progress: ProgressCallback | None) -> Iterator[None]:
    """Send the progress of every download started inside this block (in this thread or its
    context) to `on_progress`, unless the call gives its own. The CLI's way to show a download
    that a teacher starts when it loads, without handing a callback through every layer."""
    token = _REPORTER.set(on_progress)
    try:
        yield
    finally:
        _REPORTER.reset(token)


def fetch_command(repo_id: str, repo_type: str | None = None) -> str:
    what = f"{repo_id} --repo-type {repo_type}" if repo_type and repo_type != "model" else repo_id
    return f"`hf download {what}` (or `huggingface-cli download {what}`)"


def repo_label(repo_id: str, repo_type: str | None = None) -> str:
    """How messages name a repo: "org/name" for a model, "dataset org/name" for a dataset."""
    return f"{repo_type} {repo_id}" if repo_type and repo_type != "model" else repo_id


_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_REVISION = r"[A-Za-z0-9][A-Za-z0-9._/-]*"  # a branch (may hold '/'), a tag or a commit
_REFERENCE = re.compile(rf"(?P<repo>{_PART}/{_PART})(?:@(?P<revision>{_REVISION}))?")


def repo_reference(text: str) -> tuple[str, str | None] | None:
    """(repo id, revision or None) when `text` reads as `org/name` or `org/name@revision` (a
    branch, tag or commit); None for anything else, e.g. a path."""
    match = _REFERENCE.fullmatch(str(text).strip())
    if match is None or ".." in match.group(0):
        return None
    return match.group("repo"), match.group("revision")


def offline() -> bool:
    """HF_HUB_OFFLINE, as set now or when huggingface_hub was imported (it reads it once)."""
    from huggingface_hub import constants

    set_now = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return set_now or bool(constants.HF_HUB_OFFLINE)


def cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def cached_snapshot(repo_id: str, allow_patterns: list[str] | None = None,
                    ignore_patterns: list[str] | None = None, *, repo_type: str | None = None,
                    revision: str | None = None) -> Path | None:
    """The snapshot folder of `repo_id` in the local cache holding every file the patterns ask
    for, or None (not cached, or a download that did not finish). Never touches the network."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=allow_patterns,
                                      ignore_patterns=ignore_patterns, repo_type=repo_type,
                                      revision=revision))
    except Exception:  # LocalEntryNotFoundError / IncompleteSnapshotError, or a broken cache entry
        return None


def download_snapshot(repo_id: str, *, allow_patterns: list[str] | None = None,
                      ignore_patterns: list[str] | None = None,
                      on_progress: ProgressCallback | None = None,
                      should_stop: Callable[[], bool] | None = None,
                      max_workers: int = 8, repo_type: str | None = None,
                      revision: str | None = None,
                      check_plan: Callable[[int, int], None] | None = None) -> Path | None:
    """Download what the cache lacks of `repo_id` (the files the patterns select; of a dataset
    repo with `repo_type="dataset"`; at `revision`, else the default branch) and return its
    snapshot folder; None when the repo has no such file.

    First a dry run lists the files and their sizes (so the first event knows the total, and
    `check_plan(bytes to fetch, files)` may refuse it by raising before anything is fetched), then
    huggingface_hub downloads them, `max_workers` at a time, reporting to `on_progress` (else to
    the enclosing `reporting_downloads`; else nowhere). `should_stop` is polled as bytes arrive:
    True ends the download with `DownloadCancelled`, and so does Ctrl-C. Every failure is an
    `E2GANError` of one line naming the repo.
    """
    from huggingface_hub import snapshot_download

    if offline():
        raise E2GANError(f"{repo_label(repo_id, repo_type)} is not in the Hugging Face cache and "
                         "HF_HUB_OFFLINE is set, so it cannot be downloaded; fetch it with "
                         f"{fetch_command(repo_id, repo_type)} elsewhere")
    on_progress = on_progress or _REPORTER.get()
    tracker = _Tracker(repo_id, on_progress, should_stop)
    options = {"allow_patterns": allow_patterns, "ignore_patterns": ignore_patterns,
               "repo_type": repo_type, "revision": revision}
    try:
        plan = snapshot_download(repo_id, dry_run=True, tqdm_class=_bar_class(None), **options)
        if not plan:
            return None
        total_bytes = sum(info.file_size or 0 for info in plan if info.will_download)
        if check_plan is not None:
            check_plan(total_bytes, len(plan))
        tracker.begin(total_bytes=total_bytes, files_total=len(plan))
        folder = _interruptible(tracker, lambda: snapshot_download(
            repo_id, tqdm_class=_bar_class(tracker), max_workers=max_workers, **options))
    except (KeyboardInterrupt, E2GANError):  # Ctrl-C; a cancel (`DownloadCancelled`); a refusal
        tracker.end()
        raise
    except Exception as error:
        tracker.end()
        raise E2GANError(download_error_message(repo_id, error, repo_type, revision)) from None
    tracker.end(complete=True)
    return Path(folder)


def _interruptible(tracker: _Tracker, download: Callable[[], str]) -> str:
    """Run `download` in a helper thread so that Ctrl-C here cancels it within a chunk: raised in
    huggingface_hub's own wait, it would first let every file in flight finish. A second Ctrl-C
    stops waiting for that chunk (the file in flight may then leave its temporary file)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["folder"] = download()
        except BaseException as error:  # handed back to the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=run, name=f"download {tracker.repo_id}", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        tracker.interrupted = True
        worker.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["folder"]


def download_error_message(repo_id: str, error: BaseException, repo_type: str | None = None,
                           revision: str | None = None) -> str:
    """One line for a failed download, from huggingface_hub's exception types."""
    from huggingface_hub import constants, get_token
    from huggingface_hub.errors import (DisabledRepoError, DryRunError, GatedRepoError,
                                        HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    if isinstance(error, DryRunError) and error.__cause__ is not None:
        error = error.__cause__  # the dry run wraps why the Hub could not be asked
    name, kind = repo_label(repo_id, repo_type), repo_type or "model"
    fetch = fetch_command(repo_id, repo_type)
    page = f"{constants.ENDPOINT}/{'datasets/' if kind == 'dataset' else ''}{repo_id}"
    if isinstance(error, GatedRepoError):  # before RepositoryNotFoundError, its base class
        if get_token():
            return (f"{repo_id} is a gated {kind} and your Hugging Face token has no access to it "
                    f"yet: accept its conditions at {page} with that account, then try again")
        return (f"{repo_id} is a gated {kind}: accept its conditions at {page}, then log in here "
                "with `hf auth login` (or set HF_TOKEN to an access token) and try again")
    if isinstance(error, RepositoryNotFoundError):
        return (f"{name} was not found on the Hub ({constants.ENDPOINT}): check the name; a "
                "private repo needs `hf auth login` (or HF_TOKEN)")
    if isinstance(error, RevisionNotFoundError):
        which = f"revision {revision!r}" if revision else "such revision"
        return f"{name} has no {which} on the Hub"
    if isinstance(error, DisabledRepoError):
        return f"{name} has been disabled on the Hub"
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        return (f"could not download {name}: the Hub answered {error.response.status_code}; "
                f"try again later or fetch it with {fetch}")
    if isinstance(error, LocalEntryNotFoundError) or unreachable(error):
        return (f"could not reach the Hub ({constants.ENDPOINT}) to download {name}: check the "
                f"network, or fetch it with {fetch} where the network allows")
    return f"could not download {name}: {first_line(error)}"


def unreachable(error: BaseException) -> bool:
    """Whether `error` says the Hub could not be reached: its HTTP client's TransportError
    (httpx's, by name: huggingface_hub's choice of client is its own) came through."""
    return any(cls.__name__ == "TransportError" for cls in type(error).__mro__)


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class _Tracker:
    """Adds up what huggingface_hub's progress bars are told into `DownloadProgress` events, and
    raises `DownloadCancelled` from inside them when `should_stop` says so."""

    def __init__(self, repo_id: str, on_progress: ProgressCallback | None,
                 should_stop: Callable[[], bool] | None) -> None:
        self.repo_id = repo_id
        self.on_progress = on_progress
        self.should_stop = should_stop
        self.lock = threading.Lock()
        self.total_bytes = self.files_total = 0
        self.started = time.monotonic()
        self.sent = 0.0  # when the last event went out
        self.byte_counts: dict[int, int] = {}  # per byte bar: huggingface_hub keeps two in step
        self.files_done = 0
        self.interrupted = False  # Ctrl-C in the caller's thread (see `_interruptible`)
        self.begun = False  # the file list is known and the first event sent

    def begin(self, total_bytes: int, files_total: int) -> None:
        self.begun = True
        self.total_bytes, self.files_total = total_bytes, files_total
        self.started = time.monotonic()
        self.report(force=True)

    def check(self) -> None:
        if self.interrupted or (self.should_stop is not None and self.should_stop()):
            with self.lock:
                done = max(self.byte_counts.values(), default=0)
            raise DownloadCancelled(
                f"download of {self.repo_id} cancelled after {format_size(done)} of "
                f"{format_size(self.total_bytes)}; the files finished so far stay in the Hugging "
                "Face cache and the next download fetches the rest")

    def add(self, bar: _Bar, count: float) -> None:
        with self.lock:
            if bar.counts_bytes:
                self.byte_counts[id(bar)] = self.byte_counts.get(id(bar), 0) + int(count)
            else:
                self.files_done += int(count)
        self.report()

    def progress(self, finished: bool = False) -> DownloadProgress:
        done = max(self.byte_counts.values(), default=0)
        return DownloadProgress(self.repo_id, done, max(self.total_bytes, done), self.files_done,
                                self.files_total, time.monotonic() - self.started, finished)

    def report(self, force: bool = False, finished: bool = False) -> None:
        if self.on_progress is None:
            return
        with self.lock:  # one event at a time, in order, from whichever download thread
            now = time.monotonic()
            if force or now - self.sent >= REPORT_EVERY_SECONDS:
                self.sent = now
                self.on_progress(self.progress(finished))

    def end(self, complete: bool = False) -> None:
        if not self.begun:  # failed before anything was fetched: nothing to report
            return
        if complete:  # whatever the bars said last, a complete download has all its bytes
            with self.lock:
                self.byte_counts = {0: self.total_bytes}
                self.files_done = self.files_total
        self.report(force=True, finished=True)


class _Bar(tqdm):
    """A progress bar that draws nothing and tells a `_Tracker` what huggingface_hub reports.

    huggingface_hub hands `tqdm_class` to three bars of a snapshot download: bytes received and
    bytes written (kept in step for plain HTTP) and files done. The tracker takes the larger byte
    count and the file count, so it does not depend on which bar is which.
    """

    tracker: _Tracker | None = None
    monitor_interval = 0  # no tqdm monitor thread

    def __init__(self, *args, **kwargs) -> None:
        kwargs["file"] = io.StringIO()  # tqdm writes on close even when nothing was drawn
        self.counts_bytes = kwargs.get("unit") == "B"
        super().__init__(*args, **kwargs)

    def display(self, *args, **kwargs) -> bool:
        return True

    def update(self, n: float | None = 1) -> bool | None:
        if self.tracker is not None:
            self.tracker.check()
            self.tracker.add(self, n or 0)
        return super().update(n)

    def refresh(self, *args, **kwargs) -> None:  # called as each file's download starts
        if self.tracker is not None:
            self.tracker.check()
        super().refresh(*args, **kwargs)


_Bar.set_lock(threading.RLock())  # not tqdm's default multiprocessing lock (a helper process)


def _bar_class(tracker: _Tracker | None) -> type[_Bar]:
    return type("_TrackedBar", (_Bar,), {"tracker": tracker})
