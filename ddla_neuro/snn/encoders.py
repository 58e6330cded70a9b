"""Input encoders: (B, ...) images or (B, T, ...) event frames -> (T, B, ...) sequences."""
from __future__ import annotations

import torch

ENCODINGS = ("direct", "poisson", "events", "if-rate")


def direct(x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """The analog input every step (its temporal delta is zero after step 1)."""
    return x.unsqueeze(0).expand(timesteps, *x.shape)


def poisson(x: torch.Tensor, timesteps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Rate coding: a spike with probability clamp(x, 0, 1) at every step, independently."""
    p = x.clamp(0.0, 1.0).unsqueeze(0).expand(timesteps, *x.shape)
    return torch.bernoulli(p, generator=generator)


def if_rate(x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Deterministic rate coding by an integrate-and-fire neuron per input, the input layer of
    lava-dl's MNIST netx tutorial: v += x; a spike when v > 1, then v = 0. A pixel of 1 spikes
    every second step."""
    v, out = torch.zeros_like(x), []
    for _ in range(timesteps):
        v = v + x
        spikes = v > 1.0
        v = torch.where(spikes, torch.zeros_like(v), v)
        out.append(spikes.to(x.dtype))
    return torch.stack(out)


def events(x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Event frames (B, T, ...) pass through, time first."""
    if x.shape[1] != timesteps:
        raise ValueError(f"event input has {x.shape[1]} frames, the model runs {timesteps} timesteps")
    return x.transpose(0, 1)


def encode(x: torch.Tensor, kind: str, timesteps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    if kind == "direct":
        return direct(x, timesteps)
    if kind == "poisson":
        return poisson(x, timesteps, generator)
    if kind == "events":
        return events(x, timesteps)
    if kind == "if-rate":
        return if_rate(x, timesteps)
    raise ValueError(f"unknown encoding {kind!r}; choose one of {ENCODINGS}")
