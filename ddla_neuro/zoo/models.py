"""The model zoo. Each builder returns the body of a SpikingNetwork: spiking layers ending in a
non-spiking linear readout that gives logits at every timestep."""
from __future__ import annotations

import torch
from torch import nn

from ..snn.functional import NeuronParameters, if_parameters, lif_box_parameters, lif_parameters
from ..snn.layers import NetworkState, Neuron, Residual, Sequential, Stateless, Transmit, conv_bn

NEURONS = ("if", "lif")


def neuron_params(kind: str, reset: str = "zero", v_th: float = 1.0, decay: float = 0.5,
                  style: str = "tet") -> NeuronParameters:
    """'if', or 'lif' in the TET form (decay factor) or the SpikingJelly box form (tau = 1/(1-decay))."""
    if kind == "if":
        return if_parameters(v_th=v_th, reset=reset)
    if kind == "lif":
        if style == "box":
            return lif_box_parameters(tau=1.0 / (1.0 - decay), v_th=v_th, reset=reset, detach_reset=True)
        return lif_parameters(decay=decay, v_th=v_th, reset=reset)
    raise ValueError(f"unknown neuron {kind!r}; choose one of {NEURONS}")


def _flat_size(c: int, h: int, w: int) -> int:
    return c * h * w


def mlp(*, num_classes: int, input_shape: tuple[int, ...], neuron: str = "if", reset: str = "zero",
        v_th: float = 1.0, hidden: tuple[int, ...] | list[int] = (128,)) -> nn.Module:
    """Flatten -> [Linear + BN -> neuron] per hidden layer -> Linear readout."""
    p = neuron_params(neuron, reset, v_th)
    layers: list[nn.Module] = [Stateless(nn.Flatten())]
    n_in = int(torch.tensor(input_shape).prod())
    for n in hidden:
        layers += [Stateless(nn.Linear(n_in, n, bias=False)), Stateless(nn.BatchNorm1d(n)), Neuron(p)]
        n_in = n
    layers.append(Stateless(nn.Linear(n_in, num_classes)))
    return Sequential(*layers)


def _conv_stack(cfg, c_in: int, h: int, w: int, p: NeuronParameters) -> tuple[list[nn.Module], int, int, int]:
    """cfg entries: an int (conv3x3 + BN -> neuron with that many channels) or 'A' (2x2 average pool)."""
    layers: list[nn.Module] = []
    for item in cfg:
        if item == "A":
            layers.append(Stateless(nn.AvgPool2d(2)))
            h, w = h // 2, w // 2
        else:
            layers += conv_bn(c_in, int(item)) + [Neuron(p)]
            c_in = int(item)
    return layers, c_in, h, w


def convnet(*, num_classes: int, input_shape: tuple[int, ...], neuron: str = "if", reset: str = "zero",
            v_th: float = 1.0, channels: tuple[int, ...] | list[int] = (16, 32)) -> nn.Module:
    """Small convnet for 8x8 digits and 28x28 MNIST: [conv3x3 + BN -> neuron -> avgpool2] per entry."""
    p = neuron_params(neuron, reset, v_th)
    c, h, w = input_shape
    cfg = [x for ch in channels for x in (ch, "A")]
    layers, c, h, w = _conv_stack(cfg, c, h, w, p)
    layers += [Stateless(nn.Flatten()), Stateless(nn.Linear(_flat_size(c, h, w), num_classes))]
    return Sequential(*layers)


def vgg(*, num_classes: int, input_shape: tuple[int, ...], neuron: str = "if", reset: str = "zero",
        v_th: float = 1.0, cfg: tuple | list = (64, "A", 128, "A", 256, 256, "A")) -> nn.Module:
    """Small VGG-style network: conv blocks with average pooling, then a linear readout."""
    p = neuron_params(neuron, reset, v_th)
    c, h, w = input_shape
    layers, c, h, w = _conv_stack(cfg, c, h, w, p)
    layers += [Stateless(nn.Flatten()), Stateless(nn.Linear(_flat_size(c, h, w), num_classes))]
    return Sequential(*layers)


def _basic_block(c_in: int, c_out: int, stride: int, p: NeuronParameters) -> list[nn.Module]:
    main = Sequential(*conv_bn(c_in, c_out, 3, stride), Neuron(p), *conv_bn(c_out, c_out, 3, 1))
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = Sequential(*conv_bn(c_in, c_out, 1, stride, padding=0))
    return [Residual(main, shortcut), Neuron(p)]


def resnet19(*, num_classes: int, input_shape: tuple[int, ...], neuron: str = "lif", reset: str = "zero",
             v_th: float = 1.0, width: int = 64) -> nn.Module:
    """ResNet-19 as in the TET code (Deng et al. 2022): stem, 3+3+2 basic blocks of 2w/4w/8w
    channels (w = 64), global average pool, FC 8w -> 4w -> neuron -> classes.
    The sum of a block happens before its neuron (a membrane shortcut on the spikes)."""
    p = neuron_params(neuron, reset, v_th, decay=0.5)
    c = input_shape[0]
    layers: list[nn.Module] = [*conv_bn(c, width), Neuron(p)]
    c_in = width
    for c_out, blocks, stride in ((2 * width, 3, 1), (4 * width, 3, 2), (8 * width, 2, 2)):
        for i in range(blocks):
            layers += _basic_block(c_in, c_out, stride if i == 0 else 1, p)
            c_in = c_out
    layers += [Stateless(nn.AdaptiveAvgPool2d(1)), Stateless(nn.Flatten()),
               Stateless(nn.Linear(c_in, c_in // 2)), Neuron(p), Stateless(nn.Linear(c_in // 2, num_classes))]
    return Sequential(*layers)


class SpikeDrivenSelfAttention(nn.Module):
    """SDSA of the Spike-driven Transformer: Q, K, V spike maps from conv1x1 + BN -> LIF;
    kv = sum over tokens of K * V, passed through a LIF of threshold 0.5; out = conv1x1 + BN of Q * kv.
    All products are element-wise per channel, so splitting into heads does not change the result.
    Tensors end in (C, H, W) in both step modes; the token sum runs over the last two axes."""

    def __init__(self, dim: int, p: NeuronParameters, p_kv: NeuronParameters):
        super().__init__()
        self.q = Sequential(*conv_bn(dim, dim, 1, padding=0), Neuron(p))
        self.k = Sequential(*conv_bn(dim, dim, 1, padding=0), Neuron(p))
        self.v = Sequential(*conv_bn(dim, dim, 1, padding=0), Neuron(p))
        self.kv_neuron = Neuron(p_kv)
        self.proj = Sequential(*conv_bn(dim, dim, 1, padding=0, bias=True))

    def forward(self, s: torch.Tensor, state: NetworkState | None = None, transmit: Transmit | None = None
                ) -> tuple[torch.Tensor, NetworkState | None]:
        q, state = self.q(s, state, transmit)
        k, state = self.k(s, state, transmit)
        v, state = self.v(s, state, transmit)
        kv, state = self.kv_neuron((k * v).sum(dim=(-2, -1), keepdim=True), state, transmit)
        return self.proj(q * kv, state, transmit)


def sdt(*, num_classes: int, input_shape: tuple[int, ...], neuron: str = "lif", reset: str = "zero",
        v_th: float = 1.0, dim: int = 256, depth: int = 2, mlp_ratio: int = 4) -> nn.Module:
    """Spike-driven Transformer-2-256 (Yao et al. 2023) for 32x32 input: spiking patch splitting
    (4 conv stages, max-pool after the 3rd and 4th, relative position embedding with a membrane
    shortcut), `depth` blocks of SDSA + MLP with membrane shortcuts, token mean -> LIF -> linear."""
    p = neuron_params(neuron, reset, v_th, decay=0.5, style="box")
    p_kv = neuron_params(neuron, reset, 0.5, decay=0.5, style="box")
    c = input_shape[0]
    d8, d4, d2 = dim // 8, dim // 4, dim // 2
    pool = lambda: Stateless(nn.MaxPool2d(3, 2, 1))  # noqa: E731
    layers: list[nn.Module] = [
        *conv_bn(c, d8), Neuron(p), *conv_bn(d8, d4), Neuron(p), *conv_bn(d4, d2), Neuron(p), pool(),
        *conv_bn(d2, dim), pool(),
        Residual(Sequential(Neuron(p), *conv_bn(dim, dim))),
    ]
    hidden = dim * mlp_ratio
    for _ in range(depth):
        layers.append(Residual(Sequential(Neuron(p), SpikeDrivenSelfAttention(dim, p, p_kv))))
        layers.append(Residual(Sequential(Neuron(p), *conv_bn(dim, hidden, 1, padding=0), Neuron(p),
                                          *conv_bn(hidden, dim, 1, padding=0))))
    layers += [Stateless(nn.AdaptiveAvgPool2d(1)), Stateless(nn.Flatten()), Neuron(p),
               Stateless(nn.Linear(dim, num_classes))]
    return Sequential(*layers)
