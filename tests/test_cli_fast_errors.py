"""A mistyped flag or a bad value is answered before torch is imported (issue 27).

Importing torch and the models costs seconds and about a gigabyte; a flag error used to wait for
it (5-22 s). Each case runs the real CLI in a fresh interpreter and checks what the user sees
(exit status 2, the one-line message) and that `torch` was never imported: a fact, not a timing,
so a busy machine cannot break it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs `e2gan ARGS...` as the console script does, then reports whether torch was imported.
PROBE = """
import json, sys
from e2gan.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""


def run_cli(*argv: str) -> tuple[int, bool, list[str]]:
    """(exit status, whether torch was imported, stderr lines) of `e2gan ARGV...`."""
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["code"], report["torch"], done.stderr.strip().splitlines()


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, str]:
    """A folder that looks like a model (its files exist: the checks before the import look no
    further), a photo, an adapter file, and a dataset path that does not exist."""
    root = tmp_path_factory.mktemp("fast-errors")
    (root / "model").mkdir()
    (root / "model" / "config.json").write_text("{}")
    (root / "model" / "model.safetensors").write_bytes(b"")
    (root / "adapter.safetensors").write_bytes(b"")
    from PIL import Image
    Image.new("RGB", (40, 40), "red").save(root / "photo.png")
    return {"model": str(root / "model"), "adapter": str(root / "adapter.safetensors"),
            "photo": str(root / "photo.png"), "out": str(root / "out.png"),
            "dataset": str(root / "no-such-dataset"), "root": str(root)}


def finetune(p: dict[str, str], *extra: str) -> list[str]:
    return ["finetune", "--base", p["model"], "--dataset", p["dataset"],
            "--out", p["root"] + "/a.safetensors", *extra]


def edit(p: dict[str, str], *extra: str, model: str | None = None) -> list[str]:
    return ["edit", "--model", model or p["model"], "--image", p["photo"], "--out", p["out"], *extra]


# Flags argparse refuses: its usage line, then one `e2gan COMMAND: error: ...` line.
ARGPARSE_CASES = [
    ("unknown-flag", lambda p: finetune(p, "--bad-flag"), "unrecognized arguments: --bad-flag"),
    ("unknown-flag-and-nothing-else", lambda p: ["finetune", "--bad-flag"],
     "the following arguments are required: --base, --dataset, --out"),
    ("size-not-a-number", lambda p: finetune(p, "--size", "abc"),
     "argument --size: invalid int value: 'abc'"),
    ("edit-has-no-strength", lambda p: edit(p, "--strength", "nan"),
     "unrecognized arguments: --strength nan"),
    ("unknown-command", lambda p: ["nosuchcmd"], "argument command: invalid choice: 'nosuchcmd'"),
]

# Values only the engine's checks know are wrong, checked before the engine is imported: one
# `error: ...` line.
VALUE_CASES = [
    ("finetune-size-negative", lambda p: finetune(p, "--size", "-3"), "size must be at least 1, got -3"),
    ("finetune-lr-nan", lambda p: finetune(p, "--lr", "nan"),
     "learning rate must be a positive finite number, got nan"),
    ("finetune-steps-over-limit", lambda p: finetune(p, "--steps", "10000000"),
     "E2GAN_MAX_TRAINING_STEPS"),
    ("finetune-rank-zero", lambda p: finetune(p, "--rank", "0"), "at least 1, got 0"),
    ("finetune-rank-absurd", lambda p: finetune(p, "--rank", "100000"), "E2GAN_MAX_LORA_RANK"),
    ("finetune-base-missing", lambda p: finetune(p)[:2] + [p["root"] + "/nothing"] + finetune(p)[3:],
     "nothing is not a model folder"),
    ("finetune-dataset-missing", lambda p: finetune(p), "dataset folder not found"),
    ("train-base-config-not-json", lambda p: ["train-base", "--dataset", p["dataset"], "--out",
                                              p["root"] + "/base", "--generator-config", "{"],
     "--generator-config is not valid JSON"),
    ("train-pix2pix-ema-decay", lambda p: ["train-pix2pix", "--dataset", p["dataset"], "--out",
                                           p["root"] + "/p2p", "--ema-decay", "2"],
     "EMA decay must lie in [0, 1), got 2.0"),
    ("rank-search-base-missing", lambda p: ["rank-search", "--base", p["root"] + "/nothing",
                                            "--dataset", p["dataset"]], "is not a model folder"),
    ("edit-scale-nan", lambda p: edit(p, "--adapter", p["adapter"], "--scale", "nan"),
     "adapter scale must be a finite number from -10 to 10"),
    ("edit-size-7", lambda p: edit(p, "--size", "7"), "size must be a number of at least 16 pixels, got 7"),
    ("edit-model-missing", lambda p: edit(p, model=p["root"] + "/nothing"),
     "nothing is not a model folder (needs config.json and model.safetensors)"),
    ("edit-image-missing", lambda p: edit(p)[:3] + ["--image", p["root"] + "/none.png"] + edit(p)[5:],
     "none.png"),
    ("adapter-merge-weight-inf", lambda p: ["adapter", "merge", p["adapter"], "--base", p["model"],
                                            "--weight", "inf", "--out", p["root"] + "/merged"],
     "adapter scale must be a finite number"),
    ("evaluate-dataset-missing", lambda p: ["evaluate", "--model", p["model"], "--dataset",
                                            p["dataset"]], "dataset folder not found"),
    ("export-scale-nan", lambda p: ["export", "--model", p["model"], "--adapter", p["adapter"],
                                    "--scale", "nan", "--out", p["root"] + "/export"],
     "adapter scale must be a finite number"),
]


@pytest.mark.parametrize("make_argv, message",
                         [pytest.param(make, message, id=name) for name, make, message in ARGPARSE_CASES])
def test_a_bad_flag_is_argparses_one_line_without_importing_torch(paths, make_argv, message):
    code, torch_imported, lines = run_cli(*make_argv(paths))
    assert code == 2, lines
    assert not torch_imported
    assert lines[0].startswith("usage: e2gan"), lines
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1 and message in errors[0], lines
    assert not any("Traceback" in line for line in lines)


@pytest.mark.parametrize("make_argv, message",
                         [pytest.param(make, message, id=name) for name, make, message in VALUE_CASES])
def test_a_bad_value_is_one_error_line_without_importing_torch(paths, make_argv, message):
    code, torch_imported, lines = run_cli(*make_argv(paths))
    assert code == 2, lines
    assert not torch_imported, lines
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_help_answers_without_importing_torch():
    code, torch_imported, _ = run_cli("--help")
    assert code == 0 and not torch_imported
