"""lava-dl netx files (`netx.read_netx`, `deploy --netx`), checked against lava-dl itself: the
network its own netx runner (`lava.lib.dl.netx.hdf5.Network`) builds from the file, run in Lava's
bit-accurate fixed point (`lava_netx_anchor.py`), and, for the pool layer that runner lacks, the
forward pass of slayer, the library that trains and exports these files. Networks are built in
slayer and written by its own `export_hdf5`: CUBA conv/dense with biases, delays, resets and an
input layer driven by its bias; sigma-delta (SDNN) with graded input on the chip or from the
host's encoder. Our Lava processes equal the simulator on each. lava-dl's own PilotNets:
`test_pilotnet.py`."""
import json
import re
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from ddla_neuro.deploy.cli import main
from ddla_neuro.deploy.ir import IRError
from ddla_neuro.deploy.lava_run import run_lava
from ddla_neuro.deploy.ir.netx import read_netx
from ddla_neuro.deploy.ir.netx_input import input_transform, netx_frames, transform_images
from ddla_neuro.deploy.sim import simulate
from ddla_neuro.errors import run_cli
from ddla_neuro.snn.encoders import if_rate

slayer = pytest.importorskip("lava.lib.dl.slayer")  # lava-dl, installed by `make setup`
from netx_nets import (CUBA, FIXTURE, T, assert_lava_equals_simulator, assert_same_spikes, bias_net,  # noqa: E402
                       conv_net, edit, export, graded, lava_dl_blocks, lava_dl_run, sdnn_net, spikes)


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


def test_resets_spike_as_lava_dl_runs_them(tmp_path):
    """A stream of inferences, lava-dl's reset_interval 5 and reset_offset 2 (layer k resets at
    time steps t % 5 == 3 + k), on a conv net with strong biases: the simulator equals lava-dl's
    runner on every step, the pipeline fill's included; our Lava processes equal the simulator."""
    x = spikes((2, T, 2, 8, 8), seed=5)
    export(conv_net(pool=False), torch.as_tensor(np.moveaxis(x, 1, -1)), tmp_path / "net.net")
    with h5py.File(tmp_path / "net.net", "a") as f:
        f["layer/0/bias"] = np.array([-3.0, 9.0, 2.0, 20.0])
        f["layer/2/bias"] = np.arange(10) * 3.0
    spec = read_netx(tmp_path / "net.net", T, input_shape=(2, 8, 8), reset_interval=5, reset_offset=2)
    assert (spec.reset_interval, spec.reset_offset) == (5, 1)  # the spec's steps: one synapse behind the frame
    sim = simulate(spec, x, "dense", record=True)
    per_sample = [lava_dl_blocks(tmp_path / "net.net", tmp_path, spikes=s, reset=[5, 2]) for s in x]
    assert_same_spikes(spec, sim, [np.stack(layer) for layer in zip(*per_sample)])
    unreset = simulate(replace(spec, reset_interval=0), x, "dense", record=True)
    assert not np.array_equal(unreset.sent["layer2"], sim.sent["layer2"])  # the resets change the spikes
    np.testing.assert_array_equal(simulate(spec, x, "delta").logits, sim.logits)
    assert_lava_equals_simulator(spec, x, batch=2)


def test_an_input_layer_driven_by_its_bias_spikes_as_lava_dl_runs_it(tmp_path):
    """The frame as the input layer's bias mantissa, held every step (lava-dl's PilotNet way), with
    resets (4, 1): every layer equals lava-dl's runner; the file's weight and bias are the host's
    transform of raw images, not the network's; our Lava processes equal the simulator."""
    net = bias_net(tmp_path / "bias.net")
    spec = read_netx(net, T, encoding="bias", reset_interval=4, reset_offset=1)
    assert spec.meta["netx_input"]["transform"] == {"weight": 96, "bias": 16}
    assert spec.populations[0].inputs[0].to_bias and not spec.populations[0].bias.any()
    mantissas = np.random.default_rng(6).integers(0, 40, (2, 2, 8, 8))
    frames = netx_frames(spec, mantissas)
    assert frames.shape == (2, T, 2, 8, 8)
    sim = simulate(spec, frames, "dense", record=True)
    per_sample = [lava_dl_blocks(net, tmp_path, steps=T, bias=m, reset=[4, 1]) for m in mantissas]
    assert_same_spikes(spec, sim, [np.stack(layer) for layer in zip(*per_sample)])
    sops = simulate(spec, frames, "dense").counts.sops_proj  # a bias write has no synapses
    assert sops["input>layer0"].sum() == 0 and sops["layer0>layer1"].sum() > 0
    assert_lava_equals_simulator(spec, frames, batch=2)


@pytest.mark.parametrize("encoding", ["graded", "graded-host"])
def test_sigma_delta_layers_send_as_lava_dl_runs_them(encoding, tmp_path):
    """SDNN layers (sigma, ReLU, thresholded change with its residue, messages >> 6) and the sigma
    readout, on a graded stream into the input layer's neurons (its Delta) or through the host's
    delta encoder (lava-dl's skip_layers=1): every layer equals lava-dl's runner, every step; the
    two encodings send the same messages from the first conv on; our Lava processes equal the
    simulator; delta == dense (dense: every decoded output, every step)."""
    net = sdnn_net(tmp_path / "sd.net")
    spec = read_netx(net, T, encoding=encoding)
    assert [p.kind for p in spec.populations] == ["sdnn"] * (3 if encoding == "graded" else 2) + ["readout"]
    stream = graded(T)
    sim = simulate(spec, netx_frames(spec, stream[None]), "dense", record=True)
    job = {"graded": stream} if encoding == "graded" else {"host": stream, "v_th": spec.meta["netx_input"]["v_th"]}
    for pop, ref in zip(spec.populations, lava_dl_blocks(net, tmp_path, **job)):
        np.testing.assert_array_equal(sim.activity[pop.name][0].reshape(ref.shape), ref, err_msg=pop.name)
        assert np.abs(ref).sum() > 0, pop.name
    on_chip = read_netx(net, T, encoding="graded")
    same = simulate(on_chip, netx_frames(on_chip, stream[None]), "dense", record=True)
    for name in ("layer1", "layer3", "layer4"):
        np.testing.assert_array_equal(same.activity[name], sim.activity[name])
    frames = netx_frames(spec, stream[None])
    np.testing.assert_array_equal(simulate(spec, frames, "delta").logits, sim.logits)
    assert_lava_equals_simulator(spec, frames)


def test_raw_images_go_through_the_input_layers_transform(tmp_path):
    """--dataset images in [0, 1] for a frame-driven input layer: int(2 w x - w + b) with the
    layer's weight and bias (96 and 16 here), as lava-dl's PilotNet dataset class computes them,
    held T steps; the deploy's activity is the simulator's on those frames."""
    np.testing.assert_array_equal(transform_images(np.array([0.0, 0.5, 0.999, 1.0]), {"weight": 40, "bias": 36}),
                                  [-4, 36, 75, 76])  # 80 x - 4, toward zero
    net = bias_net(tmp_path / "bias.net")
    images = np.random.default_rng(8).random((3, 2, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "img.npz", images=images, labels=np.arange(3), test_images=images, test_labels=np.arange(3))
    args = ["--profile", "loihi2", "--netx", str(net), "--netx-encoding", "bias", "--dataset", "npz", "--data-dir",
            str(tmp_path / "img.npz"), "--timesteps", "6", "--backend", "fast", "--out", str(tmp_path / "r"),
            "--save-activity", str(tmp_path / "a")]
    assert run_cli(main, args) == 0
    spec = read_netx(net, 6, encoding="bias")
    mantissas = transform_images(images, input_transform(spec))
    assert input_transform(spec) == {"weight": 96, "bias": 16} and mantissas.min() >= -80 and mantissas.max() <= 112
    sim = simulate(spec, netx_frames(spec, mantissas), "dense", record=True)
    for pop in spec.populations:
        saved = np.load(tmp_path / "a" / "dense" / f"{pop.name}.npy")
        np.testing.assert_array_equal(saved.reshape(sim.activity[pop.name].shape), sim.activity[pop.name])
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["modes"]["dense"]["totals"]["accuracy"] is not None  # the dataset's labels


def test_sigma_delta_costs_graded_messages_hand_counted(tmp_path):
    """The cost model on an SDNN network, from the activity the deploy saves: a layer's events
    are its non-zero messages (delta) or decoded outputs (dense), each reaching every synapse of
    the next dense layer (12 -> 3: three graded synaptic ops), each message 32 header bits plus
    its 16-bit payload."""
    net = sdnn_net(tmp_path / "sd.net")
    np.save(tmp_path / "stream.npy", graded(T, seed=1))
    args = ["--profile", "loihi2", "--netx", str(net), "--netx-encoding", "graded", "--frames",
            str(tmp_path / "stream.npy"), "--backend", "fast", "--out", str(tmp_path / "r"),
            "--save-activity", str(tmp_path / "a")]
    assert run_cli(main, args) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    messages = np.load(tmp_path / "a" / "delta" / "layer3.npy")
    assert messages.shape == (1, T, 12) and messages.dtype == np.int64
    rows = {m: {r["layer"]: r for r in report["modes"][m]["layers"]} for m in ("dense", "delta")}
    sent = {"delta": np.count_nonzero(messages), "dense": np.count_nonzero(np.cumsum(messages, axis=1))}
    for mode, n in sent.items():
        assert rows[mode]["layer3"]["events_out"] == n
        assert rows[mode]["layer4"]["synaptic_ops"] == 3 * n
        assert rows[mode]["layer3"]["message_bits"] == rows[mode]["layer3"]["messages"] * (32 + 16)
    assert rows["delta"]["layer3"]["spikes"] == sent["delta"] == rows["dense"]["layer3"]["spikes"]


def test_input_neurons_and_pool_spike_as_slayer_computes_them(tmp_path):
    """lava-dl's runner has no pool layer, and its input block takes no spikes (its neurons are
    driven by their bias); slayer's forward is the reference for input neurons on spikes -> conv
    -> pool -> dense. (It agrees with lava-dl's runner bit for bit on the layers that runner has.)"""
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


UNSUPPORTED = {
    "conv delay": (lambda f: f.create_dataset("layer/0/delay", data=np.zeros(4)), r"layer 0 \(conv\): its 'delay'"),
    "synapse delays": (lambda f: f.create_dataset("layer/2/delay", data=np.zeros((10, 256))),
                       r"layer 2 \(dense\): 2560 delays for 10 neurons"),
    "fractional delay": (lambda f: f.create_dataset("layer/2/delay", data=np.full(10, 2.5)),
                         r"layer 2 \(dense\): its 'delay' holds 2.5: delays are whole steps of 0 or more"),
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


def test_an_input_layers_bias_on_spikes_is_refused(tmp_path):
    export([slayer.block.cuba.Input(CUBA, bias=-0.25)], torch.zeros(1, 2, 4, 4, 2), tmp_path / "in.net")
    with pytest.raises(IRError, match=r"layer 0 \(input\): an input layer's bias .* --netx-encoding bias"):
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
    events = ["--dataset", "npz", "--data-dir", str(tmp_path / "events.npz")]
    assert run_cli(main, base + events + ["--out", str(out)]) == 0
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


def _truncated(tmp: Path) -> Path:
    (tmp / "cut.net").write_bytes(FIXTURE.read_bytes()[:4000])
    return tmp / "cut.net"


def _text(tmp: Path) -> Path:
    (tmp / "text.net").write_text("not an HDF5 file\n")
    return tmp / "text.net"


def _without(tmp: Path, layer: str, field: str) -> Path:
    net = bias_net(tmp / "net.net")
    return edit(net, lambda f: f[f"layer/{layer}"].pop(field))


def _neuron(tmp: Path, **fields) -> Path:
    def change(f):
        for key, value in fields.items():
            f["layer/0/neuron"].pop(key, None)
            f["layer/0/neuron"][key] = value
    return edit(bias_net(tmp / "net.net"), change)


def _frames(tmp: Path, values) -> Path:
    np.save(tmp / "frames.npy", np.asarray(values))
    return tmp / "frames.npy"


BIAS = ["--netx-encoding", "bias", "--timesteps", "4"]
BAD_INPUT = {  # what a user gets wrong -> the one line that says so
    "truncated file": (lambda t: ["--netx", str(_truncated(t)), "--dataset", "digits", "--timesteps", "4"],
                       "is not a readable lava-dl netx file"),
    "not HDF5": (lambda t: ["--netx", str(_text(t)), "--dataset", "digits", "--timesteps", "4"],
                 "is not a readable lava-dl netx file"),
    "a layer lacks a field": (lambda t: ["--netx", str(_without(t, "1", "stride")), *BIAS, "--frames",
                                         str(_frames(t, np.ones((2, 8, 8))))],
                               "layer 1 .*lacks the field 'stride'"),
    "unknown neuron type": (lambda t: ["--netx", str(_neuron(t, type=b"ALIF")), *BIAS, "--frames",
                                       str(_frames(t, np.ones((2, 8, 8))))], "ALIF neurons are not supported"),
    "unknown neuron field": (lambda t: ["--netx", str(_neuron(t, spikeExp=2)), *BIAS, "--frames",
                                        str(_frames(t, np.ones((2, 8, 8))))], "field.* spikeExp are not supported"),
    "LOIHI wgtExp": (lambda t: ["--netx", str(_neuron(t, type=b"LOIHI", wgtExp=1)), *BIAS, "--frames",
                                str(_frames(t, np.ones((2, 8, 8))))], "wgtExp 1 would scale the weights"),
    "frame shape": (lambda t: ["--netx", str(bias_net(t / "n.net")), *BIAS, "--frames",
                               str(_frames(t, np.ones((2, 8, 9))))], r"frames of shape \(2, 8, 9\) do not fit"),
    "frame range": (lambda t: ["--netx", str(bias_net(t / "n.net")), *BIAS, "--frames",
                               str(_frames(t, np.full((2, 8, 8), 5000)))], "bias mantissas .* must lie in -4096..4095"),
    "raw image as frames": (lambda t: ["--netx", str(bias_net(t / "n.net")), *BIAS, "--frames",
                                       str(_frames(t, np.full((2, 8, 8), 0.5)))], "takes integer frames"),
    "no frames file": (lambda t: ["--netx", str(bias_net(t / "n.net")), *BIAS, "--frames", str(t / "none.npy")],
                       "does not exist"),
    "frames on spikes": (lambda t: ["--netx", str(FIXTURE), "--timesteps", "4", "--frames",
                                    str(_frames(t, np.ones(784)))], "--frames feeds --netx-encoding bias"),
    "reset interval 0": (lambda t: ["--netx", str(FIXTURE), "--dataset", "digits", "--reset-interval", "0"],
                         "--reset-interval must be at least 1"),
    "offset without interval": (lambda t: ["--netx", str(FIXTURE), "--dataset", "digits", "--reset-offset", "2"],
                                "--reset-offset takes .* with --reset-interval"),
    "sigma-delta reset": (lambda t: ["--netx", str(sdnn_net(t / "sd.net")), "--netx-encoding", "graded", "--frames",
                                     str(_frames(t, graded(4))), "--reset-interval", "2"],
                          "ignores resets on sigma-delta"),
    "sigma-delta float": (lambda t: ["--netx", str(sdnn_net(t / "sd.net")), "--netx-encoding", "graded", "--frames",
                                     str(_frames(t, graded(4))), "--float"], "fixed point only"),
    "graded on CUBA": (lambda t: ["--netx", str(bias_net(t / "n.net")), "--netx-encoding", "graded", "--frames",
                                  str(_frames(t, graded(4)))], "CUBA input neurons take --netx-encoding events"),
}


@pytest.mark.parametrize("what", BAD_INPUT)
def test_bad_netx_input_is_one_line_and_writes_nothing(what, tmp_path, capsys):
    build, message = BAD_INPUT[what]
    argv = ["--profile", "loihi2", "--backend", "fast", *build(tmp_path), "--out", str(tmp_path / "out"),
            "--save-activity", str(tmp_path / "activity")]
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists() and not (tmp_path / "activity").exists()
