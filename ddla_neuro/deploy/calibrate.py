"""DDLA for a network we did not train: its sensitivity statistics measured on a calibration
split through a torch twin of its float NetSpec.

DDLA ranks a layer's deltas by per-neuron statistics, the mean |dL/dO| of the loss with respect
to the layer's output, which our trainer collects while it trains. An imported network (NIR
from snnTorch, Norse, SpikingJelly; lava-dl netx of CUBA neurons) comes without them. The twin
runs the spec with the simulator's semantics (`sim.py`: the same ops, bias, decay, threshold,
resets, CUBA current and input delays, the pipeline fill, every population at every step) in
float64 with autograd, the spike's gradient being Norse's surrogate (`threshold`, the trainer's
"triangle"); the loss is the cross-entropy of the time-averaged logits, and each spiking
population's statistic is the mean over the split and the steps it ran of |dL/ds_t| through
the populations that receive s_t (not through the neuron's own reset: the trainer measures the
gradient at what a layer transmits), in the population's shape (`NetSpec.scores`). Nothing is
trained.
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

TWIN_KINDS = ("if", "lif", "cuba", "maxpool", "readout")
SURROGATE, ALPHA = "triangle", 1.0  # the trainer's spike surrogate (snn.functional.NeuronParameters)


class CalibrationError(ValueError):
    """A network or calibration split the twin cannot run."""


def check_twin(spec: NetSpec) -> None:
    """One line naming what the twin does not run."""
    if spec.fixed:
        raise CalibrationError("calibration runs the float network: calibrate before quantizing")
    for pop in spec.populations:
        if pop.kind not in TWIN_KINDS:
            raise CalibrationError(f"population {pop.name!r} is {pop.kind}: DDLA calibration runs IF, LIF and CUBA "
                                   f"neurons, max pools and the readout")


class Twin(torch.nn.Module):
    """The float spec as a differentiable network (step-major: every population at step t, then
    t + 1), from the first step of the pipeline fill (`NetSpec.fill`, the input zero there)."""

    def __init__(self, spec: NetSpec):
        super().__init__()
        check_twin(spec)
        self.spec = spec
        # the weights carry gradients only so that every population's output is in the graph
        self.weights = [[[None if op.weight is None else
                          torch.tensor(np.asarray(op.weight), dtype=torch.float64, requires_grad=True)
                          for op in proj.ops] for proj in pop.inputs] for pop in spec.populations]

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, list[torch.Tensor]]]:
        """frames (B, T, *input_shape) -> (logits (T, B, classes), per spiking population what
        it sent at each step it ran (B, n), which carries gradients)."""
        b, steps = frames.shape[:2]
        fill = self.spec.fill
        states: dict[str, _State] = {p.name: _State(p, b) for p in self.spec.spiking}
        spikes: dict[str, list[torch.Tensor]] = {p.name: [] for p in self.spec.spiking}
        logits = []
        idle = torch.zeros(b, frames[0, 0].numel(), dtype=torch.float64)  # the pipeline fill: no input yet
        for i in range(fill + steps):
            t = i - fill
            sent = {"input": frames[:, t].reshape(b, -1).double() if t >= 0 else idle}
            for pop, weights in zip(self.spec.populations, self.weights):
                synaptic, bias_in = _currents(pop, sent, weights)
                bias = torch.as_tensor(np.asarray(pop.bias, dtype=np.float64).reshape(-1))
                if pop.kind == "readout":
                    if t >= 0:
                        logits.append(synaptic + bias)
                elif pop.kind == "maxpool":
                    sent[pop.name] = _max_pool((synaptic + bias)[None], pop.pool)[0]
                elif i < fill - pop.fill:  # not started: it sends nothing yet
                    states[pop.name].delay(synaptic)
                    sent[pop.name] = torch.zeros(b, pop.size, dtype=torch.float64)
                else:
                    s = states[pop.name].step(synaptic, bias if bias_in is None else bias + bias_in,
                                              self.spec.resets(t))
                    # what the receivers get, apart from the spikes that reset the neuron: its
                    # gradient is the loss's through the receivers, as the trainer's statistics
                    sent[pop.name] = s.clone()
                    spikes[pop.name].append(sent[pop.name])
        return torch.stack(logits), spikes


def _currents(pop: Population, sent: dict[str, torch.Tensor], weights: list
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(the synaptic current (B, n), the input written into the bias register or None), summed
    in the simulator's order."""
    currents = []
    for proj, ws in zip(pop.inputs, weights):
        x = sent[proj.source]
        for op, weight in zip(proj.ops, ws):
            x = _apply(op, weight, x)
        currents.append(x.reshape(x.shape[0], -1))
    if pop.inputs and pop.inputs[0].to_bias:  # then the population's only projection
        return torch.zeros_like(currents[0]), currents[0]
    return sum(currents[1:], currents[0]), None


class _State:
    """One spiking population's state through the steps, as the simulator's float IF/LIF
    (`sim._Population.run_neurons`) and CUBA (`run_cuba`) compute it, the spike through the
    surrogate."""

    def __init__(self, pop: Population, batch: int):
        self.pop = pop
        self.v = self.s = None
        self.u = torch.zeros(batch, pop.size, dtype=torch.float64)
        self.history: list[torch.Tensor] = []  # cuba with input delays: the synaptic current of every step

    def delay(self, synaptic: torch.Tensor) -> torch.Tensor:
        """The synaptic current each unit receives now: `input_delay` steps late (zero before the first)."""
        delays = self.pop.input_delay
        if delays is None:
            return synaptic
        self.history.append(synaptic)
        past = torch.stack(self.history)  # (steps so far, B, n)
        at = len(self.history) - 1 - torch.as_tensor(np.asarray(delays, dtype=np.int64).reshape(-1))
        units = torch.arange(synaptic.shape[1])
        return past[at.clamp(min=0), :, units].T * (at >= 0)

    def step(self, synaptic: torch.Tensor, bias: torch.Tensor, reset: bool) -> torch.Tensor:
        pop = self.pop
        if pop.kind == "cuba":
            x = self.delay(synaptic)
            if reset or self.v is None:
                self.u = self.u * 0
                self.v = torch.zeros_like(self.u)
            self.u = self.u * pop.u_decay + x
            v = self.v * pop.decay + self.u + bias
        elif self.v is None or reset:  # a sample's first step, or a reset of a stream
            v = synaptic + bias
        else:
            v = self.v * (1 - self.s) if pop.reset == "delayed-zero" else self.v
            v = v * pop.decay + (synaptic + bias)
            if pop.reset == "delayed-subtract":
                v = v - self.s * pop.v_th
        s = threshold(v - pop.v_th, SURROGATE, ALPHA)
        if pop.reset == "zero" or pop.kind == "cuba":
            v = v * (1 - s)
        elif pop.reset == "subtract":
            v = v - s * pop.v_th
        self.v, self.s = v, s
        return s


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
    steps = {p.name: 0 for p in spec.spiking}  # sample-steps each ran (the fill's included)
    for lo in range(0, len(frames), batch_size):
        x = torch.as_tensor(frames[lo: lo + batch_size], dtype=torch.float64)
        logits, spikes = twin(x)
        outputs = [s for name in totals for s in spikes[name]]
        loss = F.cross_entropy(logits.mean(0), torch.as_tensor(labels[lo: lo + batch_size], dtype=torch.long),
                               reduction="sum")  # summed: each sample's gradient is its own loss's
        grads = torch.autograd.grad(loss, outputs, allow_unused=True)
        at = iter(grads)
        for name in totals:
            steps[name] += len(x) * len(spikes[name])
            for _ in spikes[name]:
                g = next(at)
                if g is not None:
                    totals[name] += g.abs().sum(0)
    return {p.name: (totals[p.name] / steps[p.name]).reshape(p.shape).float().numpy() for p in spec.spiking}
