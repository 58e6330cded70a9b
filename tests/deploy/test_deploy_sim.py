"""IR, quantization and the fast simulator, without Lava: dense == delta, the float simulator
== the torch network, SOP fan-outs by hand, NIR import errors, ResNet-19 mapping."""
import ctypes
import platform

import nir
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy_nets import NETWORKS, SELECTIONS, convnet, inputs, random_scores, selection, spec_of
from ddla_neuro.ddla.executor import DeltaExecutor, SensitivityStats, ThresholdTracker
from ddla_neuro.deploy.ir import IRError, input_sends, nir_to_spec
from ddla_neuro.deploy.lava_run import LavaRunError, run_lava
from ddla_neuro.deploy.quant import quantize, quantize_input, quantize_run
from ddla_neuro.deploy import sim
from ddla_neuro.deploy.sim import simulate
from ddla_neuro.deploy.ops import MEMBRANE_BITS, projection_fanout, synaptic_ops
from ddla_neuro.deploy.spec import (SPIKES, NetSpec, Op, Population, Projection, Sends, assign_depths, load_spec,
                                    save_spec, shared_op_prefixes)
from ddla_neuro.zoo import build_model

GRADED = Sends(graded=True, bits=MEMBRANE_BITS)


def torch_spike_counts(net, x):
    """Spikes per population and timestep of the torch network, summed over the samples."""
    ex = DeltaExecutor(net, "dense")
    with torch.no_grad():
        out, _ = ex.run(net.encode(x))
    return out.transpose(0, 1).numpy(), {k: v["spikes"].numpy() for k, v in ex.counts.totals.items()}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_float_simulator_equals_the_torch_network(name):
    net = NETWORKS[name]()
    x, frames = inputs(net, 16)
    logits, spikes = torch_spike_counts(net, x)
    result = simulate(spec_of(net), frames, "dense")
    np.testing.assert_array_equal(result.logits, logits)
    assert {k: v.tolist() for k, v in result.counts.spikes.items()} == {k: v.tolist() for k, v in spikes.items()}
    assert sum(v.sum() for v in spikes.values()) > 0


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("fixed", [False, True])
def test_delta_equals_dense_and_keep_one_equals_delta(name, fixed):
    net = NETWORKS[name]()
    spec = random_scores(spec_of(net))
    _, frames = inputs(net, 16)
    if fixed:
        spec, frames = quantize_run(spec, frames)
    dense, delta = simulate(spec, frames, "dense"), simulate(spec, frames, "delta")
    np.testing.assert_array_equal(dense.logits, delta.logits)
    assert all(np.array_equal(dense.counts.spikes[k], delta.counts.spikes[k]) for k in dense.counts.spikes)
    ddla1 = simulate(spec, frames, "ddla", selection(spec, keep=1.0))
    np.testing.assert_array_equal(ddla1.logits, delta.logits)
    assert ddla1.counts.to_dict() == delta.counts.to_dict()
    ddla = simulate(spec, frames, "ddla", selection(spec))
    assert ddla.counts.total("events", skip=("input",)) < delta.counts.total("events", skip=("input",))


@pytest.mark.parametrize("name", ["convnet", "sdt"])
def test_fixed_point_keeps_the_float_accuracy_of_a_trained_sized_network(name):
    net = NETWORKS[name](seed=3)
    _, frames = inputs(net, 64, seed=1)
    spec = spec_of(net)
    q = quantize(spec)
    agree = (simulate(q, quantize_input(frames, q), "dense").predictions == simulate(spec, frames).predictions).mean()
    assert agree >= 0.9
    for pop in q.populations:
        for proj in pop.inputs:
            w = proj.weighted.weight
            assert w.dtype == np.int64 and w.min() >= -128 and w.max() <= 127 and proj.shift >= 0


@pytest.mark.parametrize("rule", SELECTIONS)
def test_ddla_in_the_simulator_equals_the_torch_executor_with_statistics(rule):
    """The trainer's forward (the executor) and the simulator select the same changes, every rule."""
    net = convnet(seed=1)
    x, frames = inputs(net, 16)
    spec = random_scores(spec_of(net), seed=2)
    stats = SensitivityStats(values={k: torch.as_tensor(v) for k, v in spec.scores.items()})
    chosen = selection(spec, rule, 0.4)
    ex = DeltaExecutor(net, "ddla", keep=0.4, source="stats", stats=stats, rule=rule,
                       thresholds=ThresholdTracker(chosen.thresholds))
    with torch.no_grad():
        out, _ = ex.run(net.encode(x))
    result = simulate(spec, frames, "ddla", chosen)
    assert result.counts.total("events", skip=("input",)) < simulate(spec, frames).counts.total("events",
                                                                                               skip=("input",))
    np.testing.assert_array_equal(result.logits, out.transpose(0, 1).numpy())
    sent = {k: v["transmitted"].numpy() for k, v in ex.counts.totals.items()}
    assert {k: v.tolist() for k, v in sent.items()} == {k: result.counts.events[k].tolist() for k in sent}


def test_conv_fanout_counts_borders_strides_and_padding_by_hand():
    # 3x3 conv, stride 2, padding 1 on 5x5 -> 3x3 outputs at rows/cols -1..1, 1..3, 3..5
    op = Op("conv2d", (1, 5, 5), (2, 3, 3), np.ones((2, 1, 3, 3)), (2, 2), (1, 1), (3, 3))
    reach = np.array([1, 2, 1, 2, 1])  # input row i lies in the windows of how many output rows
    np.testing.assert_array_equal(op.fanout[0], 2 * np.outer(reach, reach))
    x = np.zeros((1, 5, 5))
    x[0, 0, 0], x[0, 1, 1], x[0, 2, 3] = 1, -1, 1
    assert synaptic_ops(projection_fanout([op]), x) == 2 * (1 * 1 + 2 * 2 + 1 * 2)
    lin = Op("linear", (4,), (3,), np.ones((3, 4)))
    assert synaptic_ops(projection_fanout([lin]), np.array([0, 1, 0, -1])) == 6
    pool = Op("sumpool2d", (1, 4, 4), (1, 2, 2), None, (2, 2), (0, 0), (2, 2))
    flat, lin2 = Op("flatten", (1, 2, 2), (4,)), Op("linear", (4,), (5,), np.ones((5, 4)))
    x = np.zeros((1, 4, 4))
    x[0, 0, 0] = x[0, 0, 1] = x[0, 3, 3] = 1  # each reaches one pooled value, which reaches 5 targets
    ops = [pool, flat, lin2]
    assert synaptic_ops(projection_fanout(ops), x) == 3 * 5  # the composed matrix: 5 synapses per input
    x[0, 1, 0] = -1  # cancels x[0, 0, 0] inside the pooling window: a chip still does its 5 SOPs
    assert synaptic_ops(projection_fanout(ops), x) == 4 * 5
    assert synaptic_ops(projection_fanout(ops), np.stack([x, x[:, ::-1]])) == 2 * 4 * 5  # a batch: its sum
    np.testing.assert_array_equal(lin.fanout, [3, 3, 3, 3])  # every input reaches every output
    np.testing.assert_array_equal(pool.fanout, np.ones((1, 4, 4)))  # 2x2 windows, stride 2: one each
    overlapping = Op("sumpool2d", (1, 3, 3), (1, 2, 2), None, (1, 1), (0, 0), (2, 2))
    np.testing.assert_array_equal(projection_fanout([overlapping, Op("flatten", (1, 2, 2), (4,))])[0],
                                  [[1, 2, 1], [2, 4, 2], [1, 2, 1]])  # paths through overlapping windows


@pytest.mark.parametrize("name", ["residual", "sdt"])
def test_spec_round_trips_through_npz(tmp_path, name):
    spec = quantize(random_scores(spec_of(NETWORKS[name]())))
    save_spec(tmp_path / "s.npz", spec, frames=np.zeros(3))
    back, extra = load_spec(tmp_path / "s.npz")
    assert list(extra) == ["frames"]
    _, frames = inputs(NETWORKS[name](), 4)
    a = simulate(spec, quantize_input(frames, spec), "ddla", selection(spec))
    b = simulate(back, quantize_input(frames, back), "ddla", selection(back))
    np.testing.assert_array_equal(a.logits, b.logits)
    assert [p.depth for p in back.populations] == [p.depth for p in spec.populations]
    assert back.input_sends == spec.input_sends and [p.sends for p in back.populations] == [
        p.sends for p in spec.populations]  # what each sender sends travels with the spec (Lava jobs)
    assert len({p.sends for p in spec.populations}) > 1


@pytest.mark.parametrize("fixed", [False, True])
def test_shared_op_prefixes_compute_the_same_and_reusing_them_changes_nothing(monkeypatch, fixed):
    spec = random_scores(spec_of(NETWORKS["sdt"]()))
    spec = quantize(spec) if fixed else spec
    shared = shared_op_prefixes(spec)
    groups = {}
    for (i, j), prefixes in shared.items():
        for k, group in prefixes:
            groups.setdefault(group, []).append(spec.populations[i].inputs[j].ops[:k + 1])
    assert groups and all(len(g) > 1 for g in groups.values())  # the residual stream repeats layers
    for prefixes in groups.values():  # each group's prefixes: one source, equal outputs on equal inputs
        x = torch.randint(-3, 4, (2, *prefixes[0][0].in_shape), dtype=torch.float64)
        outs = []
        for ops in prefixes:
            y = x
            for op in ops:
                y = sim._apply(op, None if op.weight is None else torch.as_tensor(op.weight, dtype=torch.float64), y)
            outs.append(y)
        assert all(torch.equal(outs[0], y) for y in outs[1:])
    _, frames = inputs(NETWORKS["sdt"](), 8)
    frames = quantize_input(frames, spec) if fixed else frames
    runs = {mode: simulate(spec, frames, mode, selection(spec) if mode == "ddla" else None, batch_size=3,
                           neurobench=True) for mode in ("dense", "delta", "ddla")}
    monkeypatch.setattr(sim, "shared_op_prefixes", lambda spec: {})  # every projection applies all its ops
    for mode, reused in runs.items():
        alone = simulate(spec, frames, mode, selection(spec) if mode == "ddla" else None, batch_size=3, neurobench=True)
        np.testing.assert_array_equal(reused.logits, alone.logits)
        assert reused.counts.to_dict() == alone.counts.to_dict()


def _assert_equal_to_an_all_float64_run(monkeypatch, spec, frames, runs):
    """Each mode's run (`runs`: mode -> result) gives the logits and counts of the same run with
    every op and population in float64 (one batch)."""
    monkeypatch.setattr(sim, "EXACT_FLOAT32", 0.0)
    monkeypatch.setattr(sim, "current_bound", lambda pop, peaks: float("inf"))
    for mode, run in runs.items():
        wide = simulate(spec, frames, mode, selection(spec) if mode == "ddla" else None, batch_size=len(frames))
        np.testing.assert_array_equal(run.logits, wide.logits)
        assert run.counts.to_dict() == wide.counts.to_dict()


def test_a_max_pool_sends_within_its_bound_and_float32_changes_nothing(monkeypatch):
    spec = quantize(random_scores(spec_of(NETWORKS["sdt"]())))
    _, frames = inputs(NETWORKS["sdt"](), 8)
    frames = quantize_input(frames, spec)
    input_peak = 2.0 * float(np.abs(frames).max())
    peaks = sim._sender_peaks(spec, input_peak)
    pools = [p.name for p in spec.populations if p.kind == "maxpool" and spec.sends(p.name).graded]
    assert pools and all(np.isfinite(peaks[name]) for name in pools)
    runs = {mode: simulate(spec, frames, mode, selection(spec) if mode == "ddla" else None, record=True)
            for mode in ("dense", "delta", "ddla")}
    for run in runs.values():  # what a max pool sends (its values, or their changes) stays within the bound
        assert all(np.abs(run.sent[name]).max() <= peaks[name] for name in pools)
    _assert_equal_to_an_all_float64_run(monkeypatch, spec, frames, runs)


def test_a_batch_bounds_its_compute_senders_by_what_they_sent(monkeypatch):
    """With no bound known before the run (the worst case of a deep max pool or a product is
    far above what they send), each batch takes twice the largest value a max pool or product
    computed as its bound: what it sends stays within it, its readers run in float32, and the
    results equal those of an all-float64 run, whatever the batch."""
    spec = quantize(random_scores(spec_of(NETWORKS["sdt"]())))
    frames = quantize_input(inputs(NETWORKS["sdt"](), 8)[1], spec)
    compute = {p.name for p in spec.populations if p.kind in ("maxpool", "product")}
    static = sim._sender_peaks
    monkeypatch.setattr(sim, "_sender_peaks", lambda *a: {k: float("inf") if k in compute else v
                                                          for k, v in static(*a).items()})
    readers, bounds = [], {}  # the dtypes the readers of compute populations ran in; per mode, the bounds
    use_peak, measured_peak = sim._Projection.use_peak, sim._Population.measured_peak

    def spy_readers(proj, peak):
        use_peak(proj, peak)
        if proj.source in compute:
            readers.append((peak, proj.dtype))

    def spy_bounds(pop, out):
        bound = measured_peak(pop, out)
        if bound is not None:
            bounds[mode].setdefault(pop.pop.name, []).append(bound)  # one per batch, in order
        return bound
    monkeypatch.setattr(sim._Projection, "use_peak", spy_readers)
    monkeypatch.setattr(sim._Population, "measured_peak", spy_bounds)
    runs = {}
    for mode in ("dense", "delta", "ddla"):
        bounds[mode] = {}
        runs[mode] = simulate(spec, frames, mode, selection(spec) if mode == "ddla" else None, batch_size=3,
                              record=True)
        assert bounds[mode].keys() == compute
        for name, per_batch in bounds[mode].items():  # what each batch sent stays within its bound
            assert [np.abs(run).max() <= b for run, b in zip(np.split(runs[mode].sent[name], [3, 6]), per_batch)] \
                == [True] * 3
    assert any(dtype == torch.float32 and np.isfinite(peak) for peak, dtype in readers)
    _assert_equal_to_an_all_float64_run(monkeypatch, spec, frames, runs)


def test_a_projection_takes_a_shared_output_only_where_its_dtype_keeps_it_exact():
    # a float32 prefix computed by a projection whose later op has gain 0 (all-zero weights)
    # may have rounded: a reader takes it only where the prefix alone stays below 2**24
    big = Op("linear", (4,), (4,), weight=np.full((4, 4), 2 ** 21, dtype=np.int64))
    zero = Op("linear", (4,), (2,), weight=np.zeros((2, 4), dtype=np.int64))
    muted = sim._Projection(Projection("a", [big, zero]), True, 8.0, [False, False], 1.0, [(0, 0)],
                            torch.device("cpu"))
    wide = sim._Projection(Projection("a", [big]), True, 8.0, [False], 1.0, [(0, 0)], torch.device("cpu"))
    assert muted.dtype == torch.float32 and wide.dtype == torch.float64  # 4 * 2**21 * 8 = 2**26
    prefix = torch.zeros(1, 4)
    assert not wide._takes(prefix.float(), 0) and not muted._takes(prefix.float(), 0)
    assert wide._takes(prefix.double(), 0)
    wide.use_peak(1.0)  # 2**23: exact in float32, whichever computed it
    assert wide._takes(prefix.float(), 0) and wide._takes(prefix.double(), 0)


def test_residual_paths_are_aligned_by_delays():
    spec = spec_of(NETWORKS["residual"]())
    for pop in spec.populations:
        for proj in pop.inputs:
            src_depth = 0 if proj.source == "input" else spec.population(proj.source).depth
            assert src_depth + proj.delay == pop.depth
    assert max(proj.delay for pop in spec.populations for proj in pop.inputs) == 2  # the shortcuts


def test_resnet19_maps_and_simulates_like_torch():
    torch.manual_seed(0)
    from deploy_nets import dyadic_
    net = dyadic_(build_model("resnet19", num_classes=10, input_shape=(3, 32, 32), timesteps=2, width=4), 0, 3.0)
    spec = spec_of(net)
    assert len(spec.spiking) == 1 + 2 * 8 + 1  # stem, two per basic block, the FC neuron
    x = torch.round(torch.rand(2, 3, 32, 32) * 256) / 256
    with torch.no_grad():
        ref = net.run(x).transpose(0, 1).numpy()
    np.testing.assert_array_equal(simulate(spec, net.encode(x).transpose(0, 1).numpy(), "delta").logits, ref)


def test_sdt_maps_to_compute_populations_that_lava_refuses():
    net = build_model("sdt", num_classes=10, input_shape=(3, 32, 32), timesteps=1, dim=32, depth=1)
    spec = spec_of(net)
    kinds = [p.kind for p in spec.compute]
    assert kinds == ["maxpool", "maxpool", "product", "product"]
    kv = next(p for p in spec.populations if p.name.endswith(".kv_neuron"))
    assert kv.shape == (32, 1, 1) and kv.v_th == 0.5  # one LIF per channel over the token sum
    assert spec.compute[0].pool.kernel == (3, 3) and spec.compute[0].pool.stride == (2, 2)
    with pytest.raises(LavaRunError, match=r"not mapped to Lava: .*\(maxpool\).*--backend fast"):
        run_lava(spec, np.zeros((1, 1, 3, 32, 32)))


def test_compute_populations_by_hand():
    """A max pool over a graded current and a product of two spike maps, in float and fixed point."""
    x = np.array([[0.5, -1.0, 0.25, 2.0], [1.5, 0.0, -0.75, 0.25]]).reshape(1, 1, 2, 4)  # (N, C, H, W)
    ident = lambda shape: [Op("flatten", shape, shape), Op("scale", shape, shape, np.array(1.0))]  # noqa: E731
    pool = Op("maxpool2d", (1, 2, 4), (1, 1, 2), None, (2, 2), (0, 0), (2, 2))
    spec = NetSpec((1, 2, 4), 2, "direct", [
        Population("pool", (1, 1, 2), "maxpool", np.full((1, 2, 4), 0.25), [Projection("input", ident((1, 2, 4)))],
                   v_th=0.0, pool=pool, sends=GRADED),
        Population("spk", (1, 2, 4), "if", np.zeros((1, 2, 4)), [Projection("input", ident((1, 2, 4)))], v_th=0.4,
                   sends=SPIKES),
        Population("prod", (1, 2, 4), "product", np.zeros((1, 2, 4)),
                   [Projection("spk", ident((1, 2, 4))), Projection("spk", ident((1, 2, 4)))], v_th=0.0, sends=SPIKES),
        Population("out", (3,), "readout", np.zeros(3),
                   [Projection("pool", [Op("flatten", (1, 1, 2), (2,)), Op("linear", (2,), (3,), np.eye(3, 2))]),
                    Projection("prod", [Op("flatten", (1, 2, 4), (8,)), Op("linear", (8,), (3,), np.ones((3, 8)))])],
                   sends=GRADED),
    ], input_sends=input_sends("direct"))
    assign_depths(spec.populations)
    frames = np.repeat(x[:, None], 2, axis=1)
    # t=1: pool = max(0.5,-1,1.5,0)+0.25, max(0.25,2,-0.75,0.25)+0.25; spk = x > 0.4: 3 spikes,
    # whose squares (3 ones) reach every output
    want_t1 = [1.75 + 3, 2.25 + 3, 3.0]
    for s in (spec, quantize(spec)):
        f = quantize_input(frames, s) if s.fixed else frames
        dense, delta = simulate(s, f, "dense"), simulate(s, f, "delta")
        np.testing.assert_array_equal(dense.logits[0, 0], want_t1)
        np.testing.assert_array_equal(delta.logits, dense.logits)
        assert delta.counts.events["pool"].tolist() == [2, 0]  # unchanged graded output: no event at t=2
        assert "pool" not in delta.counts.spikes  # spikes count neurons only


def test_unsupported_nir_node_is_named():
    graph = nir.NIRGraph(nodes={"input": nir.Input({"input": np.array([3])}),
                                "syn": nir.CubaLIF(tau_mem=np.ones(3), tau_syn=np.ones(3), r=np.ones(3),
                                                   v_leak=np.zeros(3), v_threshold=np.ones(3)),
                                "output": nir.Output({"output": np.array([3])})},
                         edges=[("input", "syn"), ("syn", "output")], type_check=False)
    with pytest.raises(IRError, match="'syn' of type CubaLIF"):
        nir_to_spec(graph, timesteps=2)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.integers(1, 12), depth=st.integers(1, 3),
       t=st.integers(1, 5), fixed=st.booleans())
def test_property_delta_equals_dense_on_random_mlps(seed, width, depth, t, fixed):
    torch.manual_seed(seed)
    from deploy_nets import dyadic_
    net = dyadic_(build_model("mlp", num_classes=3, input_shape=(5,), timesteps=t, hidden=[width] * depth,
                              encoding="poisson"), seed, 4.0)
    spec = spec_of(net)
    frames = net.encode(torch.rand(6, 5), torch.Generator().manual_seed(seed)).transpose(0, 1).numpy()
    if fixed:
        spec, frames = quantize_run(spec, frames)
    dense, delta = simulate(spec, frames, "dense"), simulate(spec, frames, "delta")
    np.testing.assert_array_equal(dense.logits, delta.logits)
    assert dense.counts.spikes.keys() == delta.counts.spikes.keys()
    assert all(np.array_equal(dense.counts.spikes[k], delta.counts.spikes[k]) for k in dense.counts.spikes)


def test_the_batch_shrinks_to_fit_memory_and_the_results_do_not_change():
    """With a budget that fits three samples the simulator runs batches of three; logits and
    every counter equal the run in one batch. The estimate is linear in the batch."""
    from ddla_neuro.deploy.sim import estimate_peak_bytes, fit_batch
    net = NETWORKS["residual"]()
    spec = quantize(random_scores(spec_of(net)))
    _, frames = inputs(net, 10)
    frames = quantize_input(frames, spec)
    assert estimate_peak_bytes(spec, 6) == 2 * estimate_peak_bytes(spec, 3) > 0
    budget = estimate_peak_bytes(spec, 3) + 1
    assert fit_batch(spec, 256, budget) == 3 and fit_batch(spec, 2, budget) == 2
    chosen = selection(spec)
    small, whole = simulate(spec, frames, "ddla", chosen, memory_budget=budget), simulate(spec, frames, "ddla", chosen)
    np.testing.assert_array_equal(small.logits, whole.logits)
    assert small.counts.to_dict() == whole.counts.to_dict()


def test_a_network_too_big_for_memory_is_refused_before_any_work():
    from ddla_neuro.deploy.run import RunError
    from ddla_neuro.deploy.sim import estimate_peak_bytes
    net = NETWORKS["convnet"]()
    spec = quantize(spec_of(net))
    one = estimate_peak_bytes(spec, 1)
    with pytest.raises(RunError, match=r"needs about .* GiB for one sample of this network \(T = 4\)"):
        simulate(spec, quantize_input(inputs(net, 2)[1], spec), memory_budget=one - 1)


def test_a_batch_of_no_samples_is_refused():
    from ddla_neuro.deploy.run import RunError
    net = NETWORKS["convnet"]()
    spec = quantize(spec_of(net))
    with pytest.raises(RunError, match="batch must be at least 1 sample, got 0"):
        simulate(spec, quantize_input(inputs(net, 2)[1], spec), batch_size=0)


@pytest.mark.parametrize("kernel,shape", [((2, 2), (3, 4, 8, 6)), ((3, 3), (2, 2, 9, 6)), ((2, 3), (2, 3, 4, 9)),
                                          ((1, 2), (1, 1, 3, 4))])
def test_tiled_sum_pool_equals_torch_pooling_on_integers(kernel, shape):
    """The fixed-point sum pool (windows added with strided views) equals avg_pool2d times the
    window size, for square and oblong windows."""
    from ddla_neuro.deploy.sim import _apply
    op = Op("sumpool2d", shape[1:], (shape[1], shape[2] // kernel[0], shape[3] // kernel[1]), stride=kernel,
            kernel=kernel)
    x = torch.randint(-300, 300, shape, generator=torch.Generator().manual_seed(0)).float()
    expected = torch.nn.functional.avg_pool2d(x, kernel, kernel, divisor_override=1)
    torch.testing.assert_close(_apply(op, None, x, exact=True), expected, rtol=0, atol=0)


def test_lava_refuses_a_run_that_would_not_fit_without_starting_it(monkeypatch):
    from ddla_neuro.deploy import isolation, lava_run
    net = NETWORKS["mlp"]()
    spec = quantize(spec_of(net))
    monkeypatch.setattr(lava_run, "available_memory", lambda: lava_run.estimate_lava_bytes(spec))  # 80% of it is free
    started = []
    monkeypatch.setattr(isolation.subprocess, "Popen", lambda *a, **k: started.append(a))
    with pytest.raises(LavaRunError, match=r"the Lava run needs about .* GiB for this network"):
        run_lava(spec, quantize_input(inputs(net, 2)[1], spec))
    assert not started


def test_the_simulator_convolves_without_cudnn_or_tf32_and_restores_both(monkeypatch):
    """cuDNN may pick a Winograd or FFT algorithm for a float32 convolution, which rounds the
    integers a CUDA run must keep exact; the flags are the process's, so they are put back."""
    def flags() -> tuple[bool, bool, bool]:
        return torch.backends.cudnn.enabled, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32

    seen, conv2d = [], sim.F.conv2d
    net = convnet()
    spec, frames = quantize_run(spec_of(net), inputs(net, 2)[1])
    monkeypatch.setattr(sim.F, "conv2d", lambda *a, **k: seen.append(flags()) or conv2d(*a, **k))
    saved = flags()
    torch.backends.cudnn.enabled = torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        simulate(spec, frames, "delta")
        after = flags()
    finally:
        torch.backends.cudnn.enabled, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    assert seen and set(seen) == {(False, False, False)}
    assert after == (True, True, True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_cuda_run_equals_the_cpu_run_in_fixed_point(name):
    """Integers exact in float32/float64 on both devices (TF32 and cuDNN off): the same logits and the same
    counts, DDLA's selection included."""
    net = NETWORKS[name]()
    spec, frames = quantize_run(random_scores(spec_of(net)), inputs(net, 16)[1])
    for mode, chosen in (("dense", None), ("delta", None), ("ddla", selection(spec)),
                         ("ddla", selection(spec, "topk"))):
        cpu = simulate(spec, frames, mode, chosen, neurobench=mode == "dense")
        gpu = simulate(spec, frames, mode, chosen, neurobench=mode == "dense", device="cuda")
        np.testing.assert_array_equal(gpu.logits, cpu.logits)
        assert gpu.counts.to_dict() == cpu.counts.to_dict()
        assert gpu.counts.neurobench.keys() == cpu.counts.neurobench.keys()
        assert all(np.array_equal(gpu.counts.neurobench[k], cpu.counts.neurobench[k]) for k in cpu.counts.neurobench)



def test_neurobench_counts_past_two_to_the_24_are_exact_in_float32():
    """NeuroBench's effective ops of a float32 run add in float64: a layer whose count passes
    2**24 in one step gives the count of the same run in float64 (a float32 sum rounded it, so
    shards of a torchrun deploy disagreed in the last digits)."""
    from ddla_neuro.deploy.sim import neurobench_ops
    op = Op("conv2d", (64, 64, 64), (3, 64, 64), padding=(1, 1), kernel=(3, 3))
    w = torch.ones(3, 64, 3, 3)  # an input's fan-out 27, 18 or 12: the total is no multiple of 2**k
    x = (torch.rand(1, 4, 64 * 64 * 64, generator=torch.Generator().manual_seed(0)) < 0.9).float()
    single = neurobench_ops(op, w, 1.0, x, False)["effective_acs"]
    double = neurobench_ops(op, w.double(), 1.0, x.double(), False)["effective_acs"]
    assert double.item() > 2 ** 24 and single.item() == double.item()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the heap settings are glibc's")
def test_the_simulator_finds_glibc_to_keep_its_heap():
    # without it `reused_heap` does nothing, and every batch faults its memory in again
    from ddla_neuro.devices import _glibc
    libc = _glibc()
    assert libc is not None and libc.mallopt(-1, 2 ** 20) == 1  # M_TRIM_THRESHOLD accepted
    libc.mallopt(-1, 64 * 2 ** 20)  # back to the steady state reused_heap leaves


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the heap settings are glibc's")
def test_the_simulator_takes_large_blocks_from_the_heap():
    # glibc maps a block above 32 MiB apart and unmaps it when freed, so each batch would fault
    # it in again: while the simulator runs, even a 64 MiB tensor comes from the heap
    from ddla_neuro.devices import _glibc, reused_heap
    libc = _glibc()
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc before 2.33 has no mallinfo2")
    libc.mallinfo2.restype = _Mallinfo2
    mapped = lambda: libc.mallinfo2().hblkhd  # noqa: E731  bytes in blocks mapped apart
    # larger than the heap's free space left by earlier tests, which glibc would serve it from
    size = 64 * 2 ** 20 + libc.mallinfo2().fordblks
    before = mapped()
    outside = torch.empty(size, dtype=torch.uint8)
    assert mapped() - before >= size  # glibc's default: mapped apart
    del outside
    with reused_heap():
        before = mapped()
        inside = torch.empty(size, dtype=torch.uint8)
        assert mapped() - before < size
        del inside
