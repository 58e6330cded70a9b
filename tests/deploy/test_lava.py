"""Lava (lava-nc 0.10) runs of small networks: delta == dense, fixed point == the quantized
torch model, float == the torch network, Lava == the fast simulator in all modes, Norse NIR
import, and that failures and timeouts leave no live processes. Each Lava run takes ~0.5 s."""
import os
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy_nets import LAVA_NETWORKS, dyadic_, inputs, random_scores, selection, spec_of
from ddla_neuro.deploy.ir import fix_exported_graph, nir_to_spec, read_nir
from ddla_neuro.deploy.isolation import IsolationError, run_isolated
from ddla_neuro.deploy.lava_run import LavaRunError, lava_processes, run_lava
from ddla_neuro.deploy.quant import quantize, quantize_run
from ddla_neuro.deploy import lava_stages
from ddla_neuro.deploy.sim import simulate
from ddla_neuro.deploy.spec import Op
from ddla_neuro.zoo import build_model

COUNTS = ("events", "spikes", "sops", "sops_proj", "active")


def same_counts(a, b) -> bool:
    return all(a.counts.to_dict()[k] == b.counts.to_dict()[k] for k in COUNTS)


def prepared(name, fixed, n=3):
    net = LAVA_NETWORKS[name]()
    spec = random_scores(spec_of(net))
    x, frames = inputs(net, n)
    if fixed:
        spec, frames = quantize_run(spec, frames)
    return net, spec, x, frames


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LAVA_NETWORKS))
@pytest.mark.parametrize("fixed", [True, False])
def test_lava_delta_equals_dense_and_matches_the_simulator(name, fixed):
    net, spec, x, frames = prepared(name, fixed)
    runs = {}
    for mode, chosen in (("dense", None), ("delta", None), ("ddla", selection(spec)),
                         ("topk", selection(spec, "topk"))):
        runs[mode] = run_lava(spec, frames, mode if chosen is None else "ddla", chosen)
        sim = simulate(spec, frames, mode if chosen is None else "ddla", chosen)
        np.testing.assert_array_equal(runs[mode].logits, sim.logits)  # Lava == fast simulator, bit-exact
        assert same_counts(runs[mode], sim)
    np.testing.assert_array_equal(runs["delta"].logits, runs["dense"].logits)
    assert runs["delta"].counts.spikes.keys() == runs["dense"].counts.spikes.keys()
    assert all(np.array_equal(runs["delta"].counts.spikes[k], v) for k, v in runs["dense"].counts.spikes.items())
    # lossless deltas: every neuron sees the same current, so the same neurons are active
    assert runs["delta"].counts.to_dict()["active"] == runs["dense"].counts.to_dict()["active"]
    for r in runs.values():  # the same synaptic ops, attributed to senders or to receivers
        assert sum(v.sum() for v in r.counts.sops_proj.values()) == sum(v.sum() for v in r.counts.sops.values())
    if fixed:  # the fast simulator in fixed point is the quantized torch model
        return
    with torch.no_grad():
        ref = net.run(x).transpose(0, 1).numpy()
    np.testing.assert_array_equal(runs["dense"].logits, ref)  # Lava float == the torch network


@pytest.mark.parametrize("name", sorted(LAVA_NETWORKS))
def test_split_graph_equals_the_simulator_as_the_fused_one_does(name):
    """The two Lava graphs (one process per population where it has one projection, the
    encoder and readout folded in where they can be, the default; or a synapse process per
    projection and a neuron process per population) give the simulator's logits and counters;
    the residual network mixes both in the fused graph."""
    _, spec, _, frames = prepared(name, True)
    for mode, chosen in (("dense", None), ("ddla", selection(spec))):
        sim = simulate(spec, frames, mode, chosen)
        for graph in ("fused", "split"):
            run = run_lava(spec, frames, mode, chosen, graph=graph)
            np.testing.assert_array_equal(run.logits, sim.logits)
            assert same_counts(run, sim), (graph, mode)
    # hand-counted. fused mlp/convnet: Injector, first population (+ encoder), second population
    # (+ readout), Extractor. residual: Injector, Extractor, three fused populations (the first
    # with the encoder), two sums of two paths (2 synapses + neurons each), readout synapse +
    # Readout (its source, a sum, is not fused). split: Injector, DeltaEncoder, Extractor and per
    # population its synapses plus one.
    assert (lava_processes(spec, "fused"), lava_processes(spec, "split")) == {
        "mlp": (4, 9), "convnet": (4, 9), "residual": (2 + 3 + 2 * 3 + 2, 3 + 3 * 2 + 2 * 3 + 2)}[name]


@pytest.mark.parametrize("name", sorted(LAVA_NETWORKS))
def test_samples_in_lockstep_are_each_the_sample_run_alone(name):
    """Batch 2 on 5 samples: three rounds, the last with a padding row of zero frames that must
    neither count nor leak into the others; DDLA's selection is per sample."""
    _, spec, _, frames = prepared(name, True, n=5)
    for mode, chosen in (("delta", None), ("ddla", selection(spec))):
        run = run_lava(spec, frames, mode, chosen, batch=2)
        sim = simulate(spec, frames, mode, chosen)
        np.testing.assert_array_equal(run.logits, sim.logits)
        assert same_counts(run, sim), mode
        assert run.steps == 3 * spec.timesteps + spec.latency
    alone = run_lava(spec, frames, "ddla", selection(spec))
    np.testing.assert_array_equal(alone.logits, run.logits)
    assert alone.counts.to_dict() == run.counts.to_dict()


@pytest.mark.parametrize("name", sorted(LAVA_NETWORKS))
def test_a_stream_of_inferences_resets_every_interval(name):
    """--reset-interval 3 --reset-offset 1 on 8 steps of a constant frame: every neuron state
    returns to zero before steps 1, 4 and 7, so steps 1-3 and 4-6 spike alike (dense), which
    they do not without resets; Lava equals the simulator in every mode, 2 samples in lockstep,
    and delta equals dense (what receivers hold of a sender is not reset)."""
    net = LAVA_NETWORKS[name](timesteps=8)
    spec = random_scores(spec_of(net))
    _, frames = inputs(net, 3)
    spec, frames = quantize_run(spec, frames)
    stream = replace(spec, reset_interval=3, reset_offset=1)
    dense = simulate(stream, frames, "dense", record=True)
    for pop in stream.spiking:
        np.testing.assert_array_equal(dense.activity[pop.name][:, 1:4], dense.activity[pop.name][:, 4:7])
    plain = simulate(spec, frames, "dense", record=True)
    assert any(not np.array_equal(plain.activity[p.name][:, 1:4], plain.activity[p.name][:, 4:7]) for p in spec.spiking)
    np.testing.assert_array_equal(simulate(stream, frames, "delta").logits, dense.logits)
    for mode, chosen in (("dense", None), ("delta", None), ("ddla", selection(stream))):
        run, sim = run_lava(stream, frames, mode, chosen, batch=2), simulate(stream, frames, mode, chosen)
        np.testing.assert_array_equal(run.logits, sim.logits)
        assert same_counts(run, sim), mode


def test_one_population_holds_the_encoder_and_the_readout():
    """One hidden layer: its fused process also encodes the input and computes the logits, so
    the network is Injector -> one DeltaPopulation -> Extractor; the simulator's numbers."""
    torch.manual_seed(1)
    net = dyadic_(build_model("mlp", num_classes=3, input_shape=(1, 4, 4), hidden=[9], timesteps=4), 1, 3.0)
    spec, frames = quantize_run(random_scores(spec_of(net)), inputs(net, 3)[1])
    assert lava_processes(spec) == 3
    for mode, chosen in (("dense", None), ("ddla", selection(spec))):
        run, sim = run_lava(spec, frames, mode, chosen, batch=2), simulate(spec, frames, mode, chosen)
        np.testing.assert_array_equal(run.logits, sim.logits)
        assert same_counts(run, sim), mode


def test_float_samples_in_lockstep_in_the_split_graph():
    _, spec, _, frames = prepared("convnet", False, n=4)
    run, sim = run_lava(spec, frames, "dense", batch=4, graph="split"), simulate(spec, frames, "dense")
    np.testing.assert_array_equal(run.logits, sim.logits)
    assert same_counts(run, sim) and run.steps == spec.timesteps + spec.latency


def test_a_bad_batch_is_refused_in_one_line():
    _, spec, _, frames = prepared("mlp", True, n=2)
    for batch in (0, -1, 1.5, True):
        with pytest.raises(LavaRunError, match="the Lava batch must be a positive integer"):
            run_lava(spec, frames, batch=batch)


@pytest.mark.parametrize("as_matrix", [True, False])
@pytest.mark.parametrize("weight, magnitude", [(2 ** 7, 2 ** 12), (2 ** 7, 2 ** 20), (2 ** 40, 2 ** 6),
                                               (2 ** 40, 2 ** 14)])
def test_synapse_integers_are_exact_beyond_float_range(as_matrix, weight, magnitude, monkeypatch):
    """The synapse multiplies integers in float32 BLAS only while every partial sum stays below
    2**24, in float64 below 2**53, in int64 beyond. Sums near 2**23 (float32), 2**31 (float64:
    float32 would round them), 2**49 and 2**57 (int64: float64 would round them) must all come
    out as the exact integers, also with only one input changed (the composed matrix multiplies
    that row alone) and through a chain of ops."""
    monkeypatch.setattr(lava_stages, "MATRIX_ENTRIES", 2 ** 21 if as_matrix else 0)
    rng = np.random.default_rng(0)
    w = rng.integers(-weight, weight, size=(6, 20))
    ops = [Op("scale", (20,), (20,), weight=np.full(20, 3.0)), Op("linear", (20,), (6,), weight=w.astype(float))]
    syn = lava_stages.Synapse(dict(ops=ops, fanout=np.full(20, 6), shift=1, accumulate=False, delay=1), True, 3)
    assert syn.float32 == (weight < 2 ** 24)
    x = rng.integers(-magnitude, magnitude, size=(3, 20))
    one = np.zeros_like(x)
    one[:, 7] = x[:, 7]
    for d in (x, one):
        exact = [[2 * sum(int(wi) * 3 * int(xi) for wi, xi in zip(row, sample)) for row in w] for sample in d]
        assert syn.apply(d).tolist() == exact


def test_lava_ddla_with_keep_one_equals_delta():
    _, spec, _, frames = prepared("convnet", True)
    a, b = run_lava(spec, frames, "ddla", selection(spec, keep=1.0)), run_lava(spec, frames, "delta")
    np.testing.assert_array_equal(a.logits, b.logits)
    assert a.counts.to_dict() == b.counts.to_dict()
    # the timing the speed benchmark reads: every sample's T steps plus the pipeline drain
    assert a.steps == len(frames) * spec.timesteps + spec.latency and a.run_s > 0 and a.build_s > 0


@pytest.mark.slow
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 1000), width=st.integers(2, 10), t=st.integers(1, 4))
def test_property_lava_delta_equals_dense(seed, width, t):
    torch.manual_seed(seed)
    net = dyadic_(build_model("mlp", num_classes=3, input_shape=(6,), timesteps=t, hidden=[width, width],
                              encoding="poisson"), seed, 4.0)
    spec = quantize(spec_of(net))
    frames = net.encode(torch.rand(2, 6), torch.Generator().manual_seed(seed)).transpose(0, 1).numpy()
    dense, delta = run_lava(spec, frames, "dense"), run_lava(spec, frames, "delta")
    np.testing.assert_array_equal(dense.logits, delta.logits)
    assert all(np.array_equal(dense.counts.spikes[k], v) for k, v in delta.counts.spikes.items())


def test_a_norse_nir_file_deploys_and_matches_norse(tmp_path):
    import norse.torch as norse
    torch.manual_seed(0)
    dt = 0.001
    lif = norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.tensor(500.0)), dt=dt)  # dt/tau = 0.5
    model = norse.SequentialState(torch.nn.Linear(6, 8), lif, torch.nn.Linear(8, 7), norse.IAFCell(),
                                  torch.nn.Linear(7, 3))
    dyadic_(model, 0, 6.0)
    graph = fix_exported_graph(norse.to_nir(model, torch.zeros(1, 6), dt=dt), "norse")
    nir.write(tmp_path / "norse.nir", graph)
    spec = nir_to_spec(read_nir(tmp_path / "norse.nir"), timesteps=5, source="norse", dt=dt)
    assert [p.kind for p in spec.populations] == ["lif", "if", "readout"]
    x = torch.round(torch.rand(4, 6) * 4 * 64) / 64
    with torch.no_grad():
        state, outs = None, []
        for _ in range(5):
            out, state = model(x, state)
            outs.append(out)
    ref = torch.stack(outs, 1).numpy()
    frames = x[:, None].expand(4, 5, 6).numpy()
    result = run_lava(spec, frames, "delta")
    np.testing.assert_array_equal(result.logits, ref)
    assert result.counts.spikes["1"].sum() > 0 and result.counts.spikes["3"].sum() > 0


def live_processes(marker: str) -> list[int]:
    """PIDs of non-zombie processes whose command line contains `marker`."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state not in ("Z", "X"):
            pids.append(int(d.name))
    return pids


def assert_no_live(marker: str) -> None:
    for _ in range(50):
        if not live_processes(marker):
            return
        time.sleep(0.1)
    raise AssertionError(f"live processes left: {live_processes(marker)}")


RAISING_NETWORK = textwrap.dedent('''
    """A Lava network whose middle process raises at step 3: Lava itself then hangs forever."""
    import numpy as np
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.model import PyLoihiProcessModel
    from lava.magma.core.model.py.ports import PyInPort, PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.process.ports.ports import InPort, OutPort
    from lava.magma.core.process.process import AbstractProcess
    from lava.magma.core.resources import CPU
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    class Faulty(AbstractProcess):
        def __init__(self):
            super().__init__()
            self.a_in, self.s_out = InPort(shape=(2,)), OutPort(shape=(2,))

    @implements(proc=Faulty, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("floating_pt")
    class PyFaulty(PyLoihiProcessModel):
        a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

        def run_spk(self):
            x = self.a_in.recv()
            if self.time_step == 3:
                raise RuntimeError("a model failed")
            self.s_out.send(x)

    if __name__ == "__main__":
        src, faulty, sink = Source(data=np.ones((2, 10))), Faulty(), Sink(shape=(2,), buffer=10)
        src.s_out.connect(faulty.a_in)
        faulty.s_out.connect(sink.a_in)
        print("started", flush=True)
        src.run(condition=RunSteps(num_steps=10), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
        src.stop()
''')


@pytest.mark.slow
def test_a_raising_model_is_killed_with_all_its_processes(tmp_path):
    script = tmp_path / "raising_network.py"
    script.write_text(RAISING_NETWORK)
    lines = []
    with pytest.raises(IsolationError, match="timed out after 15 s"):
        run_isolated([sys.executable, str(script)], timeout=15, on_line=lines.append)
    assert lines == ["started"]  # it did start Lava, then hung
    assert_no_live(str(script))


@pytest.mark.slow
def test_a_runner_timeout_leaves_no_live_processes():
    _, spec, _, frames = prepared("convnet", True, n=5000)  # ~20 s of Lava steps
    with pytest.raises(LavaRunError, match="timed out after 3 s"):
        run_lava(spec, frames, "delta", timeout=3)
    assert_no_live("ddla_neuro.deploy.lava_worker")


def test_a_worker_failure_is_one_clear_error():
    _, spec, _, frames = prepared("mlp", True)
    spec.populations[0].shape = (99,)  # its ports no longer fit the next synapse: Lava refuses to connect
    with pytest.raises(LavaRunError, match="the Lava run failed .*incompatible"):
        run_lava(spec, frames, "delta", timeout=60)
    assert_no_live("ddla_neuro.deploy.lava_worker")
