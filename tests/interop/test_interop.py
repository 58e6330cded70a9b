"""Models from other libraries, exported with the library's own NIR exporter, deploy with one
flag and compute the library's own function: spikes per layer and step, and predictions."""
import json
from dataclasses import replace

import nir
import numpy as np
import pytest
import snntorch
import torch
from snntorch import utils as snn_utils
from snntorch.export_nir import export_to_nir

from deploy_nets import dyadic_, random_scores, selection
from interop_nets import T, snntorch_mlp
from ddla_neuro.deploy.cli import main
from ddla_neuro.deploy.ir import IRError, nir_to_spec, read_nir
from ddla_neuro.deploy.lava_run import run_lava
from ddla_neuro.deploy.quant import quantize, quantize_input, quantize_run
from ddla_neuro.deploy.sim import simulate
from ddla_neuro.errors import run_cli

def snntorch_spikes(net: torch.nn.Sequential, x: torch.Tensor) -> list[np.ndarray]:
    """Each Leaky's spikes (N, T, n), the same input every step (direct encoding)."""
    snn_utils.reset(net)
    leaky = [m for m in net if isinstance(m, snntorch.Leaky)]
    steps = {id(m): [] for m in leaky}
    hooks = [m.register_forward_hook(lambda mod, i, o: steps[id(mod)].append(o[0] if isinstance(o, tuple) else o))
             for m in leaky]
    with torch.no_grad():
        for _ in range(T):
            net(x)
    for h in hooks:
        h.remove()
    return [torch.stack(steps[id(m)], 1).numpy() for m in leaky]


@pytest.fixture
def exported(tmp_path):
    net = snntorch_mlp()
    path = tmp_path / "snntorch_mlp.nir"
    nir.write(path, export_to_nir(net, torch.zeros(64)))
    x = torch.round(torch.rand(8, 64, generator=torch.Generator().manual_seed(1)) * 64) / 64
    return net, path, x


def test_snntorch_mlp_computes_snntorchs_function(exported):
    net, path, x = exported
    spec = nir_to_spec(read_nir(path), timesteps=T, source="snntorch")
    assert [p.reset for p in spec.spiking] == ["delayed-subtract"] * 2
    assert [p.decay for p in spec.spiking] == [0.75, 0.5]
    frames = x[:, None].expand(len(x), T, 64).numpy()
    ref = snntorch_spikes(net, x)
    assert all(r.sum() > 0 for r in ref) and all(r.sum() < r.size for r in ref)
    sim = simulate(spec, frames, "dense", record=True)
    lava = run_lava(spec, frames, "delta")
    for pop, spikes in zip(spec.spiking, ref):
        np.testing.assert_array_equal(sim.sent[pop.name], spikes)
        np.testing.assert_array_equal(lava.counts.spikes[pop.name], spikes.sum((0, 2)))
    np.testing.assert_array_equal(sim.logits, ref[-1])  # the readout sums the last layer's spikes
    np.testing.assert_array_equal(sim.predictions, ref[-1].sum(1).argmax(1))
    np.testing.assert_array_equal(lava.logits, sim.logits)


def test_snntorch_convnet_computes_snntorchs_function(tmp_path):
    """Conv2d + Leaky, AvgPool2d, Flatten, Linear + Leaky, exported by snnTorch with a batched
    sample and `ignore_dims=[0]` (NIR's conv type inference fails on the batch axis): every
    layer spikes as in snnTorch, step by step, and the float Lava run equals the simulator."""
    torch.manual_seed(0)
    net = dyadic_(torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        snntorch.Leaky(beta=torch.full((4, 8, 8), 0.75), threshold=torch.ones(4, 8, 8), init_hidden=True),
        torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 10),
        snntorch.Leaky(beta=torch.full((10,), 0.5), threshold=torch.ones(10), init_hidden=True, output=True)), 0, 4.0)
    nir.write(tmp_path / "conv.nir", export_to_nir(net, torch.zeros(1, 1, 8, 8), ignore_dims=[0]))
    spec = nir_to_spec(read_nir(tmp_path / "conv.nir"), timesteps=T, source="snntorch")
    assert [op.kind for op in spec.spiking[1].inputs[0].ops] == ["sumpool2d", "flatten", "linear"]
    x = torch.round(torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 64) / 64
    ref = snntorch_spikes(net, x)
    assert all(0 < r.mean() < 1 for r in ref)
    frames = x[:, None].expand(len(x), T, 1, 8, 8).numpy()
    sim = simulate(spec, frames, "dense", record=True)
    for pop, spikes in zip(spec.spiking, ref):
        np.testing.assert_array_equal(sim.sent[pop.name], spikes.reshape(len(x), T, -1))
    np.testing.assert_array_equal(sim.predictions, ref[-1].sum(1).argmax(1))
    np.testing.assert_array_equal(run_lava(spec, frames[:2], "delta").logits, sim.logits[:2])


def test_delayed_reset_is_not_the_immediate_one(exported):
    """The one-step-late subtraction changes the function of a leaky neuron (with beta = 1 the
    two would agree): the snnTorch graph read with the generic immediate reset differs."""
    net, path, x = exported
    frames = x[:, None].expand(len(x), T, 64).numpy()
    delayed = nir_to_spec(read_nir(path), timesteps=T, source="snntorch")
    immediate = nir_to_spec(read_nir(path), timesteps=T, source="generic", dt=1e-4)
    assert [p.reset for p in immediate.spiking] == ["zero", "zero"]
    for p in immediate.spiking:
        p.reset = "subtract"
    a, b = simulate(delayed, frames, "dense", record=True), simulate(immediate, frames, "dense", record=True)
    assert any(not np.array_equal(a.sent[p.name], b.sent[p.name]) for p in delayed.spiking)


@pytest.mark.parametrize("reset", ["delayed-subtract", "delayed-zero"])
def test_delayed_reset_in_fixed_point_lava_equals_the_simulator(exported, reset):
    """snnTorch's two delayed resets (`reset_mechanism` subtract and zero), in every mode, DDLA's
    selection included."""
    _, path, x = exported
    spec = random_scores(quantize(nir_to_spec(read_nir(path), timesteps=T, source="snntorch")))
    spec = replace(spec, populations=[replace(p, reset=reset) if p.reset.startswith("delayed") else p
                                      for p in spec.populations])
    frames = quantize_input(x[:, None].expand(len(x), T, 64).numpy(), spec)
    for mode, chosen in (("dense", None), ("delta", None), ("ddla", selection(spec))):
        sim, lava = simulate(spec, frames, mode, chosen), run_lava(spec, frames, mode, chosen)
        np.testing.assert_array_equal(lava.logits, sim.logits)
        assert lava.counts.to_dict() == sim.counts.to_dict()


def test_snntorch_graph_deploys_with_one_flag_and_the_report_says_how(exported, tmp_path, capsys):
    _, path, _ = exported
    base = ["--profile", "loihi2", "--nir", str(path), "--dataset", "digits", "--timesteps", str(T),
            "--backend", "fast", "--samples", "20"]
    assert run_cli(main, base + ["--out", str(tmp_path / "generic")]) == 2  # snnTorch's tau at dt = 1
    assert "--nir-source" in capsys.readouterr().err
    out = tmp_path / "snntorch"
    assert run_cli(main, base + ["--nir-source", "snntorch", "--out", str(out)]) == 0  # 1x8x8 digits, flattened
    report = json.loads((out / "report.json").read_text())
    assert (report["model"]["nir_source"], report["model"]["nir_dt"]) == ("snntorch", 1e-4)
    assert "NIR graph from snntorch, dt = 0.0001" in (out / "report.md").read_text()


def test_unknown_reset_in_node_metadata_is_named(tmp_path):
    graph = nir.NIRGraph(nodes={"input": nir.Input({"input": np.array([4])}),
                                "fc": nir.Linear(weight=np.ones((4, 4))),
                                "lif": nir.IF(r=np.ones(4), v_threshold=np.ones(4), metadata={"reset": "soft"}),
                                "output": nir.Output({"output": np.array([4])})},
                         edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False)
    with pytest.raises(IRError, match="unknown reset 'soft'"):
        nir_to_spec(graph, timesteps=2)


def sinabs_mlp(seed: int = 0) -> torch.nn.Sequential:
    import sinabs.layers as sl
    from sinabs.activation import SingleSpike
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(64, 24), sl.LIF(tau_mem=torch.tensor(3.0), spike_fn=SingleSpike),
                              torch.nn.Linear(24, 10), sl.IAF(spike_fn=SingleSpike))
    return dyadic_(net, seed, 4.0)


def sinabs_spikes(net: torch.nn.Sequential, x: torch.Tensor) -> list[np.ndarray]:
    """Each spiking layer's spikes (N, T, n) for the same input every step; Sinabs layers take
    (N, T, ...) and keep their state between calls."""
    for m in net:
        if hasattr(m, "reset_states"):
            m.reset_states()
    spiking = [m for m in net if hasattr(m, "reset_states")]
    out: dict[int, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o: out.__setitem__(id(mod), o)) for m in spiking]
    with torch.no_grad():
        net(x[:, None].expand(len(x), T, *x.shape[1:]).contiguous())
    for h in hooks:
        h.remove()
    return [out[id(m)].numpy() for m in spiking]


def test_sinabs_mlp_computes_sinabs_function(tmp_path):
    """Exponential decay, the input scaled by 1 - decay, spikes at v >= threshold (hit exactly
    here: dyadic input and weights into the IAF layer), reset by subtraction."""
    from sinabs.nir import to_nir
    from ddla_neuro.deploy.ir import fix_exported_graph
    net = sinabs_mlp()
    nir.write(tmp_path / "sinabs.nir", fix_exported_graph(to_nir(net, torch.zeros(1, T, 64)), "sinabs"))
    spec = nir_to_spec(read_nir(tmp_path / "sinabs.nir"), timesteps=T, source="sinabs")
    assert [p.kind for p in spec.populations] == ["lif", "if", "readout"]
    x = torch.round(torch.rand(16, 64, generator=torch.Generator().manual_seed(2)) * 64) / 64
    ref = sinabs_spikes(net, x)
    assert all(r.sum() > 0 for r in ref) and all(r.sum() < r.size for r in ref)
    frames = x[:, None].expand(len(x), T, 64).numpy()
    sim = simulate(spec, frames, "dense", record=True)
    for pop, spikes in zip(spec.spiking, ref):
        np.testing.assert_array_equal(sim.sent[pop.name], spikes)
    np.testing.assert_array_equal(sim.predictions, ref[-1].sum(1).argmax(1))
    strict = nir_to_spec(read_nir(tmp_path / "sinabs.nir"), timesteps=T, source="generic", dt=1.0)
    assert strict.spiking[1].v_th == 1.0 and spec.spiking[1].v_th < 1.0  # v >= 1 read as v > the float below 1


def spikingjelly_graph(net: torch.nn.Sequential, n_in: int, dt: float = 1e-4) -> nir.NIRGraph:
    """The graph SpikingJelly's `export_to_nir` writes for Linear, LIFNode and IFNode layers (its
    repository's exporter; the PyPI release has none): LIF tau = tau * dt, r = 1, v_leak = 0;
    IF r = 1 / dt; thresholds and v_reset per neuron."""
    from spikingjelly.activation_based import neuron
    nodes, shape = {"input": nir.Input({"input": np.array([n_in])})}, n_in
    for i, m in enumerate(net):
        if isinstance(m, torch.nn.Linear):
            nodes[str(i)] = nir.Affine(m.weight.detach().numpy(), m.bias.detach().numpy())
            shape = m.out_features
            continue
        full = lambda v, shape=shape: np.full(shape, float(v))  # noqa: E731
        if isinstance(m, neuron.LIFNode):
            nodes[str(i)] = nir.LIF(tau=full(m.tau * dt), r=full(1.0), v_leak=full(0.0),
                                    v_threshold=full(m.v_threshold), v_reset=full(m.v_reset))
        else:
            nodes[str(i)] = nir.IF(r=full(1 / dt), v_threshold=full(m.v_threshold), v_reset=full(m.v_reset))
    nodes["output"] = nir.Output({"output": np.array([shape])})
    names = list(nodes)
    return nir.NIRGraph(nodes, list(zip(names, names[1:])))


def test_spikingjelly_mlp_computes_spikingjellys_function(tmp_path, capsys):
    """LIFNode (tau 2, hard reset) and IFNode layers: spikes per layer and step as SpikingJelly's
    own forward, which fires at v >= threshold (hit exactly: dyadic weights and input)."""
    from spikingjelly.activation_based import functional, layer, neuron
    torch.manual_seed(0)
    net = dyadic_(torch.nn.Sequential(layer.Linear(64, 24), neuron.LIFNode(tau=2.0), layer.Linear(24, 10),
                                      neuron.IFNode()), 0, 4.0)
    nir.write(tmp_path / "sj.nir", spikingjelly_graph(net, 64))
    spec = nir_to_spec(read_nir(tmp_path / "sj.nir"), timesteps=T, source="spikingjelly")
    assert [(p.kind, p.reset) for p in spec.spiking] == [("lif", "zero"), ("if", "zero")]
    x = torch.round(torch.rand(16, 64, generator=torch.Generator().manual_seed(2)) * 64) / 64
    functional.reset_net(net)
    neurons = [m for m in net if isinstance(m, neuron.BaseNode)]
    steps = {id(m): [] for m in neurons}
    for m in neurons:
        m.register_forward_hook(lambda mod, i, o: steps[id(mod)].append(o))
    with torch.no_grad():
        for _ in range(T):
            net(x)
    ref = [torch.stack(steps[id(m)], 1).numpy() for m in neurons]
    assert all(0 < r.mean() < 1 for r in ref)
    sim = simulate(spec, x[:, None].expand(len(x), T, 64).numpy(), "dense", record=True)
    for pop, spikes in zip(spec.spiking, ref):
        np.testing.assert_array_equal(sim.sent[pop.name], spikes)
    base = ["--profile", "loihi2", "--nir", str(tmp_path / "sj.nir"), "--dataset", "digits", "--timesteps", str(T),
            "--backend", "fast", "--samples", "20", "--nir-source", "spikingjelly"]
    assert run_cli(main, base + ["--out", str(tmp_path / "report")]) == 0


def test_threshold_reached_exactly_fires_in_fixed_point_too(tmp_path):
    """A membrane that lands exactly on a v >= threshold (Sinabs) fires in the quantized network
    as in float: the quantizer floors the threshold, and Lava agrees with the simulator."""
    graph = nir.NIRGraph(nodes={"input": nir.Input({"input": np.array([2])}),
                                "fc": nir.Linear(weight=np.array([[1.0, 0.0], [0.0, 0.5]])),
                                "iaf": nir.IF(r=np.ones(2), v_threshold=np.ones(2)),
                                "output": nir.Output({"output": np.array([2])})},
                         edges=[("input", "fc"), ("fc", "iaf"), ("iaf", "output")], type_check=False)
    frames = np.ones((1, 4, 2))  # unit 0 reaches 1.0 at every step; unit 1 at every other step
    expected = np.array([[[1, 0], [1, 1], [1, 0], [1, 1]]], dtype=float)
    spec = nir_to_spec(graph, timesteps=4, source="sinabs")
    np.testing.assert_array_equal(simulate(spec, frames, "dense").logits, expected)
    fixed, q = quantize_run(spec, frames)
    np.testing.assert_array_equal(simulate(fixed, q, "dense").logits, expected)
    np.testing.assert_array_equal(run_lava(fixed, q, "delta").logits, expected)
    generic = nir_to_spec(graph, timesteps=4)  # strict (and reset to zero): unit 0 fires only at 2.0
    np.testing.assert_array_equal(simulate(generic, frames, "dense").logits[0, :, 0], [0, 1, 0, 1])


def test_sinabs_convnet_computes_sinabs_function(tmp_path):
    """Conv2d + LIF, sum pooling, Flatten, Linear + IAF, in Sinabs's Squeeze layers ((N*T, ...)
    tensors); its exporter leaves the conv, pool and flatten types unset (fix_exported_graph
    infers them)."""
    import sinabs.layers as sl
    from sinabs.activation import SingleSpike
    from sinabs.nir import to_nir
    from ddla_neuro.deploy.ir import fix_exported_graph
    torch.manual_seed(3)
    net = dyadic_(torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), sl.LIFSqueeze(tau_mem=3.0, spike_fn=SingleSpike, num_timesteps=T),
        sl.SumPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 10),
        sl.IAFSqueeze(spike_fn=SingleSpike, num_timesteps=T)), 3, 3.0)
    nir.write(tmp_path / "conv.nir", fix_exported_graph(to_nir(net, torch.zeros(T, 1, 8, 8)), "sinabs"))
    spec = nir_to_spec(read_nir(tmp_path / "conv.nir"), timesteps=T, source="sinabs")
    assert spec.input_shape == (1, 8, 8) and [p.kind for p in spec.populations] == ["lif", "if", "readout"]
    x = torch.round(torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(4)) * 64) / 64
    spiking = [m for m in net if hasattr(m, "reset_states")]
    out: dict[int, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o: out.__setitem__(id(mod), o)) for m in spiking]
    with torch.no_grad():
        for m in spiking:
            m.reset_states()
        net(x[:, None].expand(8, T, 1, 8, 8).reshape(8 * T, 1, 8, 8))
    for h in hooks:
        h.remove()
    ref = [out[id(m)].reshape(8, T, -1).numpy() for m in spiking]
    assert all(r.sum() > 0 for r in ref) and all(r.sum() < r.size for r in ref)
    sim = simulate(spec, x[:, None].expand(8, T, 1, 8, 8).numpy(), "dense", record=True)
    for pop, spikes in zip(spec.spiking, ref):
        np.testing.assert_array_equal(sim.sent[pop.name].reshape(8, T, -1), spikes)


def test_norse_convnet_computes_norses_function(tmp_path):
    """Conv2d + LIFBox, Conv2d + IAF from norse.torch.to_nir (its exporter writes no pooling or
    Flatten node, so none here): spikes per layer and step equal Norse's own."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import norse.torch as norse
    from ddla_neuro.deploy.ir import fix_exported_graph
    dt = 0.001
    torch.manual_seed(5)
    model = dyadic_(norse.SequentialState(
        torch.nn.Conv2d(1, 4, 3, padding=1), norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.tensor(500.0)),
                                                              dt=dt),
        torch.nn.Conv2d(4, 2, 3, padding=1), norse.IAFCell()), 5, 4.0)
    nir.write(tmp_path / "conv.nir", fix_exported_graph(norse.to_nir(model, torch.zeros(1, 1, 8, 8), dt=dt), "norse"))
    spec = nir_to_spec(read_nir(tmp_path / "conv.nir"), timesteps=T, source="norse", dt=dt)
    assert spec.input_shape == (1, 8, 8) and [p.kind for p in spec.populations] == ["lif", "if", "readout"]
    x = torch.round(torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(6)) * 64) / 64
    cells = [m for m in model if isinstance(m, (norse.LIFBoxCell, norse.IAFCell))]
    steps: dict[int, list] = {id(m): [] for m in cells}
    hooks = [m.register_forward_hook(lambda mod, i, o: steps[id(mod)].append(o[0])) for m in cells]
    with torch.no_grad():
        state = None
        for _ in range(T):
            _, state = model(x, state)
    for h in hooks:
        h.remove()
    ref = [torch.stack(steps[id(m)], 1).reshape(6, T, -1).numpy() for m in cells]
    assert all(r.sum() > 0 for r in ref) and all(r.sum() < r.size for r in ref)
    sim = simulate(spec, x[:, None].expand(6, T, 1, 8, 8).numpy(), "dense", record=True)
    for pop, spikes in zip(spec.spiking, ref):
        np.testing.assert_array_equal(sim.sent[pop.name], spikes)
