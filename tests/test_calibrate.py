"""DDLA for imported models: the torch twin of a NetSpec computes the simulator's function and
our trainer's statistics, and `deploy --ddla-calibrate` gives a model we did not train its k sweep."""
import json

import nir
import numpy as np
import pytest
import torch

from deploy_nets import NETWORKS, convnet, flat_nir_graph, inputs, mlp, spec_of
from ddla_neuro.deploy.calibrate import CalibrationError, Twin, calibrate
from ddla_neuro.deploy.cli import main
from ddla_neuro.deploy.ir import nir_to_spec, read_nir
from ddla_neuro.deploy.sim import simulate
from ddla_neuro.errors import run_cli
from test_interop import T, snntorch_mlp


@pytest.mark.parametrize("name", ["mlp", "convnet", "residual"])
def test_the_twin_computes_the_simulators_function(name):
    net = NETWORKS[name](seed=1)
    _, frames = inputs(net, 6)
    spec = spec_of(net)
    logits, sent = Twin(spec)(torch.as_tensor(frames, dtype=torch.float64))
    run = simulate(spec, frames, "dense", record=True)
    np.testing.assert_array_equal(logits.detach().transpose(0, 1).numpy(), run.logits)
    for pop in spec.spiking:
        np.testing.assert_array_equal(torch.stack(sent[pop.name], 1).detach().numpy(), run.sent[pop.name])


def test_the_twin_runs_snntorchs_delayed_reset_as_the_simulator(tmp_path):
    from snntorch.export_nir import export_to_nir
    path = tmp_path / "snntorch.nir"
    nir.write(path, export_to_nir(snntorch_mlp(), torch.zeros(64)))
    spec = nir_to_spec(read_nir(path), timesteps=T, source="snntorch")
    assert {p.reset for p in spec.spiking} == {"delayed-subtract"}
    x = torch.round(torch.rand(8, 64, generator=torch.Generator().manual_seed(1)) * 64) / 64
    frames = x[:, None].expand(8, T, 64).numpy()
    logits, _ = Twin(spec)(torch.as_tensor(frames, dtype=torch.float64))
    np.testing.assert_array_equal(logits.detach().transpose(0, 1).numpy(), simulate(spec, frames, "dense").logits)


@pytest.mark.parametrize("make", [mlp, convnet])
def test_calibration_equals_the_gradient_our_trainer_measures(make):
    """The mean |dL/dz| at each layer's transmitted spikes in our own torch network (the same
    surrogate), for the network exported and calibrated as a stranger's."""
    net = make(seed=1)
    x, frames = inputs(net, 12)
    labels = np.arange(12) % 4
    stats = calibrate(spec_of(net), frames, labels, batch_size=5)  # batches: sums, not means, per sample
    sent = {}

    def keep_grad(neuron, z):
        z.retain_grad()
        sent[neuron.key] = z
        return z
    out = net(net.encode(x), transmit=keep_grad)
    torch.nn.functional.cross_entropy(out.mean(0), torch.as_tensor(labels), reduction="sum").backward()
    assert set(stats) == set(sent)
    for key, z in sent.items():
        np.testing.assert_allclose(stats[key], z.grad.abs().mean((0, 1)).numpy(), rtol=1e-5, atol=1e-8)
        assert stats[key].max() > 0


def test_what_the_twin_cannot_run_is_one_line():
    net = NETWORKS["sdt"](seed=0)
    with pytest.raises(CalibrationError, match="max pools and the readout"):
        Twin(spec_of(net))
    net = mlp()
    _, frames = inputs(net, 4)
    with pytest.raises(CalibrationError, match="the network takes"):
        calibrate(spec_of(net), frames[:, :2], np.zeros(4))
    with pytest.raises(CalibrationError, match="one label each"):
        calibrate(spec_of(net), frames, np.zeros(3))


@pytest.fixture
def flat_nir(tmp_path):
    """A NIR MLP for 8x8 digits (as a stranger's exporter writes one), trained by nobody."""
    nir.write(tmp_path / "flat.nir", flat_nir_graph())
    return ["--profile", "loihi2", "--nir", str(tmp_path / "flat.nir"), "--dataset", "digits", "--backend", "fast",
            "--samples", "60"]


def test_deploy_calibrates_an_imported_graph_and_sweeps_its_k(flat_nir, tmp_path):
    out = tmp_path / "out"
    assert run_cli(main, [*flat_nir, "--ddla-calibrate", "200", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["ddla_calibration"] == 200
    assert [s["keep"] for s in report["sweep"]] == [1.0, 0.7, 0.5, 0.3]
    events = [s["events"] for s in report["sweep"]]
    assert events == sorted(events, reverse=True) and events[-1] < events[0]
    assert report["sweep"][0]["events"] == report["modes"]["delta"]["totals"]["events"]
    assert run_cli(main, [*flat_nir, "--out", str(tmp_path / "plain")]) == 0  # without: no ddla mode
    assert "ddla" not in json.loads((tmp_path / "plain" / "report.json").read_text())["modes"]


@pytest.mark.parametrize("argv, message", [
    (["--ddla-calibrate", "0"], "takes 1 to 1437 samples"),
    (["--ddla-calibrate", "5000"], "takes 1 to 1437 samples"),
])
def test_a_bad_calibration_is_one_line(flat_nir, tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert run_cli(main, [*flat_nir, *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not (out / "report.json").exists()


def test_a_netx_network_is_not_calibrated(tmp_path, capsys):
    net = "tests/data/lava-dl-mnist/trained_mnist_network.net"
    out = tmp_path / "out"
    assert run_cli(main, ["--profile", "loihi2", "--netx", net, "--dataset", "digits", "--ddla-calibrate", "10",
                          "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "CUBA and sigma-delta" in err and len(err.splitlines()) == 1 and not out.exists()
