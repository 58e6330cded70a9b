"""The training losses: cross-entropy of the time-averaged output, TET, and the L1 penalty on spikes."""
from __future__ import annotations

import torch
import torch.nn.functional as F

TET_LAMBDA, TET_PHI = 0.05, 1.0  # TET's regulariser weight and target (Deng et al. 2022)


def ce_loss(logits_seq: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the output averaged over time."""
    return F.cross_entropy(logits_seq.mean(0), y)


def tet_loss(logits_seq: torch.Tensor, y: torch.Tensor, lam: float = TET_LAMBDA, phi: float = TET_PHI) -> torch.Tensor:
    """TET: (1 - lam) * mean_t CE(O_t, y) + lam * MSE(O, phi)."""
    t = logits_seq.shape[0]
    per_step = F.cross_entropy(logits_seq.flatten(0, 1), y.repeat(t))
    return (1 - lam) * per_step + lam * F.mse_loss(logits_seq, torch.full_like(logits_seq, phi))


LOSSES = {"ce": ce_loss, "tet": tet_loss}


def firing_rate(spikes: list[torch.Tensor]) -> torch.Tensor:
    """Spikes per neuron and step over every population's output (the spike function's
    surrogate gradient carries the penalty back): the L1 norm of the spikes over their count."""
    return sum(z.sum() for z in spikes) / sum(z.numel() for z in spikes)
