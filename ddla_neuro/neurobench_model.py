"""Our networks as NeuroBench 2.3 models, so that NeuroBench's own metrics run on them.

    from ddla_neuro.neurobench_model import neurobench_model
    model = neurobench_model(net)                      # a neurobench.models.TorchModel
    Benchmark(model, loader, [], [], [[], [SynapticOperations, ActivationSparsity, MembraneUpdates]]).run()

Three things NeuroBench needs that a `SpikingNetwork` does not give as is:

- batch layout: NeuroBench feeds (B, T, ...) and compares (B,) predictions; the network takes
  (T, B, ...). Fed as is, it runs on the wrong axis without an error, so the model checks that
  axis 1 holds the network's T frames. `frames(net, x)` encodes raw images into that layout.
- activations: NeuroBench hooks modules of known activation types and reads their outputs. Our
  `Neuron` returns `(spikes, state)`, so each population's spikes go through a probe module
  (registered as NeuroBench's activation module) via the network's transmission hook.
- membranes: NeuroBench's MembraneUpdates reads `layer.mem` before and after each call of an
  snnTorch neuron; our state is explicit, so the probes are snnTorch `SpikingNeuron`s that
  carry the population's membrane before and after each step. The network runs one step at
  a time for that (the same function as all T at once, tested in `test_models`).

Needs `neurobench` and `snntorch` (the `dev` extra; `make setup` installs NeuroBench).
"""
from __future__ import annotations

import snntorch
import torch
from neurobench.models import TorchModel
from torch import nn

from .snn.layers import NetworkState
from .snn.network import SpikingNetwork


class SpikeProbe(snntorch.SpikingNeuron):
    """Passes one population's spikes through unchanged; `mem` is its membrane before the call
    and `next_mem` what it becomes after (NeuroBench reads `mem` in its pre- and post-hooks)."""

    def __init__(self):
        super().__init__(init_hidden=True, output=False)
        self.mem = torch.zeros(0)
        self.next_mem = torch.zeros(0)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        self.mem = self.next_mem
        return spikes


class BatchMajorNetwork(nn.Module):
    """(B, T, ...) frames -> (B, classes) mean logits over T, one step at a time, every
    population's spikes and membranes shown to NeuroBench through a `SpikeProbe`."""

    def __init__(self, net: SpikingNetwork):
        super().__init__()
        self.net = net
        self.probes = nn.ModuleDict({_name(n.key): SpikeProbe() for n in net.neurons})

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() < 2 or frames.shape[1] != self.net.timesteps:
            raise ValueError(f"NeuroBench batches are (B, T, ...) with T = {self.net.timesteps} for this network, "
                             f"got shape {tuple(frames.shape)}: encode images with ddla_neuro.neurobench_model.frames")
        state, logits = NetworkState(), []
        for x_t in frames.transpose(0, 1):
            spikes: dict[str, torch.Tensor] = {}
            out, after = self.net.step(x_t, state,
                                       transmit=lambda neuron, z, spikes=spikes: spikes.setdefault(neuron.key, z))
            for key, z in spikes.items():
                probe = self.probes[_name(key)]
                probe.mem = state.v.get(key, torch.zeros_like(after.v[key]))
                probe.next_mem = after.v[key]
                probe(z)
            logits.append(out)
            state = after
        return torch.stack(logits).mean(0)


def _name(key: str) -> str:
    return key.replace(".", "_")  # ModuleDict keys cannot hold dots


def neurobench_model(net: SpikingNetwork) -> TorchModel:
    """A NeuroBench model of `net` (eval mode) with our probes registered as its activations."""
    model = TorchModel(BatchMajorNetwork(net.eval()))
    model.add_activation_module(SpikeProbe)
    return model


def frames(net: SpikingNetwork, x: torch.Tensor) -> torch.Tensor:
    """Raw inputs (B, ...) encoded as the network does, in NeuroBench's (B, T, ...) layout."""
    return net.encode(x).transpose(0, 1)
