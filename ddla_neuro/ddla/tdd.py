"""Temporal Differential Decoupling: pure functions on spike sequences (time on axis 0).

A layer's output at step t splits into the static part (what the receiver already holds,
`r^{t-1}`) and the dynamic part, the delta `d^t = s^t - r^{t-1}`. With every delta sent,
`r = s` and the receiver reconstructs `s^t` as the running sum of the deltas; for a linear
synaptic map f, `f(s^t) = f(s^{t-1}) + f(d^t)`.
"""
from __future__ import annotations

import torch


def delta(s_t: torch.Tensor, held: torch.Tensor | None) -> torch.Tensor:
    """The dynamic feature `s^t - r^{t-1}`; at t = 1 (nothing held) the whole output."""
    return s_t if held is None else s_t - held


def deltas(seq: torch.Tensor) -> torch.Tensor:
    """Lossless deltas of a whole sequence (T, ...): d^1 = s^1, d^t = s^t - s^{t-1}."""
    return torch.cat([seq[:1], seq[1:] - seq[:-1]])


def reconstruct(delta_seq: torch.Tensor) -> torch.Tensor:
    """What the receiver holds at every step: the running sum of the deltas."""
    return delta_seq.cumsum(0)


def static_dynamic(seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(static, dynamic) parts of every step: s^{t-1} (zero at t = 1) and d^t; they sum to s^t."""
    static = torch.cat([torch.zeros_like(seq[:1]), seq[:-1]])
    return static, seq - static


def xor_changes(seq: torch.Tensor) -> torch.Tensor:
    """Definition 1's `O^t XOR O^{t-1}` for binary maps, as a bool tensor (T-1, ...): where they differ."""
    return seq[1:] != seq[:-1]


def overlap_ratio(seq: torch.Tensor) -> torch.Tensor:
    """Per step t >= 2, the share of positions where O^t equals O^{t-1} (1 = complete overlap)."""
    changes = xor_changes(seq)
    return 1.0 - changes.reshape(changes.shape[0], -1).float().mean(1)


def static_share(seq: torch.Tensor) -> torch.Tensor:
    """Per step t >= 2, the share of this step's spikes that were already present at t-1."""
    s = seq.reshape(seq.shape[0], -1) != 0
    kept = (s[1:] & s[:-1]).sum(1).float()
    return kept / s[1:].sum(1).clamp(min=1).float()


def event_count(x: torch.Tensor) -> torch.Tensor:
    """Events a tensor carries: its non-zero entries (a -1 delta is one event, like a +1)."""
    return (x != 0).sum()
