"""The deployable network: ordered populations of neurons, each fed by projections (chains of
linear ops) from other populations or from the input. Numpy only, no torch: the Lava worker,
the fast simulator and the cost model all read this, and `ir/` writes it. The arithmetic on
its ops and Loihi's integer registers is in `ops.py`.

Semantics (shared with `sim.py` and `lava_stages.py`), one sample, timestep t = 1..T:

    current_P^t = sum_p  ops_p(x_src^t) * 2**shift_p  + bias_P
    v^t         = decay(v^{t-1}) + current_P^t            (fixed point: saturated to 24 bit)
    s^t         = v^t > v_th ;  v^t reset to 0 or by subtracting v_th where s^t = 1

A projection may write the input into its target's bias register instead of sending it
through synapses (`to_bias`, lava-dl's PilotNet: the frame as the input layer's bias,
`in_layer.neuron.bias_mant`): the host writes it, so it has no synapses and no synaptic ops,
and a cuba target adds it to the voltage with its bias, not to its current. Such a projection
reads the input and is its target's only one.

A `cuba` population is Loihi's current-based LIF (Lava's `LIF`, lava-dl's CUBA): the current
is a state of its own, and the bias goes to the voltage:

    u^t = decay_u(u^{t-1}) + (current_P^t - bias_P)        (the synaptic part; fixed point: wraps at 24 bits)
    v^t = decay(v^{t-1}) + u^t + bias_P                    (fixed point: clipped to +-(2**23 - 1))
    s^t = v^t > v_th ;  v^t reset to 0 where s^t = 1 (u is not reset)

A cuba population may delay each unit's synaptic current by its own number of steps
(`input_delay`, lava-dl's synaptic delays: Loihi's dendritic delay slots), the bias not:

    u^t = decay_u(u^{t-1}) + (current_P - bias_P)^{t - input_delay}     (zero before step 1)

A *delayed* reset (`delayed-zero`, `delayed-subtract`: snnTorch's `Leaky`, whose reset is
computed from the previous step's membrane) leaves v^t as it is and acts at step t + 1:
`v^{t+1} = decay(v^t, zeroed where s^t) + current` or `decay(v^t) + current - v_th s^t`.

A population may start before its first input arrives (`fill` steps before step 0: lava-dl's
pipeline fill, each sample being one fresh Lava run): a layer whose input is k synapses behind
the frame integrates its bias alone, and what its sources send in their own fill, for k steps.
Those steps are simulated (step -fill to -1), not counted.

A stream of inferences (`NetSpec.reset_interval` N > 0, lava-dl's `reset_interval`): before
step t (0-based, negative in the fill) of a sample with t % N == reset_offset % N, every
neuron's state (v, and a cuba population's u) returns to zero, so the frames of one stream are
independent inferences. What receivers hold of a sender's deltas is transmission state, not
neuron state: it stays, and the sender's own changes bring it back (dense and delta stay
equal). lava-dl resets layer k at its own offset (reset_offset + 1 + k, one step later per
synapse); in the aligned steps of a NetSpec that is one step for every population.

An `sdnn` population is a sigma-delta neuron (lava-dl's SDNN, Lava's `SigmaDelta`): it
accumulates its input (sigma: the current as every receiver holds it; `input_delay` steps late
per unit where it has delays, as a cuba population's), applies its activation
(ReLU, or the identity for lava-dl's input `Delta`), and sends the change of the activation once
it reaches the threshold, keeping what it did not send as a residue (`sigma_delta`). What it
sends is graded: in fixed point the change shifted right by `message_shift` (Lava's state_exp,
rounded toward minus infinity). Its output is the sum of what it sent (what receivers
reconstruct): dense mode sends that every step, delta mode its messages; the currents are equal.

The readout population has no threshold: its current is the logits of the step. Every
projection holds exactly one weighted op (conv2d, linear, or a scalar `scale`), so fixed point
needs one 8-bit mantissa tensor and one shift per projection.

Two stateless *compute* populations carry what is not a linear map of the spikes (the
Spike-driven Transformer's max pooling and attention products). Each rebuilds its inputs from
what it received (in delta modes: the held sum of the deltas, exact because the projections are
linear), computes its output and sends it like any population (in delta modes: its change):

    maxpool:  out^t = maxpool(current^t)                  (window `pool`; graded, or binary on spikes)
    product:  out^t = current_0^t * current_1^t            (two projections, broadcast; fixed point:
                                                            the product >> frac_bits, toward zero)

No Loihi synapse or neuron model computes them, so the Lava builder refuses them (the fast
simulator runs them) and the cost model names them as mapping problems.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .ops import SATURATION, op_gain, projection_fanout, reset_due

OP_KINDS = ("conv2d", "linear", "sumpool2d", "flatten", "scale")
WEIGHTED = ("conv2d", "linear", "scale")
NEURON_KINDS = ("if", "lif", "cuba")  # spiking
SIGMA_DELTA_KINDS = ("sdnn",)        # graded
COMPUTE_KINDS = ("maxpool", "product")
POPULATION_KINDS = NEURON_KINDS + SIGMA_DELTA_KINDS + COMPUTE_KINDS + ("readout",)
ACTIVATIONS = ("relu", "identity")  # of a sigma-delta population
INPUT_PAYLOAD_BITS = 9    # a signed 8-bit input value or its change (quant.INPUT_FRAC_BITS = 8)
SPEC_FORMAT = "ddla-neuro/netspec"
SPEC_VERSION = 3


@dataclass
class Op:
    """A bias-free linear op on one sample: shapes exclude the batch. conv2d/sumpool2d work on
    (C, H, W); `stride`, `padding`, `kernel` are (rows, cols). `layer` names the graph node the op
    comes from: residual paths unrolled into several projections share it (one layer of the
    source model, e.g. for NeuroBench's count)."""

    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    kernel: tuple[int, int] = (1, 1)
    layer: str = ""

    @cached_property
    def fanout(self) -> np.ndarray:
        """Synaptic ops caused by one non-zero value at each input position of this op alone."""
        return projection_fanout([self])

    @cached_property
    def gain(self) -> float:
        """The largest factor by which this op can grow the largest input magnitude
        (`ops.op_gain`): every exactness bound of the simulator and the Lava models uses it, so
        it is computed once, not on every run."""
        return op_gain(self)

    @property
    def macs(self) -> int:
        """Multiply-accumulates on a dense input (one timestep), the literature's FLOPs: the
        fan-out summed for a conv or linear op, 0 for the others."""
        return int(self.fanout.sum()) if self.kind in ("conv2d", "linear") else 0


@dataclass
class Projection:
    source: str          # "input" or the name of a population
    ops: list[Op]
    delay: int = 1       # synaptic delay in steps (Lava: 1, more to align residual paths)
    shift: int = 0       # fixed point: left shift of the weighted op's output
    to_bias: bool = False  # the input written into the target's bias register (no synapses)

    @property
    def weighted(self) -> Op:
        return next(op for op in self.ops if op.kind in WEIGHTED)

    @cached_property
    def fanout(self) -> np.ndarray:
        """Synaptic ops caused by one non-zero value at each input position (shape
        `ops[0].in_shape`): computed once, read by the simulator, the Lava synapses and the cost.
        Zero for a bias write."""
        if self.to_bias:
            return np.zeros(self.ops[0].in_shape, dtype=np.int64)
        return projection_fanout(self.ops)


@dataclass(frozen=True)
class Sends:
    """What a sender transmits: binary spikes (in delta modes: their signed changes, +-1) or
    graded values. Decided once, when the spec is built (`ir`), and scaled by `quant`; the
    simulator, the Lava runner and the cost model read it, none infers it again."""

    graded: bool = False   # multi-bit values (the analog input, a max pool of currents, a product)
    bits: int = 0          # payload bits of one graded value or of its change
    frac_bits: int = 0     # fixed point: the values are integers in units of 2**-frac_bits


SPIKES = Sends()  # binary spikes
RESETS = ("zero", "subtract", "delayed-zero", "delayed-subtract")


@dataclass
class Population:
    name: str
    shape: tuple[int, ...]
    kind: str                  # if | lif | cuba | sdnn | maxpool | product | readout
    bias: np.ndarray           # per unit (shape `current_shape`), in membrane units
    inputs: list[Projection]
    v_th: float = 1.0          # fixed point: an integer in membrane units
    decay: float = 1.0         # float: v <- decay * v ; fixed point uses dv
    reset: str = "zero"        # one of RESETS
    u_decay: float = 1.0       # cuba, float: u <- u_decay * u + current
    du: int = 0                # cuba, fixed point: 12-bit current decay (Loihi's register plus its offset 1)
    input_delay: np.ndarray | None = None  # cuba, sdnn: steps each unit's synaptic current arrives late (0..62)
    dv: int = 0                # fixed point: 12-bit decay constant
    frac_bits: int = 0         # fixed point: membrane units are 2**-frac_bits
    depth: int = 0             # steps from the input to this population in Lava (one per synapse)
    pool: Op | None = None     # maxpool: the window ("maxpool2d", from `current_shape` to `shape`)
    fill: int = 0              # steps it runs before step 0 (lava-dl's pipeline fill, spec.py)
    host: bool = False         # read by the host, not on the chip (a netx network's readout of its last layer)
    activation: str = "relu"   # sdnn: relu or identity (ACTIVATIONS)
    message_shift: int = 0     # sdnn, fixed point: right shift of each sent change (Lava's state_exp)
    sends: Sends = field(kw_only=True)  # what it transmits (the readout: graded logits, sent nowhere)

    @property
    def current_shape(self) -> tuple[int, ...]:
        """Shape of the summed current: `shape`, or the max pool's input."""
        return tuple(self.pool.in_shape) if self.pool is not None else tuple(self.shape)

    @property
    def size(self) -> int:
        """Units that integrate a current (neurons; for a max pool, its input positions)."""
        return int(np.prod(self.current_shape))


@dataclass
class NetSpec:
    input_shape: tuple[int, ...]
    timesteps: int
    encoding: str                            # the input code: direct, poisson or events (`snn.encoders`)
    populations: list[Population]            # topological order; the last one is the readout
    fixed: bool = False
    input_sends: Sends = field(kw_only=True)  # what the input sends (fixed point: x * 2**frac_bits)
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # DDLA sensitivity per population
    meta: dict = field(default_factory=dict)
    reset_interval: int = 0                  # steps per inference of a stream (0: one inference per sample)
    reset_offset: int = 0                    # the step of a sample whose phase the resets take

    @property
    def readout(self) -> Population:
        return self.populations[-1]

    @property
    def silent_readout(self) -> bool:
        """Whether the host reads a cuba layer that never fires in fixed point (its threshold at or
        above the voltage's saturation: lava-dl's output integrator, PilotNet's steering neuron):
        lava-dl's host reads its voltage, which is not the readout here, so its logits carry no class."""
        source = self.populations[-2] if self.readout.host and len(self.populations) > 1 else None
        return bool(self.fixed and source is not None and source.kind == "cuba" and source.v_th >= SATURATION - 1)

    @property
    def senders(self) -> list[Population]:
        """Every population that transmits (all but the readout)."""
        return self.populations[:-1]

    @property
    def spiking(self) -> list[Population]:
        """The spiking neuron populations (those DDLA filters)."""
        return [p for p in self.populations if p.kind in NEURON_KINDS]

    @property
    def sigma_delta(self) -> list[Population]:
        """The sigma-delta populations (graded senders with a neuron state)."""
        return [p for p in self.populations if p.kind in SIGMA_DELTA_KINDS]

    def resets(self, t: int) -> bool:
        """Whether every neuron's state returns to zero before step t (0-based) of a sample."""
        return reset_due(t, self.reset_interval, self.reset_offset)

    @property
    def fill(self) -> int:
        """The longest pipeline fill of a population: steps simulated before step 0."""
        return max(p.fill for p in self.populations)

    @property
    def inferences(self) -> float:
        """Inferences per sample: T / reset_interval in a stream, else 1."""
        return self.timesteps / self.reset_interval if self.reset_interval else 1.0

    @property
    def compute(self) -> list[Population]:
        """The max-pool and product populations (no Loihi mapping)."""
        return [p for p in self.populations if p.kind in COMPUTE_KINDS]

    @property
    def latency(self) -> int:
        """Steps from an input frame to its logits in Lava (the readout's depth)."""
        return self.readout.depth

    def population(self, name: str) -> Population:
        return next(p for p in self.populations if p.name == name)

    def sends(self, name: str) -> Sends:
        """What a sender ("input" or a population) transmits."""
        return self.input_sends if name == "input" else self.population(name).sends

    @cached_property
    def targets(self) -> dict[str, list[str]]:
        """Per sender ("input" and every population): the populations its projections reach
        (a bias write reaches none: the host writes the register)."""
        out: dict[str, list[str]] = {"input": [], **{p.name: [] for p in self.populations}}
        for pop in self.populations:
            for proj in pop.inputs:
                if not proj.to_bias:
                    out[proj.source].append(pop.name)
        return out

    def depth_of(self, source: str) -> int:
        """Depth of a projection's source: 0 for the input."""
        return 0 if source == "input" else self.population(source).depth


class SpecError(ValueError):
    pass


def assign_depths(populations: list[Population]) -> None:
    """Depth of a population = the longest synapse path from the input; each projection's
    delay makes all paths into a population arrive in the same step (residual shortcuts)."""
    depth = {"input": 0}
    for pop in populations:
        if not pop.inputs:
            raise SpecError(f"population {pop.name!r} has no inputs")
        for proj in pop.inputs:
            if proj.source not in depth:
                raise SpecError(f"population {pop.name!r} reads {proj.source!r}, which comes later or does not exist")
        pop.depth = max(depth[p.source] for p in pop.inputs) + 1
        for proj in pop.inputs:
            proj.delay = pop.depth - depth[proj.source]
        depth[pop.name] = pop.depth


def window_op(kind: str, in_shape: tuple[int, ...], channels: int, kernel, stride, padding,
              weight: np.ndarray | None = None) -> Op:
    """A conv2d, sum pool or max pool on (C, H, W) with its output shape; kernel, stride and
    padding are an int or a (rows, cols) pair."""
    k, s, p = (tuple(int(v) for v in np.broadcast_to(np.asarray(a, dtype=np.int64).ravel(), (2,)))
               for a in (kernel, stride, padding))
    _, h, w = in_shape
    out = (channels, (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1)
    return Op(kind, in_shape, out, weight, s, p, k)


def projection_key(source: str, target: str) -> str:
    """The counters' name of the projection from `source` ("input" or a population) to `target`."""
    return f"{source}>{target}"


def projection_ends(key: str) -> tuple[str, str]:
    """(source, target) of a `projection_key`."""
    source, target = key.split(">", 1)
    return source, target


def repeated_layer_uses(spec: NetSpec) -> set[tuple[str, int, int]]:
    """(target, projection index, op index) of each op that repeats a layer (same source, same
    `layer`) an earlier projection applies already: a residual sum unrolled into several
    projections. A count of the source model's layers (NeuroBench, the papers' estimate) skips them."""
    seen, repeats = set(), set()
    for pop in spec.populations:
        for j, proj in enumerate(pop.inputs):
            for k, op in enumerate(proj.ops):
                key = (proj.source, op.layer)
                if op.layer and key in seen:
                    repeats.add((pop.name, j, k))
                seen.add(key)
    return repeats


SharedPrefixes = dict[tuple[int, int], list[tuple[int, int]]]  # (population, projection) -> [(op, group)]


def shared_op_prefixes(spec: NetSpec) -> SharedPrefixes:
    """Per (population index, projection index): (op index k, group) for each prefix ops[:k+1]
    that ends in a conv or linear op and that another projection applies too, to the same
    source with equal weights: a residual sum unrolled into several projections (the
    Spike-driven Transformer's stream) repeats a layer on the same values. The prefixes of one
    group give the same output, so a simulator may compute it once per batch."""
    groups: dict[tuple, list[list]] = {}  # a signature -> [(prefix weights, [(i, j, k), ...]), ...]
    for i, pop in enumerate(spec.populations):
        for j, proj in enumerate(pop.inputs):
            for k, op in enumerate(proj.ops):
                if op.kind not in ("conv2d", "linear"):
                    continue
                ops = proj.ops[:k + 1]
                signature = (proj.source,) + tuple((o.kind, o.layer, o.in_shape, o.out_shape, o.stride, o.padding,
                                                    o.kernel) for o in ops)
                weights = [o.weight for o in ops]
                same = groups.setdefault(signature, [])
                match = next((g for g in same if all(_equal(a, b) for a, b in zip(g[0], weights))), None)
                if match is None:
                    same.append([weights, []])
                    match = same[-1]
                match[1].append((i, j, k))
    shared: SharedPrefixes = {}
    uses = [users for same in groups.values() for _, users in same if len(users) > 1]
    for group, users in enumerate(uses):
        for i, j, k in users:
            shared.setdefault((i, j), []).append((k, group))
    return shared


def _equal(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return a is b or (a is not None and b is not None and np.array_equal(a, b))


# --- (de)serialisation: JSON header + npz arrays, no pickle ------------------------------------

def _ints(v) -> list[int]:
    return [int(x) for x in v]


def _op_header(op: Op) -> dict:
    return {"kind": op.kind, "in_shape": _ints(op.in_shape), "out_shape": _ints(op.out_shape),
            "stride": _ints(op.stride), "padding": _ints(op.padding), "kernel": _ints(op.kernel), "layer": op.layer}


def _op_from_header(o: dict, weight: np.ndarray | None = None) -> Op:
    return Op(kind=o["kind"], in_shape=tuple(o["in_shape"]), out_shape=tuple(o["out_shape"]), weight=weight,
              stride=tuple(o["stride"]), padding=tuple(o["padding"]), kernel=tuple(o["kernel"]),
              layer=o.get("layer", ""))


def to_arrays(spec: NetSpec) -> tuple[dict, dict[str, np.ndarray]]:
    arrays: dict[str, np.ndarray] = {}
    pops = []
    for i, pop in enumerate(spec.populations):
        arrays[f"p{i}.bias"] = np.asarray(pop.bias)
        if pop.input_delay is not None:
            arrays[f"p{i}.input_delay"] = np.asarray(pop.input_delay, dtype=np.int64)
        inputs = []
        for j, proj in enumerate(pop.inputs):
            ops = []
            for k, op in enumerate(proj.ops):
                if op.weight is not None:
                    arrays[f"p{i}.in{j}.op{k}"] = np.asarray(op.weight)
                ops.append(_op_header(op))
            inputs.append({"source": proj.source, "delay": int(proj.delay), "shift": int(proj.shift),
                           "to_bias": proj.to_bias, "ops": ops})
        pops.append({"name": pop.name, "shape": _ints(pop.shape), "kind": pop.kind, "v_th": pop.v_th,
                     "decay": pop.decay, "reset": pop.reset, "dv": int(pop.dv), "frac_bits": int(pop.frac_bits),
                     "u_decay": pop.u_decay, "du": int(pop.du), "activation": pop.activation,
                     "message_shift": int(pop.message_shift),
                     "depth": int(pop.depth), "fill": int(pop.fill), "host": pop.host, "inputs": inputs,
                     "sends": asdict(pop.sends),
                     "pool": None if pop.pool is None else _op_header(pop.pool)})
    for name, s in spec.scores.items():
        arrays[f"scores.{name}"] = np.asarray(s, dtype=np.float32)
    header = {"format": SPEC_FORMAT, "version": SPEC_VERSION, "input_shape": _ints(spec.input_shape),
              "timesteps": spec.timesteps, "encoding": spec.encoding, "fixed": spec.fixed,
              "input_sends": asdict(spec.input_sends), "meta": spec.meta, "populations": pops,
              "scores": sorted(spec.scores), "reset_interval": spec.reset_interval, "reset_offset": spec.reset_offset}
    return header, arrays


def from_arrays(header: dict, arrays: dict[str, np.ndarray]) -> NetSpec:
    if header.get("format") != SPEC_FORMAT or header.get("version") != SPEC_VERSION:
        raise SpecError("not a ddla-neuro network spec of this version")
    pops = []
    for i, p in enumerate(header["populations"]):
        if p["kind"] not in POPULATION_KINDS:
            raise SpecError(f"population {p['name']!r} has unknown kind {p['kind']!r}")
        inputs = []
        for j, proj in enumerate(p["inputs"]):
            ops = [_op_from_header(o, arrays.get(f"p{i}.in{j}.op{k}")) for k, o in enumerate(proj["ops"])]
            inputs.append(Projection(proj["source"], ops, proj["delay"], proj["shift"], proj["to_bias"]))
        pool = p.get("pool")
        pool = None if pool is None else _op_from_header(pool)
        pops.append(Population(name=p["name"], shape=tuple(p["shape"]), kind=p["kind"], bias=arrays[f"p{i}.bias"],
                               inputs=inputs, v_th=p["v_th"], decay=p["decay"], reset=p["reset"], dv=p["dv"],
                               u_decay=p["u_decay"], du=p["du"], input_delay=arrays.get(f"p{i}.input_delay"),
                               frac_bits=p["frac_bits"], depth=p["depth"], fill=p["fill"], host=p["host"], pool=pool,
                               activation=p["activation"],
                               message_shift=p["message_shift"], sends=Sends(**p["sends"])))
    return NetSpec(tuple(header["input_shape"]), header["timesteps"], header["encoding"], pops, header["fixed"],
                   {n: arrays[f"scores.{n}"] for n in header["scores"]}, header["meta"],
                   header["reset_interval"], header["reset_offset"], input_sends=Sends(**header["input_sends"]))


def save_spec(path: str | Path, spec: NetSpec, **extra: np.ndarray) -> None:
    """Writes the spec (and extra arrays, e.g. the input frames of a job) as one .npz."""
    header, arrays = to_arrays(spec)
    np.savez(path, __header__=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays, **extra)


def load_spec(path: str | Path) -> tuple[NetSpec, dict[str, np.ndarray]]:
    """The spec and the extra arrays saved with it."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(arrays.pop("__header__").tobytes().decode())
    spec = from_arrays(header, arrays)
    own = {k for k in arrays if k.startswith(("p", "scores.")) and "." in k}
    return spec, {k: v for k, v in arrays.items() if k not in own}
