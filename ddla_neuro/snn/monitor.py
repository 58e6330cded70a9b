"""Counts the spikes every neuron population emits, per timestep, in either step mode."""
from __future__ import annotations

import torch

from .layers import MULTI, Neuron
from .network import SpikingNetwork


class SpikeMonitor:
    """Context manager: `with SpikeMonitor(net) as mon: ...; mon.per_sample()`.

    In single-step mode the timestep is the number of calls seen so far modulo T, so a run
    must cover whole sequences.
    """

    def __init__(self, net: SpikingNetwork):
        self.net = net
        self.timesteps = net.timesteps
        self.totals = {n.key: torch.zeros(net.timesteps, dtype=torch.float64) for n in net.neurons}
        self._calls = {key: 0 for key in self.totals}
        self.samples = 0

    def __enter__(self) -> "SpikeMonitor":
        for n in self.net.neurons:
            n.observers.append(self._observe)
        return self

    def __exit__(self, *exc) -> None:
        for n in self.net.neurons:
            n.observers.remove(self._observe)

    def _observe(self, neuron: Neuron, z: torch.Tensor) -> None:
        z = z.detach()
        if neuron.step_mode == MULTI:
            self.totals[neuron.key] += z.reshape(z.shape[0], -1).sum(1).double().cpu()
        else:
            t = self._calls[neuron.key] % self.timesteps
            self._calls[neuron.key] += 1
            self.totals[neuron.key][t] += z.sum().double().cpu()

    def add_samples(self, n: int) -> None:
        self.samples += n

    def per_sample(self) -> dict[str, list[float]]:
        """Spikes per sample, per layer and timestep."""
        n = max(self.samples, 1)
        return {key: (tot / n).tolist() for key, tot in self.totals.items()}

    def summary(self) -> dict:
        per_layer = self.per_sample()
        per_step = [sum(v[t] for v in per_layer.values()) for t in range(self.timesteps)]
        return {
            "spikes_per_sample": sum(per_step),
            "spikes_per_layer": {k: sum(v) for k, v in per_layer.items()},
            "spikes_per_timestep": per_step,
            "spikes_per_layer_timestep": per_layer,
        }
