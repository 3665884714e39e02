"""What a diffusion teacher's edit costs (counted from its architecture, weights never loaded) and
Compare's estimate of it for a concept whose teacher is no diffusion model (issue 26)."""

from __future__ import annotations

import pytest

from e2gan.errors import E2GANError
from e2gan.teachers import TEACHERS
from e2gan.teachers import cost as cost_module
from e2gan.teachers.cost import teacher_cost

UNET, CONTROLNET, VAE = 400e9, 140e9, 1800e9


@pytest.fixture
def fixed_networks(monkeypatch, tmp_path):
    """The networks' per-pass counts as fixed numbers: these tests are about the passes. A cache
    of their own: an earlier test (the studio's Compare) may have stored real counts."""
    monkeypatch.setenv("E2GAN_CACHE", str(tmp_path / "cache"))
    calls = []

    def count(family, in_channels, latent, with_controlnet):
        calls.append((family, in_channels, latent, with_controlnet))
        return UNET, CONTROLNET if with_controlnet else 0.0, VAE

    monkeypatch.setattr(cost_module, "_count_network_macs", count)
    cost_module._network_macs.cache_clear()
    yield calls
    cost_module._network_macs.cache_clear()


def test_the_passes_follow_each_pipeline(fixed_networks):
    pix2pix = teacher_cost("instruct-pix2pix", TEACHERS.get("instruct-pix2pix").defaults)
    assert (pix2pix.denoising_steps, pix2pix.unet_passes) == (20, 60)  # text, image, neither
    assert pix2pix.macs == 60 * UNET + VAE
    img2img = teacher_cost("sd-img2img", {"num_inference_steps": 30, "strength": 0.6, "guidance_scale": 7.5})
    assert (img2img.denoising_steps, img2img.unet_passes) == (18, 36)  # re-noised part way, guided
    turbo = teacher_cost("sd-turbo", TEACHERS.get("sd-turbo").defaults)
    assert (turbo.denoising_steps, turbo.unet_passes) == (1, 1)  # no guidance
    controlnet = teacher_cost("controlnet", TEACHERS.get("controlnet").defaults)
    assert controlnet.macs == 48 * (UNET + CONTROLNET) + VAE
    assert [call[:2] for call in fixed_networks] == [("sd1", 8), ("sd1", 4), ("sd2", 4), ("sd1", 4)]
    assert "20 denoising steps at 512 px" in pix2pix.describe()
    with pytest.raises(E2GANError, match="no cost model for teacher 'builtin'"):
        teacher_cost("builtin", {})


def test_a_count_is_kept_on_disk_and_done_once_per_machine(fixed_networks):
    teacher_cost("sd-img2img", {"resolution": 256})
    cost_module._network_macs.cache_clear()  # a new process
    again = teacher_cost("sd-img2img", {"resolution": 256})
    assert len(fixed_networks) == 1 and again.unet_macs_per_pass == UNET
    assert fixed_networks[0][2] == 32  # a 256 px photo is a 32x32 latent


def test_stable_diffusions_unet_counts_what_it_is_known_to_cost():
    """SD 1.x's UNet is about 0.4 T multiply-adds per pass at 512 px, its VAE decoder 1.26 T."""
    unet, controlnet, vae = cost_module._count_network_macs("sd1", 4, 64, False)
    assert unet == pytest.approx(401.6e9, rel=0.01)
    assert controlnet == 0 and vae == pytest.approx((558.3 + 1257.3) * 1e9, rel=0.01)


def test_compare_estimates_the_diffusion_teacher_a_concept_replaces(winter_concept, tiny_base,
                                                                    fixed_networks):
    from PIL import Image

    from app import compare

    workspace, _ = winter_concept
    result = compare.compare(workspace, Image.new("RGB", (64, 48), (90, 120, 200)), base_dir=tiny_base)
    notes = [note for note in result["notes"] if "a diffusion teacher (instruct-pix2pix" in note]
    assert len(notes) == 1 and "an estimate" in notes[0]
    assert "teacher" in result["latency"]  # the built-in teacher itself is measured, as before
