"""The DDLA approximation of one spiking layer at one step, as pure functions.

From a sample's second step on the layer sends only the pending changes its selection chose
(`selection.py`); the receivers hold their previous value everywhere else, so a held-back change
is not lost (it stays pending, in the next step's delta) and no error accumulates. The first step
is sent whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable

import torch

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


def ddla_step(s_t: torch.Tensor, held: torch.Tensor | None, send: torch.Tensor | None,
              on_grad: Callable[[torch.Tensor], None] | None = None) -> ApproxStep:
    """One layer, one step. `held` is the receivers' value after t-1 (None at t = 1: everything is
    sent), `send` (bool) where the selection sends the pending change (None: everywhere). The
    gradient to the delta passes where it was sent; to what was held where it was not.
    `on_grad` (optional) is called with the gradient that reaches what the receivers hold."""
    if held is None or send is None:
        # everything sent: the receivers hold exactly s_t (no float round trip through held + d)
        return ApproxStep(s_t, delta(s_t, held), delta(s_t, held), s_t.new_zeros(()))
    transmitted, loss, d, sent = _Send.apply(s_t, held, send, on_grad)
    return ApproxStep(transmitted, d, sent, loss)


class _Send(torch.autograd.Function):
    """A filtering layer's step as one autograd node (a node per op of the delta, the send, the
    held value and the MSE costs more than their arithmetic on small layers): T = held + m d with
    d = s - held and m the send mask, and MSE(T, s) = mean(e^2) with e = T - s = -(1 - m) d.
    Backward: dT/ds = m, dT/dheld = 1 - m, dMSE/ds = -2e/n, dMSE/dheld = 2e/n."""

    @staticmethod
    def forward(ctx, s: torch.Tensor, held: torch.Tensor, send: torch.Tensor,
                on_grad: Callable[[torch.Tensor], None] | None):
        d = s - held
        m = send.to(s.dtype)
        sent = d * m
        transmitted = held + sent
        e = sent - d
        ctx.save_for_backward(m, e)
        ctx.on_grad = on_grad
        ctx.mark_non_differentiable(d, sent)
        return transmitted, (e * e).sum() / e.numel(), d, sent

    @staticmethod
    def backward(ctx, grad_t: torch.Tensor, grad_loss: torch.Tensor, _d, _sent):
        m, e = ctx.saved_tensors
        if ctx.on_grad is not None:
            ctx.on_grad(grad_t)
        through = grad_t * m
        pull = e * (2 * grad_loss / e.numel())
        return through - pull, grad_t - through + pull, None, None


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
