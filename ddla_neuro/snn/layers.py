"""Modules that run in two modes from one definition, their state explicit (state in, state out).

Every module is called as `module(x, state, transmit) -> (y, state)`:

* `state=None`: multi-step. Tensors are (T, B, ...); stateless layers fold T into the batch,
  neurons loop over T from rest. Fast for baseline training.
* `state=NetworkState(...)`: single-step. Tensors are (B, ...); each neuron population reads
  its membrane from the state and returns a state holding the new one. DDLA and deployment
  run this way.
* `transmit`: the transmission hook, `transmit(neuron, z) -> what its targets receive`,
  called with every population's output (its spikes, (B, ...) or (T, B, ...)). None sends
  the spikes. DDLA's executor sends approximated deltas through it; analysis records spikes
  and returns them unchanged.

Composite modules (sequences, residual blocks, attention) pass `state` and `transmit` through
their children in execution order; nothing is stored on a module between calls.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from collections.abc import Callable

import torch
from torch import nn

from .functional import NeuronParameters, neuron_sequence, neuron_step

Transmit = Callable[["Neuron", torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class NetworkState:
    """Single-step state: the timestep index and every neuron population's membrane (by key)."""

    t: int = 0
    v: dict[str, torch.Tensor] = field(default_factory=dict)

    def with_membrane(self, key: str, v: torch.Tensor) -> NetworkState:
        return replace(self, v={**self.v, key: v})


class Stateless(nn.Module):
    """Wraps a per-sample layer (conv, linear, BN, pooling, flatten)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor, state: NetworkState | None = None, transmit: Transmit | None = None
                ) -> tuple[torch.Tensor, NetworkState | None]:
        if state is not None:
            return self.layer(x), state
        t, b = x.shape[:2]
        y = self.layer(x.reshape(t * b, *x.shape[2:]))
        return y.reshape(t, b, *y.shape[1:]), state


class Neuron(nn.Module):
    """A population of IF/LIF neurons. `key` names its membrane in the network state."""

    def __init__(self, params: NeuronParameters):
        super().__init__()
        self.params = params
        self.key = ""

    def forward(self, x: torch.Tensor, state: NetworkState | None = None, transmit: Transmit | None = None
                ) -> tuple[torch.Tensor, NetworkState | None]:
        if state is not None:
            v = state.v.get(self.key)
            z, v = neuron_step(x, torch.zeros_like(x) if v is None else v, self.params)
            state = state.with_membrane(self.key, v)
        else:
            z, _ = neuron_sequence(x, self.params)
        return (z if transmit is None else transmit(self, z)), state

    def extra_repr(self) -> str:
        p = self.params
        return f"v_th={p.v_th}, decay={p.decay}, gain={p.gain}, reset={p.reset}"


class Sequential(nn.Sequential):
    def forward(self, x: torch.Tensor, state: NetworkState | None = None, transmit: Transmit | None = None
                ) -> tuple[torch.Tensor, NetworkState | None]:
        for module in self:
            x, state = module(x, state, transmit)
        return x, state


class Residual(nn.Module):
    """`main(x) + shortcut(x)`; the sum is a membrane input, so the next module is a neuron.
    Without a shortcut module the shortcut is the identity."""

    def __init__(self, main: nn.Module, shortcut: nn.Module | None = None):
        super().__init__()
        self.main = main
        self.shortcut = shortcut if shortcut is not None else nn.Identity()

    def forward(self, x: torch.Tensor, state: NetworkState | None = None, transmit: Transmit | None = None
                ) -> tuple[torch.Tensor, NetworkState | None]:
        y, state = self.main(x, state, transmit)
        if isinstance(self.shortcut, nn.Identity):
            return y + x, state
        short, state = self.shortcut(x, state, transmit)
        return y + short, state


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, padding: int | None = None,
            bias: bool = False) -> list[nn.Module]:
    """conv + BatchNorm as two Stateless modules (kept apart so BN can be folded for deployment)."""
    pad = kernel // 2 if padding is None else padding
    return [Stateless(nn.Conv2d(c_in, c_out, kernel, stride, pad, bias=bias)), Stateless(nn.BatchNorm2d(c_out))]


def neurons(module: nn.Module) -> list[Neuron]:
    return [m for m in module.modules() if isinstance(m, Neuron)]
