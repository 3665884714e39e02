"""The two ways to install must not drift apart: requirements.txt (Spaces) and pyproject.toml."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _names(lines):
    return {re.split(r"[<>=!~\[ ]", line.strip(), 1)[0].lower().replace("_", "-")
            for line in lines if line.strip() and not line.strip().startswith("#")}


def test_requirements_txt_lists_exactly_the_package_and_studio_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _names(project["dependencies"] + project["optional-dependencies"]["studio"])
    listed = _names((ROOT / "requirements.txt").read_text().splitlines())
    assert listed == declared
