"""Small networks for the deployment tests, with dyadic weights (multiples of 1/64) and an
identity BatchNorm, so float32 torch, float64 numpy and float64 Lava sums are all exact."""
from __future__ import annotations

import nir
import numpy as np
import torch
from torch import nn

from ddla_neuro.deploy.ir import network_to_nir, nir_to_spec
from ddla_neuro.snn.functional import if_parameters, lif_parameters
from ddla_neuro.snn.layers import Neuron, Residual, Sequential, Stateless, conv_bn
from ddla_neuro.snn.network import SpikingNetwork
from ddla_neuro.ddla.selection import DEFAULT_RULE, Selection
from ddla_neuro.deploy.spec import NEURON_KINDS, NetSpec
from ddla_neuro.zoo import build_model


def dyadic_(net: nn.Module, seed: int, scale: float = 1.0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.fill_(1.0)
                m.bias.copy_(torch.round(torch.randn(m.bias.shape, generator=g) * 8) / 64)
                m.running_mean.zero_()
                m.running_var.fill_(1.0 - m.eps)  # var + eps == 1: the fold multiplies by exactly 1
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                normal = torch.randn(m.weight.shape, generator=g)
                m.weight.copy_(torch.round(normal * 64 * scale / m.weight[0].numel() ** 0.5) / 64)
                if m.bias is not None:
                    m.bias.copy_(torch.round(torch.randn(m.bias.shape, generator=g) * 8) / 64)
    return net.eval()


def mlp(seed: int = 0, timesteps: int = 4) -> SpikingNetwork:
    torch.manual_seed(seed)
    return dyadic_(build_model("mlp", num_classes=5, input_shape=(1, 4, 4), timesteps=timesteps, hidden=[12, 10]),
                   seed, 3.0)


def convnet(seed: int = 0, timesteps: int = 4, neuron: str = "if") -> SpikingNetwork:
    torch.manual_seed(seed)
    net = build_model("convnet", num_classes=4, input_shape=(1, 8, 8), timesteps=timesteps, channels=[4, 6],
                      neuron=neuron)
    return dyadic_(net, seed, 3.0)


def residual(seed: int = 0, timesteps: int = 4) -> SpikingNetwork:
    """conv -> IF -> [conv(stride 2) -> LIF -> conv] + conv1x1(stride 2) shortcut -> LIF
    -> [conv -> LIF -> conv] + identity -> LIF -> flatten -> linear."""
    p, q = if_parameters(), lif_parameters(decay=0.5, reset="subtract")
    torch.manual_seed(seed)
    body = Sequential(
        *conv_bn(1, 4), Neuron(p),
        Residual(Sequential(*conv_bn(4, 6, 3, 2), Neuron(q), *conv_bn(6, 6)), Sequential(*conv_bn(4, 6, 1, 2, 0))),
        Neuron(q),
        Residual(Sequential(*conv_bn(6, 6), Neuron(q), *conv_bn(6, 6))),
        Neuron(p),
        Stateless(nn.Flatten()), Stateless(nn.Linear(6 * 4 * 4, 3)),
    )
    net = SpikingNetwork(body, timesteps=timesteps, encoding="direct",
                         arch={"name": "residual-test", "input_shape": [1, 8, 8]})
    return dyadic_(net, seed, 3.0)


def sdt(seed: int = 0, timesteps: int = 4) -> SpikingNetwork:
    """A small Spike-driven Transformer (dim 8, one block, 16x16 input: 4x4 tokens): max pools,
    membrane shortcuts and the two attention products."""
    torch.manual_seed(seed)
    net = build_model("sdt", num_classes=3, input_shape=(3, 16, 16), timesteps=timesteps, dim=8, depth=1)
    return dyadic_(net, seed, 3.0)


LAVA_NETWORKS = {"mlp": mlp, "convnet": convnet, "residual": residual}
NETWORKS = {**LAVA_NETWORKS, "sdt": sdt}  # Lava refuses the SDT's max pools and products


def flat_nir_graph() -> nir.NIRGraph:
    """A NIR MLP with a flat (64,) input for 8x8 digits, random weights, IF neurons: a graph as
    another library's exporter writes one, trained by nobody."""
    rng = np.random.default_rng(0)
    return nir.NIRGraph(nodes={"input": nir.Input({"input": np.array([64])}),
                               "fc1": nir.Affine(weight=rng.normal(0, 0.3, (32, 64)), bias=np.zeros(32)),
                               "lif": nir.IF(r=np.ones(32), v_threshold=np.ones(32), v_reset=np.zeros(32)),
                               "fc2": nir.Affine(weight=rng.normal(0, 0.5, (10, 32)), bias=np.zeros(10)),
                               "output": nir.Output({"output": np.array([10])})},
                        edges=[("input", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "output")],
                        metadata={"timesteps": 4}, type_check=False)


def spec_of(net: SpikingNetwork) -> NetSpec:
    return nir_to_spec(network_to_nir(net))


def inputs(net: SpikingNetwork, n: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Raw inputs (n, *shape), quantized to 1/256 so the fixed-point input is exact, and their frames (n, T, ...)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.round(torch.rand(n, *net.arch["input_shape"], generator=g) * 2 * 256) / 256
    return x, net.encode(x).transpose(0, 1).numpy()


def random_scores(spec: NetSpec, seed: int = 0) -> NetSpec:
    """DDLA scores with ties (quantized), so tie-breaking is exercised."""
    rng = np.random.default_rng(seed)
    spec.scores = {p.name: (rng.integers(0, 4, p.shape) / 4).astype(np.float32) for p in spec.spiking}
    return spec


SELECTIONS = ("patience", "integral", "uniform", "topk")  # every DDLA rule, for the tests that run them all


def selection(spec: NetSpec, rule: str = DEFAULT_RULE, keep: float = 0.5, threshold: int = 24) -> Selection:
    """A DDLA selection for tests: top-k at `keep`, or a neuron-local rule with every spiking
    population at `threshold` (a neuron of its layer's mean sensitivity waits a step before it
    sends); k = 1 filters nothing."""
    if rule == "topk" or keep >= 1.0:
        return Selection(rule, keep)
    return Selection(rule, keep, {p.name: threshold for p in spec.populations if p.kind in NEURON_KINDS})
