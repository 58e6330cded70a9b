"""The fast simulator: batched torch execution of a NetSpec with the semantics of the Lava
network (`deploy/lava/models.py`, `lava_stages.py`), for whole test sets, under the run
contract of `run.py`.

Lava adds one step of synaptic delay per synapse; here each population runs in topological
order over all timesteps of a batch (layer-major: its ops applied to the whole (T, B) sequence
of what its sources sent, then its neurons stepped through t), which is the Lava run with its
outputs shifted back by the latency (the Lava runner does that shift), so the two are compared
step for step. A receiver of deltas integrates them: its current at t is the running sum
(`cumsum` over t, the order Lava adds them in) of the ops applied to each step's deltas.

In `ddla` mode, spiking populations send the pending changes their selection chooses
(`ddla/selection.py`, the trainer's and Lava's code), and compute populations (max pool, product)
send their changes losslessly. In fixed
point all arithmetic is on integers, carried exactly in float64 or, where a bound proves it
exact (every value below 2**24), in float32; so this is also the quantized torch model.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from ..ddla.selection import LayerSelection, Selection
from ..devices import exact_float32, reused_heap
from .run import Counts, RunError, RunResult, available_memory, check_run, gib
from .ops import DECAY_BITS, EXACT_FLOAT32, SATURATION, sigma_delta, wrap_current
from .spec import (COMPUTE_KINDS, NEURON_KINDS, NetSpec, Op, Population, SharedPrefixes, projection_key,
                   repeated_layer_uses, shared_op_prefixes)


def _apply(op: Op, w: torch.Tensor | None, x: torch.Tensor, exact: bool = False) -> torch.Tensor:
    """One op on a batch (B, ...). `exact`: the values are integers whose sums are exact, so
    a sum pool may add in any order."""
    b = x.shape[0]
    x = x.reshape(b, *op.in_shape)
    if op.kind == "conv2d":
        return F.conv2d(x, w, stride=op.stride, padding=op.padding)
    if op.kind == "linear":
        return x @ w.T
    if op.kind == "sumpool2d":
        return _tiled_sum(x, op.kernel) if exact and _tiles(op) else \
            F.avg_pool2d(x, op.kernel, op.stride, op.padding, divisor_override=1)
    if op.kind == "scale":
        return x * w
    return x.reshape(b, *op.out_shape)


def _tiles(op: Op) -> bool:
    """Whether a sum pool's windows tile its input: stride = kernel, no padding, no remainder."""
    return (tuple(op.stride) == tuple(op.kernel) and not any(op.padding)
            and all(n % k == 0 for n, k in zip(op.in_shape[1:], op.kernel)))


def _tiled_sum(x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """A sum pool whose windows tile x (B, C, H, W): the columns of each window added, then its
    rows, with strided views; several times faster than `avg_pool2d` on CPU."""
    (kh, kw), (b, c, h, w) = kernel, x.shape
    cols = x.reshape(b, c, h, w // kw, kw)
    x = sum((cols[..., i] for i in range(1, kw)), cols[..., 0])
    rows = x.reshape(b, c, h // kh, kh, w // kw)
    return sum((rows[:, :, :, i] for i in range(1, kh)), rows[:, :, :, 0])


def neurobench_ops(op: Op, w: torch.Tensor, connections: float, x: torch.Tensor, pooled: bool
                   ) -> dict[str, torch.Tensor]:
    """NeuroBench's SynapticOperations for the calls of a connection layer (conv2d, linear) at
    each step, `x` being (T, B, ...): effective ops = the layer with weights `w != 0` (no bias)
    applied to `x != 0`, summed; dense ops = every input to every connection. A step's call is
    ACs when every input is in {-1, 0, 1}, else MACs. Behind a sum pool the torch model sees
    averages (fractions, so MACs) where we see sums (the 1/k scale is folded into the weights):
    those count as MACs. Returns per-step (T,) counts."""
    t, b = x.shape[:2]
    flat = x.reshape(t * b, *op.in_shape)
    # each output counts at most its fan-in (exact); their sum can pass 2**24, so it adds in float64
    effective = _apply(op, w.bool().to(x.dtype), flat.bool().to(x.dtype)).reshape(t, -1).sum(1, dtype=torch.float64)
    binary = ((x == 0) | (x.abs() == 1)).reshape(t, -1).all(1) & (not pooled)
    zero = torch.zeros_like(effective)
    return {"effective_acs": torch.where(binary, effective, zero),
            "effective_macs": torch.where(binary, zero, effective),
            "dense": torch.full_like(effective, connections * b)}


def _output_bound(ops: list[Op], input_peak: float) -> float:
    """A bound on every output, and every partial sum of one, of the ops for inputs of
    magnitude <= `input_peak`: a partial sum adds some of an output's terms, so it is at most
    the sum of their magnitudes, the input peak times the ops' infinity norms (`Op.gain`)."""
    return input_peak * float(np.prod([op.gain for op in ops]))


def current_bound(pop: Population, peaks: list[float]) -> float:
    """A bound on |synaptic current + bias| of a fixed-point population whose sources send
    values of magnitude <= `peaks` (one per projection)."""
    bound = float(np.max(np.abs(pop.bias))) if np.size(pop.bias) else 0.0
    return bound + sum(_output_bound(proj.ops, peak) * 2.0 ** proj.shift for proj, peak in zip(pop.inputs, peaks))


def exact_in_float32(ops: list[Op], input_peak: float) -> bool:
    """Whether the integer ops stay below 2**24 in magnitude, so float32 (several times faster
    in conv) gives the same integers as float64."""
    return _output_bound(ops, input_peak) < EXACT_FLOAT32


class _Reuse:
    """Within one batch, the output of each shared op prefix (`spec.shared_op_prefixes`: a
    residual stream unrolled into projections that repeat a layer), kept from its first use to
    its last."""

    def __init__(self, uses: Counter[int]):
        self.left, self.values = dict(uses), {}

    def get(self, group: int) -> torch.Tensor | None:
        return self.values.get(group)

    def keep(self, group: int, x: torch.Tensor) -> None:
        if self.left[group] > 1:  # a later projection applies it again
            self.values[group] = x

    def done(self, groups: Iterable[int]) -> None:
        """One projection's use of its shared prefixes is over; the last use frees each."""
        for group in groups:
            self.left[group] -= 1
            if not self.left[group]:
                self.values.pop(group, None)

    def holds(self, x: torch.Tensor) -> bool:
        """Whether x shares memory with a kept output (which must not change in place)."""
        ptr = x.untyped_storage().data_ptr()
        return any(v.untyped_storage().data_ptr() == ptr for v in self.values.values())


class _Projection:
    """One projection's torch ops and fan-out map."""

    def __init__(self, proj, fixed: bool, input_peak: float, counted: list[bool], unit: float,
                 shared: list[tuple[int, int]], device: torch.device):
        """`counted`: which ops NeuroBench counts (connection layers, first use of a layer);
        `unit`: the value of a 1 from the source (fixed point: 2**frac_bits of what it sends);
        `shared`: (op index, group) of its op prefixes that other projections apply too."""
        self.source, self.counted, self.unit = proj.source, counted, unit
        self.shared = dict(shared)  # op index -> group
        self.ops, self.fixed, self.device = proj.ops, fixed, device
        self._weights: dict[torch.dtype, list[torch.Tensor | None]] = {}
        self.use_peak(input_peak)
        self.fanout = torch.as_tensor(proj.fanout.reshape(-1), dtype=torch.float64, device=device)
        # NeuroBench's dense count of each connection layer: every input to every connection
        self.connections = [float(op.fanout.sum()) for op in self.ops]
        self.gain = float(2 ** proj.shift) if fixed else 1.0

    def use_peak(self, peak: float) -> None:
        """Runs the ops for a source sending values of magnitude <= `peak`: float specs in float64
        like Lava, integer arithmetic in float32 where that is exact (`exact_in_float32`)."""
        self.peak = peak
        self.dtype = torch.float32 if self.fixed and exact_in_float32(self.ops, peak) else torch.float64
        if self.dtype not in self._weights:
            self._weights[self.dtype] = [None if op.weight is None else torch.as_tensor(
                np.asarray(op.weight), dtype=self.dtype, device=self.device) for op in self.ops]
        self.weights = self._weights[self.dtype]

    def currents(self, sent: torch.Tensor, nonzero: torch.Tensor, accumulate: bool, counts: Counts,
                 dtype: torch.dtype, reuse: _Reuse) -> tuple[torch.Tensor, torch.Tensor]:
        """(current into the target (T, B, n), synaptic ops per step (T,)) for what the source
        sent at each step (T, B, ...), of which `nonzero` (T, n) counts the non-zero values per
        position; with `accumulate` the target sums what it received."""
        sops = nonzero.double() @ self.fanout
        busy = nonzero.sum(1) > 0
        if any(self.counted) or bool(busy.all()):
            a = self.apply(sent, counts, dtype, reuse)
        else:  # event-driven: ops only at the steps where the source sent something (direct input: t = 1)
            a = torch.zeros(sent.shape[0], sent.shape[1], int(np.prod(self.ops[-1].out_shape)), dtype=dtype,
                            device=sent.device)
            if bool(busy.any()):
                a[busy] = self.apply(sent[busy], counts, dtype)
        if self.shared:
            reuse.done(self.shared.values())
            if reuse.holds(a):  # the kept output itself (a projection that ends in the shared op, gain 1)
                a = a.clone()
        return (_running_sum(_owned(a, sent)) if accumulate else a), sops

    def apply(self, sent: torch.Tensor, counts: Counts, dtype: torch.dtype, reuse: _Reuse | None = None
              ) -> torch.Tensor:
        """The ops (and their gain) on (T, B, ...) values, counting NeuroBench's operations.
        With `reuse`, the longest shared prefix another projection computed on these values
        (and whose ops NeuroBench does not count here) is taken from it, and the ones computed
        here are kept for the next."""
        t, b = sent.shape[:2]
        x, start = sent.to(self.dtype), 0
        shared = self.shared if reuse is not None else {}
        for k in sorted(shared, reverse=True):
            kept = reuse.get(shared[k])
            if kept is not None and not any(self.counted[:k + 1]) and self._takes(kept, k):
                x, start = kept.to(self.dtype), k + 1
                break
        pooled = any(op.kind in ("sumpool2d", "scale") for op in self.ops[:start])
        for k in range(start, len(self.ops)):
            op, w = self.ops[k], self.weights[k]
            x = x.reshape(t * b, *op.in_shape)
            if self.counted[k]:
                for key, value in neurobench_ops(op, w, self.connections[k], (x / self.unit).reshape(t, b, -1),
                                                 pooled).items():
                    _count(counts, "neurobench", key, value)
            pooled = pooled or op.kind in ("sumpool2d", "scale")
            x = _apply(op, w, x, self.fixed)  # fixed point: integers, exact in self.dtype
            if k in shared:
                reuse.keep(shared[k], x)
        a = x.reshape(t, b, -1).to(dtype)
        return a * self.gain if self.gain != 1.0 else a  # a power of 2: exact

    def _takes(self, kept: torch.Tensor, k: int) -> bool:
        """Whether the output of ops[:k+1] that another projection computed, in its dtype, is
        exact in this one's: float64 both, or a prefix whose partial sums stay below 2**24 (the
        other projection's float32 may rest on a later op of gain 0, not on its prefix)."""
        return (kept.dtype == self.dtype == torch.float64) or exact_in_float32(self.ops[:k + 1], self.peak)


def _decay(x: torch.Tensor, factor: float, d: int, fixed: bool) -> torch.Tensor:
    """x times a decay: float `factor`, or Loihi's 12-bit `d`: x * (4096 - d) / 4096 toward zero."""
    if not fixed:
        return x * factor if factor != 1.0 else x
    if d == 0:
        return x
    prod = x.double() * (2 ** DECAY_BITS - d)  # < 2**36: exact in float64
    return torch.trunc(prod / 2 ** DECAY_BITS).to(x.dtype)


def _unit(spec: NetSpec, source: str) -> float:
    """The value of a 1 from a sender: 2**frac_bits of what it sends (0 in a float spec)."""
    return float(2 ** spec.sends(source).frac_bits)


def _sender_peaks(spec: NetSpec, input_peak: float) -> dict[str, float]:
    """Per sender, the largest magnitude it transmits (a bound; inf where none is known): the
    input's `input_peak`, a spike's unit, and a max pool's largest current + bias
    (`current_bound`) twice over, since in delta modes it sends the change of its maximum. A
    receiver integrates those changes back to the maximum itself, so one bound covers both the
    partial sums of the ops on a change and the current they add up to. Products and
    sigma-delta messages have no bound here; a batch tightens a compute population's to what it
    sent (`_Population.measured_peak`)."""
    peaks = {"input": input_peak}
    for pop in spec.populations:
        if not spec.sends(pop.name).graded:
            peaks[pop.name] = _unit(spec, pop.name)
        elif pop.kind == "maxpool":
            peaks[pop.name] = 2.0 * current_bound(pop, [peaks[proj.source] for proj in pop.inputs])
        else:
            peaks[pop.name] = float("inf")
    return peaks


def _changes(x: torch.Tensor) -> torch.Tensor:
    """x^t - x^{t-1} along axis 0 (T, B, ...), x^1 whole (one pass over x)."""
    d = torch.empty_like(x)
    d[0] = x[0]
    torch.sub(x[1:], x[:-1], out=d[1:])
    return d


def _fill_zero(x: torch.Tensor, steps: int) -> torch.Tensor:
    """x with its first `steps` steps (the pipeline fill before a population starts) zeroed:
    the rest is written step by step, so `empty` saves a pass over fresh memory."""
    x[:steps] = 0
    return x


def _running_sum(a: torch.Tensor) -> torch.Tensor:
    """a's running sum along axis 0, in place: what a receiver of deltas holds. The order of
    `cumsum` (a left fold over t, as Lava adds them), several times faster than it on CPU."""
    for t in range(1, a.shape[0]):
        a[t] += a[t - 1]
    return a


def _owned(a: torch.Tensor, sent: torch.Tensor) -> torch.Tensor:
    """a, or a copy of it where it shares memory with what was sent (a projection of reshapes
    only), so that it can be changed in place."""
    return a.clone() if a.untyped_storage().data_ptr() == sent.untyped_storage().data_ptr() else a


def _count(counts: Counts, kind: str, key: str, per_step: torch.Tensor) -> None:
    """Adds per-step values to the host's counters (from the GPU where the run is there): the
    sample's steps, not those of a pipeline fill before them."""
    counts.add(kind, key, per_step[-counts.timesteps:].cpu())


def _nonzero(x: torch.Tensor) -> torch.Tensor:
    """1.0 where x is non-zero, 0.0 elsewhere, in x's float dtype: a comparison written straight
    into a float tensor is several times faster on CPU than a bool tensor and its sum."""
    return torch.ne(x, 0, out=torch.empty(x.shape, dtype=x.dtype if x.is_floating_point() else torch.float32,
                                          device=x.device))


def _step_totals(ones: torch.Tensor) -> torch.Tensor:
    """Per step, the sum of a (T, B, ...) tensor of 0.0/1.0 (float64): summed per sample first,
    so that every partial sum stays an integer below 2**24, exact in float32."""
    return ones.reshape(ones.shape[0], ones.shape[1], -1).sum(2).sum(1, dtype=torch.float64)


def _per_step(x: torch.Tensor) -> torch.Tensor:
    """Non-zero entries per step of a (T, B, ...) tensor."""
    return _step_totals(_nonzero(x))


class _Population:
    def __init__(self, pop: Population, spec: NetSpec, selection: Selection, mode: str, sender_peaks: dict[str, float],
                 neurobench: set[tuple[str, int, int]] | None, shared: list[list[tuple[int, int]]],
                 device: torch.device):
        """`neurobench`: None, or the ops NeuroBench does not count (`spec.repeated_layer_uses`);
        `shared`: per projection, its op prefixes that others apply too (`spec.shared_op_prefixes`)."""
        self.pop, self.fixed = pop, spec.fixed
        counted = lambda j, proj: [neurobench is not None and op.kind in ("conv2d", "linear")  # noqa: E731
                                   and (pop.name, j, k) not in neurobench for k, op in enumerate(proj.ops)]
        peaks = [sender_peaks[p.source] for p in pop.inputs]
        self.inputs = [_Projection(p, spec.fixed, peak, counted(j, p), _unit(spec, p.source), shared[j], device)
                       for j, (p, peak) in enumerate(zip(pop.inputs, peaks))]
        self.device, self._biases = device, {}
        self._use_dtype(peaks)
        self.mode = mode
        # the steps run: the pipeline fill (negative steps), then the sample's; this one starts at `start`
        self.start = spec.fill - pop.fill
        self.resets = [spec.resets(t) for t in range(-spec.fill, spec.timesteps)]
        self.filtered = mode == "ddla" and selection.filters(pop.name) and pop.kind in NEURON_KINDS
        self.count_membranes = neurobench is not None  # NeuroBench's MembraneUpdates
        self.select = LayerSelection(**selection.layer(pop.name), scores=spec.scores[pop.name],
                                     to_array=lambda a: torch.as_tensor(a, device=device), weight_dtype=np.float32
                                     ) if self.filtered else None

    def use_peaks(self, sender_peaks: dict[str, float]) -> None:
        """Chooses the dtypes for sources sending values of magnitude <= `sender_peaks` (per
        sender): fixed point runs in float32 where |membrane| <= 2**23 (saturation) plus
        |current| < 2**23 stays exact, or for a max pool where its current does and so the
        changes it sends (below 2**24), and each projection where its partial sums do. A product
        stays in float64 (its factors' product passes 2**24)."""
        peaks = [sender_peaks[p.source] for p in self.pop.inputs]
        for proj, peak in zip(self.inputs, peaks):
            proj.use_peak(peak)
        self._use_dtype(peaks)

    def _use_dtype(self, peaks: list[float]) -> None:
        small = self.fixed and self.pop.kind != "product" and current_bound(self.pop, peaks) < SATURATION
        self.dtype = torch.float32 if small else torch.float64
        if self.dtype not in self._biases:
            self._biases[self.dtype] = torch.as_tensor(np.asarray(self.pop.bias, dtype=np.float64).reshape(-1),
                                                       dtype=self.dtype, device=self.device)
        self.bias = self._biases[self.dtype]

    def measured_peak(self, out: torch.Tensor) -> float | None:
        """A compute population's bound on what it sends in this batch (fixed point), from what
        it computed (`out`, (T, B, n)): twice its largest magnitude, as `_sender_peaks` bounds
        its changes; None for the others (a spike's unit; sigma-delta messages, unbounded)."""
        if not self.fixed or self.pop.kind not in COMPUTE_KINDS:
            return None
        low, high = torch.aminmax(out)
        return 2.0 * max(float(high), -float(low))

    def input_currents(self, sent: dict[str, tuple[torch.Tensor, torch.Tensor]], counts: Counts, reuse: _Reuse
                       ) -> list[torch.Tensor]:
        """The current of each projection (T, B, n), in membrane units (fixed point: integers).
        `sent`: per sender, what it sent (T, B, n) and its non-zero count per position (T, n)."""
        currents, sops = [], 0
        for proj in self.inputs:
            a, s = proj.currents(*sent[proj.source], self.mode != "dense", counts, self.dtype, reuse)
            currents.append(a)
            sops = sops + s
            _count(counts, "sops_proj", projection_key(proj.source, self.pop.name), s)
        _count(counts, "sops", self.pop.name, sops)
        return currents

    def output(self, currents: list[torch.Tensor], counts: Counts) -> tuple[torch.Tensor, torch.Tensor]:
        """(what the population computes at each step: spikes, a sigma-delta's messages, logits,
        a max pool or a product; what it sends), both (T, B, n). Counts active units and, for
        neurons, spikes."""
        kind = self.pop.kind
        if kind == "product":
            a, b = (c.reshape(*c.shape[:2], *proj.ops[-1].out_shape) for c, proj in zip(currents, self.pop.inputs))
            _count(counts, "active", self.pop.name, _per_step(a.bool() & b.bool()))
            out = _product(a, b, self.pop.frac_bits if self.fixed else None).flatten(2)
            return out, self.lossless(out)
        if self.pop.inputs[0].to_bias:  # the input written into the bias register: the population's only projection
            synaptic, bias_in = torch.zeros_like(currents[0]), currents[0]
        else:
            synaptic, bias_in = sum(currents[1:], currents[0]), None
        if self.pop.input_delay is not None:  # each unit's synaptic current, its own steps late (spec.py)
            synaptic = _delayed(synaptic, self.pop.input_delay)
        if kind == "cuba":
            return self.run_cuba(synaptic, bias_in, counts)
        if kind == "sdnn":
            return self.run_sdnn(synaptic, counts)
        _count(counts, "active", self.pop.name, _per_step(synaptic))
        total = synaptic + self.bias if bias_in is None else synaptic + self.bias + bias_in
        if kind == "readout":
            return total, total
        if kind == "maxpool":
            out = _max_pool(total, self.pop.pool)
            return out, self.lossless(out)
        return self.run_neurons(total, counts)

    def lossless(self, out: torch.Tensor) -> torch.Tensor:
        return out if self.mode == "dense" else _changes(out)

    def run_neurons(self, current: torch.Tensor, counts: Counts) -> tuple[torch.Tensor, torch.Tensor]:
        """Integrate, fire, reset through t; the spikes s^t and what is sent (s^t, its change, or
        DDLA's top-k of the change, the receivers holding the rest), both (T, B, n). The membrane
        is updated in place and the spikes written as floats straight from the comparison (the
        fastest form on CPU); a reset to zero multiplies by the complement of the spikes."""
        p = self.pop
        spikes = _fill_zero(torch.empty_like(current), self.start)  # every later step is written
        below = torch.empty_like(current[0])  # 1.0 where no spike: the factor of a reset to zero
        sent = _fill_zero(torch.empty_like(spikes), self.start) if self.filtered else None
        # NeuroBench's MembraneUpdates: every membrane at the first step, then those that differ
        # from the step before (after the reset, its pre- and post-fire hooks' difference)
        changed = torch.zeros(current.shape[0], dtype=torch.float64) if self.count_membranes else None
        sender = _Sender(self.select, current.shape[0], current.device) if self.filtered else None
        v = None
        for t in range(self.start, current.shape[0]):
            v_before = None if v is None or changed is None else v.clone()
            if v is None or self.resets[t]:  # a sample's first step, or a reset of a stream
                v = current[t].clone()
            else:  # a delayed reset acts on the step after the spike (snnTorch's Leaky)
                if p.reset == "delayed-zero":
                    v.mul_(below)
                v = _decay(v, p.decay, p.dv, self.fixed).add_(current[t])
                if p.reset == "delayed-subtract":
                    v.add_(spikes[t - 1], alpha=-p.v_th)
            if self.fixed:
                v.clamp_(-SATURATION, SATURATION - 1)
            torch.gt(v, p.v_th, out=spikes[t])
            if p.reset in ("zero", "delayed-zero"):
                torch.le(v, p.v_th, out=below)
            if p.reset == "zero":
                v.mul_(below)
            elif p.reset == "subtract":
                v.add_(spikes[t], alpha=-p.v_th)
            if changed is not None:
                changed[t] = v.numel() if v_before is None else float(_nonzero(v - v_before).sum())
            if sender is not None:
                sender.send(t, spikes[t], sent[t])
        _count(counts, "spikes", p.name, _step_totals(spikes))
        if changed is not None:
            _count(counts, "neurobench", "membrane_updates", changed)
        return spikes, self.sending(spikes, sent, sender, counts)

    def sending(self, spikes: torch.Tensor, sent: torch.Tensor | None, sender: _Sender | None, counts: Counts
                ) -> torch.Tensor:
        """What a spiking population sends: DDLA's selection (a neuron-local rule's pending changes
        counted: its work), or its spikes or their changes."""
        if sender is None:
            return self.lossless(spikes)
        if self.select.rule.neuron_local:
            _count(counts, "pending", self.pop.name, sender.pending)
        return sent

    def run_cuba(self, synaptic: torch.Tensor, bias_in: torch.Tensor | None, counts: Counts
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loihi's current-based LIF through t (spec.py): the current is a state, the bias goes to
        the voltage (with `bias_in`, the input written into the bias register, where there is one);
        in fixed point the arithmetic of Lava's bit-accurate `LIFReset`. Dense or lossless delta
        sending, or DDLA's top-k of the change as `run_neurons`. An update is active while the
        current state is non-zero, also in steps without input."""
        p = self.pop
        x = synaptic.double()  # the wrap-around needs exact integers past 2**24
        spikes = torch.zeros(x.shape, dtype=x.dtype, device=x.device)
        current = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
        sent = torch.zeros_like(spikes) if self.filtered else None
        sender = _Sender(self.select, x.shape[0], x.device) if self.filtered else None
        zeros = u = v = torch.zeros_like(x[0])
        bias = self.bias.double()
        for t in range(self.start, x.shape[0]):
            if self.resets[t]:
                u = v = zeros
            u = _decay(u, p.u_decay, p.du, self.fixed) + x[t]
            if self.fixed:
                u = wrap_current(u)
            v = _decay(v, p.decay, p.dv, self.fixed) + u + (bias if bias_in is None else bias + bias_in[t].double())
            if self.fixed:
                v = v.clamp(1 - SATURATION, SATURATION - 1)
            s = v > p.v_th
            v = v.masked_fill(s, 0)
            spikes[t], current[t] = s, u.bool()
            if sender is not None:
                sender.send(t, spikes[t], sent[t])
        _count(counts, "spikes", p.name, _per_step(spikes))
        _count(counts, "active", p.name, _per_step(current))  # a decaying current keeps the neuron active
        return spikes, self.sending(spikes, sent, sender, counts)

    def run_sdnn(self, synaptic: torch.Tensor, counts: Counts) -> tuple[torch.Tensor, torch.Tensor]:
        """Sigma-delta neurons through t (`ops.sigma_delta`): sigma is the current as receivers
        hold it (the sum of what the sources sent), so the messages (T, B, n) are those of Lava's
        `SigmaDelta`; what is sent is their running sum (dense) or the messages themselves (delta
        modes). A unit counts as active in a step where an input changed its sigma; its spikes are
        its non-zero messages."""
        p = self.pop
        sigma = synaptic.double()
        messages = torch.zeros_like(sigma)
        act = residue = torch.zeros_like(sigma[0])
        bias = self.bias.double()
        for t in range(self.start, sigma.shape[0]):
            messages[t], act, residue = sigma_delta(sigma[t], act, residue, bias, p.v_th, p.activation == "relu",
                                                    p.message_shift)
        _count(counts, "spikes", p.name, _per_step(messages))
        _count(counts, "active", p.name, _per_step(_changes(sigma)))
        return messages, (messages.cumsum(0) if self.mode == "dense" else messages)


class _Sender:
    """DDLA's sending of one population through a batch: what the receivers hold, the
    selection's credits, and the pending changes of each step."""

    def __init__(self, select: LayerSelection, steps: int, device: torch.device):
        self.select, self.held, self.credit = select, None, None
        self.pending = torch.zeros(steps, dtype=torch.float64, device=device)

    def send(self, t: int, spikes: torch.Tensor, out: torch.Tensor) -> None:
        """Writes what is sent at step t into `out`: every spike at the sample's first step, then
        the pending changes (spikes - held) the selection chooses; the receivers hold the rest."""
        if self.held is None:
            out.copy_(spikes)
            self.held, self.credit = spikes.clone(), torch.zeros_like(spikes)
            return
        torch.sub(spikes, self.held, out=out)
        waiting = _nonzero(out)  # 1.0 where a change is pending
        send, self.credit = self.select.step(waiting, self.credit)
        out.mul_(send)
        self.held.add_(out)
        self.pending[t] = waiting.sum()


def _delayed(x: torch.Tensor, delay: np.ndarray) -> torch.Tensor:
    """(T, B, n) with unit j's values `delay[j]` steps later (zeros before), cut at T."""
    out = torch.zeros_like(x)
    for d in np.unique(delay):
        units = torch.as_tensor(np.flatnonzero(delay == d), device=x.device)
        d = int(d)
        if d < x.shape[0]:
            out[d:, :, units] = x[: x.shape[0] - d, :, units]
    return out


def _product(a: torch.Tensor, b: torch.Tensor, frac_bits: int | None) -> torch.Tensor:
    """a * b broadcast; in fixed point (`frac_bits` given) shifted back to membrane units, toward zero."""
    prod = a * b  # float64 (compute populations): exact for factors below 2**26
    return prod if frac_bits is None else torch.trunc(prod / 2 ** frac_bits)


def _max_pool(current: torch.Tensor, pool: Op) -> torch.Tensor:
    t, b = current.shape[:2]
    x = current.reshape(t * b, *pool.in_shape)
    return F.max_pool2d(x, pool.kernel, pool.stride, pool.padding).reshape(t, b, -1)


def _last_reads(spec: NetSpec) -> dict[str, int]:
    """Per sender: the index of the last population that reads it (its values can go after that)."""
    return {proj.source: i for i, pop in enumerate(spec.populations) for proj in pop.inputs}


def _kept_values(spec: NetSpec, shared: SharedPrefixes) -> list[int]:
    """Per population: the values (per step and sample) of the shared op outputs kept while it
    runs (`_Reuse`: from a group's first use to its last)."""
    users: dict[int, list[int]] = {}  # group -> the populations applying it
    size: dict[int, int] = {}
    for (i, j), groups in shared.items():
        for k, group in groups:
            users.setdefault(group, []).append(i)
            size[group] = int(np.prod(spec.populations[i].inputs[j].ops[k].out_shape))
    kept = [0] * len(spec.populations)
    for group, pops in users.items():
        for i in range(min(pops), max(pops) + 1):
            kept[i] += size[group]
    return kept


def estimate_peak_bytes(spec: NetSpec, batch: int, shared: SharedPrefixes | None = None) -> int:
    """The simulator's peak working memory for one batch, float64 assumed (float32 where exact
    only lowers it), weights not counted: while population i runs, every sender that a later
    population still reads holds T x B values, and population i works on, per projection, a
    copy of its source, each op's output and the current with its running sum; then the summed
    current, the current with its bias, the output and what it sends; and the shared op outputs
    kept for later projections (`shared`: `spec.shared_op_prefixes(spec)`, if at hand).
    `benchmarks/sim_memory.py` compares it with the measured peak."""
    per_value = 8 * (spec.fill + spec.timesteps) * batch
    last = _last_reads(spec)
    live = {"input": int(np.prod(spec.input_shape))}
    peak = 0
    kept_values = _kept_values(spec, shared_op_prefixes(spec) if shared is None else shared)
    for i, (pop, kept) in enumerate(zip(spec.populations, kept_values)):
        work = sum(int(np.prod(proj.ops[0].in_shape)) + sum(int(np.prod(op.out_shape)) for op in proj.ops)
                   + 2 * pop.size for proj in pop.inputs) + 2 * pop.size + 2 * int(np.prod(pop.shape))
        peak = max(peak, sum(live.values()) + work + kept)
        live = {s: n for s, n in live.items() if last.get(s, -1) > i}
        live[pop.name] = int(np.prod(pop.shape))
    return peak * per_value


def device_memory(device: torch.device) -> int:
    """Bytes free now where the simulator's tensors live: the GPU's, or the host's."""
    return torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else available_memory()


def fit_batch(spec: NetSpec, wanted: int, budget: int | None = None, device: torch.device = torch.device("cpu"),
              shared: SharedPrefixes | None = None) -> int:
    """The largest batch up to `wanted` whose estimated peak fits in `budget` bytes (default: 80%
    of the memory free now on `device`); RunError naming the estimate when one sample does not fit."""
    budget = int(0.8 * device_memory(device)) if budget is None else budget
    one = estimate_peak_bytes(spec, 1, shared)
    if one > budget:
        raise RunError(f"the fast simulator needs about {gib(one)} for one sample of this network (T = "
                       f"{spec.timesteps}), {gib(budget)} is free: use fewer timesteps, a smaller network or a "
                       f"machine with more memory")
    return max(1, min(wanted, budget // one))


def simulate(spec: NetSpec, frames: np.ndarray, mode: str = "delta", selection: Selection | None = None,
             batch_size: int = 256, neurobench: bool = False, record: bool | Collection[str] = False,
             memory_budget: int | None = None, on_batch: Callable[[int], None] | None = None,
             device: str | torch.device = "cpu") -> RunResult:
    """Runs `frames` (N, T, *input_shape; fixed point: already quantized) and returns the
    per-step logits and the counts; with `neurobench`, also NeuroBench's SynapticOperations
    (`Counts.neurobench`: effective_acs, effective_macs, dense per step); with `record` (True, or
    the names of the populations to record), what each population sent (`RunResult.sent`, in its
    own units: the DDLA selection is where it is non-zero) and what it computed
    (`RunResult.activity`: spikes, a sigma-delta's messages, the readout's logits as integers in
    fixed point). The batch shrinks below `batch_size` where its
    estimated peak would not fit in `memory_budget` bytes (default: 80% of the memory free on the
    device, `fit_batch`). `on_batch` is called with the number of samples of each batch done (a
    progress bar). On a CUDA `device` the arithmetic is the same (integers exact in
    float32/float64; TF32 and cuDNN off), so the results equal the CPU's. `selection`: DDLA's
    (`ddla.selection.Selection`), needed in `ddla` mode."""
    frames, selection = check_run(spec, frames, mode, selection)
    if batch_size < 1:
        raise RunError(f"the simulator's batch must be at least 1 sample, got {batch_size}")
    device = torch.device(device)
    shared = shared_op_prefixes(spec)
    batch_size = fit_batch(spec, batch_size, memory_budget, device, shared)
    n, t_steps = frames.shape[:2]
    counts = Counts(t_steps)
    logits, recorded = [], {"sent": {}, "activity": {}}
    recording = {p.name for p in spec.populations} if record is True else set(record or ())
    # what the input sends: frames (dense) or their changes, at most twice the largest value
    input_peak = 2.0 * max(float(frames.max()), -float(frames.min())) if frames.size else 0.0
    skip = repeated_layer_uses(spec) if neurobench else None
    peaks = _sender_peaks(spec, input_peak)
    pops = [_Population(p, spec, selection, mode, peaks, skip,  # once
                        [shared.get((i, j), []) for j in range(len(p.inputs))], device)
            for i, p in enumerate(spec.populations)]
    last = _last_reads(spec)
    uses = Counter(group for groups in shared.values() for _, group in groups)  # projections per group
    with torch.no_grad(), exact_float32(), reused_heap():
        for lo in range(0, n, batch_size):  # the batch's frames are held by _run_batch only, so they can go
            batch = _run_batch(pops, _batch_input(frames[lo: lo + batch_size], spec.fill, device), mode, counts,
                               last, _Reuse(uses), peaks, recorded, recording)
            logits.append(batch.transpose(1, 0, 2))
            if on_batch is not None:
                on_batch(len(batch[0]))
    counts.samples = n
    out = np.concatenate(logits) if logits else np.zeros((0, t_steps, spec.readout.size))
    if spec.fixed:
        out = out / 2.0 ** spec.readout.frac_bits
    per_sample = {kind: {k: np.concatenate(v, axis=1).transpose(1, 0, 2) for k, v in arrays.items()}
                  for kind, arrays in recorded.items()}
    return RunResult(out, counts, per_sample["sent"], per_sample["activity"])


def _batch_input(frames: np.ndarray, fill: int, device: torch.device) -> torch.Tensor:
    """A batch's frames (B, T, ...) as the input's values (fill + T, B, n_in) on the device,
    zero in the pipeline fill."""
    x = torch.as_tensor(frames).flatten(2).transpose(0, 1)
    return torch.cat([x.new_zeros(fill, *x.shape[1:]), x]).to(device) if fill else x.contiguous().to(device)


def _run_batch(pops: list[_Population], x: torch.Tensor, mode: str, counts: Counts, last: dict[str, int],
               reuse: _Reuse, sender_peaks: dict[str, float],
               record: dict[str, dict[str, list[np.ndarray]]] | None = None, recording: set[str] = frozenset()
               ) -> np.ndarray:
    """One batch (fill + T, B, n_in), population by population over all timesteps; the logits (T,
    B, classes). What a sender sent is dropped after `last[sender]`, the last population reading
    it. `sender_peaks`: the bounds of `_sender_peaks`; a compute population's is tightened to
    what it sent in this batch, so that its readers run in float32 where those values allow (the
    worst case of a max pool behind a conv is far above what it sends). `record` collects per
    batch what each population of `recording` computed ("activity") and sent ("sent"), (T, B, n):
    the sample's steps, not the fill's."""
    sent = {"input": _sending(x if mode == "dense" else _changes(x), "input", counts)}
    steps = counts.timesteps
    peaks = dict(sender_peaks)
    del x
    for i, pop in enumerate(pops):
        pop.use_peaks(peaks)
        out, values = pop.output(pop.input_currents(sent, counts, reuse), counts)
        measured = pop.measured_peak(out)
        if measured is not None:
            peaks[pop.pop.name] = min(peaks[pop.pop.name], measured)
        recorded = pop.pop.name in recording
        if recorded:
            record["activity"].setdefault(pop.pop.name, []).append(out[-steps:].cpu().numpy())
        if pop.pop.kind == "readout":
            return out[-steps:].double().cpu().numpy()
        sent = {s: v for s, v in sent.items() if last.get(s, -1) > i}
        sent[pop.pop.name] = _sending(values, pop.pop.name, counts)
        if recorded:
            record["sent"].setdefault(pop.pop.name, []).append(values[-steps:].cpu().numpy())
    raise AssertionError("a NetSpec ends with its readout")


def _sending(values: torch.Tensor, name: str, counts: Counts) -> tuple[torch.Tensor, torch.Tensor]:
    """What a sender sends (T, B, n) and its non-zero values per step and position (T, n),
    counted once for its events and the synaptic ops of all its projections."""
    nonzero = _nonzero(values).sum(1)  # at most B per position: exact
    _count(counts, "events", name, nonzero.sum(1, dtype=torch.float64))
    return values, nonzero
