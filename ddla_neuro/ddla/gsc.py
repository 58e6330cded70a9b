"""Gradient Sensitivity Criterion (Definition 2) and top-k selection.

`zeta_i = |dL/dO_i * O_i|`: the first-order Taylor estimate of how much the loss changes
when feature i is zeroed. In the delta domain the feature is the delta entry.
"""
from __future__ import annotations

import torch

from .transmission import keep_count


def sensitivity(loss: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """zeta = |dL/dO * O| for each tensor in `outputs` (autograd; the graph is kept)."""
    grads = torch.autograd.grad(loss, outputs, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(o) if g is None else (g * o).abs() for g, o in zip(grads, outputs)]


def gsc_scores(grad: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """zeta from a gradient already at hand: |grad * values| (broadcasting a per-neuron gradient)."""
    return (grad * values).abs()


def topk_mask(scores: torch.Tensor, candidates: torch.Tensor, keep: float) -> torch.Tensor:
    """Per sample (axis 0), keep the ceil(keep * n) highest-scoring of its n candidate entries
    (keep has a resolution of 1e-6).

    Ties go to the lower flat index, so the choice is deterministic: the limit-th largest score
    is found with `topk` (its values are exact whatever order it returns ties in), everything
    above it is kept, and the entries equal to it are taken in index order.
    Returns a bool mask of the shape of `scores`.
    """
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep ratio must lie in [0, 1], got {keep}")
    if keep == 1.0:
        return candidates.clone()
    b = scores.shape[0]
    flat_scores, flat_cand = scores.reshape(b, -1), candidates.reshape(b, -1)
    limit = keep_count(torch.count_nonzero(flat_cand, dim=1), keep)
    k_max = int(limit.max()) if b else 0
    if k_max == 0:
        return torch.zeros_like(candidates)
    ranked = torch.where(flat_cand, flat_scores.float(), torch.full_like(flat_scores, -1.0, dtype=torch.float))
    top = torch.topk(ranked, k_max, dim=1).values
    threshold = top.gather(1, (limit - 1).clamp(min=0)[:, None])
    above = (ranked > threshold) & flat_cand
    tied = (ranked == threshold) & flat_cand
    room = limit[:, None] - torch.count_nonzero(above, dim=1)[:, None]
    if bool((torch.count_nonzero(tied, dim=1)[:, None] > room).any()):  # more ties than room: lowest indices
        tied &= tied.cumsum(1) <= room
    mask = (above | tied) & (limit[:, None] > 0)
    return mask.reshape(scores.shape)


def priority_order(priority: torch.Tensor) -> torch.Tensor:
    """The flat entry indices of a per-entry priority, highest first, equal priorities in index
    order (the tie rule of `topk_mask`)."""
    return torch.argsort(priority.reshape(-1), descending=True, stable=True)


def priority_mask(order: torch.Tensor, candidates: torch.Tensor, keep: float) -> torch.Tensor:
    """`topk_mask(priority * |delta|, candidates, keep)` for deltas of magnitude 1 (binary spikes),
    where the scores of the candidates are the priorities themselves: per sample, the first
    ceil(keep * n) candidates in `order` (`priority_order(priority)`). A gather into priority
    order, a running count and a gather back instead of a top-k: O(n)."""
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep ratio must lie in [0, 1], got {keep}")
    b = candidates.shape[0]
    flat = candidates.reshape(b, -1)
    limit = keep_count(torch.count_nonzero(flat, dim=1), keep)
    ranked = flat.index_select(1, order)
    kept = ranked & (ranked.cumsum(1) <= limit[:, None])
    back = torch.empty_like(order).scatter_(0, order, torch.arange(len(order), device=order.device))
    return kept.index_select(1, back).reshape(candidates.shape)
