"""The DDLA approximation of one spiking layer at one step, as pure functions.

At step t >= 2 the layer sends only the top-k most sensitive entries of its delta; the
receiver holds its previous value everywhere else, so a dropped change is not lost for good
(it stays in the next step's delta) and no error accumulates. Step 1 is sent whole.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .gsc import Priority, priority_cut, topk_mask
from .keep import Keep
from .tdd import delta


@dataclass
class ApproxStep:
    transmitted: torch.Tensor  # F': what the receivers hold after this step
    delta: torch.Tensor        # the whole delta s_t - held
    sent: torch.Tensor         # the deltas actually sent (zero where dropped)
    sensitivity_loss: torch.Tensor  # MSE(F', F)

    @property
    def dropped(self) -> torch.Tensor:
        """bool: the non-zero deltas that were not sent."""
        return self.delta != self.sent


def ddla_step(s_t: torch.Tensor, held: torch.Tensor | None, scores: torch.Tensor | None, keep: float,
              order: Priority | None = None) -> ApproxStep:
    """One layer, one step. `held` is the receivers' value after t-1 (None at t = 1), `scores`
    ranks the delta entries (GSC); `keep` is the filtering ratio k. `order` (optional): the
    entries by a fixed priority (`gsc.Priority`) that ranks exactly as `scores` do, which holds
    for per-neuron statistics times |delta| when every delta is +-1; the selection is then the
    same, computed without a top-k."""
    d = delta(s_t, held)
    if held is None or keep >= 1.0 or (scores is None and order is None):
        # everything sent: the receivers hold exactly s_t (no float round trip through held + d)
        return ApproxStep(s_t, d, d, s_t.new_zeros(()))
    # a product, not where(): where's output takes the mask's memory format, and mixed formats
    # (a channels-last network, contiguous masks) cost several times more per element
    if order is not None:
        candidates = d.detach().abs()
        # the cut times the candidates: the gradient to the delta passes where a delta was sent,
        # not at the zeros ranked before the cut
        mask = candidates * priority_cut(order, candidates, keep)
    else:
        mask = topk_mask(scores, d != 0, keep)
    sent = d * mask
    transmitted = held + sent
    return ApproxStep(transmitted, d, sent, F.mse_loss(transmitted, s_t))


def annealed_keep(target: Keep, epoch: int, warmup_epochs: int) -> Keep:
    """The filtering ratio of training epoch `epoch` (0-based) when k is annealed linearly from 1
    (every delta sent, the baseline's function) to `target` over the first `warmup_epochs`
    epochs; from epoch `warmup_epochs` on it is `target`. Rounded to keep's 1e-6 resolution.
    A per-layer k anneals every layer's ratio alike."""
    if warmup_epochs <= 0 or epoch >= warmup_epochs:
        return target
    if isinstance(target, dict):
        return {layer: annealed_keep(k, epoch, warmup_epochs) for layer, k in target.items()}
    return round(1.0 - (1.0 - target) * epoch / warmup_epochs, 6)
