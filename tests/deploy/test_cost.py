"""Cost model: hand-counted SOPs, neuron updates and energies on a network small enough to
count by hand, the dense-vs-delta plan, binary-chip mapping, unknown and all-in terms, the
literature estimate."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from ddla_neuro.ddla.selection import Selection
from ddla_neuro.deploy.cost import (CostError, Terms, cheaper_plan, check_delays, cost_run, literature_energy,
                                    map_network, mix_counts, sender_costs)
from ddla_neuro.deploy.ir import input_sends
from ddla_neuro.deploy.profiles import PROFILE_DIR as ROOT_PROFILES, load_profile
from ddla_neuro.deploy.quant import quantize, quantize_input
from ddla_neuro.deploy.sim import simulate
from ddla_neuro.deploy.ops import MEMBRANE_BITS
from ddla_neuro.deploy.spec import SPIKES, NetSpec, Op, Population, Projection, Sends, assign_depths

T = 6
GRADED = Sends(graded=True, bits=MEMBRANE_BITS)


def flipping_net() -> NetSpec:
    """input (1 analog value) -> IF neuron 'a' (w 0.6, v_th 1: spikes at t = 2, 4, 6, so its
    delta flips sign every step) -> readout of 2 (weights 1)."""
    a = Population("a", (1,), "if", np.zeros(1), [Projection("input", [Op("linear", (1,), (1,), np.array([[0.6]]))])],
                   sends=SPIKES)
    out = Population("out", (2,), "readout", np.zeros(2),
                     [Projection("a", [Op("linear", (1,), (2,), np.ones((2, 1)))])], sends=GRADED)
    assign_depths([a, out])
    return NetSpec((1,), T, "direct", [a, out], input_sends=input_sends("direct"))


def run(mode: str, samples: int = 2):
    return simulate(flipping_net(), np.ones((samples, T, 1)), mode)


def rows(report: dict) -> dict[str, dict]:
    return {r["layer"]: r for r in report["layers"]}


def enc(mode: str) -> dict[str, str]:
    return {"input": mode, "a": mode}


def test_hand_counted_sops_updates_and_energy_on_loihi2():
    p = load_profile("loihi2")
    e = {k: p.quantity("energy", k).value for k in ("e_synop", "e_synop_graded", "e_neuron_active", "e_neuron_idle")}
    dense = cost_run(flipping_net(), run("dense").counts, p, enc("dense"))
    r = rows(dense)
    assert r["a"]["spikes"] == 3 and r["a"]["events_out"] == 3          # t = 2, 4, 6
    assert r["input"]["events_out"] == 6                                   # the analog frame every step
    assert r["a"]["synaptic_ops"] == 6 and r["out"]["synaptic_ops"] == 3 * 2
    assert r["a"]["active_updates"] == 6 and r["a"]["idle_updates"] == 0   # current 0.6 every step
    assert r["out"]["active_updates"] == 3 * 2 and r["out"]["idle_updates"] == 3 * 2
    assert r["a"]["energy_j"]["synaptic"] == pytest.approx(6 * e["e_synop_graded"])  # analog input: multi-bit
    assert r["out"]["energy_j"]["synaptic"] == pytest.approx(6 * e["e_synop"])
    assert r["out"]["energy_j"]["neuron"] == pytest.approx(6 * e["e_neuron_active"] + 6 * e["e_neuron_idle"])
    delta = rows(cost_run(flipping_net(), run("delta").counts, p, enc("delta")))
    assert delta["a"]["events_out"] == 5 and delta["out"]["synaptic_ops"] == 10  # +1 -1 +1 -1 +1
    assert delta["input"]["events_out"] == 1                                     # the frame, then nothing


def test_energy_totals_are_the_sum_of_their_parts():
    for name in ("loihi", "loihi2", "generic-45nm", "truenorth"):
        report = cost_run(flipping_net(), run("delta").counts, load_profile(name), enc("delta"))
        tot = report["totals"]
        assert tot["energy_j"] == pytest.approx(sum(tot["energy_parts_j"].values()))
        assert tot["energy_j"] == pytest.approx(sum(r["energy_total_j"] for r in report["layers"]))
        for part, value in tot["energy_parts_j"].items():
            assert value == pytest.approx(sum(r["energy_j"][part] for r in report["layers"]))
        assert tot["energy_j"] > 0


def test_delta_that_flips_costs_more_and_the_mixed_plan_keeps_it_dense():
    p = load_profile("loihi2")
    d_counts, x_counts = run("dense").counts, run("delta").counts
    dense = cost_run(flipping_net(), d_counts, p, enc("dense"))
    delta = cost_run(flipping_net(), x_counts, p, enc("delta"))
    assert sender_costs(delta)["a"] > sender_costs(dense)["a"]
    plan = cheaper_plan(dense, delta)
    assert plan == {"input": "delta", "a": "dense"}
    mixed = cost_run(flipping_net(), mix_counts(d_counts, x_counts, plan), p, plan)
    assert rows(mixed)["a"]["events_out"] == 3 and rows(mixed)["input"]["events_out"] == 1
    assert rows(mixed)["out"]["synaptic_ops"] == 6
    dyn = lambda r: r["totals"]["dynamic_energy_j"]  # noqa: E731
    assert dyn(mixed) < min(dyn(dense), dyn(delta))


def test_mixed_counts_equal_a_run_of_that_plan_where_the_plan_is_uniform():
    d, x = run("dense").counts, run("delta").counts
    assert mix_counts(d, x, enc("dense")).to_dict() == d.to_dict()
    assert mix_counts(d, x, enc("delta")).to_dict() == x.to_dict()


def test_signed_events_need_axon_pairs_on_a_binary_chip():
    spec = flipping_net()
    for name, factor in (("loihi", 2), ("loihi2", 1)):
        p = load_profile(name)
        dense = map_network(spec, enc("dense"), Terms(p))
        delta = map_network(spec, enc("delta"), Terms(p))
        assert delta.synapses["out"] == factor * dense.synapses["out"] == factor * 2
    problems = map_network(spec, enc("dense"), Terms(load_profile("loihi"))).problems
    assert any("binary spikes only" in m for m in problems)


def test_unknown_terms_are_named_and_left_out_never_priced():
    p = load_profile("generic-45nm")
    report = cost_run(flipping_net(), run("dense").counts, p, enc("dense"))
    tot = report["totals"]
    assert "energy.e_spike_out" in tot["unknown_terms"] and "energy.e_msg_local" in tot["unknown_terms"]
    assert tot["cores"] is None and tot["latency_s"] is None
    e = lambda k: p.quantity("energy", k).value  # noqa: E731
    by_hand = 6 * e("e_synop_graded") + 6 * e("e_synop") + (6 + 6) * e("e_neuron_active") + 6 * e("e_neuron_idle")
    assert tot["energy_j"] == pytest.approx(by_hand)


def test_all_in_profile_prices_synaptic_ops_only():
    p = load_profile("truenorth")
    report = cost_run(flipping_net(), run("dense").counts, p, enc("dense"))
    assert report["totals"]["energy_j"] == pytest.approx(12 * p.quantity("energy", "e_synop").value)
    # the all-in figure needs no other energy term; TrueNorth publishes no per-op times, so no latency
    assert report["totals"]["unknown_terms"] == ["time.t_neuron_active", "time.t_neuron_idle", "time.t_spike_out",
                                                 "time.t_synop"]
    assert report["totals"]["latency_s"] is None


def test_latency_is_the_slowest_core_plus_the_barrier_per_step():
    p = load_profile("loihi2")
    report = cost_run(flipping_net(), run("dense", samples=1).counts, p, enc("dense"))
    t = lambda k: p.quantity("time", k).value  # noqa: E731
    # step 1: 'a' has 1 SOP and 1 active update, 'out' 2 idle updates; 'a' is slower iff its work is
    a_work = t("t_synop") + t("t_neuron_active")
    out_work = 2 * t("t_neuron_idle")
    assert report["totals"]["step_latency_s"][0] == pytest.approx(max(a_work, out_work) + t("t_barrier"))
    assert report["totals"]["latency_s"] == pytest.approx(sum(report["totals"]["step_latency_s"]))


def test_literature_estimate_by_hand():
    lit = literature_energy(flipping_net(), run("dense").counts, 4.6e-12, 0.9e-12)
    # first layer: 1 MAC once; then 'a' fires 3 times in T steps into 2 synapses: fr * T * FLOPs = 3 * 2
    assert lit["first_layer_flops"] == 1 and lit["synaptic_ops"] == 6
    assert lit["energy_j"] == pytest.approx(4.6e-12 + 6 * 0.9e-12)


@pytest.mark.parametrize("name", ["mlp", "convnet", "residual", "sdt"])
def test_dense_counts_equal_neurobench_synaptic_operations(name):
    """Our dense-mode count in NeuroBench's compatibility mode == NeuroBench's SynapticOperations
    rule (tests/anchors/neurobench_synops.py, checked against neurobench 2.3.0) on the same torch model
    (BatchNorm unfolded) and input."""
    import torch
    from deploy_nets import NETWORKS, inputs, spec_of
    from neurobench_synops import neurobench_synops

    net = NETWORKS[name]()
    x, frames = inputs(net, 5)
    ours = simulate(spec_of(net), frames, "dense", neurobench=True).counts
    seq = torch.as_tensor(frames).transpose(0, 1)  # the network's forward takes (T, B, ...) frames
    ref = neurobench_synops(torch.nn.Sequential(net), [seq], samples=5, dtype=torch.float64)
    got = {k: float(ours.neurobench.get(k, np.zeros(1)).sum()) / ours.samples
           for k in ("effective_acs", "effective_macs", "dense")}
    assert got == {"effective_acs": ref["Effective_ACs"], "effective_macs": ref["Effective_MACs"],
                   "dense": ref["Dense"]}
    assert got["effective_macs"] > 0  # the analog input, and pooled spikes in the convnet
    assert (got["effective_acs"] > 0) == (name != "convnet")  # spikes straight into a layer
    assert ref["Dense"] > 0


def test_fan_in_and_fan_out_limits_are_reported(tmp_path):
    """A 5000-wide linear layer needs 5000 input axons per core (Loihi 2 allows 4096), and a
    sender feeding more than 4 cores breaks a fan-out limit of 4 core-to-core edges. (Weights
    are broadcast views: the mapping reads only shapes.)"""
    text = (ROOT_PROFILES / "loihi2.toml").read_text()
    lines = [ln if not ln.startswith("fanout_axons_per_core") else ln.replace("value = 4096", "value = 4")
             for ln in text.splitlines()]
    (tmp_path / "tiny.toml").write_text("\n".join(lines) + "\n")
    wide = Population("a", (20_000,), "if", np.zeros(20_000),
                      [Projection("input", [Op("linear", (5000,), (20_000,), np.broadcast_to(1.0, (20_000, 5000)))])],
                      sends=SPIKES)
    out = Population("out", (2,), "readout", np.zeros(2),
                     [Projection("a", [Op("linear", (20_000,), (2,), np.broadcast_to(1.0, (2, 20_000)))])],
                     sends=GRADED)
    assign_depths([wide, out])
    spec = NetSpec((5000,), 1, "direct", [wide, out], input_sends=input_sends("direct"))
    problems = map_network(spec, {"input": "dense", "a": "dense"}, Terms(load_profile(tmp_path / "tiny.toml"))).problems
    assert any("layer a: each core needs 5000 input axons" in p for p in problems)
    assert any(p.startswith("layer input: each core sends to") for p in problems)


def test_message_bits_by_hand():
    """'a' sends 5 signed deltas to the one core of 'out': on Loihi 2 each is a 32-bit message
    with a 2-bit payload; on TrueNorth (binary) a 30-bit spike on one of an on/off axon pair."""
    counts = run("delta").counts
    for name, bits in (("loihi2", 32 + 2), ("truenorth", 30)):
        a = rows(cost_run(flipping_net(), counts, load_profile(name), enc("delta")))["a"]
        assert a["messages"] == 5 and a["message_bits"] == 5 * bits


def test_an_unknown_chip_term_is_named_not_dropped(tmp_path):
    """Without neurons per core there are no cores, so no chips, latency or static energy:
    the report must say which term is missing (a reviewer found it silently dropped)."""
    text = (ROOT_PROFILES / "loihi2.toml").read_text().splitlines()
    text = [ln if not ln.startswith("neurons_per_core") else
            'neurons_per_core = { unit = "count", kind = "unknown", source = "test: withheld" }' for ln in text]
    (tmp_path / "nocores.toml").write_text("\n".join(text) + "\n")
    tot = cost_run(flipping_net(), run("dense").counts, load_profile(tmp_path / "nocores.toml"), enc("dense"))["totals"]
    assert "chip.neurons_per_core" in tot["unknown_terms"]
    assert tot["cores"] is None and tot["latency_s"] is None and tot["energy_parts_j"]["static"] == 0.0
    known = cost_run(flipping_net(), run("dense").counts, load_profile("loihi2"), enc("dense"))["totals"]
    assert "chip.neurons_per_core" not in known["unknown_terms"] and known["energy_parts_j"]["static"] > 0


def test_compute_layers_are_mapping_problems_and_graded_senders_cost_multibit_ops():
    """The small Spike-driven Transformer: its first max pool (of spikes) and both products send
    spikes; its second max pool (of conv currents) sends graded values, priced e_synop_graded
    per SOP with 24-bit payloads."""
    from deploy_nets import inputs, sdt, spec_of
    net = sdt()
    spec = spec_of(net)
    pools = [p.name for p in spec.compute if p.kind == "maxpool"]
    assert [spec.sends(n) for n in pools] == [SPIKES, GRADED]
    assert all(p.sends == SPIKES for p in spec.compute if p.kind == "product")
    assert quantize(spec).sends(pools[1]).frac_bits == quantize(spec).population(pools[1]).frac_bits
    profile = load_profile("loihi2")
    counts = simulate(spec, inputs(net, 4)[1], "delta").counts
    report = cost_run(spec, counts, profile, {"input": "delta", **{p.name: "delta" for p in spec.senders}})
    graded = pools[1]
    e_graded = profile.quantity("energy", "e_synop_graded").value
    reads = [r for r in report["layers"] if graded in r["synaptic_j_by_source"]]
    assert len(reads) >= 2  # the membrane shortcut reaches every later neuron of the stream
    for r in reads:
        sops = counts.sops_proj[f"{graded}>{r['layer']}"].sum() / counts.samples
        assert sops > 0 and r["synaptic_j_by_source"][graded] == pytest.approx(sops * e_graded)
    g = rows(report)[graded]
    assert g["message_bits"] == g["messages"] * (32 + 24) and g["messages"] > 0
    problems = report["totals"]["mapping_problems"]
    assert [p.split()[1] for p in problems] == [p.name for p in spec.compute]


def test_loihi_prices_convolutions_at_their_own_synop():
    """On loihi (SANA-FE's silicon fit) a synaptic op into a convolution costs e_synop_conv
    (24.0 pJ), into a dense layer e_synop (35.5 pJ), the analog input's e_synop_graded; profiles
    without e_synop_conv price all at e_synop."""
    from deploy_nets import convnet, inputs, spec_of
    net = convnet()
    spec = quantize(spec_of(net))
    counts = simulate(spec, quantize_input(inputs(net, 2)[1], spec), "dense").counts
    loihi, loihi2 = load_profile("loihi"), load_profile("loihi2")
    for profile, conv_price in ((loihi, 24.0e-12), (loihi2, loihi2.energy["e_synop"].value)):
        report = cost_run(spec, counts, profile, {})
        for pop in spec.populations:
            row = rows(report)[pop.name]
            (source, ops), = [(p.source, p.ops) for p in pop.inputs]
            price = (profile.energy["e_synop_graded"].value if source == "input" else
                     conv_price if any(op.kind == "conv2d" for op in ops) else profile.energy["e_synop"].value)
            assert row["energy_j"]["synaptic"] == pytest.approx(row["synaptic_ops"] * price), pop.name
    assert loihi.energy["e_synop"].value == 35.5e-12


@pytest.mark.parametrize("rule, sent, pending", [("patience", [0, 0, 0, 0, 0, 0], [0, 1, 0, 1, 0, 1]),
                                                 ("integral", [0, 0, 0, 1, 1, 0], [0, 1, 0, 1, 1, 1])])
def test_a_neuron_local_selection_is_priced_by_hand(rule, sent, pending):
    """Neuron 'a' spikes 0 1 0 1 0 1; its weight is 16 (one neuron: its layer's mean), its
    threshold 24. patience: each change waits one step, but is gone by then: nothing is sent,
    three steps pend. integral: 16 at t = 2, kept over t = 3, 32 at t = 4 (sent, 8 left), 24 at
    t = 5 (the change back: sent, 0 left), 16 at t = 6: two sent, four steps pend. Each pending
    step is one more active neuron update (`selection`), in energy and in time."""
    p = load_profile("loihi2")
    spec = flipping_net()
    spec.scores = {"a": np.ones(1, np.float32)}
    counts = simulate(spec, np.ones((2, T, 1)), "ddla", Selection(rule, 0.5, {"a": 24})).counts
    assert counts.events["a"].tolist() == [2 * s for s in sent]
    assert counts.pending["a"].tolist() == [2 * q for q in pending]
    report = cost_run(spec, counts, p, enc("delta"))
    r = rows(report)
    e_active, t_active = p.quantity("energy", "e_neuron_active").value, p.quantity("time", "t_neuron_active").value
    assert r["a"]["selection_updates"] == sum(pending) and r["out"]["selection_updates"] == 0
    assert r["a"]["energy_j"]["selection"] == pytest.approx(sum(pending) * e_active)
    assert report["totals"]["energy_parts_j"]["selection"] == pytest.approx(sum(pending) * e_active)
    assert r["out"]["synaptic_ops"] == 2 * sum(sent)
    unpriced = copy.deepcopy(counts)
    unpriced.pending = {}
    plain = cost_run(spec, unpriced, p, enc("delta"))  # the same run without the rule's work
    assert {k: v for k, v in plain["totals"]["energy_parts_j"].items() if k not in ("selection", "static")} == \
        {k: v for k, v in report["totals"]["energy_parts_j"].items() if k not in ("selection", "static")}
    slower = np.array(report["totals"]["step_latency_s"]) - np.array(plain["totals"]["step_latency_s"])
    assert ((slower > 0) == np.array(pending, dtype=bool)).all() and (slower <= t_active * 1.0000001).all()


@pytest.mark.parametrize("profile, neurons, cores", [("loihi", 700, (1, 2)), ("loihi2", 3000, (1, 2))])
def test_the_selection_state_takes_neuron_slots_in_the_mapping(profile, neurons, cores):
    """A selecting layer's neurons take the profile's selection_units_per_neuron (2) slots each:
    700 neurons fit one of Loihi's 1,024-compartment cores, not with their selection's state; 3,000
    fit one of Loihi 2's 4,095-slot cores, not at 2 slots each."""
    a = Population("a", (neurons,), "if", np.zeros(neurons),
                   [Projection("input", [Op("linear", (1,), (neurons,), np.ones((neurons, 1)))])], sends=SPIKES)
    out = Population("out", (2,), "readout", np.zeros(2),
                     [Projection("a", [Op("linear", (neurons,), (2,), np.ones((2, neurons)))])], sends=GRADED)
    assign_depths([a, out])
    spec = NetSpec((1,), T, "direct", [a, out], input_sends=input_sends("direct"))
    terms = Terms(load_profile(profile))
    plain, selecting = (map_network(spec, enc("delta"), terms, frozenset(s)).cores["a"] for s in ((), ("a",)))
    assert (plain, selecting) == cores
    unknown = Terms(load_profile("truenorth"))
    map_network(spec, enc("delta"), unknown, frozenset({"a"}))
    assert "chip.selection_units_per_neuron" in unknown.unknown  # named, not assumed


def delayed_layer(n: int, longest: int) -> NetSpec:
    """input -> n cuba neurons, one of them with a synaptic delay of `longest` steps -> readout of 2."""
    delay = np.zeros(n, dtype=np.int64)
    delay[5] = longest
    a = Population("a", (n,), "cuba", np.zeros(n), [Projection("input", [Op("linear", (1,), (n,), np.ones((n, 1)))])],
                   v_th=64.0, input_delay=delay if longest else None, sends=SPIKES)
    out = Population("out", (2,), "readout", np.zeros(2),
                     [Projection("a", [Op("linear", (n,), (2,), np.ones((2, n)))])], sends=GRADED)
    assign_depths([a, out])
    return NetSpec((1,), T, "direct", [a, out], input_sends=input_sends("direct"))


@pytest.mark.parametrize("longest, cores", [(0, 1), (7, 1), (8, 2), (20, 3), (62, 6)])
def test_synaptic_delays_take_neuron_slots(longest, cores):
    """A layer whose longest delay is D buffers D + 1 steps a neuron, 8 a slot on Loihi 2: 3,000
    cuba neurons fit one 4,095-slot core up to D = 7; at D = 8 they take 2 slots each (2,047 a
    core: 2 cores), at D = 20 3 (1,365: 3 cores), at D = 62 8 (511 a core: 6 cores)."""
    spec = delayed_layer(3000, longest)
    mapping = map_network(spec, enc("dense"), Terms(load_profile("loihi2")))
    assert (mapping.cores["a"], mapping.binds["a"]) == (cores, "one core" if cores == 1 else "neurons")
    check_delays(spec, load_profile("loihi2"))


@pytest.mark.parametrize("profile", ["loihi2", "loihi"])
def test_a_wide_fan_in_binds_the_synapse_memory(profile):
    """100 neurons reading 5,000 inputs; the neurons alone fit one core. Loihi 2's compiler (weights
    of 1: one bit, 13 a synapse with its index, a 16-bit header): on one core 21 words an input
    axon (105,000 > 12,000), so 9 cores (12 neurons, 3 words: 15,000), then 18 (2 words: 10,000,
    fits). Loihi's explicit map: 1,000,000 bytes (an on/off synapse pair each, the analog input
    being signed on a binary chip), 131,072 a core: 8 cores. The readout fits one."""
    wide = Population("a", (100,), "if", np.zeros(100),
                      [Projection("input", [Op("linear", (5000,), (100,), np.ones((100, 5000)))])], sends=SPIKES)
    out = Population("out", (2,), "readout", np.zeros(2),
                     [Projection("a", [Op("linear", (100,), (2,), np.ones((2, 100)))])], sends=GRADED)
    assign_depths([wide, out])
    spec = NetSpec((5000,), T, "direct", [wide, out], input_sends=input_sends("direct"))
    mapping = map_network(spec, enc("dense"), Terms(load_profile(profile)))
    assert (mapping.cores["a"], mapping.binds["a"]) == ({"loihi2": 18, "loihi": 8}[profile], "synapse memory")
    assert mapping.binds["out"] == "one core"


def test_a_delay_past_the_chips_longest_is_refused_and_an_unknown_buffer_named():
    with pytest.raises(CostError, match="layer a: a synaptic delay of 63 steps, and loihi2 holds at most 62"):
        check_delays(delayed_layer(100, 63), load_profile("loihi2"))
    unknown = Terms(load_profile("truenorth"))
    map_network(delayed_layer(100, 3), enc("dense"), unknown)
    assert "chip.delay_slots_per_neuron" in unknown.unknown
