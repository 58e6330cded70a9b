"""lava-dl netx files (`ir.read_netx`, `deploy --netx`), checked against lava-dl itself: the
network its own netx runner (`lava.lib.dl.netx.hdf5.Network`) builds from the file, run in Lava's
bit-accurate fixed point, and, for the pool layer that runner lacks, the forward pass of slayer,
the library that trains and exports these files. Networks are built in slayer and written by
its own `export_hdf5`."""
import json
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from ddla_neuro.deploy.cli import main
from ddla_neuro.deploy.ir import IRError
from ddla_neuro.deploy.netx import read_netx
from ddla_neuro.deploy.lava_run import run_isolated, run_lava
from ddla_neuro.deploy.sim import simulate
from ddla_neuro.errors import run_cli
from ddla_neuro.snn.encoders import if_rate

slayer = pytest.importorskip("lava.lib.dl.slayer")  # lava-dl, installed by `make setup`

ANCHOR = Path(__file__).with_name("lava_netx_anchor.py")
FIXTURE = Path(__file__).parent / "data" / "lava-dl-mnist" / "trained_mnist_network.net"
T = 12
CUBA = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.1}


def export(blocks: list, x: torch.Tensor, path: Path) -> list[np.ndarray]:
    """Runs slayer's forward (input NCHWT or NCT) and writes the netx file with slayer's own
    exporter. Returns the spikes of every neuron block as (N, T, ...) in our step alignment:
    slayer delays each block's output by one step, as Lava's synapses do."""
    outs, shift = [], 0
    with torch.no_grad():
        for block in blocks:
            x = block(x)
            if getattr(block, "neuron", None) is not None:
                shift += 1
                outs.append(np.moveaxis(x.numpy(), -1, 1)[:, shift:])
    with h5py.File(path, "w") as f:
        group = f.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(group.create_group(str(i)))
    return outs


def lava_dl_blocks(path: Path, tmp_path: Path, **job) -> list[np.ndarray]:
    """Every block's output (T, ...) from lava-dl's netx runner on one job (`lava_netx_anchor.py`)."""
    job_file, out = tmp_path / "job.npz", tmp_path / "out.npz"
    steps = len(next(v for k, v in job.items() if k in ("spikes", "graded", "host")) if "bias" not in job else
                job.pop("steps"))
    np.savez(job_file, steps=steps, **job)
    run_isolated([sys.executable, str(ANCHOR), str(path), str(job_file), str(out)], timeout=300)
    with np.load(out) as f:
        return [f[f"s{k}"] for k in range(len(f.files))]


def lava_dl_run(path: Path, spikes: np.ndarray, tmp_path: Path) -> list[np.ndarray]:
    """Per sample of (N, T, ...) spikes: every block's spikes from lava-dl's netx runner."""
    per_sample = [lava_dl_blocks(path, tmp_path, spikes=sample) for sample in spikes]
    return [np.stack(layer) for layer in zip(*per_sample)]


def conv_net(pool: bool) -> list:
    torch.manual_seed(0)
    blocks = [slayer.block.cuba.Conv(CUBA, 2, 4, 3, padding=1, weight_scale=2)]
    if pool:
        blocks.append(slayer.block.cuba.Pool(CUBA, 2))
    side = 4 if pool else 8
    return blocks + [slayer.block.cuba.Flatten(), slayer.block.cuba.Dense(CUBA, 4 * side * side, 10, weight_scale=3)]


def spikes(shape: tuple[int, ...], seed: int = 0, rate: float = 0.3) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.float32)


def assert_same_spikes(spec, sim, reference: list[np.ndarray], skip: int = 0) -> None:
    """Our simulator's spikes of every population equal the reference's, over the steps both have."""
    for pop, ref in zip(spec.spiking[skip:], reference):
        ours = sim.sent[pop.name].reshape(ref.shape[0], -1, *pop.shape)[:, :ref.shape[1]]
        np.testing.assert_array_equal(ours, ref, err_msg=pop.name)
        assert ref.sum() > 0, pop.name


def test_fixture_spikes_as_lava_dl_runs_it(tmp_path):
    """lava-dl's MNIST network: its current decay is iDecay (lava-dl hands Lava iDecay - 1, and
    Lava adds 1), every layer spikes bit for bit as lava-dl's runner."""
    spec = read_netx(FIXTURE, T)
    assert [(p.size, p.du, p.dv, p.v_th) for p in spec.spiking] == [(128, 410, 410, 4096.0), (64, 410, 410, 4096.0),
                                                                       (10, 410, 410, 4096.0)]
    x = spikes((2, T, 784), seed=3, rate=0.2)
    assert_same_spikes(spec, simulate(spec, x, "dense", record=True), lava_dl_run(FIXTURE, x, tmp_path))


def test_conv_net_with_biases_spikes_as_lava_dl_runs_it(tmp_path):
    """A conv layer and a dense layer with biases (per channel, per neuron): the simulator equals
    lava-dl's runner, our Lava processes equal the simulator, delta == dense."""
    x = spikes((2, T, 2, 8, 8))
    export(conv_net(pool=False), torch.as_tensor(np.moveaxis(x, 1, -1)), tmp_path / "net.net")
    with h5py.File(tmp_path / "net.net", "a") as f:
        f["layer/0/bias"] = np.array([-8.0, 3.0, 0.0, 5.7])  # netx truncates a bias mantissa to an integer
        f["layer/2/bias"] = np.arange(10) - 4.0
    spec = read_netx(tmp_path / "net.net", T, input_shape=(2, 8, 8))
    assert [p.kind for p in spec.populations] == ["cuba"] * 2 + ["readout"]
    np.testing.assert_array_equal(spec.spiking[0].bias[:, 0, 0], np.array([-8, 3, 0, 5]) * 64)
    sim = simulate(spec, x, "dense", record=True)
    assert_same_spikes(spec, sim, lava_dl_run(tmp_path / "net.net", x, tmp_path))
    for mode in ("dense", "delta"):
        lava = run_lava(spec, x, mode)
        np.testing.assert_array_equal(lava.logits, sim.logits)
        assert lava.counts.to_dict() == simulate(spec, x, mode).counts.to_dict()
    np.testing.assert_array_equal(simulate(spec, x, "delta").logits, sim.logits)


def test_synaptic_delays_spike_as_lava_dl_runs_them(tmp_path):
    """slayer's per-neuron delays (a dense block with delay=True), which lava-dl's runner sets on
    every synapse into the neuron: each neuron's current arrives late, the bias does not; our
    Lava processes equal the simulator."""
    torch.manual_seed(2)
    first = slayer.block.cuba.Dense(CUBA, 64, 24, weight_scale=4, delay=True)
    first(torch.zeros(1, 64, 2))  # slayer sizes its delays on the first forward
    first.delay.delay.data = (torch.arange(24, dtype=torch.float32) % 5).reshape(first.delay.delay.shape)
    x = spikes((2, T, 64), seed=4)
    export([first, slayer.block.cuba.Dense(CUBA, 24, 10, weight_scale=4)], torch.as_tensor(np.moveaxis(x, 1, -1)),
           tmp_path / "delay.net")
    with h5py.File(tmp_path / "delay.net", "a") as f:
        f["layer/0/bias"] = np.arange(24) % 3 - 1.0
    spec = read_netx(tmp_path / "delay.net", T)
    np.testing.assert_array_equal(spec.spiking[0].input_delay, np.arange(24) % 5)
    sim = simulate(spec, x, "dense", record=True)
    assert_same_spikes(spec, sim, lava_dl_run(tmp_path / "delay.net", x, tmp_path))
    undelayed = replace(spec.spiking[0], input_delay=None)
    assert not np.array_equal(simulate(replace(spec, populations=[undelayed, *spec.populations[1:]]), x, "dense",
                                       record=True).sent["layer0"], sim.sent["layer0"])
    for mode, batch in (("dense", 1), ("delta", 1), ("delta", 2)):  # batch 2: each sample's own delay queue
        lava = run_lava(spec, x, mode, batch=batch)
        np.testing.assert_array_equal(lava.logits, sim.logits)
        assert lava.counts.to_dict() == simulate(spec, x, mode).counts.to_dict()


def test_input_neurons_and_pool_spike_as_slayer_computes_them(tmp_path):
    """lava-dl's runner has no pool layer, and its input block does not compile in lava-nc 0.10;
    slayer's forward is the reference for input neurons -> conv -> pool -> dense. (It agrees
    with lava-dl's runner bit for bit on the layers that runner has.)"""
    x = spikes((2, T, 2, 8, 8))
    blocks = [slayer.block.cuba.Input(CUBA, weight=1.5)] + conv_net(pool=True)
    reference = export(blocks, torch.as_tensor(np.moveaxis(x, 1, -1)), tmp_path / "pool.net")
    spec = read_netx(tmp_path / "pool.net", T)
    assert spec.input_shape == (2, 8, 8) and [p.size for p in spec.spiking] == [128, 256, 64, 10]
    assert [op.kind for op in spec.spiking[2].inputs[0].ops] == ["sumpool2d", "scale"]
    assert_same_spikes(spec, simulate(spec, x, "dense", record=True), reference)


def test_float_netx_is_the_fixed_network_scaled():
    fixed, flt = read_netx(FIXTURE, T), read_netx(FIXTURE, T, fixed=False)
    for a, b in zip(fixed.spiking, flt.spiking):
        assert b.v_th == a.v_th / 4096 == 1.0 and b.u_decay == pytest.approx(1 - 410 / 4096)
        np.testing.assert_array_equal(b.inputs[0].weighted.weight, a.inputs[0].weighted.weight / 64)


def edit(path: Path, change) -> Path:
    with h5py.File(path, "a") as f:
        change(f)
    return path


UNSUPPORTED = {
    "conv delay": (lambda f: f.create_dataset("layer/0/delay", data=np.zeros(4)), r"layer 0 \(conv\): its 'delay'"),
    "synapse delays": (lambda f: f.create_dataset("layer/2/delay", data=np.zeros((10, 256))),
                       r"layer 2 \(dense\): 2560 delays for 10 neurons"),
    "long delay": (lambda f: f.create_dataset("layer/2/delay", data=np.full(10, 63.0)),
                   r"layer 2 \(dense\): delays must lie in 0..62"),
    "neuron type": (lambda f: (f["layer/2/neuron"].pop("type"), f["layer/2/neuron"].create_dataset("type", data=b"RF")),
                    r"layer 2 \(dense\): RF neurons are not supported"),
    "average": (lambda f: (f["layer/1"].pop("type"), f["layer/1"].create_dataset("type", data=np.array([b"average"]))),
                r"layer 1 \(average\): not supported"),
    "groups": (lambda f: (f["layer/0"].pop("groups"), f["layer/0"].create_dataset("groups", data=2)),
               r"layer 0 \(conv\): grouped convolution"),
    "shape": (lambda f: (f["layer/0"].pop("shape"), f["layer/0"].create_dataset("shape", data=[4, 7, 7])),
              r"layer 0 \(conv\): stores output shape \(4, 7, 7\)"),
}


@pytest.mark.parametrize("what", UNSUPPORTED)
def test_what_is_not_supported_is_named_in_one_line(what, tmp_path):
    export(conv_net(pool=False), torch.zeros(1, 2, 8, 8, 2), tmp_path / "net.net")
    change, message = UNSUPPORTED[what]
    with pytest.raises(IRError, match=message) as err:
        read_netx(edit(tmp_path / "net.net", change), T, input_shape=(2, 8, 8))
    assert "\n" not in str(err.value)


def test_input_bias_is_refused(tmp_path):
    export([slayer.block.cuba.Input(CUBA, bias=-0.25)], torch.zeros(1, 2, 4, 4, 2), tmp_path / "in.net")
    with pytest.raises(IRError, match=r"layer 0 \(input\): an input layer's bias"):
        read_netx(tmp_path / "in.net", T)


def test_conv_without_input_shape_is_refused(tmp_path):
    export(conv_net(pool=False), torch.zeros(1, 2, 8, 8, 2), tmp_path / "net.net")
    with pytest.raises(IRError, match=r"layer 0 \(conv\): the input shape is unknown"):
        read_netx(tmp_path / "net.net", T)


def test_if_rate_encoding_is_the_tutorials_neuron():
    """v += x; a spike when v > 1, then v = 0: a pixel of 1 spikes every second step, 0.3 every fourth."""
    out = if_rate(torch.tensor([1.0, 0.3, 0.0]), 8)
    np.testing.assert_array_equal(out.T.numpy(), [[0, 1, 0, 1, 0, 1, 0, 1], [0, 0, 0, 1, 0, 0, 0, 1], [0] * 8])


def test_deploy_runs_a_conv_netx_on_event_frames_and_rate_coded_images(tmp_path, capsys):
    export(conv_net(pool=False), torch.zeros(1, 2, 8, 8, 2), tmp_path / "conv.net")
    frames = lambda n: spikes((n, T, 2, 8, 8), seed=n)  # noqa: E731
    np.savez(tmp_path / "events.npz", images=frames(6), labels=np.arange(6), test_images=frames(4),
             test_labels=np.arange(4))
    base = ["--profile", "loihi2", "--netx", str(tmp_path / "conv.net"), "--timesteps", str(T)]
    out = tmp_path / "report"
    assert run_cli(main, base + ["--dataset", "npz", "--data-dir", str(tmp_path / "events.npz"), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())  # on Lava, checked against the simulator
    assert report["model"]["arch"] == "netx" and report["checks"] and all(report["checks"].values())
    # digits (8x8 images, one channel) rate-coded for a dense network of 64 inputs
    torch.manual_seed(1)
    export([slayer.block.cuba.Dense(CUBA, 64, 10, weight_scale=4)], torch.zeros(1, 64, 2), tmp_path / "mlp.net")
    mlp = ["--profile", "loihi2", "--netx", str(tmp_path / "mlp.net"), "--timesteps", str(T), "--dataset", "digits",
           "--backend", "fast", "--samples", "50"]
    assert run_cli(main, mlp + ["--netx-encoding", "if-rate", "--out", str(tmp_path / "rate")]) == 0
    rate = json.loads((tmp_path / "rate" / "report.json").read_text())
    assert rate["model"]["encoding"] == "if-rate" and rate["modes"]["dense"]["totals"]["synaptic_ops"] > 0
    capsys.readouterr()
    assert run_cli(main, mlp + ["--out", str(tmp_path / "no")]) == 2  # images without an encoding
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "--netx-encoding if-rate" in err, err
    assert not (tmp_path / "no").exists()
