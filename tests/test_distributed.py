"""Training under several processes (`torchrun`, gloo on the CPU), as a user with 2 GPUs runs it.

Each recipe under 2 processes with batch 2 is the same training as 1 process with batch 4: the
sampler shards each global batch, DDP averages the gradients, and the trainer draws flips and
noise for the global batch from (seed, step). Float sums run in another order, so the trained
models agree to a tolerance, not bit for bit: their edits of the same inputs (in [-1, 1]) may
differ by at most TOLERANCE, two 8-bit grey levels: Adam makes its first steps lr x sign(g),
so a gradient that differs only by rounding can still move a weight by a whole step.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

TINY = '{"num_filters": 8, "text_dim": 16, "num_heads": 2, "mlp_mult": 2, "noise_channels": 1}'
TINY_PIX2PIX = '{"num_filters": 8, "num_residual_blocks": 2}'
TOLERANCE = 2 * 2 / 255


def e2gan(processes: int, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    launcher = ([sys.executable, "-m", "e2gan"] if processes == 1 else
                [sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc_per_node={processes}", "-m", "e2gan"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([*launcher, *args, "--json", "--quiet"], capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def json_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def pairs(tiny_pairs):
    return {name: str(dataset.root) for name, dataset in tiny_pairs.items()}


@pytest.fixture(scope="module")
def noiseless_base(pairs, tmp_path_factory):
    """A tiny base with no noise input, so fine-tunes are deterministic functions of the data."""
    out = tmp_path_factory.mktemp("base") / "base"
    e2gan(1, "train-base", "--dataset", pairs["pencil_sketch"], pairs["night"], "--out", str(out),
          "--size", "32", "--steps", "2", "--device", "cpu",
          "--generator-config", TINY.replace('"noise_channels": 1', '"noise_channels": 0'))
    return out


RECIPES = {
    "base": lambda p, out, base: ["train-base", "--dataset", p["pencil_sketch"], p["night"],
                                  "--out", str(out), "--generator-config", TINY],
    "lora": lambda p, out, base: ["finetune", "--base", str(base), "--dataset", p["winter"],
                                  "--out", str(out / "winter.safetensors")],
    "full": lambda p, out, base: ["finetune", "--base", str(base), "--dataset", p["winter"],
                                  "--out", str(out / "full"), "--mode", "full"],
    "pix2pix": lambda p, out, base: ["train-pix2pix", "--dataset", p["winter"], "--out", str(out),
                                     "--generator-config", TINY_PIX2PIX],
}


def trained_edit(recipe: str, out: Path, base: Path, prompt: str) -> torch.Tensor:
    """What the trained model makes of fixed inputs: the function, not the weights, is compared
    (a conv bias that InstanceNorm cancels gets a rounding-noise gradient, which Adam turns into
    a full step of either sign: such weights differ, harmlessly)."""
    from e2gan.checkpoint import apply_adapter, load_generator, read_adapter

    if recipe == "lora":
        loaded = load_generator(base)
        apply_adapter(loaded, read_adapter(out / "winter.safetensors"))
    else:
        loaded = load_generator(out / "full" if recipe == "full" else out)
    sources = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(7)) * 2 - 1
    text = loaded.text_encoder([prompt] * 4) if loaded.text_encoder is not None else None
    with torch.no_grad():
        return loaded.generator.eval()(sources, text)


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_two_processes_train_like_one_with_the_same_global_batch(recipe, pairs, noiseless_base,
                                                                 tmp_path):
    common = ["--size", "32", "--steps", "3", "--device", "cpu", "--checkpoint-every", "0"]
    one = e2gan(1, *RECIPES[recipe](pairs, tmp_path / "one", noiseless_base), *common,
                "--batch-size", "4")
    two = e2gan(2, *RECIPES[recipe](pairs, tmp_path / "two", noiseless_base), *common,
                "--batch-size", "2")
    # The main process alone reports and writes.
    assert len(json_lines(one)) == 1 and len(json_lines(two)) == 1
    import json
    summary = json.loads(json_lines(two)[0])
    assert summary["processes"] == 2 and summary["global_batch_size"] == 4 and summary["steps"] == 3
    assert not list((tmp_path / "two").rglob("*.tmp")) and not list((tmp_path / "two").rglob("*.partial"))
    prompt = {"base": "a pencil sketch", "pix2pix": ""}.get(recipe, "a snowy winter scene")
    expected = trained_edit(recipe, tmp_path / "one", noiseless_base, prompt)
    actual = trained_edit(recipe, tmp_path / "two", noiseless_base, prompt)
    difference = (actual - expected).abs().max().item()
    assert difference <= TOLERANCE, difference


def test_a_killed_two_process_run_resumes_exactly(pairs, tmp_path):
    args = ["train-base", "--dataset", pairs["pencil_sketch"], pairs["night"], "--size", "32",
            "--steps", "120", "--batch-size", "2", "--device", "cpu", "--checkpoint-every", "2",
            "--generator-config", TINY]
    e2gan(2, *args, "--out", str(tmp_path / "straight"))

    killed = tmp_path / "killed"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "e2gan", *args, "--out", str(killed), "--quiet"]
    process = subprocess.Popen(launcher, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (killed / "training_state" / "trainer.pt").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    subprocess.run(["pkill", "-9", "-f", str(killed)], check=False)  # the launcher and both workers
    process.wait(timeout=30)
    assert (killed / "training_state" / "trainer.pt").is_file()
    assert not (killed / "config.json").exists(), "the run finished before it could be killed"
    saved_step = torch.load(killed / "training_state" / "trainer.pt", weights_only=True)["step"]
    assert 0 < saved_step < 120

    import json
    resumed = json.loads(json_lines(e2gan(2, *args, "--out", str(killed)))[0])
    assert resumed["steps"] == 120
    straight, again = load_file(tmp_path / "straight" / "model.safetensors"), load_file(killed / "model.safetensors")
    for key, value in straight.items():
        torch.testing.assert_close(again[key], value, atol=1e-6, rtol=0, msg=key)
