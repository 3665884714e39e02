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


def test_the_space_front_matter_names_the_models_the_code_fetches():
    """The README's front matter configures the Hugging Face Space: its `models` are exactly the
    weights the teachers and the CLIP embedder load by default (so the Space links, and a user
    knows, what it may download), and the short description fits the Hub's 60 characters."""
    import yaml

    import open_clip

    from e2gan.clip_scores import DEFAULT_MODEL, default_pretrained
    from e2gan.teachers.base import TEACHERS
    from e2gan.teachers.diffusion import ControlNetTeacher

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py"
    assert front["license"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"].lower()
    assert len(front["short_description"]) <= 60
    clip_hub = open_clip.get_pretrained_cfg(DEFAULT_MODEL, default_pretrained(DEFAULT_MODEL))["hf_hub"]
    teachers = [TEACHERS.get(name) for name in TEACHERS.names()]
    fetched = ({teacher.default_model for teacher in teachers if getattr(teacher, "default_model", "")}
               | {ControlNetTeacher.default_controlnet, clip_hub.rstrip("/")})
    assert set(front["models"]) == fetched
