"""One full pass through the studio by clicking, in headless Chromium, with a screenshot of
every step. Used by the browser test (tiny base) and, run as a script, to make the screenshots in
docs/studio/ with the shipped base:

    python -m tests.browser.studio_pass --out docs/studio --minutes 2
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
from pathlib import Path

CHROMIUM = os.environ.get("E2GAN_CHROMIUM", "/usr/bin/chromium")


def chromium_path() -> str | None:
    return CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def set_number(page, elem_id: str, value) -> None:
    """Type into a Gradio number field or a slider's number box, then commit it."""
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")
    box.blur()


class ConsoleErrors(list):
    """The JavaScript errors the page logs, except the old page's while a reload unloads it.

    Gradio's page closes its open streams (the running job's, the status timer's) on
    `beforeunload`, and its client logs that abort of its own as an error. Chromium words it by
    version ("AbortError: signal is aborted without reason", since 150 "AbortError:
    BodyStreamBuffer was aborted", "Connection errored out"), so the teardown is told apart by
    when it happens, not by its wording: from the reload until the new document commits. Errors
    of the new page, and any logged outside a reload, all count."""

    def __init__(self, page) -> None:
        super().__init__()
        self.unloading = False
        page.on("console", lambda message: self.add(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: self.add(str(error)))
        page.on("framenavigated", lambda frame: self._committed(page, frame))

    def add(self, text: str) -> None:
        if not self.unloading:
            self.append(text)

    def _committed(self, page, frame) -> None:
        if frame == page.main_frame:
            self.unloading = False


def reload(page, errors: ConsoleErrors) -> None:
    """Reload and wait for the new page (what the old one logs as it unloads is not counted)."""
    errors.unloading = True
    page.reload()
    page.get_by_text("Device").first.wait_for()


def click_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def run_pass(url: str, out: Path, pairs: int, k: int, minutes: float, size: int,
             timeout_ms: float = 300_000) -> list[str]:
    """Click through every step; returns the JavaScript errors the page logged."""
    from playwright.sync_api import expect, sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                             args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = ConsoleErrors(page)
        page.set_default_timeout(timeout_ms)
        page.goto(url)
        page.get_by_text("Device").first.wait_for()

        page.get_by_role("button", name="Preview the teacher's edit").click()
        page.get_by_text("Next: 2 · Pairs").wait_for()
        page.screenshot(path=str(out / "1-concept.png"), full_page=True)

        click_tab(page, "2 · Pairs")
        set_number(page, "pairs-count", pairs)
        page.get_by_role("button", name="Generate pairs").click()
        page.get_by_text("Next: 3 · Curate").wait_for()
        page.screenshot(path=str(out / "2-pairs.png"), full_page=True)

        click_tab(page, "3 · Curate")
        set_number(page, "curate-k", k)
        page.get_by_role("button", name="Select pairs").click()
        page.get_by_text(f"{k} pairs chosen").wait_for()
        page.locator(".js-plotly-plot").first.wait_for()
        page.screenshot(path=str(out / "3-curate.png"), full_page=True)

        click_tab(page, "4 · Fine-tune")
        set_number(page, "train-minutes", minutes)
        page.get_by_text("advanced").click()
        set_number(page, "train-size", size)
        page.get_by_role("button", name="Start fine-tuning").click()
        # Reload mid fine-tune: the address reopens the workspace, the job runs on, and its
        # progress reattaches to the new page (steps, loss curves), then finishes there.
        page.get_by_text(re.compile(r"step \d+ on")).wait_for()
        assert "workspace=" in page.url, page.url
        reload(page, errors)
        click_tab(page, "4 · Fine-tune")
        page.get_by_text(re.compile(r"step \d+ on|finished")).first.wait_for()
        # the form shows the settings typed before the reload, not the defaults
        expect(page.locator("#train-minutes input[type=number]").first).to_have_value(f"{minutes:g}")
        page.get_by_text("Next: 5 · Compare").wait_for()
        # The status line says so as the job ends, well before its 10 s refresh comes round.
        page.locator(".status-line").get_by_text("nothing in your session").wait_for(timeout=4000)
        page.screenshot(path=str(out / "4-finetune.png"), full_page=True)

        click_tab(page, "5 · Compare")
        page.get_by_role("button", name="Compare", exact=True).click()
        page.get_by_text("Latency on").wait_for()
        page.locator("#metrics-caption").get_by_text("held-out pairs at").wait_for()
        page.screenshot(path=str(out / "5-compare.png"), full_page=True)

        click_tab(page, "6 · Library & export")
        page.get_by_label("onnx", exact=True).check()
        page.get_by_role("button", name="Export", exact=True).click()
        page.get_by_text("max abs diff vs torch").first.wait_for()
        page.screenshot(path=str(out / "6-library.png"), full_page=True)

        # A reload keeps the workspace: the Library lists the work.
        reload(page, errors)
        click_tab(page, "6 · Library & export")
        page.get_by_role("button", name="Refresh", exact=True).click()
        page.get_by_text("finished", exact=True).filter(visible=True).first.wait_for()
        browser.close()
    return list(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/studio-screenshots")
    parser.add_argument("--pairs", type=int, default=150)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workspace", default="runs/studio-screenshots/workspace")
    args = parser.parse_args()
    from app.studio import build_demo, launch_options

    demo = build_demo(workspace_root=args.workspace)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                **launch_options())
    try:
        errors = run_pass(f"http://127.0.0.1:{port}/", Path(args.out), args.pairs, args.k,
                          args.minutes, args.size, timeout_ms=(args.minutes * 60 + 300) * 1000)
    finally:
        demo.close()
    print("console errors:", errors or "none")


if __name__ == "__main__":
    main()
