"""Architectures, buildable by name: `build_model("convnet", num_classes=10, input_shape=(1, 8, 8), timesteps=4)`."""
from __future__ import annotations

from collections.abc import Callable

from ..snn.network import SpikingNetwork
from .models import convnet, mlp, resnet19, sdt, vgg

MODELS: dict[str, Callable] = {"mlp": mlp, "convnet": convnet, "vgg": vgg, "resnet19": resnet19, "sdt": sdt}


def build_model(name: str, *, num_classes: int, input_shape: tuple[int, ...], timesteps: int,
                neuron: str = "if", encoding: str = "direct", **kwargs) -> SpikingNetwork:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    arch = dict(name=name, num_classes=num_classes, input_shape=list(input_shape), neuron=neuron, **kwargs)
    body = MODELS[name](num_classes=num_classes, input_shape=tuple(input_shape), neuron=neuron, **kwargs)
    return SpikingNetwork(body, timesteps=timesteps, encoding=encoding, arch=arch)


def rebuild(arch: dict, timesteps: int, encoding: str) -> SpikingNetwork:
    """Rebuild a network from the `arch` dict stored in a checkpoint."""
    kw = dict(arch)
    name = kw.pop("name")
    kw["input_shape"] = tuple(kw["input_shape"])
    return build_model(name, timesteps=timesteps, encoding=encoding, **kw)


__all__ = ["MODELS", "build_model", "rebuild"]
