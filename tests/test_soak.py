"""Issue 14's soak, as CI runs it: 8 concurrent API sessions take the whole flow through a launched
studio (the shipped base, tiny sizes) while a ninth sends bombs, a non-image, a zip of 20,000
entries and non-finite numbers (tools/soak_studio.py does the work and reports)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("psutil")

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parents[1]
# The studio idles near 1.0 GB (torch, the base, the teachers); the 8-session soak peaked at
# 1.5 GB on the 2-core development machine (docs/hardening/soak.json). 3 GB leaves room for
# another machine's allocator while still catching a leak per session or a decoded bomb.
MEMORY_CEILING_MB = 3000


def test_eight_sessions_finish_apart_while_a_ninth_sends_bad_input(tmp_path):
    report_file = tmp_path / "soak.json"
    subprocess.run([sys.executable, str(REPOSITORY / "tools" / "soak_studio.py"), "--clients", "8",
                    "--minutes", "0.05", "--out", str(report_file)], cwd=REPOSITORY, check=True,
                   timeout=900, stdout=subprocess.DEVNULL)
    report = json.loads(report_file.read_text())
    assert report["all_finished"], [s for s in report["sessions"] if not s.get("ok")]
    assert report["each_library_lists_only_its_concept"]
    assert report["each_concept_in_one_workspace"] and report["no_workspace_holds_two_sessions"]
    for name, answer in report["bad_input"].items():
        assert answer["sent"] >= 1 and answer["clear"] == answer["sent"], (name, answer)
    assert report["server_memory_mb"]["peak"] < MEMORY_CEILING_MB, report["server_memory_mb"]
    # Every bad input above is a user error: a line in the server's log, not a traceback.
    assert report["server_log_tracebacks"] == 0
