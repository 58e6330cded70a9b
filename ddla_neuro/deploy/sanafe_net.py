"""Our NetSpec as a SANA-FE network on SANA-FE's Loihi architecture, for the cross-check of the
cost model (SANA-FE: Boyle et al., IEEE TCAD 44(8), 2025, an architecture simulator whose Loihi
model, `sanafe/examples/loihi.yaml`, is fitted to silicon).

The export keeps our function exactly, in dense mode, for fixed-point IF/LIF populations that
reset to zero or by subtraction:

* SANA-FE's Loihi soma computes `v = bias + trunc(v * leak_decay) + input` and fires on
  `v > threshold`, truncating `v` to a multiple of 1/64. One membrane integer of ours is 1/64
  there, so its truncation is our rounding toward zero, and weights, thresholds and biases
  (integers over 64) are exact in its float arithmetic.
* SANA-FE has no graded messages. Binary input spikes come from its input units (one per
  input position, 0 J each). An analog input (direct encoding) is the same every step, so the
  first layer's input current is added to its bias, and no input messages are sent.
* Neurons sit on the cores our cost model chose (`cost.map_network`), in contiguous blocks;
  core c is SANA-FE's tile c // 4, core c % 4. Input and bias units (below) count against a
  core's 1,024 neurons there, so they take the cores after the network's.
* Each hop through a synapse costs SANA-FE one step: a population `d` synapses from the input
  spikes `d` steps late, so a sample runs `T + depth` steps and the spikes are realigned.
* A bias on SANA-FE's soma is added at every step of the run, so a population would integrate
  it alone while the pipeline fills and go on after its sample (Loihi resets each layer as its
  first input arrives; SANA-FE has no resets). A neuron population's bias comes instead from a
  bias unit: an input unit on its first core that fires during the population's T steps, with
  the biases as weights. Its synapse events and messages are SANA-FE's, not the chip's; the run
  records them (`bias_events`) for the cross-check to take out.

The readout is a population of SANA-FE neurons that never fire (`leak_decay` 0: the step's
current, as ours). Max-pool and product populations, CUBA neurons, delayed resets and float
specs are refused in one line.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np

from ..errors import UserError
from .cost import Mapping, Terms, cost_run, map_network
from .profiles import Profile
from .sim import simulate
from .spec import DECAY_BITS, NetSpec, Population, Projection, apply_ops

UNIT = 64              # SANA-FE truncates the potential to multiples of 1/64: one of our integers
CORES_PER_TILE = 4     # loihi.yaml: loihi_core[0..3] per tile
INPUT_UNITS_PER_CORE = 1024  # loihi.yaml: loihi_inputs[0..1023]
NEVER = 3.0e38         # a threshold the readout never reaches (float32 range)
SANAFE_TERMS = ("synapse", "dendrite", "soma", "network")


class SanafeError(UserError):
    pass


def require_sanafe():
    """The sanafe package, or one line saying how to install it."""
    try:
        import sanafe
    except ImportError:
        raise SanafeError("the SANA-FE cross-check needs the sanafe package: pip install --no-deps sanafe==2.2.9 "
                          "(make setup installs it)") from None
    return sanafe


def check_exportable(spec: NetSpec) -> None:
    """One line for what the export cannot carry exactly."""
    if not spec.fixed:
        raise SanafeError("the SANA-FE export needs the fixed-point spec (quantize it first)")
    for pop in spec.populations:
        if pop.kind not in ("if", "lif", "readout"):
            raise SanafeError(f"layer {pop.name} is a {pop.kind} population: SANA-FE's Loihi soma runs IF/LIF only")
        if pop.reset not in ("zero", "subtract"):
            raise SanafeError(f"layer {pop.name} resets {pop.reset!r}: SANA-FE resets at once (hard or soft)")
        if any(proj.delay != 1 for proj in pop.inputs):
            raise SanafeError(f"layer {pop.name} sums paths of different lengths (a residual shortcut): the "
                              f"export has no synaptic delays to align them")
        for proj in pop.inputs:
            if proj.source != "input" and spec.sends(proj.source).graded:
                raise SanafeError(f"layer {proj.source} sends graded values: SANA-FE has no graded messages")
    if spec.input_sends.graded and spec.encoding != "direct":
        raise SanafeError("graded input that changes over time: SANA-FE has no graded messages")


def projection_edges(proj: Projection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source index, target index, weight) of the projection's composed linear map (a pool then
    conv is one synapse matrix), from the ops applied to each one-hot input; weight times the
    projection's shift."""
    n_in = int(np.prod(proj.ops[0].in_shape))
    columns = []
    for i in range(n_in):
        one_hot = np.zeros(n_in)
        one_hot[i] = 1.0
        columns.append(apply_ops(proj.ops, one_hot).reshape(-1))
    matrix = np.stack(columns, axis=1) * 2.0 ** proj.shift  # (n_out, n_in)
    dst, src = np.nonzero(matrix)
    return src, dst, matrix[dst, src]


@dataclass
class SanafeRun:
    """One sample through SANA-FE: each spiking population's spikes (T, n) realigned to our
    steps, the energy of the whole run by SANA-FE's terms (J), and per SANA-FE step its energy
    and simulated time (the run has `fill` more steps than the sample: the pipeline)."""

    spikes: dict[str, np.ndarray]
    energy: dict[str, float]
    step_energy: np.ndarray
    step_time: np.ndarray
    fill: int
    bias_events: dict[str, tuple[int, int]]  # per population fed by a bias unit: its (synapse events, messages)
    wall_s: float


class _Builder:
    def __init__(self, sanafe, spec: NetSpec, mapping: Mapping):
        self.sanafe, self.spec, self.mapping = sanafe, spec, mapping
        self.arch = sanafe.load_loihi()
        self.net = sanafe.Network()
        self.groups = {}
        self.bias_events: dict[str, tuple[int, int]] = {}
        self.spare = sum(mapping.cores.values())  # the first core after the network's

    def core(self, index: int):
        return self.arch.tiles[index // CORES_PER_TILE].cores[index % CORES_PER_TILE]

    def add_input(self, frames: np.ndarray) -> None:
        """Input units replaying binary input spikes (T, n_in)."""
        n = frames.shape[1]
        group = self.net.create_neuron_group("input", n, model_attributes={"spikes": []})
        for i in range(n):
            group[i].set_attributes(soma_hw_name=f"loihi_inputs[{i % INPUT_UNITS_PER_CORE}]",
                                    model_attributes={"spikes": [int(s) for s in frames[:, i]]})
            group[i].map_to_core(self.core(self.spare + i // INPUT_UNITS_PER_CORE))
        self.groups["input"] = group
        self.spare += -(-n // INPUT_UNITS_PER_CORE)

    def add_bias_unit(self, pop: Population, bias: np.ndarray, first_step: int, steps: int, total: int) -> None:
        """An input unit on the spare core firing at SANA-FE steps first_step .. first_step +
        steps - 1 (1-based), its spikes landing one step later, with the biases as weights."""
        train = [0] * total
        train[first_step - 1: first_step - 1 + steps] = [1] * steps
        unit = self.net.create_neuron_group(f"bias:{pop.name}", 1, model_attributes={"spikes": train})
        unit[0].set_attributes(soma_hw_name=f"loihi_inputs[{len(self.bias_events)}]")
        unit[0].map_to_core(self.core(self.spare))
        target, targets = self.groups[pop.name], np.flatnonzero(bias)
        for j in targets:
            unit[0].connect_to_neuron(target[int(j)], {"w": float(bias[j]) / UNIT})
        cores = len(set(self.mapping.cores[pop.name] * targets // pop.size))  # one message per target core
        self.bias_events[pop.name] = (steps * targets.size, steps * cores)

    def add_population(self, pop: Population, bias: np.ndarray) -> None:
        readout = pop.kind == "readout"
        attrs = {"threshold": NEVER if readout else pop.v_th / UNIT,
                 "leak_decay": 0.0 if readout else 1.0 - pop.dv / 2 ** DECAY_BITS,
                 "reset_mode": "none" if readout else ("hard" if pop.reset == "zero" else "soft"), "reset": 0.0}
        group = self.net.create_neuron_group(pop.name, pop.size, model_attributes=attrs)
        synapse = "loihi_conv_synapse" if pop.inputs[0].weighted.kind == "conv2d" else "loihi_dense_synapse"
        cores, first = self.mapping.cores[pop.name], self.mapping.first_core[pop.name]
        for i in range(pop.size):
            group[i].set_attributes(soma_hw_name="loihi_lif", default_synapse_hw_name=synapse,
                                    dendrite_hw_name="loihi_dendrites", log_spikes=not readout,
                                    model_attributes={"bias": float(bias[i]) / UNIT})
            group[i].map_to_core(self.core(first + i * cores // pop.size))
        self.groups[pop.name] = group

    def connect(self, pop: Population, proj: Projection) -> None:
        src, dst, w = projection_edges(proj)
        source, target = self.groups[proj.source], self.groups[pop.name]
        for i in np.unique(src):
            sel = src == i
            for j, weight in zip(dst[sel], w[sel]):
                source[int(i)].connect_to_neuron(target[int(j)], {"w": float(weight) / UNIT})


def run_sanafe(spec: NetSpec, frames: np.ndarray, mapping: Mapping, timing_model: str = "simple") -> SanafeRun:
    """One sample (frames (T, ...) as the fixed-point network receives them) through SANA-FE, in
    dense mode, on the cores `mapping` gives each population."""
    sanafe = require_sanafe()
    check_exportable(spec)
    steps = spec.timesteps
    frames = np.asarray(frames, dtype=np.float64).reshape(steps, -1)
    start = time.perf_counter()
    b = _Builder(sanafe, spec, mapping)
    analog = spec.input_sends.graded
    if analog:
        if not np.all(frames == frames[0]):
            raise SanafeError("the analog input changes over time: SANA-FE has no graded messages")
    else:
        b.add_input(frames)
    fill = spec.latency
    for pop in spec.populations:
        bias = np.asarray(pop.bias, dtype=np.float64).reshape(-1)
        if analog:  # the first layer's constant input current joins its bias
            bias = bias + sum(apply_ops(p.ops, frames[0]).reshape(-1) * 2.0 ** p.shift
                              for p in pop.inputs if p.source == "input")
        unit = pop.kind != "readout" and bias.any()  # the readout integrates nothing: its bias stays on the soma
        b.add_population(pop, np.zeros_like(bias) if unit else bias)
        if unit:
            b.add_bias_unit(pop, bias, pop.depth, steps, steps + fill)
    for pop in spec.populations:
        for proj in pop.inputs:
            if not (analog and proj.source == "input"):
                b.connect(pop, proj)
    chip = sanafe.SpikingChip(b.arch)
    chip.load(b.net)
    res = chip.sim(steps + fill, timing_model=timing_model, spike_trace=True, perf_trace=True)
    wall = time.perf_counter() - start
    lag = {pop.name: pop.depth for pop in spec.populations}
    return SanafeRun(_spikes(spec, res["spike_trace"], lag, steps), {k: float(res["energy"][k]) for k in
                                                                     ("total", *SANAFE_TERMS)},
                     np.asarray(res["perf_trace"]["total_energy"], dtype=np.float64),
                     np.asarray(res["perf_trace"]["sim_time"], dtype=np.float64), fill, b.bias_events, wall)


def _spikes(spec: NetSpec, trace: list, lag: dict[str, int], steps: int) -> dict[str, np.ndarray]:
    """Per spiking population, its spikes (steps, n): SANA-FE step k + lag holds our step k."""
    out = {pop.name: np.zeros((steps, pop.size)) for pop in spec.spiking}
    for k, fired in enumerate(trace):
        for neuron in fired:
            name, index = _address(neuron)
            if name in out and 0 <= k - lag[name] < steps:
                out[name][k - lag[name], index] = 1.0
    return out


def _address(neuron) -> tuple[str, int]:
    """(group name, index) of a neuron in a SANA-FE spike trace."""
    return str(neuron.group_name), int(neuron.neuron_offset)


def cross_check(spec: NetSpec, frames: np.ndarray, profile: Profile) -> dict:
    """Our cost of a dense run of `frames` (N, T, ...) on `profile` next to SANA-FE's of the same
    samples on its Loihi model, per sample: energy by term (ours without static power, which
    SANA-FE does not model), latency and wall time. SANA-FE runs T + depth steps (its pipeline)
    and counts its bias units' synapse events and messages, which are reported beside it."""
    require_sanafe()
    start = time.perf_counter()
    ours = cost_run(spec, simulate(spec, frames, "dense").counts, profile, {})["totals"]
    wall_ours = time.perf_counter() - start
    mapping = map_network(spec, {}, Terms(profile))
    runs = [run_sanafe(spec, sample, mapping) for sample in frames]
    mean = lambda f: float(np.mean([f(r) for r in runs]))  # noqa: E731
    energy = {"ours": ours["dynamic_energy_j"], "sanafe": mean(lambda r: r.energy["total"])}
    latency = {"ours": ours["latency_s"], "sanafe": mean(lambda r: float(r.step_time.sum()))}
    return {"tool": f"sanafe {version('sanafe')}", "architecture": "sanafe/examples/loihi.yaml",
            "mode": "dense", "samples": len(runs), "steps": spec.timesteps, "sanafe_steps": spec.timesteps + runs[0].fill,
            "energy_j": {**energy, "ratio": energy["ours"] / energy["sanafe"]},
            "latency_s": {**latency, "ratio": latency["ours"] / latency["sanafe"]},
            "terms_j": {"ours": {k: v for k, v in ours["energy_parts_j"].items() if k != "static"},
                        "sanafe": {k: mean(lambda r, k=k: r.energy[k]) for k in SANAFE_TERMS}},
            "wall_s": {"ours": wall_ours / len(runs), "sanafe": mean(lambda r: r.wall_s)},
            "bias_unit_events": mean(lambda r: sum(e for e, _ in r.bias_events.values())),
            "bias_unit_messages": mean(lambda r: sum(m for _, m in r.bias_events.values()))}
