"""Modules that run in two modes from one definition.

* multi-step: tensors are (T, B, ...); stateless layers fold T into the batch, neurons loop
  over T. Fast for baseline training.
* single-step: tensors are (B, ...); neurons read and write the membrane held in an
  explicit state dict that `SpikingNetwork.step` passes in and returns. DDLA and
  deployment run this way.

Composite modules (residual blocks, attention) write `forward` once; only `Stateless`
and `Neuron` look at the mode, which `SpikingNetwork` sets on every submodule.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .functional import NeuronParameters, neuron_step

MULTI, SINGLE = "multi", "single"


class ModeMixin:
    step_mode: str = MULTI


class Stateless(ModeMixin, nn.Module):
    """Wraps a per-sample layer (conv, linear, BN, pooling, flatten)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.step_mode == SINGLE:
            return self.layer(x)
        t, b = x.shape[:2]
        y = self.layer(x.reshape(t * b, *x.shape[2:]))
        return y.reshape(t, b, *y.shape[1:])


class Neuron(ModeMixin, nn.Module):
    """A population of IF/LIF neurons. `key` names its entry in the network state."""

    def __init__(self, params: NeuronParameters):
        super().__init__()
        self.params = params
        self.key = ""
        self.v: torch.Tensor | None = None  # single-step membrane, loaded/stored by SpikingNetwork
        self.observers: list[Callable[["Neuron", torch.Tensor], torch.Tensor | None]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.step_mode == SINGLE:
            v = torch.zeros_like(x) if self.v is None else self.v
            z, self.v = neuron_step(x, v, self.params)
        else:
            v = torch.zeros_like(x[0])
            zs = []
            for xt in x:
                zt, v = neuron_step(xt, v, self.params)
                zs.append(zt)
            z = torch.stack(zs)
        # Observers see (and may replace) what the layer transmits: spike counters, DDLA.
        for observe in self.observers:
            replaced = observe(self, z)
            if replaced is not None:
                z = replaced
        return z

    def extra_repr(self) -> str:
        p = self.params
        return f"v_th={p.v_th}, decay={p.decay}, gain={p.gain}, reset={p.reset}"


class Sequential(ModeMixin, nn.Sequential):
    pass


class Residual(ModeMixin, nn.Module):
    """`main(x) + shortcut(x)`; the sum is a membrane input, so the next module is a neuron."""

    def __init__(self, main: nn.Module, shortcut: nn.Module | None = None):
        super().__init__()
        self.main = main
        self.shortcut = shortcut if shortcut is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, padding: int | None = None,
            bias: bool = False) -> list[nn.Module]:
    """conv + BatchNorm as two Stateless modules (kept apart so BN can be folded for deployment)."""
    pad = kernel // 2 if padding is None else padding
    return [Stateless(nn.Conv2d(c_in, c_out, kernel, stride, pad, bias=bias)), Stateless(nn.BatchNorm2d(c_out))]


def set_step_mode(module: nn.Module, mode: str) -> None:
    if mode not in (MULTI, SINGLE):
        raise ValueError(f"step mode must be {MULTI!r} or {SINGLE!r}, got {mode!r}")
    for m in module.modules():
        if isinstance(m, ModeMixin):
            m.step_mode = mode


def neurons(module: nn.Module) -> list[Neuron]:
    return [m for m in module.modules() if isinstance(m, Neuron)]
