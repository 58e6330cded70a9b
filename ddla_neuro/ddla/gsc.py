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


class Priority:
    """A fixed per-entry priority of one sample's entries (`shape`), highest first, equal
    priorities in index order (the tie rule of `topk_mask`). `in_layout` gives the entries'
    order (flat indices, highest first) and rank (each one's position in that order) for the
    entries flattened in a given order of the dimensions (a channels-last tensor's memory
    order), so that a selection runs on a view of the tensor instead of a copy."""

    def __init__(self, priority: torch.Tensor):
        self.shape = tuple(priority.shape)
        order = torch.argsort(priority.reshape(-1), descending=True, stable=True)
        self._identity = tuple(range(len(self.shape)))
        self._layouts = {self._identity: (order, _inverse(order))}
        self._ranks: dict[tuple, torch.Tensor] = {}

    def in_layout(self, dims: tuple[int, ...] | None = None, dtype: torch.dtype = torch.int64
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """(order, rank as `dtype`) of the entries flattened in the dimension order `dims` (None:
        as they are); each computed once."""
        dims = self._identity if dims is None else dims
        if dims not in self._layouts:
            rank = self._layouts[self._identity][1].reshape(self.shape).permute(dims).reshape(-1)
            self._layouts[dims] = (_inverse(rank), rank)
        order, rank = self._layouts[dims]
        if dtype != rank.dtype:
            rank = self._ranks.setdefault((dims, dtype), rank.to(dtype))
        return order, rank


def _inverse(permutation: torch.Tensor) -> torch.Tensor:
    positions = torch.arange(len(permutation), device=permutation.device)
    return torch.empty_like(permutation).scatter_(0, permutation, positions)


def _memory_order(x: torch.Tensor) -> tuple[int, ...]:
    """The per-sample dimensions of x (axes 1..) from the largest stride to the smallest, when
    x permuted that way is contiguous (a channels-last tensor: C last); otherwise 1.. in order."""
    dims = tuple(sorted(range(1, x.dim()), key=lambda i: -x.stride(i)))
    return dims if x.permute(0, *dims).is_contiguous() else tuple(range(1, x.dim()))


def priority_cut(priority: Priority, indicator: torch.Tensor, keep: float) -> torch.Tensor:
    """`topk_mask(priority * |delta|, delta != 0, keep)` for deltas of magnitude 1 (binary spikes),
    where the scores of the candidates are the priorities themselves: per sample (axis 0), the
    first limit = ceil(keep * n) of its n candidates in priority order. `indicator` is 1 at the
    candidates and 0 elsewhere (|delta|), in a float dtype. Returns, in the same dtype and memory
    format, 1 at every entry ranked before the cut and 0 after it: times the indicator it is the
    selection. (Without gradients the deltas can take the cut directly, zero where no delta is;
    with them, take the selection, or the gradient passes at the zeros before the cut.)

    A running count of the candidates in priority order (one gather, a cumsum) gives their
    number (its last entry) and locates the first position past the limit-th candidate; the
    selection is the candidates ranked before it. The gather runs on the float tensor in its
    memory order, the count in int32 (a float cumsum takes twice as long on CPU), and the cut is
    written as floats straight from the comparison: bool and integer gathers and mixed memory
    formats cost several times more per element on CPU, and this runs for every layer at every
    step."""
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep ratio must lie in [0, 1], got {keep}")
    b = indicator.shape[0]
    shaped = tuple(indicator.shape[1:]) == priority.shape  # else one sample's entries come flat
    dims = _memory_order(indicator) if shaped else tuple(range(1, indicator.dim()))
    view = indicator.detach().permute(0, *dims)  # the cut takes no gradient (nor can an int32 count)
    # ranks are integers below 2**24, exact in float32 and float64 (not in a half type)
    exact = indicator.dtype if indicator.dtype in (torch.float32, torch.float64) else torch.float32
    order, rank = priority.in_layout(tuple(d - 1 for d in dims) if shaped else None, exact)
    running = view.reshape(b, -1).index_select(1, order).cumsum(1, dtype=torch.int32)
    limit = keep_count(running[:, -1:].to(torch.int64), keep)
    # the kept candidates are those whose running count is at most the limit: all of them
    # before the first position where the count exceeds it
    reach = torch.searchsorted(running, limit.to(torch.int32), right=True)
    below = torch.lt(rank, reach, out=torch.empty(running.shape, dtype=indicator.dtype, device=running.device))
    inverse = [0] * indicator.dim()
    for i, d in enumerate(dims, start=1):
        inverse[d] = i
    return below.reshape(view.shape).permute(inverse)
