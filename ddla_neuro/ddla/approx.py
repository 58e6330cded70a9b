"""The DDLA approximation of one spiking layer at one step, as pure functions.

From a sample's second step on the layer sends only the pending changes its selection chose
(`selection.py`); the receivers hold their previous value everywhere else, so a held-back change
is not lost (it stays pending, in the next step's delta) and no error accumulates. The first step
is sent whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from collections.abc import Callable

import torch

from .keep import Keep
from .tdd import delta


@dataclass
class ApproxStep:
    transmitted: torch.Tensor  # F': what the receivers hold after this step
    spikes: torch.Tensor       # F: the layer's output s_t
    held: torch.Tensor | None  # what the receivers held after t-1 (None at t = 1)
    send: torch.Tensor | None  # where the change was sent (1.0/0.0; None: everywhere)
    sensitivity_loss: torch.Tensor  # MSE(F', F)

    @cached_property
    def delta(self) -> torch.Tensor:
        """The whole delta s_t - held (detached; computed once, where counts read it)."""
        return delta(self.spikes.detach(), None if self.held is None else self.held.detach())

    @property
    def sent(self) -> torch.Tensor:
        """The deltas actually sent (zero where held back; detached)."""
        return self.delta if self.send is None else self.delta * self.send


def ddla_step(s_t: torch.Tensor, held: torch.Tensor | None, send: torch.Tensor | None,
              on_grad: Callable[[torch.Tensor], None] | None = None) -> ApproxStep:
    """One layer, one step. `held` is the receivers' value after t-1 (None at t = 1: everything is
    sent), `send` (bool, or 1.0/0.0 in s_t's type) where the selection sends the pending change
    (None: everywhere). The gradient to the delta passes where it was sent; to what was held where
    it was not. `on_grad` (optional) is called with the gradient that reaches what the receivers
    hold."""
    if held is None or send is None:
        # everything sent: the receivers hold exactly s_t (no float round trip through held + d)
        return ApproxStep(s_t, s_t, held, None, s_t.new_zeros(()))
    m = send.to(s_t.dtype)
    transmitted, loss = _Send.apply(s_t, held, m, on_grad)
    return ApproxStep(transmitted, s_t, held, m, loss)


class _Send(torch.autograd.Function):
    """A filtering layer's step as one autograd node (a node per op of the send, the held value
    and the MSE costs more than their arithmetic on small layers): T = held + m (s - held) with m
    the send mask, and MSE(T, s) = mean(r^2) with r = s - T = (1 - m)(s - held), the change held
    back. Backward: dT/ds = m, dT/dheld = 1 - m, dMSE/ds = 2r/n, dMSE/dheld = -2r/n."""

    @staticmethod
    def forward(ctx, s: torch.Tensor, held: torch.Tensor, m: torch.Tensor,
                on_grad: Callable[[torch.Tensor], None] | None):
        transmitted = torch.lerp(held, s, m)  # exactly held where m is 0, s where it is 1
        r = s - transmitted
        ctx.save_for_backward(m, r)
        ctx.on_grad = on_grad
        return transmitted, (r * r).sum() / r.numel()

    @staticmethod
    def backward(ctx, grad_t: torch.Tensor, grad_loss: torch.Tensor):
        m, r = ctx.saved_tensors
        if ctx.on_grad is not None:
            ctx.on_grad(grad_t)
        grad_s = torch.mul(grad_t, m).addcmul_(r, 2 * grad_loss / r.numel())  # m g + 2r/n
        return grad_s, grad_t - grad_s, None, None  # (1 - m) g - 2r/n: r is 0 where m is 1


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
