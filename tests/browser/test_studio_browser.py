"""A real browser (Debian's headless Chromium via Playwright) clicks one full pass through the
studio and saves a screenshot of every step, reloading the page mid fine-tune (the job, its
progress and the workspace must come back); any JavaScript error in the console fails it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("playwright")
pytest.importorskip("gradio")

from tests.browser.studio_pass import chromium_path, free_port, run_pass  # noqa: E402

SCREENSHOTS = Path(os.environ.get("E2GAN_SCREENSHOTS",
                                  Path(__file__).resolve().parents[2] / "runs" / "studio-screenshots"))


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_a_browser_clicks_through_every_step_without_javascript_errors(tiny_base, tmp_path,
                                                                        monkeypatch):
    from app.studio import build_demo, launch_options

    monkeypatch.setenv("E2GAN_CACHE", str(tmp_path / "cache"))  # FID's feature cache
    # The status line's own timer off: after the reload mid fine-tune, only the job's end may tell
    # the line that nothing runs any more (the pass waits 4 s for it).
    monkeypatch.setattr("app.studio.STATUS_SECONDS", 3600.0)

    demo = build_demo(tiny_base, tmp_path / "workspaces")
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                **launch_options())
    try:
        errors = run_pass(f"http://127.0.0.1:{port}/", SCREENSHOTS, pairs=16, k=6, minutes=0.3,
                          size=32, timeout_ms=60_000)
    finally:
        demo.close()
    assert errors == []
    steps = ["1-concept", "2-pairs", "3-curate", "4-finetune", "5-compare", "6-library"]
    for step in steps:
        assert (SCREENSHOTS / f"{step}.png").stat().st_size > 10_000
