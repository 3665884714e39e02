"""Concepts as LoRA adapters on the generator's crucial layers, through peft.

The paper fine-tunes a new concept by training low-rank updates on three groups of "crucial
layers" only: the sampling convs (stride-2 convs and transposed convs) and the transformer
block's projections and MLP. peft injects the adapters (`inject_adapter_in_model`, per-layer ranks
through `rank_pattern`); peft 0.21 has no LoRA layer for `nn.ConvTranspose2d`, so
`LoraConvTranspose2d` below supplies one with peft's method names and is registered through
`LoraConfig._register_custom_module`.

Every adapter is created with `lora_alpha == r`, so its scaling is 1 and a rank change does not
silently change the update's magnitude; `set_adapter_scale` is the user's strength knob.
"""

from __future__ import annotations

import re
import warnings
from typing import Iterable

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from peft.tuners.lora.layer import Conv2d as PeftLoraConv2d
from torch import nn

# The value checks live where the CLI can run them without importing torch.
from e2gan.checks import check_adapter_scale, check_ranks
from e2gan.errors import E2GANError

# Module-name patterns of the crucial layers, by group (the groups of the paper's Fig. 4).
LAYER_GROUPS: dict[str, str] = {
    "sampling": r"(downsample\.\d+|upsample\.\d+|bottleneck_in|bottleneck_out)\.conv",
    "attention": r"transformer\.\d+\.(self_attention|cross_attention)\.to_(q|k|v|out)",
    "mlp": r"transformer\.\d+\.(feed_forward\.proj_in|feed_forward\.proj_out|proj_in|proj_out)",
}
ADAPTABLE_TYPES = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


class LoraConvTranspose2d(nn.Module, LoraLayer):
    """LoRA for a transposed conv: a rank-r transposed conv (same geometry) then a 1x1 conv.

    Because a 1x1 conv commutes with the transposed conv's spatial scatter, the pair equals one
    transposed conv with weight delta[i, o] = sum_r A[i, r] * B[o, r], so it merges exactly.
    """

    def __init__(self, base_layer: nn.ConvTranspose2d, adapter_name: str, config: LoraConfig,
                 r: int = 0, lora_alpha: int = 1, **kwargs) -> None:
        super().__init__()
        LoraLayer.__init__(self, base_layer)
        if base_layer.groups != 1:
            raise ValueError("LoRA for grouped transposed convs is not supported")
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, r, lora_alpha=lora_alpha, config=config)

    def _get_in_out_features(self, module: nn.Module) -> tuple[int, int]:
        return module.in_channels, module.out_channels

    def update_layer(self, adapter_name: str, r: int, lora_alpha: int, config: LoraConfig,
                     **kwargs) -> None:
        if r <= 0:
            raise ValueError(f"LoRA rank must be positive, got {r}")
        base = self.get_base_layer()
        self.r[adapter_name] = r
        self.lora_alpha[adapter_name] = lora_alpha
        self.scaling[adapter_name] = lora_alpha / r
        self.lora_dropout[adapter_name] = (nn.Dropout(config.lora_dropout) if config.lora_dropout
                                           else nn.Identity())
        self.lora_A[adapter_name] = nn.ConvTranspose2d(
            self.in_features, r, base.kernel_size, stride=base.stride, padding=base.padding,
            output_padding=base.output_padding, dilation=base.dilation, bias=False)
        self.lora_B[adapter_name] = nn.Conv2d(r, self.out_features, 1, bias=False)
        self.lora_bias[adapter_name] = False
        self.use_rslora[adapter_name] = False
        self.use_dora[adapter_name] = False
        self.reset_lora_parameters(adapter_name, config.init_lora_weights)
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters)

    def get_delta_weight(self, adapter: str) -> torch.Tensor:
        a = self.lora_A[adapter].weight  # (in, r, kh, kw)
        b = self.lora_B[adapter].weight[:, :, 0, 0]  # (out, r)
        return torch.einsum("irhw,or->iohw", a, b) * self.scaling[adapter]

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        for adapter in adapter_names or list(self.active_adapters):
            if adapter in self.lora_A and adapter not in self.merged_adapters:
                weight = self.get_base_layer().weight
                merged = weight.data + self.get_delta_weight(adapter).to(weight.dtype)
                if safe_merge and not torch.isfinite(merged).all():
                    raise ValueError(f"NaNs when merging adapter {adapter}")
                weight.data = merged
                self.merged_adapters.append(adapter)

    def unmerge(self) -> None:
        while self.merged_adapters:
            adapter = self.merged_adapters.pop()
            weight = self.get_base_layer().weight
            weight.data -= self.get_delta_weight(adapter).to(weight.dtype)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        if self.disable_adapters or self.merged:
            return result
        for adapter in self.active_adapters:
            if adapter in self.lora_A:
                update = self.lora_B[adapter](self.lora_A[adapter](self.lora_dropout[adapter](x)))
                result = result + update * self.scaling[adapter]
        return result


class LoraConv2d(PeftLoraConv2d):
    """peft's LoRA conv, with one adapter's update added to the weight instead of to the output.

    peft runs the frozen conv and then the adapter as two more convs over the same activations
    (rank-r conv, then 1x1), adding their output: at full resolution those are memory-bound passes
    that cost more than their arithmetic. The sum is linear, so conv(x, W) + conv(conv(x, A), B)
    = conv(x, W + BA): one conv, the delta (r x the kernel's weights) made each call so the
    strength slider and training see it at once. Its cost moves to the backward pass, which must
    form the full weight's gradient to reach A and B; so it is taken where that is cheaper:
    always without gradients (editing), and in training where the conv's outputs are few against
    the rank (`out_channels < 3 r`: the output head, 3 channels at rank 8, measured 1.7x faster
    forward and backward; experiments/step_profile.py). Several active adapters, dropout or DoRA
    take peft's own path.
    """

    def _one_plain_adapter(self) -> str | None:
        active = [name for name in self.active_adapters if name in self.lora_A]
        if (self.disable_adapters or self.merged or len(active) != 1 or active[0] in self.lora_variant
                or not isinstance(self.lora_dropout[active[0]], nn.Identity)):
            return None
        return active[0]

    def _sums_weights(self, adapter: str) -> bool:
        if self.get_base_layer().padding_mode != "zeros":
            return False  # peft pads its A conv with zeros: the sum would differ at the borders
        if not torch.is_grad_enabled():
            return True
        return self.get_base_layer().out_channels < 3 * self.r[adapter]

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        adapter = None if (args or kwargs) else self._one_plain_adapter()
        if adapter is None or not self._sums_weights(adapter):
            return super().forward(x, *args, **kwargs)
        base = self.get_base_layer()
        weight = base.weight + self.get_delta_weight(adapter).to(base.weight.dtype)
        return base._conv_forward(x, weight, base.bias)


def crucial_layers(model: nn.Module, groups: Iterable[str] = tuple(LAYER_GROUPS)) -> list[str]:
    """Names of the adaptable layers of `model` in the given groups, in module order."""
    unknown = sorted(set(groups) - set(LAYER_GROUPS))
    if unknown:
        raise E2GANError(f"unknown layer group(s) {unknown}; known: {sorted(LAYER_GROUPS)}")
    pattern = re.compile("|".join(f"(?:{LAYER_GROUPS[g]})" for g in groups))
    # A layer that already carries an adapter is a LoraLayer wrapping the adaptable one.
    return [name for name, module in model.named_modules()
            if pattern.fullmatch(name) and isinstance(
                module.get_base_layer() if isinstance(module, LoraLayer) else module,
                ADAPTABLE_TYPES)]


def group_of(layer_name: str) -> str:
    for group, pattern in LAYER_GROUPS.items():
        if re.fullmatch(pattern, layer_name):
            return group
    raise KeyError(layer_name)


def rank_cap(module: nn.Module) -> int:
    """The largest rank worth searching for a layer: an eighth of its narrower side, at most 16.

    Algorithm 1 bounds each layer's rank by a threshold set by the weight's size; beyond that a
    low-rank update stops being cheap compared with tuning the layer itself.
    """
    if isinstance(module, nn.Linear):
        narrow = min(module.in_features, module.out_features)
    else:
        narrow = min(module.in_channels, module.out_channels)
    return max(1, min(16, narrow // 8))


def lora_parameter_count(model: nn.Module, ranks: dict[str, int]) -> int:
    """Trainable parameters that LoRA with `ranks` adds (A and B, no bias)."""
    modules = dict(model.named_modules())
    total = 0
    for name, rank in ranks.items():
        module = modules[name]
        if isinstance(module, LoraLayer):  # already adapted: count on the wrapped layer
            module = module.get_base_layer()
        if isinstance(module, nn.Linear):
            total += rank * (module.in_features + module.out_features)
        else:
            kernel = module.kernel_size[0] * module.kernel_size[1]
            total += rank * (module.in_channels * kernel + module.out_channels)
    return total


def add_adapter(model: nn.Module, adapter_name: str, ranks: dict[str, int]) -> None:
    """Inject a fresh (B = 0, so initially a no-op) LoRA adapter with per-layer ranks."""
    if not ranks:
        raise E2GANError("an adapter needs at least one layer with a rank")
    check_ranks(ranks)
    modules = dict(model.named_modules())
    missing = sorted(name for name in ranks if name not in modules)
    if missing:
        raise E2GANError(f"the model has no layer(s) {missing[:4]} for this adapter")
    if adapter_name in adapter_names(model):
        raise E2GANError(f"adapter {adapter_name!r} is already loaded")
    # Anchored patterns so 'downsample.0.conv' does not also match a layer ending the same way.
    rank_pattern = {f"^{re.escape(name)}$": rank for name, rank in ranks.items()}
    config = LoraConfig(r=1, lora_alpha=1, target_modules=sorted(ranks), rank_pattern=rank_pattern,
                        alpha_pattern=dict(rank_pattern), lora_dropout=0.0)
    config._register_custom_module({nn.ConvTranspose2d: LoraConvTranspose2d, nn.Conv2d: LoraConv2d})
    with warnings.catch_warnings():
        # Several adapters on one model is the point (switching and blending concepts).
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        inject_adapter_in_model(config, model, adapter_name=adapter_name)


def lora_layers(model: nn.Module) -> dict[str, LoraLayer]:
    return {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}


def adapter_names(model: nn.Module) -> list[str]:
    names: dict[str, None] = {}
    for layer in lora_layers(model).values():
        names.update(dict.fromkeys(layer.lora_A.keys()))
    return list(names)


def adapter_state_dict(model: nn.Module, adapter_name: str) -> dict[str, torch.Tensor]:
    """`{layer}.lora_A` / `{layer}.lora_B` weights of one adapter, detached, on the CPU."""
    state = {}
    for name, layer in lora_layers(model).items():
        if adapter_name in layer.lora_A:
            state[f"{name}.lora_A"] = layer.lora_A[adapter_name].weight.detach().cpu().contiguous()
            state[f"{name}.lora_B"] = layer.lora_B[adapter_name].weight.detach().cpu().contiguous()
    if not state:
        raise E2GANError(f"no adapter named {adapter_name!r} is loaded")
    return state


def load_adapter_state_dict(model: nn.Module, adapter_name: str,
                            state: dict[str, torch.Tensor]) -> None:
    layers = lora_layers(model)
    expected = {f"{name}.lora_{part}" for name, layer in layers.items()
                if adapter_name in layer.lora_A for part in "AB"}
    if set(state) != expected:
        raise E2GANError(f"adapter weights do not match its layers "
                         f"(missing {sorted(expected - set(state))[:3]}, "
                         f"unexpected {sorted(set(state) - expected)[:3]})")
    with torch.no_grad():
        for key, value in state.items():
            name, part = key.rsplit(".", 1)
            target = getattr(layers[name], part)[adapter_name].weight
            if target.shape != value.shape:
                raise E2GANError(f"adapter weight {key} has shape {tuple(value.shape)}, the model "
                                 f"expects {tuple(target.shape)}")
            target.copy_(value)


def adapter_ranks(model: nn.Module, adapter_name: str) -> dict[str, int]:
    return {name: layer.r[adapter_name] for name, layer in lora_layers(model).items()
            if adapter_name in layer.r}


def set_active_adapters(model: nn.Module, names: list[str]) -> None:
    """Activate exactly `names` (an empty list runs the bare base model)."""
    for layer in lora_layers(model).values():
        present = [n for n in names if n in layer.lora_A]
        layer.enable_adapters(bool(present))
        if present:
            layer.set_adapter(present)


def set_adapter_scale(model: nn.Module, adapter_name: str, scale: float) -> None:
    """Scale one adapter's update: 0 is the base model, 1 the trained concept, >1 exaggerates."""
    scale = check_adapter_scale(scale)
    if adapter_name not in adapter_names(model):
        raise E2GANError(f"no adapter named {adapter_name!r} is loaded")
    for layer in lora_layers(model).values():
        layer.set_scale(adapter_name, scale)


def merge_adapter(model: nn.Module, adapter_name: str) -> None:
    """Fold an adapter into the base weights (for export: no LoRA ops left at inference)."""
    for layer in lora_layers(model).values():
        if adapter_name in layer.lora_A:
            layer.merge(adapter_names=[adapter_name])


def remove_adapters(model: nn.Module, merge: bool = False) -> nn.Module:
    """Replace every LoRA layer by its base layer, first merging the active adapters if `merge`,
    otherwise undoing any merge, so the result is a plain model."""
    for name, layer in list(lora_layers(model).items()):
        # A disabled layer (`set_active_adapters(model, [])`) runs the base: nothing to merge.
        if merge and not layer.merged and not layer.disable_adapters:
            layer.merge()
        elif not merge and layer.merged:
            layer.unmerge()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.get_base_layer())
    return model


def delete_adapter(model: nn.Module, adapter_name: str) -> None:
    for layer in lora_layers(model).values():
        if adapter_name in layer.lora_A:
            if adapter_name in layer.merged_adapters:
                raise E2GANError(f"adapter {adapter_name!r} is merged; it cannot be removed alone")
            layer.delete_adapter(adapter_name)


def rank_axis(module_type: str, part: str) -> int:
    """Axis of the rank in a stored LoRA weight (for concatenating two adapters' ranks)."""
    if part == "lora_A":
        return 1 if module_type == "ConvTranspose2d" else 0
    return 1


def layer_types(model: nn.Module, names: Iterable[str]) -> dict[str, str]:
    modules = dict(model.named_modules())
    result = {}
    for name in names:
        module = modules[name]
        base = module.get_base_layer() if isinstance(module, LoraLayer) else module
        result[name] = type(base).__name__
    return result
