"""Cost model: the counts of a deployed run (`run.Counts`) + the network (`spec.NetSpec`) + a
hardware profile (`profiles.Profile`) -> synaptic ops, events, neuron updates, message bits,
synaptic memory, cores, energy and latency per layer and per sample. Pure functions, no I/O.

What is counted, per sample (the counts are totals over the samples run):

* A *layer* is a population (spiking, compute or the readout); the input encoder is a sending row with
  no neurons (frames are injected by the host). Its SOPs are the synaptic ops into it.
* The transmission plan says how each sender transmits (the report's per-layer `encoding`
  column; not the input code): `dense` sends spikes (binary) or, for the input, the
  analog frame; `delta` sends changes: ternary (+-1) for spiking layers, multi-bit for the
  input. A +-1 event costs `e_synop` per SOP (the sign picks add or subtract; `e_synop_conv`
  into a convolution where the profile prices shared kernels apart); a multi-bit
  value (analog input, graded output) costs `e_synop_graded` (a multiply). Signed events travel as graded
  messages (2-bit payload) on a chip with graded spikes (`spike_payload_bits_max > 0`); on a
  binary chip they need an on/off pair of axons: the same messages and SOPs, twice the
  synapses and input axons.
* Sigma-delta populations (lava-dl's SDNN) send graded messages: one per changed output, its
  payload the message bits their sender declares (`Sends.bits`), one graded synaptic op
  (`e_synop_graded`) per synapse it reaches; a unit's update is active in a step where an input
  changed its sigma. A frame written into a bias register (`Projection.to_bias`, lava-dl's
  PilotNet) has no synapses, messages or synaptic ops: the host writes it (not priced; Intel's
  run writes it once, before the run).
* A stream of inferences (`NetSpec.reset_interval`): the totals are per sample of T steps, and
  `per_inference` gives them per reset interval (T / interval inferences a sample). The
  pipeline fill before a sample's first step (lava-dl's, spec.py) is not counted.
* Compute populations (max pool, product: the Spike-driven Transformer) have no Loihi model.
  Their units are priced as neuron updates and each is named in the mapping problems. A max pool
  of currents sends graded values (multi-bit, `e_synop_graded`, 24-bit payloads); a max pool or
  product of spikes sends spikes (`Population.sends`, decided when the spec is built).
* A neuron-local DDLA selection (`ddla/selection.py`) runs in the neuron's program: each step
  a change is pending (`Counts.pending`) it costs one more active neuron update (`e_neuron_active`,
  `t_neuron_active`: its credit added, compared and cleared, an estimate of a few instructions by
  a whole update), and its state (a 17-bit credit, an 8-bit weight, the held value) takes the
  profile's `selection_units_per_neuron` neuron slots per neuron in the mapping. A top-k run
  counts no pending changes: its layer-wide sort has no price on a chip that cannot run it.
* Synaptic delays (`Population.input_delay`, lava-dl's DelayDense): a neuron buffers its delayed
  input in its dendritic accumulator, one slot per step of delay plus the current one, the
  profile's `delay_slots_per_neuron` a neuron slot; a layer whose longest delay needs more takes
  that many neuron slots a neuron in the mapping. A delayed input costs its synaptic op when it
  arrives, nothing more. A delay past the profile's `delay_steps_max` is refused (`check_delays`).
* Neuron updates: every neuron of every layer updates every step (Loihi's time-multiplexed
  cores do); an update is *active* when the neuron's synaptic current is non-zero, *idle*
  otherwise (leak only). A CUBA neuron's current is a state that decays over several steps
  after an input: it is active while that state is non-zero, which is the price of its extra
  state (Loihi's compartment update is the CUBA update, so there is no other term). Delta
  transmission does not save neuron updates: the receiver integrates the current it holds.
  DDLA can, by holding stale values.
* Routing: each event leaves its neuron once (`e_spike_out`) and is delivered as one message
  to every core of each target layer (`e_msg_local` plus the mean mesh hops between the two
  layers' cores, layers placed on consecutive cores, row-major on the tile mesh): in the
  explicit mapping to every core (an upper bound for convolutions, exact for dense layers), in
  the tiled one to the cores `Mapping.reach` says.
* Synaptic ops and synapses of a projection use its composed fan-out (`Projection.fanout`):
  a pool-then-conv chain is one synapse matrix on a chip.
* Cores: each layer on its own cores. The profile's `mapping` says how many: `explicit`, enough
  for its neurons and for the synapses of its inputs (stored explicitly, convolutions unrolled,
  8-bit weights: an upper bound where a chip shares conv weights); `tiled`, Loihi 2's compiler
  (`tiling.py`: map tiles, shared kernels, dense synapse words), which also says which cores an
  event reaches and the busiest core's share of a layer's work. A layer the host reads takes
  none. Fan-in/fan-out over the core limits is reported as a mapping problem.
* Uncertainty: where the profile gives its figures a band, every energy and latency carries one,
  the run costed with every figure at its low and at its high end (`cost_run`).
* Static energy: `p_static_chip` x chips x latency, and the barrier `e_barrier` per step,
  spread over the layers by their share of cores.
* Latency of a step: the slowest layer's core (its share of the step's SOPs, neuron updates
  and spikes at the profile's times) plus `t_barrier`; per sample, the sum over T steps.
  Mesh transit (`t_hop_*`) is not modelled in it yet: a lower bound where messages cross
  many tiles (the shipped model sits on one or two tiles).

A quantity the profile marks unknown is left out of the total and named in `unknown_terms`;
never priced at 0. An `all_in` profile (TrueNorth) prices SOPs only: its figure includes the
rest.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from .profiles import BOUNDS, Profile
from .quant import WEIGHT_BITS
from .run import Counts
from .spec import NetSpec, projection_ends, projection_key, repeated_layer_uses
from .tiling import Limits, map_tiled

ENERGY_PARTS = ("synaptic", "neuron", "selection", "routing", "static")
TERNARY_PAYLOAD_BITS = 2     # a signed unit delta


class CostError(UserError):
    """A network the profile's chip cannot hold as asked (a delay longer than it buffers)."""


@dataclass
class Terms:
    """Looks up profile quantities, remembering which ones were needed but unknown."""

    profile: Profile
    unknown: set[str] = field(default_factory=set)

    def get(self, section: str, name: str) -> float | None:
        q = self.profile.quantity(section, name)
        if not q.known:
            self.unknown.add(f"{section}.{name}")
            return None
        return float(q.value)

    def has(self, section: str, name: str) -> bool:
        """Whether the profile defines an optional field at all."""
        return name in getattr(self.profile, section)

    def energy(self, name: str, count: float) -> float:
        """count x the energy per event (0 counted events cost 0 even where the term is unknown)."""
        if count == 0:
            return 0.0
        e = self.get("energy", name)
        return 0.0 if e is None else e * count


# --- mapping: synapses, cores, placement ---------------------------------------------------------

def payload_bits(spec: NetSpec, source: str, plan: dict[str, str], binary_chip: bool) -> int:
    """Payload bits of one of a sender's messages: its graded value's bits; none for a binary
    spike, nor for a signed one on a binary chip (the sign picks one of an on/off axon pair)."""
    sends = spec.sends(source)
    if sends.graded:
        return sends.bits
    return TERNARY_PAYLOAD_BITS if _signed(spec, source, plan) and not binary_chip else 0


@dataclass
class Mapping:
    """Where the layers of a network sit on a chip."""

    synapses: dict[str, int]        # per layer: synapses of its input projections
    syn_bytes: dict[str, int]
    cores: dict[str, int | None]    # None where the profile lacks the limits
    first_core: dict[str, int]
    problems: list[str]
    share: dict[str, float] = field(default_factory=dict)  # the busiest core's share of a layer's work
    reach: dict[str, float] = field(default_factory=dict)  # per projection: target cores an event reaches
    binds: dict[str, str] = field(default_factory=dict)  # per layer on cores: what set its count (`Tiles.binds`)


def _on_binary_chip(terms: Terms) -> bool:
    return terms.get("chip", "spike_payload_bits_max") == 0


def map_network(spec: NetSpec, plan: dict[str, str], terms: Terms, selecting: frozenset[str] = frozenset()
                ) -> Mapping:
    """Synapses, memory and cores of each layer (`explicit`: enough cores for its neurons and its
    synapses stored one by one; `tiled`: Loihi 2's compiler, `tiling.py`); a signed sender on a
    binary chip doubles the synapses. A layer the host reads has none. The neurons of a layer in
    `selecting` (it runs a neuron-local DDLA selection) take the profile's
    `selection_units_per_neuron` neuron slots each, for the rule's state."""
    binary_chip = _on_binary_chip(terms)
    limit = {k: terms.get("chip", k) for k in ("neurons_per_core", "syn_mem_bytes_per_core", "fanin_axons_per_core",
                                               "fanout_axons_per_core", "weight_bits_max")}
    problems = []
    if binary_chip and spec.input_sends.graded and spec.targets["input"]:
        problems.append("the chip sends binary spikes only: the analog input needs graded messages "
                        "(rate-code it, or compute the first layer on the host)")
    for pop in spec.compute:
        problems.append(f"layer {pop.name} is a {'max pool' if pop.kind == 'maxpool' else 'product of two inputs'}: "
                        f"no Loihi synapse or neuron model computes it (priced as neuron updates, an estimate"
                        f"{'; its graded output needs graded messages' if pop.sends.graded else ''})")
    if limit["weight_bits_max"] is not None and limit["weight_bits_max"] < WEIGHT_BITS:
        problems.append(f"weights have {WEIGHT_BITS} bits, the chip stores at most {limit['weight_bits_max']:g}")
    synapses, axons = {}, {}
    for pop in spec.populations:
        fed = [proj for proj in pop.inputs if not proj.to_bias and not pop.host]  # no synapses for a bias register
        pairs = [2 if binary_chip and _signed(spec, proj.source, plan) else 1 for proj in fed]
        synapses[pop.name] = sum(k * int(proj.fanout.sum()) for k, proj in zip(pairs, fed))  # the composed matrix
        axons[pop.name] = sum(k * int(np.prod(proj.ops[0].in_shape)) for k, proj in zip(pairs, fed))
    units = _selection_units(terms, selecting)
    for name, slots in _delay_units(spec, terms).items():  # two memories: the one that binds counts
        units[name] = max(units.get(name, 1), slots)
    if terms.profile.mapping == "tiled":
        mapping = _tiled(spec, synapses, terms, units)
    else:
        mapping = _explicit(spec, synapses, limit, units)
    problems += mapping.problems
    mapping.problems = problems
    next_core = 0
    for pop in spec.populations:
        if mapping.cores[pop.name] is None:
            continue
        mapping.first_core[pop.name], next_core = next_core, next_core + mapping.cores[pop.name]
        flat = terms.profile.mapping == "explicit" or len(pop.shape) == 1  # a tiled map reads shared conv axons
        if limit["fanin_axons_per_core"] is not None and flat and axons[pop.name] > limit["fanin_axons_per_core"]:
            problems.append(f"layer {pop.name}: each core needs {axons[pop.name]} input axons, the chip allows "
                            f"{limit['fanin_axons_per_core']:g}")
    if limit["fanout_axons_per_core"] is not None and all(c is not None for c in mapping.cores.values()):
        for sender, targets in spec.targets.items():
            edges = sum(mapping.cores[t] for t in targets)  # each core of the sender reaches every target core
            if edges > limit["fanout_axons_per_core"]:
                problems.append(f"layer {sender}: each core sends to {edges} cores, the chip allows "
                                f"{limit['fanout_axons_per_core']:g}")
    return mapping


def _selection_units(terms: Terms, selecting: frozenset[str]) -> dict[str, int]:
    """The neuron slots each neuron of a selecting layer takes (one where the profile does not say,
    the term then named unknown)."""
    if not selecting:
        return {}
    units = _optional_chip_term(terms, "selection_units_per_neuron")
    return {name: int(units or 1) for name in selecting}


def _optional_chip_term(terms: Terms, field: str) -> float | None:
    """An optional chip figure, or None where the profile lacks it or leaves it unknown (then named
    in the unknown terms)."""
    value = terms.get("chip", field) if terms.has("chip", field) else None
    if value is None:
        terms.unknown.add(f"chip.{field}")
    return value


def _delay_units(spec: NetSpec, terms: Terms) -> dict[str, int]:
    """The neuron slots each neuron of a layer with synaptic delays takes: its longest delay's
    steps plus the current one, in buffers of the profile's `delay_slots_per_neuron` steps a slot
    (one where the profile does not say, the term then named unknown)."""
    delayed = {pop.name: int(np.max(pop.input_delay)) for pop in spec.populations
               if pop.input_delay is not None and not pop.host}
    slots = _optional_chip_term(terms, "delay_slots_per_neuron") if delayed else None
    return {name: math.ceil((longest + 1) / slots) for name, longest in delayed.items()} if slots else {}


def check_delays(spec: NetSpec, profile: Profile) -> None:
    """Refuses synaptic delays longer than the profile's chip holds (`delay_steps_max`), in one line."""
    most = profile.chip.get("delay_steps_max")
    if most is None or not most.known:
        return
    for pop in spec.populations:
        if pop.input_delay is not None and int(np.max(pop.input_delay)) > most.value:
            raise CostError(f"layer {pop.name}: a synaptic delay of {int(np.max(pop.input_delay))} steps, and "
                            f"{profile.name} holds at most {most.value:g} (chip.delay_steps_max)")


def _explicit(spec: NetSpec, synapses: dict[str, int], limit: dict, units: dict[str, int]) -> Mapping:
    """Each layer on enough cores for its neurons and for its synapses stored one by one (8-bit)."""
    syn_bytes = {name: math.ceil(n * WEIGHT_BITS / 8) for name, n in synapses.items()}
    cores: dict[str, int | None] = {}
    binds: dict[str, str] = {}
    for pop in spec.populations:
        if limit["neurons_per_core"] is None or limit["syn_mem_bytes_per_core"] is None:
            cores[pop.name] = None
        elif not pop.host:
            by_memory = math.ceil(syn_bytes[pop.name] / limit["syn_mem_bytes_per_core"])
            by_neurons = math.ceil(pop.size * units.get(pop.name, 1) / limit["neurons_per_core"])
            cores[pop.name] = max(by_neurons, by_memory, 1)
            binds[pop.name] = ("one core" if cores[pop.name] == 1 else "synapse memory" if by_memory > by_neurons
                               else "neurons")
        else:
            cores[pop.name] = 0
    share = {name: 1.0 / c for name, c in cores.items() if c}
    reach = {projection_key(proj.source, pop.name): float(cores[pop.name] or 1)
             for pop in spec.populations for proj in pop.inputs}
    return Mapping(synapses, syn_bytes, cores, {}, [], share, reach, binds)


def _tiled(spec: NetSpec, synapses: dict[str, int], terms: Terms, units: dict[str, int]) -> Mapping:
    """Loihi 2's compiler (`tiling.py`), from the profile's per-core limits."""
    chip = {k: terms.get("chip", k) for k in ("neurons_per_core", "syn_mem_words_per_core", "syn_word_bits",
                                              "syn_header_bits", "syn_index_bits", "weight_bits_max")}
    if None in chip.values():  # a limit the profile leaves unknown (named in the unknown terms): no cores
        return Mapping(synapses, {n: 0 for n in synapses}, {n: None for n in synapses}, {}, [], {},
                       {projection_key(p.source, pop.name): 1.0 for pop in spec.populations for p in pop.inputs})
    chip = {k: int(v) for k, v in chip.items()}
    lim = Limits(chip["neurons_per_core"], chip["syn_mem_words_per_core"], chip["syn_word_bits"],
                 chip["syn_header_bits"], chip["syn_index_bits"], chip["weight_bits_max"])
    tiles, reach = map_tiled(spec, lim, units)
    syn_bytes = {name: t.words * lim.word_bits // 8 for name, t in tiles.items()}
    problems = [f"layer {name}: a core needs {t.overflow + lim.words} synapse words, it holds {lim.words} (its fan-in "
                f"is too wide for one core even with one neuron, or its kernels too large)"
                for name, t in tiles.items() if t.overflow]
    return Mapping(synapses, syn_bytes, {n: t.cores for n, t in tiles.items()}, {}, problems,
                   {n: t.share for n, t in tiles.items() if t.cores}, reach,
                   {n: t.binds for n, t in tiles.items() if t.cores})


def _signed(spec: NetSpec, source: str, plan: dict[str, str]) -> bool:
    """Whether a sender's events can be negative (graded values, deltas) and so need an on/off
    axon pair on a binary chip."""
    return spec.sends(source).graded or plan.get(source, "dense") != "dense"


def _tile_xy(core: np.ndarray, per_tile: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    tile = core // per_tile
    return tile % cols, tile // cols


def mean_hops(src: range, dst: range, terms: Terms) -> tuple[float, float]:
    """Mean east-west and north-south hops between two sets of cores (all pairs); 0 where the
    mesh is unknown (then named in the unknown terms)."""
    per_tile, cols = terms.get("chip", "cores_per_tile"), terms.get("chip", "mesh_cols")
    if per_tile is None or cols is None:
        return 0.0, 0.0
    sx, sy = _tile_xy(np.arange(src.start, src.stop), int(per_tile), int(cols))
    dx, dy = _tile_xy(np.arange(dst.start, dst.stop), int(per_tile), int(cols))
    return float(np.abs(sx[:, None] - dx[None]).mean()), float(np.abs(sy[:, None] - dy[None]).mean())


# --- costing a run -------------------------------------------------------------------------------

def _per_sample(counts: Counts, kind: str, key: str) -> np.ndarray:
    """Per-timestep counts of one sample on average (zeros where nothing was counted)."""
    v = getattr(counts, kind).get(key)
    return np.zeros(counts.timesteps) if v is None else np.asarray(v, dtype=np.float64) / max(counts.samples, 1)


def _core_range(mapping: Mapping, name: str) -> range:
    if name == "input" or mapping.cores.get(name) is None:
        return range(0, 1)
    return range(mapping.first_core[name], mapping.first_core[name] + mapping.cores[name])


BANDED = ("energy_j", "dynamic_energy_j", "latency_s")  # the totals that carry a band


def cost_run(spec: NetSpec, counts: Counts, profile: Profile, plan: dict[str, str]) -> dict:
    """Per-layer rows and per-sample totals of one run. The transmission `plan` maps each sender ("input" and
    every population but the readout) to "dense" or "delta" (DDLA transmits deltas). Where the profile
    states its figures' uncertainty, each energy and latency carries a band (`band`, [low, high]): the
    run costed with every figure at its low and at its high end (every cost grows with every figure,
    so these bound it); null where the profile states none."""
    terms = Terms(profile)
    # the chip's limits: the same at both ends of the bands; a layer with pending changes counted
    # runs a neuron-local selection
    mapping = map_network(spec, plan, terms, frozenset(counts.pending))
    report = _cost(spec, counts, terms, mapping, plan)
    ends = ([_cost(spec, counts, Terms(profile.bound(side)), mapping, plan) for side in BOUNDS]
            if profile.banded else None)
    totals = report["totals"]
    totals["band"] = None if ends is None else {k: [e["totals"][k] for e in ends] for k in BANDED}
    if "per_inference" in totals:
        totals["per_inference"]["band"] = None if ends is None else \
            {k: [e["totals"]["per_inference"][k] for e in ends] for k in BANDED}
    for i, row in enumerate(report["layers"]):
        row["energy_total_band_j"] = None if ends is None else [e["layers"][i]["energy_total_j"] for e in ends]
    return report


def _cost(spec: NetSpec, counts: Counts, terms: Terms, mapping: Mapping, plan: dict[str, str]) -> dict:
    all_in = terms.profile.scope == "all_in"
    rows = []
    senders = ["input"] + [p.name for p in spec.senders]
    for name in senders + [spec.readout.name]:
        pop = None if name == "input" else spec.population(name)
        rows.append(_layer_row(spec, counts, terms, mapping, name, pop, plan, all_in))
    latency, step_s, chips = _add_static_and_latency(counts, terms, rows, mapping, all_in)
    totals = {**_totals(rows), "chips": chips, "latency_s": latency, "step_latency_s": step_s}
    totals["unknown_terms"] = sorted(terms.unknown)
    totals["mapping_problems"] = mapping.problems
    if spec.reset_interval:
        totals["per_inference"] = per_inference(totals, spec)
    return {"layers": rows, "totals": totals,
            "per_timestep": {"events": np.sum([r["events_out_per_step"] for r in rows], axis=0).tolist(),
                             "synaptic_ops": np.sum([r["sops_per_step"] for r in rows], axis=0).tolist()}}


def _layer_row(spec, counts, terms, mapping, name, pop, plan, all_in) -> dict:
    transmits = plan.get(name, "dense")
    events = _per_sample(counts, "events", name) if pop is None or pop.kind != "readout" else np.zeros(counts.timesteps)
    written = pop is None and not spec.targets[name]  # the input, written into bias registers: no events
    writes, events = (float(events.sum()), np.zeros(counts.timesteps)) if written else (0.0, events)
    sops = np.zeros(counts.timesteps)
    by_source: dict[str, float] = {}
    events_in = 0.0
    for proj in [] if pop is None or pop.host else pop.inputs:  # the host reads a layer with no synapses
        s = _per_sample(counts, "sops_proj", projection_key(proj.source, name))
        sops += s
        events_in += 0.0 if proj.to_bias else float(_per_sample(counts, "events", proj.source).sum())
        price = "e_synop_graded" if spec.sends(proj.source).graded and not all_in else \
            "e_synop_conv" if proj.weighted.kind == "conv2d" and terms.has("energy", "e_synop_conv") else "e_synop"
        by_source[proj.source] = by_source.get(proj.source, 0.0) + terms.energy(price, float(s.sum()))
    e_syn = sum(by_source.values())
    n = 0 if pop is None or pop.host else pop.size
    active = float(_per_sample(counts, "active", name).sum()) if n else 0.0
    idle = n * counts.timesteps - active
    selection = float(_per_sample(counts, "pending", name).sum())  # a neuron-local rule's updates
    row = {"layer": name, "kind": "input" if pop is None else pop.kind, "neurons": n,
           # the report's key for the plan's choice (schema 1), not the input code
           "encoding": transmits if pop is None or pop.kind != "readout" else "-",
           "events_in": events_in, "events_out": float(events.sum()), "synaptic_ops": float(sops.sum()),
           "spikes": float(_per_sample(counts, "spikes", name).sum()),
           "neuron_updates": float(n * counts.timesteps), "active_updates": active, "idle_updates": idle,
           "selection_updates": selection,
           "synapses": mapping.synapses.get(name, 0), "syn_mem_bytes": mapping.syn_bytes.get(name, 0),
           "cores": 0 if pop is None else mapping.cores[name], "binds": mapping.binds.get(name),
           "synaptic_j_by_source": by_source, **({"bias_writes": writes} if written else {}),
           "events_out_per_step": events.tolist(), "sops_per_step": sops.tolist()}
    messages, hops_energy = _messages(terms, mapping, spec.targets[name], name, row["events_out"], all_in)
    header = terms.get("chip", "message_bits")
    row["messages"] = messages
    row["message_bits"] = None if header is None else \
        messages * (header + payload_bits(spec, name, plan, _on_binary_chip(terms)))
    if all_in:  # the all-in SOP figure includes neurons, routing and leakage
        row["energy_j"] = {"synaptic": e_syn, "neuron": 0.0, "selection": 0.0, "routing": 0.0, "static": 0.0}
        return row
    neuron = terms.energy("e_neuron_active", active) + terms.energy("e_neuron_idle", idle)
    routing = (0.0 if pop is None else terms.energy("e_spike_out", row["events_out"])) \
        + terms.energy("e_msg_local", messages) + hops_energy
    row["energy_j"] = {"synaptic": e_syn, "neuron": neuron, "selection": terms.energy("e_neuron_active", selection),
                       "routing": routing, "static": 0.0}
    return row


PER_INFERENCE = ("synaptic_ops", "events", "energy_j", "dynamic_energy_j", "latency_s")


def per_inference(totals: dict, spec: NetSpec) -> dict:
    """The totals of a sample that is a stream, per inference (one reset interval of steps)."""
    n = spec.inferences
    return {"steps": spec.reset_interval, "inferences_per_sample": n,
            **{k: None if totals[k] is None else totals[k] / n for k in PER_INFERENCE}}


def _messages(terms, mapping, targets: list[str], name, events_out, all_in) -> tuple[float, float]:
    """Messages of a sender (one per event and target core) and their hop energy (none where
    an all-in figure already includes routing)."""
    messages, hop_energy = 0.0, 0.0
    for target in targets:
        m = events_out * mapping.reach[projection_key(name, target)]
        if m == 0:  # nothing sent, or to a layer the host reads
            continue
        messages += m
        if all_in:
            continue
        ew, ns = mean_hops(_core_range(mapping, name), _core_range(mapping, target), terms)
        hop_energy += terms.energy("e_hop_ew", m * ew) + terms.energy("e_hop_ns", m * ns)
    return messages, hop_energy


def _step_times(counts: Counts, terms: Terms, layers: list[dict], mapping: Mapping) -> list[float]:
    """Per step: the slowest core's work (its share of its layer's SOPs, neuron updates and
    spikes: `Mapping.share`) plus the barrier."""
    layers = [r for r in layers if r["cores"]]
    active = {r["layer"]: _per_sample(counts, "active", r["layer"]) for r in layers}
    selecting = {r["layer"]: _per_sample(counts, "pending", r["layer"]) for r in layers}
    times = []
    for step in range(counts.timesteps):
        worst = 0.0
        for r in layers:
            a, pending = float(active[r["layer"]][step]), float(selecting[r["layer"]][step])
            work = [("t_synop", r["sops_per_step"][step]), ("t_neuron_active", a + pending),
                    ("t_neuron_idle", r["neurons"] - a), ("t_spike_out", r["events_out_per_step"][step])]
            worst = max(worst, sum(_time(terms, k, v) for k, v in work) * mapping.share[r["layer"]])
        times.append(worst + _time(terms, "t_barrier", 1.0))
    return times


def _add_static_and_latency(counts: Counts, terms: Terms, rows: list[dict], mapping: Mapping, all_in: bool
                            ) -> tuple[float | None, list[float] | None, int | None]:
    """Fills each layer's static energy (static power and barrier, spread by cores) and returns
    (latency per sample, latency per step, chips); None where the profile cannot say."""
    t = counts.timesteps
    layers = [r for r in rows if r["kind"] != "input"]
    known_cores = all(r["cores"] is not None for r in layers)
    step_times = _step_times(counts, terms, layers, mapping) if known_cores else None
    time_known = known_cores and not any(k.startswith("time.") for k in terms.unknown)
    latency = float(sum(step_times)) if time_known else None
    total_cores = sum(r["cores"] for r in layers) if known_cores else None
    chips = _chips(terms, total_cores)
    static = 0.0
    if not all_in:
        if latency is not None and chips is not None:
            static += terms.energy("p_static_chip", chips * latency)
        static += terms.energy("e_barrier", t)
    for r in layers:
        share = r["cores"] / total_cores if total_cores else 1.0 / len(layers)
        r["energy_j"]["static"] = static * share
    for r in rows:
        r["energy_total_j"] = sum(r["energy_j"].values())
    return latency, step_times if time_known else None, chips


def _time(terms: Terms, name: str, count: float) -> float:
    if count == 0:
        return 0.0
    v = terms.get("time", name)
    return 0.0 if v is None else v * count


def _chips(terms: Terms, cores: int | None) -> int | None:
    per_chip = terms.get("chip", "cores") if cores is not None else None
    return None if per_chip is None else max(math.ceil(cores / per_chip), 1)


def _totals(rows: list[dict]) -> dict:
    parts = {k: sum(r["energy_j"][k] for r in rows) for k in ENERGY_PARTS}
    cores = [r["cores"] for r in rows if r["kind"] != "input"]
    return {"synaptic_ops": sum(r["synaptic_ops"] for r in rows),
            "events": sum(r["events_out"] for r in rows),
            "spikes": sum(r["spikes"] for r in rows),
            "messages": sum(r["messages"] for r in rows),
            "message_bits": None if any(r["message_bits"] is None for r in rows) else
            sum(r["message_bits"] for r in rows),
            "neuron_updates": sum(r["neuron_updates"] for r in rows),
            "active_updates": sum(r["active_updates"] for r in rows),
            "selection_updates": sum(r["selection_updates"] for r in rows),
            "synapses": sum(r["synapses"] for r in rows),
            "syn_mem_bytes": sum(r["syn_mem_bytes"] for r in rows),
            "cores": None if any(c is None for c in cores) else sum(cores),
            "energy_j": sum(parts.values()), "dynamic_energy_j": sum(parts.values()) - parts["static"],
            "energy_parts_j": parts}


# --- comparisons -----------------------------------------------------------------------------------

def sender_costs(report: dict) -> dict[str, float]:
    """Per sender (input, every population but the readout): the energy its transmission causes, i.e. the routing
    of its events plus the synaptic ops they cause in its targets."""
    cost = {r["layer"]: r["energy_j"]["routing"] for r in report["layers"] if r["kind"] != "readout"}
    for r in report["layers"]:
        for source, e in r["synaptic_j_by_source"].items():
            cost[source] += e
    return cost


def mode_plan(spec: NetSpec, mode: str) -> dict[str, str]:
    """The transmission plan of a mode: every sender dense, or every sender delta (DDLA sends deltas)."""
    transmits = "dense" if mode == "dense" else "delta"
    return {"input": transmits, **{p.name: transmits for p in spec.senders}}


def cheaper_plan(dense: dict, delta: dict) -> dict[str, str]:
    """Per sender, the transmission (dense or delta) that costs less energy; ties go to dense."""
    a, b = sender_costs(dense), sender_costs(delta)
    return {s: "delta" if b[s] < a[s] else "dense" for s in a}


def mix_counts(dense: Counts, delta: Counts, plan: dict[str, str]) -> Counts:
    """The counts of a run in which each sender transmits as `plan` says. Exact without running it:
    lossless deltas leave every neuron's current and spikes as in the dense run, so a sender's
    choice changes only its own events and the SOPs of its projections."""
    mixed = Counts(dense.timesteps, samples=dense.samples)
    mixed.spikes, mixed.active = dict(dense.spikes), dict(dense.active)
    for sender, enc in plan.items():
        src = dense if enc == "dense" else delta
        mixed.events[sender] = src.events[sender]
        mixed.sops_proj.update({k: v for k, v in src.sops_proj.items() if projection_ends(k)[0] == sender})
    for key, v in mixed.sops_proj.items():
        target = projection_ends(key)[1]
        mixed.sops[target] = mixed.sops.get(target, 0) + v
    return mixed


# --- compatibility modes -------------------------------------------------------------------------

def literature_energy(spec: NetSpec, dense: Counts, e_mac: float, e_ac: float) -> dict:
    """The SNN papers' estimate (Spike-driven Transformer appendix, syops):
    E = E_MAC * FLOPs(first layer) + E_AC * sum_l fr_l * T * FLOPs_l, where fr_l is the firing
    rate of layer l's input spikes and FLOPs the MACs of the ANN layer for one timestep. The
    first layer reads the analog input once (as printed); with spike input it is an AC layer."""
    first_flops, sops = 0.0, 0.0
    repeats = repeated_layer_uses(spec)  # a layer reached through unrolled residual paths counts once
    for pop in spec.populations:
        for j, proj in enumerate(pop.inputs):
            flops = float(sum(op.macs for k, op in enumerate(proj.ops) if (pop.name, j, k) not in repeats))
            if proj.source == "input" and spec.encoding == "direct":
                first_flops += flops
                continue
            size = int(np.prod(proj.ops[0].in_shape))
            rate_times_t = float(np.sum(_per_sample(dense, "events", proj.source))) / size
            sops += rate_times_t * flops
    return {"first_layer_flops": first_flops, "synaptic_ops": sops, "e_mac_j": e_mac, "e_ac_j": e_ac,
            "energy_j": e_mac * first_flops + e_ac * sops}
