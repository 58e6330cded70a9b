"""Folding BatchNorm into the preceding conv/linear layer (exact in eval mode) for deployment."""
from __future__ import annotations

import copy

import torch
from torch import nn

from .layers import Stateless


def fold_bn(layer: nn.Conv2d | nn.Linear, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> nn.Module:
    """Returns a copy of `layer` with bias that computes `bn(layer(x))` with BN's running statistics."""
    folded = copy.deepcopy(layer)
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    shape = (-1,) + (1,) * (layer.weight.dim() - 1)
    bias = layer.bias.detach() if layer.bias is not None else torch.zeros_like(bn.running_mean)
    folded.weight = nn.Parameter(layer.weight.detach() * scale.reshape(shape))
    folded.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias.detach())
    return folded


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """A copy of `module` in which every Stateless(conv|linear) followed by Stateless(BN) in a
    sequential container is replaced by the folded layer (the BN becomes Identity)."""
    module = copy.deepcopy(module).eval()
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        items = list(seq)
        for i in range(len(items) - 1):
            a, b = items[i], items[i + 1]
            if (isinstance(a, Stateless) and isinstance(a.layer, (nn.Conv2d, nn.Linear))
                    and isinstance(b, Stateless) and isinstance(b.layer, nn.modules.batchnorm._BatchNorm)):
                a.layer = fold_bn(a.layer, b.layer)
                b.layer = nn.Identity()
    return module
