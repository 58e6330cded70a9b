"""The DDLA approximation of one spiking layer at one step, as pure functions.

From a sample's second step on the layer sends only the pending changes its selection chose
(`selection.py`); the receivers hold their previous value everywhere else, so a held-back change
is not lost (it stays pending, in the next step's delta) and no error accumulates. The first step
is sent whole.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .keep import Keep
from .tdd import delta


@dataclass
class ApproxStep:
    transmitted: torch.Tensor  # F': what the receivers hold after this step
    delta: torch.Tensor        # the whole delta s_t - held
    sent: torch.Tensor         # the deltas actually sent (zero where held back)
    sensitivity_loss: torch.Tensor  # MSE(F', F)

    @property
    def dropped(self) -> torch.Tensor:
        """bool: the non-zero deltas that were not sent."""
        return self.delta != self.sent


def ddla_step(s_t: torch.Tensor, held: torch.Tensor | None, send: torch.Tensor | None) -> ApproxStep:
    """One layer, one step. `held` is the receivers' value after t-1 (None at t = 1: everything is
    sent), `send` (bool, or 0/1 in s_t's dtype) where the selection sends the pending change (None:
    everywhere). The gradient to the delta passes where it was sent."""
    d = delta(s_t, held)
    if held is None or send is None:
        # everything sent: the receivers hold exactly s_t (no float round trip through held + d)
        return ApproxStep(s_t, d, d, s_t.new_zeros(()))
    # a product, not where(): where's output takes the mask's memory format, and mixed formats
    # (a channels-last network, contiguous masks) cost several times more per element
    sent = d * (send if send.dtype == d.dtype else send.to(d.dtype))
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
