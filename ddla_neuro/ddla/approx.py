"""The DDLA approximation of one spiking layer at one step, as pure functions.

At step t >= 2 the layer sends only the top-k most sensitive entries of its delta; the
receiver holds its previous value everywhere else, so a dropped change is not lost for good
(it stays in the next step's delta) and no error accumulates. Step 1 is sent whole.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .gsc import priority_mask, topk_mask
from .tdd import delta


@dataclass
class ApproxStep:
    transmitted: torch.Tensor  # F': what the receivers hold after this step
    sent: torch.Tensor         # the deltas actually sent (zero where dropped)
    dropped: torch.Tensor      # bool: non-zero deltas that were not sent
    sensitivity_loss: torch.Tensor  # MSE(F', F)


def ddla_step(s_t: torch.Tensor, held: torch.Tensor | None, scores: torch.Tensor | None, keep: float,
              order: torch.Tensor | None = None) -> ApproxStep:
    """One layer, one step. `held` is the receivers' value after t-1 (None at t = 1), `scores`
    ranks the delta entries (GSC); `keep` is the filtering ratio k. `order` (optional): the
    entries by a fixed priority (`priority_order`) that ranks exactly as `scores` do, which holds
    for per-neuron statistics times |delta| when every delta is +-1; the selection is then the
    same, computed without a top-k."""
    d = delta(s_t, held)
    candidates = d != 0
    lossless = held is None or keep >= 1.0 or (scores is None and order is None)
    if lossless:
        mask = candidates
    elif order is not None:
        mask = priority_mask(order, candidates, keep)
    else:
        mask = topk_mask(scores, candidates, keep)
    sent = torch.where(mask, d, torch.zeros_like(d))
    # Everything sent: the receivers hold exactly s_t (no float round trip through held + d).
    transmitted = s_t if lossless else held + sent
    return ApproxStep(transmitted, sent, candidates & ~mask, F.mse_loss(transmitted, s_t))


def annealed_keep(target: float, epoch: int, warmup_epochs: int) -> float:
    """The filtering ratio of training epoch `epoch` (0-based) when k is annealed linearly from 1
    (every delta sent, the baseline's function) to `target` over the first `warmup_epochs`
    epochs; from epoch `warmup_epochs` on it is `target`. Rounded to keep's 1e-6 resolution."""
    if warmup_epochs <= 0 or epoch >= warmup_epochs:
        return target
    return round(1.0 - (1.0 - target) * epoch / warmup_epochs, 6)
