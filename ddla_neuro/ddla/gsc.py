"""Gradient Sensitivity Criterion (Definition 2).

`zeta_i = |dL/dO_i * O_i|`: the first-order Taylor estimate of how much the loss changes
when feature i is zeroed. In the delta domain the feature is the delta entry. The selections
that rank or weigh by it are in `selection.py`.
"""
from __future__ import annotations

import torch


def sensitivity(loss: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """zeta = |dL/dO * O| for each tensor in `outputs` (autograd; the graph is kept)."""
    grads = torch.autograd.grad(loss, outputs, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(o) if g is None else (g * o).abs() for g, o in zip(grads, outputs)]


def gsc_scores(grad: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """zeta from a gradient already at hand: |grad * values| (broadcasting a per-neuron gradient)."""
    return (grad * values).abs()
