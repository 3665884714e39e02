"""LoRA on the crucial layers: targeting, no-op start, merging, scaling, switching, freezing."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from e2gan.models import lora
from e2gan.errors import E2GANError
from e2gan.models.lora import LoraConvTranspose2d
from e2gan.models import build_model

TINY = {"num_filters": 8, "text_dim": 16, "num_heads": 2}



@pytest.fixture
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return build_model("e2gan", TINY).eval()


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    return (torch.rand(2, 3, 16, 16, generator=generator) * 2 - 1,
            torch.randn(2, 4, TINY["text_dim"], generator=generator))


def randomize_b(model: nn.Module, adapter: str, seed: int, std: float = 0.2) -> None:
    """Give an adapter a non-zero update (a fresh one has B = 0)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora.lora_layers(model).values():
            if adapter in layer.lora_B:
                weight = layer.lora_B[adapter].weight
                weight.copy_(torch.randn(weight.shape, generator=generator) * std)


def run(model: nn.Module, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(*batch)


def uniform(model: nn.Module, rank: int) -> dict[str, int]:
    return {name: rank for name in lora.crucial_layers(model)}


# --- targeting ------------------------------------------------------------------------------


def test_crucial_layers_cover_the_papers_three_groups(tiny):
    layers = lora.crucial_layers(tiny)
    modules = dict(tiny.named_modules())
    sampling = ["downsample.0.conv", "downsample.1.conv", "bottleneck_in.conv",
                "bottleneck_out.conv", "upsample.0.conv", "upsample.1.conv"]
    attention = [f"transformer.0.{kind}_attention.to_{p}"
                 for kind in ("self", "cross") for p in ("q", "k", "v", "out")]
    mlp = ["transformer.0.feed_forward.proj_in", "transformer.0.feed_forward.proj_out",
           "transformer.0.proj_in", "transformer.0.proj_out"]
    assert sorted(layers) == sorted(sampling + attention + mlp)
    assert len(set(layers)) == len(layers)
    # Transposed convs are included (peft alone cannot adapt them).
    assert isinstance(modules["upsample.0.conv"], nn.ConvTranspose2d)
    assert isinstance(modules["bottleneck_out.conv"], nn.ConvTranspose2d)
    # Not the stem, the head or the residual blocks' convs.
    assert not any(name.startswith(("stem", "head", "blocks_")) for name in layers)
    assert sorted(lora.crucial_layers(tiny, ["sampling"])) == sorted(sampling)
    assert sorted(lora.crucial_layers(tiny, ["attention"])) == sorted(attention)
    assert sorted(lora.crucial_layers(tiny, ["mlp"])) == sorted(mlp)
    assert sorted(lora.crucial_layers(tiny, ["sampling", "mlp"])) == sorted(sampling + mlp)
    assert {lora.group_of(name) for name in attention} == {"attention"}
    with pytest.raises(E2GANError, match="unknown layer group"):
        lora.crucial_layers(tiny, ["convs"])


def test_pix2pix_has_only_sampling_layers():
    model = build_model("pix2pix", {"num_filters": 8, "num_residual_blocks": 1})
    assert sorted(lora.crucial_layers(model)) == sorted(
        ["downsample.0.conv", "downsample.1.conv", "upsample.0.conv", "upsample.1.conv"])


def test_add_adapter_refuses_bad_requests(tiny):
    with pytest.raises(E2GANError, match="at least one layer"):
        lora.add_adapter(tiny, "a", {})
    with pytest.raises(E2GANError, match="no layer"):
        lora.add_adapter(tiny, "a", {"nowhere.conv": 2})
    lora.add_adapter(tiny, "a", {"upsample.0.conv": 2})
    with pytest.raises(E2GANError, match="already loaded"):
        lora.add_adapter(tiny, "a", {"upsample.0.conv": 2})


def test_per_layer_ranks_are_applied_exactly(tiny):
    ranks = {"downsample.0.conv": 1, "downsample.1.conv": 3, "upsample.0.conv": 2,
             "transformer.0.self_attention.to_q": 5}
    lora.add_adapter(tiny, "a", ranks)
    assert lora.adapter_ranks(tiny, "a") == ranks
    # Only the named layers are wrapped ('downsample.0.conv' does not also catch others).
    assert sorted(lora.lora_layers(tiny)) == sorted(ranks)
    assert all(layer.scaling["a"] == 1.0 for layer in lora.lora_layers(tiny).values())


# --- behaviour ------------------------------------------------------------------------------


def test_fresh_adapter_is_a_no_op_and_a_trained_one_is_not(tiny, batch):
    base = run(tiny, batch)
    lora.add_adapter(tiny, "a", uniform(tiny, 2))
    assert torch.equal(run(tiny, batch), base)
    randomize_b(tiny, "a", seed=1)
    assert (run(tiny, batch) - base).abs().max() > 1e-3


def test_merge_and_remove_keep_the_output(tiny, batch):
    lora.add_adapter(tiny, "a", uniform(tiny, 3))
    randomize_b(tiny, "a", seed=1)
    adapted = run(tiny, batch)
    merged = copy.deepcopy(tiny)
    lora.merge_adapter(merged, "a")
    assert all(layer.merged for layer in lora.lora_layers(merged).values())
    torch.testing.assert_close(run(merged, batch), adapted, atol=3e-5, rtol=0)  # float32 sums

    plain = lora.remove_adapters(copy.deepcopy(tiny), merge=True)
    assert not lora.lora_layers(plain)
    assert not any("lora" in name for name, _ in plain.named_parameters())
    assert type(plain.upsample[0].conv) is nn.ConvTranspose2d
    assert type(plain.downsample[0].conv) is nn.Conv2d
    assert type(plain.transformer[0].self_attention.to_q) is nn.Linear
    torch.testing.assert_close(run(plain, batch), adapted, atol=3e-5, rtol=0)
    # It rebuilds from its own config and state dict: a plain model with the concept baked in.
    rebuilt = build_model("e2gan", TINY).eval()
    rebuilt.load_state_dict(plain.state_dict())
    torch.testing.assert_close(run(rebuilt, batch), adapted, atol=3e-5, rtol=0)


def test_remove_without_merge_returns_the_base(tiny, batch):
    base = run(tiny, batch)
    lora.add_adapter(tiny, "a", uniform(tiny, 2))
    randomize_b(tiny, "a", seed=1)
    lora.merge_adapter(tiny, "a")  # even a merged adapter is undone
    plain = lora.remove_adapters(tiny, merge=False)
    assert not lora.lora_layers(plain)
    torch.testing.assert_close(run(plain, batch), base, atol=1e-5, rtol=0)


def test_remove_with_merge_after_disabling_gives_the_base(tiny, batch):
    """A model running bare (no active adapter) must stay bare when its adapters are removed."""
    base = run(tiny, batch)
    lora.add_adapter(tiny, "a", uniform(tiny, 2))
    randomize_b(tiny, "a", seed=1)
    lora.set_active_adapters(tiny, [])
    torch.testing.assert_close(run(tiny, batch), base, atol=1e-6, rtol=0)
    plain = lora.remove_adapters(tiny, merge=True)
    torch.testing.assert_close(run(plain, batch), base, atol=1e-5, rtol=0)


@pytest.mark.parametrize("geometry", [
    dict(kernel_size=3, stride=2, padding=1, output_padding=1),  # the generator's UpNormAct
    dict(kernel_size=4, stride=2, padding=1),
    dict(kernel_size=(3, 5), stride=(1, 2), padding=(1, 2), output_padding=(0, 1)),
    dict(kernel_size=3, stride=2, padding=2, dilation=2, output_padding=1),
])
def test_conv_transpose_delta_weight_is_the_exact_update(geometry):
    torch.manual_seed(0)
    toy = nn.Sequential(nn.ConvTranspose2d(6, 5, **geometry)).eval()
    lora.add_adapter(toy, "a", {"0": 3})
    layer = toy[0]
    assert isinstance(layer, LoraConvTranspose2d)
    randomize_b(toy, "a", seed=2, std=0.5)
    x = torch.randn(2, 6, 7, 9)
    with torch.no_grad():
        adapted = toy(x)
        base = layer.get_base_layer()
        delta = layer.get_delta_weight("a")
        assert delta.shape == base.weight.shape
        brute = nn.ConvTranspose2d(6, 5, **geometry)
        brute.load_state_dict(base.state_dict())
        brute.weight += delta
        torch.testing.assert_close(brute(x), adapted, atol=1e-5, rtol=0)
        # ...and the delta alone is the adapter's contribution.
        torch.testing.assert_close(adapted - base(x), torch.nn.functional.conv_transpose2d(
            x, delta, None, base.stride, base.padding, base.output_padding, 1, base.dilation),
            atol=1e-5, rtol=0)
        # merge / unmerge go through the same delta.
        layer.merge()
        torch.testing.assert_close(base.weight, brute.weight, atol=1e-6, rtol=0)
        torch.testing.assert_close(toy(x), adapted, atol=1e-5, rtol=0)
        layer.unmerge()
        assert not layer.merged
        torch.testing.assert_close(toy(x), adapted, atol=1e-5, rtol=0)


def test_adapter_scale(tiny, batch):
    base = run(tiny, batch)
    lora.add_adapter(tiny, "a", uniform(tiny, 2))
    randomize_b(tiny, "a", seed=1, std=0.05)
    full = run(tiny, batch)
    lora.set_adapter_scale(tiny, "a", 0.0)
    torch.testing.assert_close(run(tiny, batch), base, atol=1e-6, rtol=0)
    lora.set_adapter_scale(tiny, "a", 0.5)
    half = run(tiny, batch)
    lora.set_adapter_scale(tiny, "a", 2.0)
    double = run(tiny, batch)
    distance = lambda out: (out - base).abs().mean().item()  # noqa: E731
    assert 0 < distance(half) < distance(full) < distance(double)
    lora.set_adapter_scale(tiny, "a", 1.0)
    torch.testing.assert_close(run(tiny, batch), full, atol=1e-6, rtol=0)
    with pytest.raises(E2GANError, match="no adapter"):
        lora.set_adapter_scale(tiny, "b", 1.0)


def test_adapter_scale_is_linear_on_a_linear_layer():
    torch.manual_seed(0)
    toy = nn.Sequential(nn.Linear(8, 6)).eval()
    x = torch.randn(4, 8)
    base = toy(x).detach()
    lora.add_adapter(toy, "a", {"0": 2})
    randomize_b(toy, "a", seed=3)
    with torch.no_grad():
        delta = toy(x) - base
        lora.set_adapter_scale(toy, "a", 2.0)
        torch.testing.assert_close(toy(x) - base, 2 * delta, atol=1e-5, rtol=0)
        lora.set_adapter_scale(toy, "a", -1.0)
        torch.testing.assert_close(toy(x) - base, -delta, atol=1e-5, rtol=0)


def test_two_adapters_switch_cleanly(tiny, batch):
    base = run(tiny, batch)
    lora.add_adapter(tiny, "a", uniform(tiny, 2))
    randomize_b(tiny, "a", seed=1)
    lora.set_active_adapters(tiny, ["a"])
    out_a = run(tiny, batch)
    lora.add_adapter(tiny, "b", {name: 3 for name in lora.crucial_layers(tiny, ["sampling"])})
    randomize_b(tiny, "b", seed=2)
    assert lora.adapter_names(tiny) == ["a", "b"]
    lora.set_active_adapters(tiny, ["b"])
    out_b = run(tiny, batch)
    assert (out_a - out_b).abs().max() > 1e-3 and (out_b - base).abs().max() > 1e-3
    lora.set_active_adapters(tiny, ["a"])
    torch.testing.assert_close(run(tiny, batch), out_a, atol=1e-6, rtol=0)
    lora.set_active_adapters(tiny, [])
    torch.testing.assert_close(run(tiny, batch), base, atol=1e-6, rtol=0)
    lora.set_active_adapters(tiny, ["b"])
    torch.testing.assert_close(run(tiny, batch), out_b, atol=1e-6, rtol=0)
    # Deleting one leaves the other intact.
    lora.delete_adapter(tiny, "b")
    assert lora.adapter_names(tiny) == ["a"]
    lora.set_active_adapters(tiny, ["a"])
    torch.testing.assert_close(run(tiny, batch), out_a, atol=1e-6, rtol=0)


def test_adapter_state_dict_round_trip(tiny, batch):
    ranks = uniform(tiny, 2)
    lora.add_adapter(tiny, "a", ranks)
    randomize_b(tiny, "a", seed=1)
    out = run(tiny, batch)
    state = lora.adapter_state_dict(tiny, "a")
    assert set(state) == {f"{name}.lora_{part}" for name in ranks for part in "AB"}

    torch.manual_seed(0)
    other = build_model("e2gan", TINY).eval()
    lora.add_adapter(other, "a", ranks)
    lora.load_adapter_state_dict(other, "a", state)
    torch.testing.assert_close(run(other, batch), out, atol=0, rtol=0)

    with pytest.raises(E2GANError, match="do not match"):
        lora.load_adapter_state_dict(other, "a", {k: v for k, v in list(state.items())[1:]})
    wrong = dict(state)
    wrong["upsample.0.conv.lora_B"] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(E2GANError, match="shape"):
        lora.load_adapter_state_dict(other, "a", wrong)
    with pytest.raises(E2GANError, match="no adapter"):
        lora.adapter_state_dict(other, "missing")


# --- parameter accounting and freezing ------------------------------------------------------


def test_lora_parameter_count_matches_the_injected_parameters(tiny):
    ranks = {name: rank for name, rank in zip(lora.crucial_layers(tiny), [1, 2, 3, 4] * 5)}
    predicted = lora.lora_parameter_count(tiny, ranks)
    lora.add_adapter(tiny, "a", ranks)
    actual = sum(p.numel() for name, p in tiny.named_parameters() if "lora_" in name)
    assert predicted == actual
    # It also works on a model that already carries the adapter (the rank search asks then).
    assert lora.lora_parameter_count(tiny, ranks) == actual
    assert actual == sum(t.numel() for t in lora.adapter_state_dict(tiny, "a").values())


def test_only_lora_parameters_train_after_freezing(tiny, batch):
    tiny.requires_grad_(False)
    lora.add_adapter(tiny, "a", uniform(tiny, 2))
    trainable = {name for name, p in tiny.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    assert trainable == {name for name, _ in tiny.named_parameters() if "lora_" in name}
    before = {name: p.detach().clone() for name, p in tiny.named_parameters()}
    optimizer = torch.optim.SGD([p for p in tiny.parameters() if p.requires_grad], lr=0.1)
    tiny.train()
    for _ in range(2):  # B starts at 0: the second step moves A too
        optimizer.zero_grad()
        tiny(*batch).square().mean().backward()
        optimizer.step()
    changed = {name for name, p in tiny.named_parameters() if not torch.equal(p, before[name])}
    assert changed and changed <= trainable
    assert any(".lora_A." in name for name in changed) and any(".lora_B." in name for name in changed)


def test_rank_cap_bounds():
    assert lora.rank_cap(nn.Linear(256, 1024)) == 16
    assert lora.rank_cap(nn.Conv2d(64, 128, 3)) == 8
    assert lora.rank_cap(nn.ConvTranspose2d(4, 4, 3)) == 1


def test_rank_axis_matches_the_stored_weights(tiny):
    lora.add_adapter(tiny, "a", uniform(tiny, 3))
    state = lora.adapter_state_dict(tiny, "a")
    types = lora.layer_types(tiny, lora.crucial_layers(tiny))
    assert set(types.values()) == {"Conv2d", "ConvTranspose2d", "Linear"}
    for name, kind in types.items():
        for part in ("lora_A", "lora_B"):
            assert state[f"{name}.{part}"].shape[lora.rank_axis(kind, part)] == 3, (name, part)


@pytest.mark.parametrize("out_channels", [3, 32])  # a head-like conv (summed in training) and not
def test_a_lora_conv_gives_peft_s_output_and_gradients_on_either_path(out_channels):
    # LoraConv2d adds the adapter's delta to the weight where that is cheaper (editing; training
    # convs with few outputs against the rank); it must compute what peft's two extra convs do.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(16, out_channels, 7, padding=3))
    lora.add_adapter(model, "concept", {"0": 8})
    layer = model[0]
    assert isinstance(layer, lora.LoraConv2d)
    nn.init.normal_(layer.lora_B["concept"].weight, std=0.05)
    lora.set_adapter_scale(model, "concept", 0.7)
    x = torch.randn(2, 16, 20, 20)

    def run(path_of_peft: bool):
        for parameter in layer.parameters():
            parameter.grad = None
        image = x.clone().requires_grad_(True)
        forward = super(lora.LoraConv2d, layer).forward if path_of_peft else layer
        output = forward(image)
        (output * torch.linspace(-1, 1, output.numel()).view_as(output)).sum().backward()
        with torch.no_grad():
            edited = forward(x)
        return output, edited, image.grad, [layer.lora_A["concept"].weight.grad.clone(),
                                            layer.lora_B["concept"].weight.grad.clone()]

    peft_output, peft_edit, peft_input_grad, peft_grads = run(True)
    summed, delta_weight = [], layer.get_delta_weight
    layer.get_delta_weight = lambda adapter: summed.append(adapter) or delta_weight(adapter)
    output, edit, input_grad, grads = run(False)
    # Editing always sums; training only where the outputs are few against the rank (8).
    assert len(summed) == (2 if out_channels < 3 * 8 else 1)
    assert torch.allclose(output, peft_output, atol=1e-5)
    assert torch.allclose(edit, peft_edit, atol=1e-5)
    assert torch.allclose(input_grad, peft_input_grad, atol=1e-5)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(grads, peft_grads))
    assert not torch.allclose(edit, layer.get_base_layer()(x))  # the adapter is in it
    # With the adapter switched off, the base conv alone.
    lora.set_active_adapters(model, [])
    assert torch.allclose(layer(x), layer.get_base_layer()(x))
