"""torch -> NIR: a checkpoint's network (BatchNorm folded, eval mode) as a NIR graph with dt = 1,
and from there its NetSpec (`checkpoint_to_spec`) and the frames it receives (`input_frames`).
The conventions of the graphs written here: `nir_spec.py`."""
from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import torch
from torch import nn

from ...checkpoint import Checkpoint, load_checkpoint
from ...train_config import trained_rule
from ...snn.fold import fold_batchnorm
from ...snn.layers import Neuron, Residual, Stateless
from ...snn.network import SpikingNetwork
from ...zoo.models import SpikeDrivenSelfAttention
from ..spec import NetSpec
from .nodes import IRError, MaxPool2d, Product, _np, _pair
from .nir_spec import nir_to_spec


def _layer_node(layer: nn.Module, in_shape: tuple[int, ...], where: str) -> nir.NIRNode | None:
    if isinstance(layer, (nn.Identity, nn.Dropout)):
        return None
    if isinstance(layer, nn.Conv2d):
        if layer.groups != 1 or _pair(layer.dilation).tolist() != [1, 1] or isinstance(layer.padding, str):
            raise IRError(f"{where}: grouped, dilated or string-padded Conv2d is not supported")
        bias = _np(layer.bias) if layer.bias is not None else np.zeros(layer.out_channels)
        return nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=_np(layer.weight), stride=_pair(layer.stride),
                          padding=_pair(layer.padding), dilation=_pair(1), groups=1, bias=bias)
    if isinstance(layer, nn.Linear):
        bias = _np(layer.bias) if layer.bias is not None else np.zeros(layer.out_features)
        return nir.Affine(weight=_np(layer.weight), bias=bias)
    if isinstance(layer, nn.AvgPool2d):
        if layer.ceil_mode or (layer.padding and not layer.count_include_pad):
            raise IRError(f"{where}: AvgPool2d with ceil_mode or count_include_pad=False is not supported")
        k = _pair(layer.kernel_size)
        return nir.AvgPool2d(kernel_size=k, stride=_pair(layer.stride or layer.kernel_size),
                             padding=_pair(layer.padding))
    if isinstance(layer, nn.AdaptiveAvgPool2d) and _pair(layer.output_size).tolist() == [1, 1]:
        k = np.array(in_shape[1:], dtype=np.int64)
        return nir.AvgPool2d(kernel_size=k, stride=k, padding=_pair(0))
    if isinstance(layer, nn.Flatten):
        return nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0)
    if isinstance(layer, nn.MaxPool2d):
        if layer.ceil_mode or layer.return_indices or _pair(layer.dilation).tolist() != [1, 1]:
            raise IRError(f"{where}: MaxPool2d with ceil_mode, return_indices or dilation is not supported")
        return MaxPool2d(kernel_size=_pair(layer.kernel_size), stride=_pair(layer.stride or layer.kernel_size),
                         padding=_pair(layer.padding))
    raise IRError(f"{where}: {type(layer).__name__} cannot be deployed as a delta synapse "
                  f"(only linear maps can: conv, linear, average/sum pooling, flatten; and max pooling)")


def _neuron_node(n: Neuron, shape: tuple[int, ...]) -> nir.NIRNode:
    p = n.params
    full = lambda v: np.full(shape, float(v))  # noqa: E731
    meta = {"reset": p.reset}
    if p.decay == 1.0:
        return nir.IF(r=full(p.gain), v_threshold=full(p.v_th), v_reset=full(0.0), metadata=meta)
    tau = 1.0 / (1.0 - p.decay)
    return nir.LIF(tau=full(tau), r=full(p.gain * tau), v_leak=full(0.0), v_threshold=full(p.v_th),
                   v_reset=full(0.0), metadata=meta)


class _GraphBuilder:
    """Walks the module tree in execution order; `prev` is the list of nodes whose outputs sum
    into the current module's input (more than one after a residual block)."""

    def __init__(self, input_shape: tuple[int, ...]):
        self.nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
        self.edges: list[tuple[str, str]] = []
        self.shapes: dict[str, tuple[int, ...]] = {"input": tuple(input_shape)}

    def add(self, name: str, node: nir.NIRNode, prev: list[str], shape: tuple[int, ...]) -> list[str]:
        self.nodes[name] = node
        self.edges += [(p, name) for p in prev]
        self.shapes[name] = shape
        return [name]

    def walk(self, module: nn.Module, prefix: str, prev: list[str], shape: tuple[int, ...]
             ) -> tuple[list[str], tuple[int, ...]]:
        if isinstance(module, Neuron):
            return self.add(module.key, _neuron_node(module, shape), prev, shape), shape
        if isinstance(module, Stateless):
            with torch.no_grad():
                out_shape = tuple(module.layer.eval()(torch.zeros(1, *shape)).shape[1:])
            node = _layer_node(module.layer, shape, prefix)
            return (prev, shape) if node is None else (self.add(prefix, node, prev, out_shape), out_shape)
        if isinstance(module, Residual):
            main, s1 = self.walk(module.main, f"{prefix}.main", prev, shape)
            short, s2 = self.walk(module.shortcut, f"{prefix}.shortcut", prev, shape)
            if s1 != s2:
                raise IRError(f"{prefix}: residual branches have shapes {s1} and {s2}")
            return main + short, s1
        if isinstance(module, nn.Identity):
            return prev, shape
        if isinstance(module, SpikeDrivenSelfAttention):
            return self.attention(module, prefix, prev, shape)
        if isinstance(module, nn.Sequential):
            for name, child in module.named_children():
                prev, shape = self.walk(child, f"{prefix}.{name}" if prefix else name, prev, shape)
            return prev, shape
        raise IRError(f"{prefix or 'model'}: {type(module).__name__} cannot be deployed to delta synapses "
                      f"(its arithmetic is not a linear map of the spikes)")

    def attention(self, module: SpikeDrivenSelfAttention, prefix: str, prev: list[str], shape: tuple[int, ...]
                  ) -> tuple[list[str], tuple[int, ...]]:
        """proj(Q * LIF(sum over tokens of K * V)): two products, a sum pool over all tokens."""
        q, k, v = (self.walk(getattr(module, n), f"{prefix}.{n}", prev, shape)[0] for n in ("q", "k", "v"))
        kv = self.add(f"{prefix}.kv", Product(), k + v, shape)
        tokens = _pair(shape[1:])
        per_channel = (shape[0], 1, 1)
        kv = self.add(f"{prefix}.kv_sum", nir.SumPool2d(kernel_size=tokens, stride=tokens, padding=_pair(0)), kv,
                      per_channel)
        kv, _ = self.walk(module.kv_neuron, f"{prefix}.kv_neuron", kv, per_channel)
        gated = self.add(f"{prefix}.qkv", Product(), q + kv, shape)
        return self.walk(module.proj, f"{prefix}.proj", gated, shape)


def network_to_nir(net: SpikingNetwork) -> nir.NIRGraph:
    """The network (BatchNorm folded, eval mode) as a NIR graph with dt = 1."""
    body = fold_batchnorm(net.body)
    input_shape = tuple(net.arch["input_shape"])
    builder = _GraphBuilder(input_shape)
    last, shape = builder.walk(body, "", ["input"], input_shape)
    builder.add("output", nir.Output(output_type={"output": np.array(shape)}), last, shape)
    meta = {"dt": 1.0, "timesteps": net.timesteps, "encoding": net.encoding, "producer": "ddla-neuro"}
    return nir.NIRGraph(nodes=builder.nodes, edges=builder.edges, metadata=meta, type_check=False)


def checkpoint_to_spec(ckpt: Checkpoint | str | Path) -> NetSpec:
    """Float NetSpec of a checkpoint, with its DDLA statistics as per-population scores."""
    ckpt = ckpt if isinstance(ckpt, Checkpoint) else load_checkpoint(ckpt)
    spec = nir_to_spec(network_to_nir(ckpt.net))
    shapes = {p.name: tuple(p.shape) for p in spec.spiking}
    spec.scores = {k: v.detach().cpu().float().numpy() for k, v in ckpt.sensitivity.items() if k in shapes}
    for name, scores in spec.scores.items():
        if scores.size != int(np.prod(shapes[name])):
            raise IRError(f"the checkpoint's DDLA statistics of layer {name} hold {scores.size} values for its "
                          f"{int(np.prod(shapes[name]))} neurons; re-create the checkpoint with ddla_neuro.train")
    spec.meta.update({k: ckpt.meta[k] for k in ("dataset", "method", "keep", "lam", "seed", "test_accuracy",
                                                 "thresholds") if k in ckpt.meta})
    rule = trained_rule(ckpt.meta)
    if rule is not None:
        spec.meta["selection"] = rule
    return spec


def input_frames(net: SpikingNetwork, x: torch.Tensor, generator: torch.Generator | None = None) -> np.ndarray:
    """What the deployed network receives for raw inputs x (N, ...): the encoded frames (N, T, ...)."""
    with torch.no_grad():
        return net.encode(x, generator).transpose(0, 1).cpu().numpy()
