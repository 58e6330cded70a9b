"""Gradient Sensitivity Criterion (Definition 2) and top-k selection.

`zeta_i = |dL/dO_i * O_i|`: the first-order Taylor estimate of how much the loss changes
when feature i is zeroed. In the delta domain the feature is the delta entry.
"""
from __future__ import annotations

import torch

KEEP_SCALE = 1_000_000  # k is handled in millionths so that ceil(k * n) is exact integer arithmetic


def sensitivity(loss: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """zeta = |dL/dO * O| for each tensor in `outputs` (autograd; the graph is kept)."""
    grads = torch.autograd.grad(loss, outputs, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(o) if g is None else (g * o).abs() for g, o in zip(grads, outputs)]


def gsc_scores(grad: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """zeta from a gradient already at hand: |grad * values| (broadcasting a per-neuron gradient)."""
    return (grad * values).abs()


def keep_count(n: torch.Tensor, keep: float) -> torch.Tensor:
    """ceil(keep * n), exactly, for integer tensors n."""
    k = round(keep * KEEP_SCALE)
    return (n * k + KEEP_SCALE - 1) // KEEP_SCALE


def topk_mask(scores: torch.Tensor, candidates: torch.Tensor, keep: float) -> torch.Tensor:
    """Per sample (axis 0), keep the ceil(keep * n) highest-scoring of its n candidate entries
    (keep has a resolution of 1e-6).

    Ties go to the lower flat index (a stable sort), so the choice is deterministic.
    Returns a bool mask of the shape of `scores`.
    """
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep ratio must lie in [0, 1], got {keep}")
    b = scores.shape[0]
    flat_scores, flat_cand = scores.reshape(b, -1), candidates.reshape(b, -1)
    if keep == 1.0:
        return candidates.clone()
    ranked = torch.where(flat_cand, flat_scores.float(), torch.full_like(flat_scores, -1.0, dtype=torch.float))
    order = torch.sort(ranked, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    limit = keep_count(flat_cand.sum(1), keep)
    return ((rank < limit[:, None]) & flat_cand).reshape(scores.shape)
