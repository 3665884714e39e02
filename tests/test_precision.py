"""bf16 where the hardware multiplies it, fp32 elsewhere: the choice, both training paths, the
edit path, and the precision every result records."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from e2gan import precision
from e2gan.errors import E2GANError
from e2gan.inference.pipeline import EditPipeline
from e2gan.precision import cpu_has_bf16, resolve_precision
from e2gan.training.settings import TrainingSettings
from tests.test_training import tiny_trainer, weights


@pytest.fixture
def cpu_with_amx(monkeypatch):
    """This process sees a CPU that reports AMX-BF16 (whatever it runs on), oneDNN uncapped."""
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "amx_bf16", "amx_tile"}))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)


@pytest.fixture
def cpu_without_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "fma"}))


def test_auto_picks_bf16_only_where_the_cpu_multiplies_it(cpu_with_amx, monkeypatch):
    assert cpu_has_bf16() and resolve_precision("auto", "cpu") == "bf16"
    # oneDNN capped below bf16 (how a machine without it is emulated): fp32
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not cpu_has_bf16() and resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core_amx")
    assert resolve_precision("auto", "cpu") == "bf16"
    # asked for by name: as asked, whatever the CPU
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"


def test_arm_bf16_counts_and_an_old_cpu_runs_fp32(monkeypatch, cpu_without_bf16):
    assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"fp", "asimd", "bf16", "i8mm"}))
    assert resolve_precision("auto", "cpu") == "bf16"


def test_an_unknown_precision_is_refused_by_name():
    with pytest.raises(E2GANError, match="precision must be one of auto, fp32, bf16, got 'fp16'"):
        TrainingSettings(precision="fp16")
    with pytest.raises(E2GANError, match="got 'half'"):
        resolve_precision("half")


def test_without_bf16_auto_trains_exactly_as_fp32_and_records_it(cpu_without_bf16):
    auto = tiny_trainer(steps=3)
    assert auto.precision == "fp32"
    auto.run()
    explicit = tiny_trainer(steps=3, precision="fp32")
    explicit.run()
    first, second = weights(auto), weights(explicit)
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_bf16_trains_with_fp32_weights_optimiser_state_and_losses(cpu_with_amx):
    trainer = tiny_trainer(steps=4)
    assert trainer.precision == "bf16"
    before = weights(trainer)
    computed_in = []  # the dtype the generator's and discriminator's convolutions computed in
    for model in (trainer.generator, trainer.accelerator.unwrap_model(trainer.discriminator)):
        first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        first_conv.register_forward_hook(lambda module, args, out: computed_in.append(out.dtype))
    result = trainer.run()
    assert computed_in and set(computed_in) == {torch.bfloat16}
    assert result.steps_done == 4 and all(torch.isfinite(torch.tensor(v)) for v in result.last_losses.values())
    after = weights(trainer)
    assert all(tensor.dtype == torch.float32 for tensor in after.values())
    assert any(not torch.equal(before[name], after[name]) for name in before)  # it trained
    moments = [value for optimizer in trainer.optimizers for state in optimizer.state.values()
               for value in state.values() if torch.is_tensor(value) and value.dim() > 0]
    assert moments and all(value.dtype == torch.float32 for value in moments)
    # bf16 is a different computation, not a different training: close to fp32's first steps
    reference = tiny_trainer(steps=4, precision="fp32")
    reference_result = reference.run()
    assert result.last_losses["g_l1"] == pytest.approx(reference_result.last_losses["g_l1"], rel=0.2)


def test_a_finetune_summary_records_the_precision_it_ran_in(tiny_base, tiny_pairs, tmp_path,
                                                          cpu_without_bf16):
    from e2gan.training.recipes import finetune

    outcome = finetune(tiny_base, tiny_pairs["winter"], tmp_path / "winter.safetensors",
                       TrainingSettings(size=32, steps=2, batch_size=2, device="cpu",
                                        checkpoint_every=0, learning_rate=3e-3))
    assert outcome.summary["precision"] == "fp32"
    assert outcome.summary["settings"]["precision"] == "auto"


def test_the_edit_pipeline_in_bf16_stays_near_fp32(tiny_base, cpu_with_amx):
    photo = Image.new("RGB", (48, 40), (120, 160, 200))
    fast = EditPipeline.from_pretrained(tiny_base, device="cpu")
    exact = EditPipeline.from_pretrained(tiny_base, device="cpu", precision="fp32")
    assert (fast.precision, exact.precision) == ("bf16", "fp32")
    prompt = fast.prompts_known()[0]
    a, b = (torch.from_numpy(np.asarray(pipe([photo], prompt)[0], dtype=np.float32))
            for pipe in (fast, exact))
    assert a.shape == b.shape
    # bf16 keeps 8 bits of mantissa: a few grey levels on average, never a different picture
    assert (a - b).abs().mean() < 4.0
    assert (a - b).abs().max() > 0  # and it did compute in bf16
