"""The exponential moving average of the trained weights: what a training job writes.

The rule and the saved state are diffusers' `EMAModel` (training_utils), which this trainer used
until 2026-12-07: the first update copies the weights, and the n-th after it averages with decay
min((1 + n) / (10 + n), `decay`), so a short fine-tune is not held back by its starting weights;
the state has its keys, so training states saved before still resume. The trainer keeps its own
copy because that one class was its only use of diffusers, whose import pulls in ~250 modules,
and the machines a base is trained on (a lent GPU host, say) need not have diffusers at all.
`tests/test_training.py` checks both against each other.
"""

from __future__ import annotations

from typing import Iterable

import torch


class WeightAverage:
    """An EMA of a fixed list of parameters (the trained ones: LoRA factors, or all weights)."""

    def __init__(self, parameters: Iterable[torch.nn.Parameter], decay: float) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must lie between 0 and 1, got {decay}")
        self.decay = decay
        self.updates = 0
        self.averages = [parameter.detach().clone() for parameter in parameters]
        self._stored: list[torch.Tensor] | None = None

    def current_decay(self) -> float:
        """The decay of the update being made: 0 at the first, then warming up to `decay`."""
        after_first = self.updates - 1
        if after_first <= 0:
            return 0.0
        return min((1 + after_first) / (10 + after_first), self.decay)

    @torch.no_grad()
    def step(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Fold the parameters' current values into the average (after each optimiser step)."""
        parameters = list(parameters)
        self.updates += 1
        weight = 1.0 - self.current_decay()
        for average, value in zip(self.averages, parameters):
            if value.requires_grad:
                # diffusers' own arithmetic, so an average continues bit for bit after a resume
                average.sub_(weight * (average - value))
            else:  # a frozen weight's average is the weight itself
                average.copy_(value)

    @torch.no_grad()
    def copy_to(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        for average, parameter in zip(self.averages, parameters):
            parameter.copy_(average.to(parameter.device))

    @torch.no_grad()
    def store(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Keep the parameters' training values, to `restore` after working with the average."""
        self._stored = [parameter.detach().cpu().clone() for parameter in parameters]

    @torch.no_grad()
    def restore(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        if self._stored is None:
            raise RuntimeError("restore() without a store() before it")
        for stored, parameter in zip(self._stored, parameters):
            parameter.copy_(stored.to(parameter.device))
        self._stored = None

    # diffusers' EMAModel keys, with its defaults for the options this trainer never sets.
    def state_dict(self) -> dict:
        return {"decay": self.decay, "min_decay": 0.0, "optimization_step": self.updates,
                "update_after_step": 0, "use_ema_warmup": False, "inv_gamma": 1.0,
                "power": 2 / 3, "shadow_params": self.averages}

    def load_state_dict(self, state: dict) -> None:
        unsupported = {key: state[key] for key, default in
                       (("min_decay", 0.0), ("update_after_step", 0), ("use_ema_warmup", False))
                       if key in state and state[key] != default}
        if unsupported:
            raise ValueError(f"EMA state with settings this trainer does not use: {unsupported}")
        averages = state.get("shadow_params")
        if (not isinstance(averages, list) or len(averages) != len(self.averages)
                or any(not isinstance(a, torch.Tensor) or a.shape != b.shape
                       for a, b in zip(averages, self.averages))):
            raise ValueError("EMA state does not match the trained parameters")
        decay = state.get("decay", self.decay)
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must lie between 0 and 1, got {decay}")
        self.decay = float(decay)
        self.updates = int(state.get("optimization_step", 0))
        self.averages = [average.detach().clone().to(current.device)
                         for average, current in zip(averages, self.averages)]
