"""DDLA for a network we did not train: its sensitivity statistics measured on a calibration
split through a torch twin of its float NetSpec.

DDLA ranks a layer's deltas by per-neuron statistics, the mean |dL/dO| of the loss with respect
to the layer's output, which our trainer collects while it trains. An imported network (NIR
from snnTorch, Norse, SpikingJelly) comes without them. The twin runs the spec with the
simulator's semantics (`sim.py`: the same ops, bias, decay, threshold and resets, every
population at every step) in float64 with autograd, the spike's gradient being Norse's
surrogate (`threshold`, the trainer's "triangle"); the loss is the cross-entropy of the
time-averaged logits, and each spiking population's statistic is the mean over the split and
the steps of |dL/ds_t| through the populations that receive s_t (not through the neuron's own
reset: the trainer measures the gradient at what a layer transmits), in the population's shape
(`NetSpec.scores`). Nothing is trained.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from .sim import _apply, _max_pool
from .spec import NetSpec, Population

with warnings.catch_warnings():  # norse 1.1 calls the deprecated torch.jit.script at import
    warnings.simplefilter("ignore", FutureWarning)
    from norse.torch.functional.threshold import threshold

TWIN_KINDS = ("if", "lif", "maxpool", "readout")
SURROGATE, ALPHA = "triangle", 1.0  # the trainer's spike surrogate (snn.functional.NeuronParameters)


class CalibrationError(ValueError):
    """A network or calibration split the twin cannot run."""


def check_twin(spec: NetSpec) -> None:
    """One line naming what the twin does not run."""
    if spec.fixed:
        raise CalibrationError("calibration runs the float network: calibrate before quantizing")
    for pop in spec.populations:
        if pop.kind not in TWIN_KINDS:
            raise CalibrationError(f"population {pop.name!r} is {pop.kind}: DDLA calibration runs IF and LIF neurons, "
                                   f"max pools and the readout")
        if any(p.to_bias for p in pop.inputs):
            raise CalibrationError(f"population {pop.name!r} takes its input as a bias: not calibrated")


class Twin(torch.nn.Module):
    """The float spec as a differentiable network (step-major: every population at step t, then t + 1)."""

    def __init__(self, spec: NetSpec):
        super().__init__()
        check_twin(spec)
        self.spec = spec
        # the weights carry gradients only so that every population's output is in the graph
        self.weights = [[None if op.weight is None else
                         torch.tensor(np.asarray(op.weight), dtype=torch.float64, requires_grad=True)
                         for op in proj.ops] for pop in spec.populations for proj in pop.inputs]

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, list[torch.Tensor]]]:
        """frames (B, T, *input_shape) -> (logits (T, B, classes), per spiking population what
        it sent at each step (B, n), which carries gradients)."""
        b, steps = frames.shape[:2]
        v: dict[str, torch.Tensor] = {}
        held: dict[str, torch.Tensor] = {}  # what each population sent at t - 1 (delayed resets)
        spikes: dict[str, list[torch.Tensor]] = {p.name: [] for p in self.spec.spiking}
        logits = []
        for t in range(steps):
            sent = {"input": frames[:, t].reshape(b, -1).double()}
            w = iter(self.weights)
            for pop in self.spec.populations:
                current = torch.as_tensor(np.asarray(pop.bias, dtype=np.float64).reshape(-1))
                for proj in pop.inputs:
                    x = sent[proj.source]
                    for op, weight in zip(proj.ops, next(w)):
                        x = _apply(op, weight, x)
                    current = current + x.reshape(b, -1)
                if pop.kind == "readout":
                    logits.append(current)
                elif pop.kind == "maxpool":
                    sent[pop.name] = _max_pool(current[None], pop.pool)[0]
                else:
                    s, v[pop.name] = _neuron_step(pop, current, v.get(pop.name), held.get(pop.name))
                    held[pop.name] = s
                    # what the receivers get, apart from the spikes that reset the neuron: its
                    # gradient is the loss's through the receivers, as the trainer's statistics
                    sent[pop.name] = s.clone()
                    spikes[pop.name].append(sent[pop.name])
        return torch.stack(logits), spikes


def _neuron_step(pop: Population, current: torch.Tensor, v: torch.Tensor | None, s_prev: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the simulator's IF/LIF (`sim._Population.run_neurons`, float): (spikes, membrane)."""
    if v is None:
        v = current
    else:
        if pop.reset == "delayed-zero":
            v = v * (1 - s_prev)
        v = v * pop.decay + current
        if pop.reset == "delayed-subtract":
            v = v - s_prev * pop.v_th
    s = threshold(v - pop.v_th, SURROGATE, ALPHA)
    if pop.reset == "zero":
        v = v * (1 - s)
    elif pop.reset == "subtract":
        v = v - s * pop.v_th
    return s, v


def calibrate(spec: NetSpec, frames: np.ndarray, labels: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Per spiking population, the mean over the samples and steps of |dL/ds_t| (L: the
    cross-entropy of the time-averaged logits), shaped as the population: the spec's DDLA scores."""
    frames = np.asarray(frames)
    if frames.ndim < 2 or tuple(frames.shape[1:]) != (spec.timesteps, *spec.input_shape):
        raise CalibrationError(f"the calibration frames have shape {frames.shape}, the network takes "
                               f"(N, {spec.timesteps}, {', '.join(map(str, spec.input_shape))})")
    if len(frames) != len(labels) or len(frames) == 0:
        raise CalibrationError(f"{len(frames)} calibration frames for {len(labels)} labels: give one label each")
    twin = Twin(spec)
    totals = {p.name: torch.zeros(p.size, dtype=torch.float64) for p in spec.spiking}
    for lo in range(0, len(frames), batch_size):
        x = torch.as_tensor(frames[lo: lo + batch_size], dtype=torch.float64)
        logits, spikes = twin(x)
        outputs = [s for name in totals for s in spikes[name]]
        loss = F.cross_entropy(logits.mean(0), torch.as_tensor(labels[lo: lo + batch_size], dtype=torch.long),
                               reduction="sum")  # summed: each sample's gradient is its own loss's
        grads = torch.autograd.grad(loss, outputs, allow_unused=True)
        at = iter(grads)
        for name in totals:
            for _ in spikes[name]:
                g = next(at)
                if g is not None:
                    totals[name] += g.abs().sum(0)
    n = len(frames) * spec.timesteps
    return {p.name: (totals[p.name] / n).reshape(p.shape).float().numpy() for p in spec.spiking}
