"""The fast simulator: batched torch execution of a NetSpec with the semantics of the Lava
network (`ddla_neuro/lava/models.py`), for whole test sets.

Lava adds one step of synaptic delay per synapse; here every timestep runs the populations in
topological order, which is the Lava run with its outputs shifted back by the latency (the
Lava runner does that shift), so the two are compared step for step.

Modes: `dense` (every population sends its spikes, the input its frames), `delta` (everything
sends the change since the last step: lossless) and `ddla` (spiking populations send only the
top-k deltas ranked by the spec's sensitivity scores, from t = 2 on; the receivers hold the
rest; compute populations, max pool and product, send their changes losslessly). In fixed point all arithmetic is on integers (carried exactly in float64 through conv),
so this is also the quantized torch model.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .ddla.gsc import topk_mask
from .errors import UserError
from .spec import (COMPUTE_KINDS, DECAY_BITS, NEURON_KINDS, SATURATION, NetSpec, Op, Population, fanout,
                   projection_fanout, projection_key, repeated_layer_uses, sends_binary)

MODES = ("dense", "delta", "ddla")
COUNT_KINDS = ("spikes", "events", "sops", "sops_proj", "active")
FLOAT32_EXACT = 2 ** 24  # integers up to this magnitude are exact in float32


@dataclass
class Counts:
    """Totals over the samples run, per timestep (arrays of length T)."""

    timesteps: int
    spikes: dict[str, np.ndarray] = field(default_factory=dict)   # non-zero s^t of each spiking population
    events: dict[str, np.ndarray] = field(default_factory=dict)   # values sent by "input" and each sender
    sops: dict[str, np.ndarray] = field(default_factory=dict)     # synaptic ops into each population
    sops_proj: dict[str, np.ndarray] = field(default_factory=dict)  # synaptic ops per projection "source>target"
    active: dict[str, np.ndarray] = field(default_factory=dict)   # units whose synaptic current is non-zero
                                                                  # (a product: both factors non-zero)
    neurobench: dict[str, np.ndarray] = field(default_factory=dict)  # see `neurobench_ops` (simulator only)
    samples: int = 0

    def add(self, kind: str, key: str, t: int, value: float) -> None:
        table = getattr(self, kind)
        table.setdefault(key, np.zeros(self.timesteps, dtype=np.int64))[t] += int(value)

    def to_dict(self) -> dict:
        """The counters Lava and the simulator share (not the simulator-only `neurobench`)."""
        return {"samples": self.samples, **{k: {n: v.tolist() for n, v in getattr(self, k).items()}
                                            for k in COUNT_KINDS}}


@dataclass
class SimResult:
    logits: np.ndarray   # (N, T, classes), float (fixed point: divided by 2**frac_bits)
    counts: Counts

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.mean(axis=1).argmax(axis=1)


class RunError(UserError, ValueError):
    """A run that cannot be done as asked (mode, keep, input shape, missing DDLA statistics)."""


def check_run(spec: NetSpec, frames: np.ndarray, mode: str, keep: float) -> np.ndarray:
    """Validates a run on the host (the simulator and, before Lava is started, the Lava runner,
    whose process models must never raise); returns the frames as float64."""
    if mode not in MODES:
        raise RunError(f"mode must be one of {MODES}, got {mode!r}")
    if not 0.0 <= keep <= 1.0:
        raise RunError(f"keep ratio must lie in [0, 1], got {keep}")
    frames = np.asarray(frames, dtype=np.float64)
    if tuple(frames.shape[1:]) != (spec.timesteps, *spec.input_shape):
        raise RunError(f"frames have shape {frames.shape}, the network takes (N, {spec.timesteps}, "
                       f"{', '.join(map(str, spec.input_shape))})")
    missing = [p.name for p in spec.spiking if p.name not in spec.scores]
    if mode == "ddla" and keep < 1.0 and missing:
        raise RunError(f"no sensitivity statistics for populations {missing}: DDLA with keep < 1 needs a "
                       f"checkpoint trained with --method ddla")
    return frames


def _apply(op: Op, w: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    x = x.reshape(b, *op.in_shape)
    if op.kind == "conv2d":
        return F.conv2d(x, w, stride=op.stride, padding=op.padding)
    if op.kind == "linear":
        return x @ w.T
    if op.kind == "sumpool2d":
        return F.avg_pool2d(x, op.kernel, op.stride, op.padding, divisor_override=1)
    if op.kind == "scale":
        return x * w
    return x.reshape(b, *op.out_shape)


def neurobench_ops(op: Op, w: torch.Tensor, connections: float, x: torch.Tensor, pooled: bool) -> dict[str, float]:
    """NeuroBench's SynapticOperations for one call of a connection layer (conv2d, linear):
    effective ops = the layer with weights `w != 0` (no bias) applied to `x != 0`, summed;
    dense ops = every input to every connection. The call is ACs when every input is in
    {-1, 0, 1}, else MACs. Behind a sum pool the torch model sees averages (fractions, so MACs)
    where we see sums (the 1/k scale is folded into the weights): those count as MACs."""
    effective = float(_apply(op, (w != 0).to(x.dtype), (x != 0).to(x.dtype)).sum())
    binary = not pooled and bool(((x == 0) | (x.abs() == 1)).all())
    return {"effective_acs" if binary else "effective_macs": effective, "dense": connections * x.shape[0]}


def _fan_in(op: Op) -> int:
    if op.kind == "conv2d":
        return int(np.prod(op.weight.shape[1:]))
    if op.kind == "linear":
        return op.weight.shape[1]
    return int(np.prod(op.kernel)) if op.kind == "sumpool2d" else 1


def exact_in_float32(ops: list[Op], input_peak: float) -> bool:
    """Whether every partial sum of the integer ops stays below 2**24 in magnitude, so float32
    (several times faster in conv) gives the same integers as float64."""
    bound = input_peak
    for op in ops:
        peak = float(np.max(np.abs(op.weight))) if op.weight is not None else 1.0
        bound *= peak * _fan_in(op)
    return bound < FLOAT32_EXACT


class _Projection:
    """One projection's torch ops, fan-out maps and (delta modes) held current."""

    def __init__(self, proj, fixed: bool, input_peak: float, counted: list[bool], unit: float = 1.0):
        """`counted`: which ops NeuroBench counts (connection layers, first use of a layer);
        `unit`: the value of a 1 from the source (fixed point: 2**frac_bits of a compute population)."""
        self.source, self.shift, self.counted, self.unit = proj.source, proj.shift, counted, unit
        self.ops = proj.ops
        # Float specs run in float64 like Lava; integer arithmetic in float32 where that is exact.
        self.dtype = torch.float32 if fixed and exact_in_float32(proj.ops, input_peak) else torch.float64
        self.weights = [None if op.weight is None else torch.as_tensor(np.asarray(op.weight), dtype=self.dtype)
                        for op in self.ops]
        self.fanout = torch.as_tensor(projection_fanout(self.ops).reshape(-1), dtype=torch.float64)
        # NeuroBench's dense count of each connection layer: every input to every connection
        self.connections = [0.0 if (fo := fanout(op)) is None else float(fo.sum()) for op in self.ops]
        self.gain = float(2 ** proj.shift) if fixed else 1.0
        self.held: torch.Tensor | None = None

    def reset(self) -> None:
        self.held = None

    def current(self, x: torch.Tensor, accumulate: bool, counts: Counts, t: int) -> tuple[torch.Tensor, int]:
        """(current into the target (B, n), synaptic ops summed over the batch) for what the source sent."""
        sops = 0
        if accumulate and self.held is not None and not bool(x.any()):
            return self.held, sops  # nothing changed upstream (direct input after t = 1): event-driven skip
        x = x.to(self.dtype)
        sops = int((x != 0).sum(0).flatten().double() @ self.fanout)
        pooled = False
        for op, w, connections, counted in zip(self.ops, self.weights, self.connections, self.counted):
            x = x.reshape(x.shape[0], *op.in_shape)
            if counted:
                for key, value in neurobench_ops(op, w, connections, x / self.unit, pooled).items():
                    counts.add("neurobench", key, t, value)
            pooled = pooled or op.kind in ("sumpool2d", "scale")
            x = _apply(op, w, x)
        a = x.reshape(x.shape[0], -1).double() * self.gain
        if accumulate:
            self.held = a if self.held is None else self.held + a
            a = self.held
        return a, sops


def _decay(v: torch.Tensor, pop: Population, fixed: bool) -> torch.Tensor:
    if not fixed:
        return v * pop.decay if pop.decay != 1.0 else v
    if pop.dv == 0:
        return v
    prod = v * (2 ** DECAY_BITS - pop.dv)
    return prod.sign() * (prod.abs() >> DECAY_BITS)


def _sender_peak(spec: NetSpec, source: str, input_peak: float) -> float:
    """The largest magnitude a sender transmits (a bound; inf where none is known)."""
    if source == "input":
        return input_peak
    pop = spec.population(source)
    if not sends_binary(spec, source):
        return float("inf")
    return 1.0 if pop.kind in NEURON_KINDS or not spec.fixed else float(2 ** pop.frac_bits)


def _unit(spec: NetSpec, source: str) -> float:
    pop = None if source == "input" else spec.population(source)
    return float(2 ** pop.frac_bits) if spec.fixed and pop is not None and pop.kind in COMPUTE_KINDS else 1.0


class _Population:
    def __init__(self, pop: Population, spec: NetSpec, keep: float, mode: str, input_peak: float,
                 neurobench: set[tuple[str, int, int]] | None = None):
        """`neurobench`: None, or the ops NeuroBench does not count (`spec.repeated_layer_uses`)."""
        self.pop, self.fixed = pop, spec.fixed
        counted = lambda j, proj: [neurobench is not None and op.kind in ("conv2d", "linear")  # noqa: E731
                                   and (pop.name, j, k) not in neurobench for k, op in enumerate(proj.ops)]
        self.inputs = [_Projection(p, spec.fixed, _sender_peak(spec, p.source, input_peak), counted(j, p),
                                   _unit(spec, p.source)) for j, p in enumerate(pop.inputs)]
        self.bias = torch.as_tensor(np.asarray(pop.bias).reshape(-1), dtype=torch.int64 if spec.fixed else torch.float64)
        self.keep, self.mode = keep, mode
        self.filtered = mode == "ddla" and keep < 1.0 and pop.kind in NEURON_KINDS
        scores = spec.scores.get(pop.name)
        self.scores = None if scores is None else torch.as_tensor(np.asarray(scores, dtype=np.float32).reshape(1, -1))
        self.reset()

    def reset(self) -> None:
        """A new batch of samples: membrane and held values back to nothing."""
        self.v: torch.Tensor | None = None
        self.held: torch.Tensor | None = None   # what the receivers hold of this population's output
        for proj in self.inputs:
            proj.reset()

    def input_currents(self, sent: dict[str, torch.Tensor], counts: Counts, t: int) -> list[torch.Tensor]:
        """The current of each projection (B, n), in membrane units (fixed point: integers)."""
        currents, sops = [], 0
        for proj in self.inputs:
            a, s = proj.current(sent[proj.source], self.mode != "dense", counts, t)
            currents.append(a.round().long() if self.fixed else a)
            sops += s
            counts.add("sops_proj", projection_key(proj.source, self.pop.name), t, s)
        counts.add("sops", self.pop.name, t, sops)
        return currents

    def output(self, currents: list[torch.Tensor], counts: Counts, t: int) -> torch.Tensor:
        """What the population computes at this step: spikes, logits, a max pool or a product."""
        if self.pop.kind == "product":
            a, b = (c.reshape(c.shape[0], *proj.ops[-1].out_shape) for c, proj in zip(currents, self.pop.inputs))
            counts.add("active", self.pop.name, t, ((a != 0) & (b != 0)).sum())
            return _product(a, b, self.pop.frac_bits if self.fixed else None).flatten(1)
        synaptic = sum(currents[1:], currents[0])
        counts.add("active", self.pop.name, t, (synaptic != 0).sum())
        total = synaptic + self.bias
        if self.pop.kind == "readout":
            return total
        if self.pop.kind == "maxpool":
            return _max_pool(total, self.pop.pool)
        return self.step(total)

    def step(self, current: torch.Tensor) -> torch.Tensor:
        """Integrate, fire, reset: the spikes s^t (B, n)."""
        p = self.pop
        v = current if self.v is None else _decay(self.v, p, self.fixed) + current
        if self.fixed:
            v = v.clamp(-SATURATION, SATURATION - 1)
        s = v > p.v_th
        if p.reset == "zero":
            v = v.masked_fill(s, 0)
        else:
            v = v - s * p.v_th
        self.v = v
        return s.to(v.dtype)

    def send(self, s: torch.Tensor, t: int) -> torch.Tensor:
        """What this population transmits at step t (0-based) in the current mode."""
        if self.mode == "dense":
            return s
        d = s if self.held is None else s - self.held
        if self.filtered and t > 0:
            scores = (self.scores * d.abs().float())
            d = torch.where(topk_mask(scores, d != 0, self.keep), d, torch.zeros_like(d))
        self.held = d if self.held is None else self.held + d
        return d


def _product(a: torch.Tensor, b: torch.Tensor, frac_bits: int | None) -> torch.Tensor:
    """a * b broadcast; in fixed point (`frac_bits` given) shifted back to membrane units, toward zero."""
    prod = a * b
    return prod if frac_bits is None else prod.sign() * (prod.abs() >> frac_bits)


def _max_pool(current: torch.Tensor, pool: Op) -> torch.Tensor:
    x = current.reshape(current.shape[0], *pool.in_shape)
    y = F.max_pool2d(x.double(), pool.kernel, pool.stride, pool.padding)  # integers stay exact in float64
    return y.to(current.dtype).flatten(1)


def simulate(spec: NetSpec, frames: np.ndarray, mode: str = "delta", keep: float = 1.0,
             batch_size: int = 256, neurobench: bool = False) -> SimResult:
    """Runs `frames` (N, T, *input_shape; fixed point: already quantized) and returns the
    per-step logits and the counts; with `neurobench`, also NeuroBench's SynapticOperations
    (`Counts.neurobench`: effective_acs, effective_macs, dense per step)."""
    frames = check_run(spec, frames, mode, keep)
    n, t_steps = frames.shape[:2]
    counts = Counts(t_steps)
    logits = []
    # what the input sends: frames (dense) or their changes, at most twice the largest value
    input_peak = 2.0 * float(np.max(np.abs(frames))) if frames.size else 0.0
    skip = repeated_layer_uses(spec) if neurobench else None
    pops = [_Population(p, spec, keep, mode, input_peak, skip) for p in spec.populations]  # weights, fan-outs: once
    with torch.no_grad():
        for lo in range(0, n, batch_size):
            for pop in pops:
                pop.reset()
            x = torch.as_tensor(frames[lo: lo + batch_size]).flatten(2)
            logits.append(_run_batch(pops, spec.timesteps, x, mode, counts))
    counts.samples = n
    out = np.concatenate(logits) if logits else np.zeros((0, t_steps, spec.readout.size))
    if spec.fixed:
        out = out / 2.0 ** spec.readout.frac_bits
    return SimResult(out, counts)


def _run_batch(pops: list[_Population], timesteps: int, x: torch.Tensor, mode: str, counts: Counts) -> np.ndarray:
    previous_frame = None
    outs = []
    for t in range(timesteps):
        frame = x[:, t]
        sent = {"input": frame if (mode == "dense" or previous_frame is None) else frame - previous_frame}
        previous_frame = frame
        counts.add("events", "input", t, (sent["input"] != 0).sum())
        for pop in pops:
            s = pop.output(pop.input_currents(sent, counts, t), counts, t)
            if pop.pop.kind == "readout":
                outs.append(s.double())
                continue
            sent[pop.pop.name] = pop.send(s, t)
            if pop.pop.kind in NEURON_KINDS:
                counts.add("spikes", pop.pop.name, t, (s != 0).sum())
            counts.add("events", pop.pop.name, t, (sent[pop.pop.name] != 0).sum())
    return torch.stack(outs, 1).numpy()
