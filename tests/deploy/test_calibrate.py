"""DDLA for imported models (NIR, lava-dl netx): the torch twin of a NetSpec computes the
simulator's function and our trainer's statistics, and `deploy --ddla-calibrate` gives a model
we did not train its k sweep."""
import json

import h5py

import nir
import numpy as np
import pytest
import torch

from deploy_nets import NETWORKS, convnet, flat_nir_graph, inputs, mlp, spec_of
from ddla_neuro.deploy.calibrate import CalibrationError, Twin, calibrate
from ddla_neuro.deploy.cli import main
from ddla_neuro.deploy.ir import nir_to_spec, read_nir
from ddla_neuro.deploy.ir.netx import read_netx
from ddla_neuro.deploy.ir.netx_input import netx_frames
from ddla_neuro.deploy.sim import simulate
from ddla_neuro.errors import run_cli
from interop_nets import T, snntorch_mlp

slayer = pytest.importorskip("lava.lib.dl.slayer")  # lava-dl, installed by `make setup`
from netx_nets import CUBA, FIXTURE, bias_net, conv_net, export, sdnn_net  # noqa: E402
from netx_nets import spikes as netx_spikes  # noqa: E402

T_NETX = 10


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


def _delay_net(tmp_path):
    """slayer's per-neuron synaptic delays (0..4 steps) and a bias: CUBA currents arriving late."""
    torch.manual_seed(2)
    first = slayer.block.cuba.Dense(CUBA, 64, 24, weight_scale=4, delay=True)
    first(torch.zeros(1, 64, 2))  # slayer sizes its delays on the first forward
    first.delay.delay.data = (torch.arange(24, dtype=torch.float32) % 5).reshape(first.delay.delay.shape)
    export([first, slayer.block.cuba.Dense(CUBA, 24, 10, weight_scale=4)], torch.zeros(1, 64, 2), tmp_path / "d.net")
    with h5py.File(tmp_path / "d.net", "a") as f:
        f["layer/0/bias"] = np.arange(24) % 3 - 1.0
    spec = read_netx(tmp_path / "d.net", T_NETX, fixed=False)
    assert spec.spiking[0].input_delay is not None
    return spec, netx_spikes((4, T_NETX, 64), seed=4)


def _reset_net(tmp_path):
    """A conv net with strong biases in a stream of inferences (lava-dl's reset_interval 5)."""
    export(conv_net(pool=False), torch.zeros(1, 2, 8, 8, 2), tmp_path / "r.net")
    with h5py.File(tmp_path / "r.net", "a") as f:
        f["layer/0/bias"] = np.array([-3.0, 9.0, 2.0, 20.0])
    spec = read_netx(tmp_path / "r.net", T_NETX, fixed=False, input_shape=(2, 8, 8), reset_interval=5, reset_offset=2)
    return spec, netx_spikes((4, T_NETX, 2, 8, 8), seed=5)


def _bias_input_net(tmp_path):
    """An input layer of CUBA neurons driven by the frame written into its bias register."""
    spec = read_netx(bias_net(tmp_path / "b.net"), T_NETX, fixed=False, encoding="bias")
    return spec, netx_frames(spec, np.random.default_rng(6).integers(0, 40, (4, 2, 8, 8)))


NETX = {"lava-dl mnist": lambda _: (read_netx(FIXTURE, T_NETX, fixed=False), netx_spikes((4, T_NETX, 784))),
        "delays": _delay_net, "resets": _reset_net, "bias input": _bias_input_net}


@pytest.mark.parametrize("name", NETX)
def test_the_twin_runs_lava_dls_cuba_as_the_simulator(name, tmp_path):
    """Float CUBA networks read from netx files (their pipeline fill, delays, resets and bias
    input): the twin's logits and spikes are the simulator's, which equals lava-dl's runner
    (test_netx.py)."""
    spec, frames = NETX[name](tmp_path)
    assert spec.fill > 0 and {p.kind for p in spec.spiking} == {"cuba"}
    logits, sent = Twin(spec)(torch.as_tensor(frames, dtype=torch.float64))
    run = simulate(spec, frames, "dense", record=True)
    np.testing.assert_array_equal(logits.detach().transpose(0, 1).numpy(), run.logits)
    for pop in spec.spiking:
        ran = torch.stack(sent[pop.name][-spec.timesteps:], 1).detach().numpy()
        np.testing.assert_array_equal(ran, run.sent[pop.name])
        assert 0 < ran.mean() < 1
    stats = calibrate(spec, frames, np.arange(len(frames)) % 10)
    assert all(stats[p.name].shape == p.shape and stats[p.name].max() > 0 for p in spec.spiking)


@pytest.fixture
def netx_mnist(tmp_path):
    """lava-dl's MNIST network on 28x28 images in [0, 1] rate-coded by `if-rate` (random images:
    the test is of the pipeline, not of the accuracy)."""
    images = np.random.default_rng(0).random((40, 28, 28)).astype(np.float32)
    np.savez(tmp_path / "img.npz", images=images[:30], labels=np.arange(30) % 10, test_images=images[30:],
             test_labels=np.arange(10))
    return ["--profile", "loihi2", "--netx", str(FIXTURE), "--netx-encoding", "if-rate", "--timesteps", "12",
            "--dataset", "npz", "--data-dir", str(tmp_path / "img.npz"), "--backend", "fast"]


def test_deploy_calibrates_a_netx_network_and_sweeps_its_k(netx_mnist, tmp_path):
    out = tmp_path / "out"
    assert run_cli(main, [*netx_mnist, "--ddla-calibrate", "30", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["ddla_calibration"] == 30 and "ddla" in report["modes"]
    events = [s["events"] for s in report["sweep"]]
    assert [s["keep"] for s in report["sweep"]] == [1.0, 0.7, 0.5, 0.3]
    assert report["sweep"][0]["events"] == report["modes"]["delta"]["totals"]["events"] and events[-1] < events[0]


@pytest.mark.parametrize("argv, message", [
    (lambda t: ["--netx-encoding", "graded", "--frames", str(t / "g.npy")], "give --dataset instead of --frames"),
    (lambda t: ["--netx-encoding", "graded", "--dataset", "npz", "--data-dir", str(t / "img.npz")],
     "layer0, layer1, layer3 are sigma-delta neurons"),
])
def test_a_netx_network_that_cannot_be_calibrated_is_one_line(argv, message, tmp_path, capsys):
    np.save(tmp_path / "g.npy", np.zeros((4, 2, 8, 8)))
    images = np.random.default_rng(0).random((4, 2, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "img.npz", images=images, labels=np.arange(4), test_images=images, test_labels=np.arange(4))
    out = tmp_path / "out"
    argv = ["--profile", "loihi2", "--netx", str(sdnn_net(tmp_path / "sd.net")), *argv(tmp_path),
            "--timesteps", "4", "--ddla-calibrate", "2", "--out", str(out)]
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not out.exists(), err
