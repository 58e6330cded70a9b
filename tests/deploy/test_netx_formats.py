"""lava-dl's own test networks, in the variants of the netx format its reader takes, read from the
lava-dl 0.6 wheel `make setup` installs (its `tests/lava/lib/dl/netx/`, BSD-3-Clause) and checked
against lava-dl's runner layer by layer and step by step (`lava_netx_anchor.py`):

- `tiny.net`: conv weights stored with slayer's trailing time axis, (out, in, kH, kW, 1), which
  lava-dl drops; LOIHI neurons, the frame as the input layer's bias, lava-dl's resets;
- `mnist.net` (the bootstrap tutorial's MNIST MLP): a last dense layer without neurons, which
  lava-dl's runner gives a non-leaky CUBA integrator whose threshold its voltage never reaches;

and slayer's sigma-delta blocks with per-neuron delays, exported by slayer (lava-dl's `DelayDense`),
and lava-dl's NTIDIGITS network (CUBA layers with delays) against its stored ground truth.
"""
import re
from dataclasses import replace
from importlib.metadata import distribution
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from ddla_neuro.deploy.cli import main
from ddla_neuro.deploy.ir import IRError
from ddla_neuro.deploy.ir.netx import OUTPUT_INTEGRATOR, load_netx_layers, netx_to_spec, read_netx
from ddla_neuro.deploy.ir.netx_input import netx_frames
from ddla_neuro.deploy.sim import simulate
from ddla_neuro.errors import run_cli

slayer = pytest.importorskip("lava.lib.dl.slayer")  # lava-dl, installed by `make setup`
from netx_nets import assert_lava_equals_simulator, assert_same_spikes, lava_dl_blocks  # noqa: E402

NETX_TESTS = Path(distribution("lava-dl").locate_file("tests/lava/lib/dl/netx"))


def run_both(net: Path, spec, mantissas: np.ndarray, steps: int, tmp_path: Path, reset: list[int] | None = None):
    """Our simulator and lava-dl's runner on one bias frame (C, H, W) or (n,)."""
    frames = netx_frames(spec, mantissas[None])
    job = {"bias": mantissas} if reset is None else {"bias": mantissas, "reset": reset}
    reference = lava_dl_blocks(net, tmp_path, steps=steps, **job)
    return frames, simulate(spec, frames, "dense", record=True), [r[None] for r in reference]


@pytest.mark.slow
def test_tiny_net_with_a_time_axis_on_its_conv_weights_spikes_as_lava_dl_runs_it(tmp_path):
    net, steps = NETX_TESTS / "tiny.net", 40
    spec = read_netx(net, steps, encoding="bias", reset_interval=17, reset_offset=0)
    assert [p.shape for p in spec.spiking] == [(3, 16, 16), (24, 6, 6), (36, 1, 1)]
    assert spec.spiking[1].inputs[0].ops[-1].weight.shape == (24, 3, 5, 5)
    mantissas = np.load(NETX_TESTS / "gts" / "tinynet" / "input_bias.npy").transpose(2, 1, 0).astype(np.int64)
    frames, sim, reference = run_both(net, spec, mantissas, steps, tmp_path, reset=[17, 0])
    assert_same_spikes(spec, sim, reference)
    np.testing.assert_array_equal(reference[2][0, 19:36], reference[2][0, 2:19])  # each inference repeats
    assert_lava_equals_simulator(spec, frames)


@pytest.mark.slow
def test_a_dense_layer_without_neurons_integrates_as_lava_dl_runs_it(tmp_path):
    net, steps = NETX_TESTS / "mnist.net", 12
    spec = read_netx(net, steps, encoding="bias")
    integrator = spec.spiking[-1]
    assert (integrator.kind, integrator.du, integrator.dv) == ("cuba", OUTPUT_INTEGRATOR["iDecay"], 4096)
    assert spec.silent_readout and not read_netx(NETX_TESTS / "tiny.net", steps, encoding="bias").silent_readout
    mantissas = np.random.default_rng(0).integers(0, 120, 784)
    frames, sim, reference = run_both(net, spec, mantissas, steps, tmp_path)
    assert_same_spikes(spec, sim, reference[:-1])
    assert not reference[-1].any() and not sim.sent[integrator.name].any()  # it never fires, in lava-dl or here
    assert_lava_equals_simulator(spec, frames)


def delayed_sdnn_net(path: Path, delays: np.ndarray) -> Path:
    """slayer's sigma-delta blocks with per-neuron delays on a hidden dense layer (slayer's `delay=True`),
    written by slayer's exporter: Input (SDNN), Dense 16 -> 24 with `delays`, Dense 24 -> 8, Output."""
    torch.manual_seed(1)
    params = {"threshold": 0.1, "activation": torch.nn.functional.relu}
    sd = slayer.block.sigma_delta
    hidden = sd.Dense(params, 16, 24, weight_scale=3, delay=True)
    blocks = [sd.Input(params), hidden, sd.Dense(params, 24, 8, weight_scale=3), sd.Output(params, 8, 3)]
    with torch.no_grad():
        x = torch.zeros(1, 16, 2)
        for block in blocks:
            x = block(x)  # slayer sizes its delays on the first forward
        hidden.delay.delay.data = torch.as_tensor(delays, dtype=torch.float32).reshape(hidden.delay.delay.shape)
    with h5py.File(path, "w") as f:
        group = f.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(group.create_group(str(i)))
    return path


@pytest.mark.slow
def test_sigma_delta_delays_send_as_lava_dl_runs_them(tmp_path):
    """Delays of 0, 1 and many steps (up to 25) on a sigma-delta dense layer: every layer's messages
    equal lava-dl's runner (its DelayDense) step by step; without the delays they differ; our Lava
    processes equal the simulator, batched too; delta == dense."""
    steps, delays = 32, np.array([0, 1, 25, 7, 0, 1, 3, 12] * 3)
    net = delayed_sdnn_net(tmp_path / "delay.net", delays)
    spec = read_netx(net, steps, encoding="graded")
    np.testing.assert_array_equal(spec.populations[1].input_delay, delays)
    stream = np.random.default_rng(2).integers(-40, 40, (steps, 16))
    frames = netx_frames(spec, stream[None])
    sim = simulate(spec, frames, "dense", record=True)
    for pop, ref in zip(spec.populations, lava_dl_blocks(net, tmp_path, graded=stream)):
        np.testing.assert_array_equal(sim.activity[pop.name][0].reshape(ref.shape), ref, err_msg=pop.name)
        assert np.abs(ref).sum() > 0, pop.name
    undelayed = [replace(p, input_delay=None) for p in spec.populations]
    plain = simulate(replace(spec, populations=undelayed), frames, "dense", record=True)
    assert not np.array_equal(plain.activity["layer1"], sim.activity["layer1"])
    np.testing.assert_array_equal(simulate(spec, frames, "delta").logits, sim.logits)
    two = np.concatenate([frames, netx_frames(spec, stream[::-1][None])])
    assert_lava_equals_simulator(spec, two, batch=2)


@pytest.mark.slow
def test_delays_beyond_62_steps_are_clamped_as_lava_dl_clamps_them(tmp_path, capsys):
    """Intel's N-DNS baseline trains delays up to 64 steps; lava-dl's reader clamps any above 62 (a
    warning) and runs the rest: so do we (a note), and every layer equals its runner's."""
    steps, delays = 72, np.array([0, 64, 70, 62, 3, 1, 63, 12] * 3)
    net = delayed_sdnn_net(tmp_path / "delay.net", np.minimum(delays, 62))  # slayer's exporter clamps too
    with h5py.File(net, "r+") as f:  # as a file trained with longer delays stores them
        del f["layer/1/delay"]
        f["layer/1/delay"] = delays.astype(np.float32)
    spec = read_netx(net, steps, encoding="graded")
    np.testing.assert_array_equal(spec.populations[1].input_delay, np.minimum(delays, 62))
    assert "delays up to 70 steps clamped to 62" in capsys.readouterr().err
    stream = np.random.default_rng(3).integers(-40, 40, (steps, 16))
    sim = simulate(spec, netx_frames(spec, stream[None]), "dense", record=True)
    for pop, ref in zip(spec.populations, lava_dl_blocks(net, tmp_path, graded=stream)):
        np.testing.assert_array_equal(sim.activity[pop.name][0].reshape(ref.shape), ref, err_msg=pop.name)


@pytest.mark.slow
def test_ntidigits_with_axonal_delays_spikes_as_lava_dls_ground_truth():
    """lava-dl's NTIDIGITS network (64-256-256-242 LOIHI neurons, per-neuron delays up to 62 steps)
    read as its test reads it, without the average layer its runner cannot build (num_layers=5,
    `--netx-layers 5`), on its 3,000-step input: the last layer's 22,572 spikes equal lava-dl's
    stored output, which its recording puts 4 steps later (its source and three synapses)."""
    folder = NETX_TESTS / "gts" / "ntidigits"
    layers = load_netx_layers(folder / "ntidigits.net")
    spec = netx_to_spec(layers[:5], 3000)
    assert max(int(p.input_delay.max()) for p in spec.spiking if p.input_delay is not None) == 62
    x = np.load(folder / "input.npy").T
    sim = simulate(spec, x.reshape(1, 3000, *spec.input_shape), "dense", record=True)
    ours, truth = sim.sent[spec.spiking[-1].name][0], np.load(folder / "output.npy").T
    assert truth.sum() == 22572
    np.testing.assert_array_equal(ours[:-4], truth[4:])
    assert not ours[-4:].any() and not truth[:4].any()
    with pytest.raises(IRError, match="layer 5 \\(average\\): not supported"):
        netx_to_spec(layers, 3000)


@pytest.mark.parametrize("argv, message", [
    (["--netx-layers", "7"], "--netx-layers 7, and .*mnist.net holds 4 layers"),
    (["--netx-layers", "0"], "--netx-layers reads a --netx file's first N >= 1 layers, got 0"),
])
def test_netx_layers_out_of_range_is_one_line(argv, message, tmp_path, capsys):
    np.save(tmp_path / "f.npy", np.zeros(784, dtype=np.int64))
    args = ["--profile", "loihi2", "--backend", "fast", "--netx", str(NETX_TESTS / "mnist.net"), "--netx-encoding",
            "bias", "--frames", str(tmp_path / "f.npy"), "--timesteps", "4", "--out", str(tmp_path / "out"), *argv]
    assert run_cli(main, args) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and err.count("\n") == 1 and not (tmp_path / "out").exists(), err
