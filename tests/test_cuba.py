"""The CUBA neuron (Loihi's current-based LIF, lava-dl's CUBA) in the fast simulator: in fixed
point it spikes bit for bit as Lava's own bit-accurate `Dense` + `LIF` network, and in float it
follows the same equations."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddla_neuro.deploy.cli import main
from ddla_neuro.deploy.ir import IRError, read_netx
from ddla_neuro.deploy.lava_run import LavaRunError, run_isolated, run_lava
from ddla_neuro.deploy.quant import quantize
from ddla_neuro.deploy.run import RunError
from ddla_neuro.deploy.sim import simulate
from ddla_neuro.deploy.spec import MEMBRANE_BITS, SPIKES, NetSpec, Op, Population, Projection, Sends, assign_depths
from ddla_neuro.errors import run_cli

ANCHOR = Path(__file__).with_name("lava_cuba_anchor.py")
T = 10


def cuba_spec(weights: list[np.ndarray], registers: list[tuple[int, int, int, int]], fixed: bool = True) -> NetSpec:
    """Layers of CUBA neurons on binary input spikes. `registers`: Lava's (du, dv, vth, bias) per
    layer. Fixed point: the integer pipeline of Lava's LIF (current = weights @ spikes << 6,
    threshold vth << 6, Loihi's current decay du + 1); float: the same numbers, unscaled."""
    pops, source = [], "input"
    for k, (w, (du, dv, vth, bias)) in enumerate(zip(weights, registers)):
        op = Op("linear", (w.shape[1],), (w.shape[0],), w.astype(np.float64) * (1 if fixed else 64))
        pops.append(Population(f"l{k}", (w.shape[0],), "cuba", np.full(w.shape[0], float(bias)),
                               [Projection(source, [op], shift=6 if fixed else 0)], v_th=float(vth * 64),
                               decay=1 - dv / 4096, dv=dv, u_decay=1 - (du + 1) / 4096, du=du + 1, sends=SPIKES))
        source = f"l{k}"
    n = weights[-1].shape[0]
    identity = [Op("flatten", (n,), (n,)), Op("scale", (n,), (n,), np.array(1.0))]  # one weighted op per projection
    pops.append(Population("out", (n,), "readout", np.zeros(n), [Projection(source, identity)],
                           sends=Sends(graded=True, bits=MEMBRANE_BITS)))
    assign_depths(pops)
    return NetSpec((weights[0].shape[1],), T, "events", pops, fixed=fixed, input_sends=SPIKES)


def network(seed: int):
    rng = np.random.default_rng(seed)
    spikes = (rng.random((3, T, 24)) > 0.6).astype(float)
    weights = [rng.integers(-128, 128, (16, 24)) * 2, rng.integers(-96, 128, (6, 16)) * 2]  # Dense keeps even 8-bit
    # fast current decays: Loihi's +1 on the current decay (4096 - du - 1) changes spikes here
    registers = [(3900, 300, 700, 40), (4000, 2000, 300, -20)]
    return spikes, weights, registers


@pytest.mark.parametrize("seed", [0, 1])
def test_fixed_point_cuba_spikes_as_lavas_own_lif(seed, tmp_path):
    spikes, weights, registers = network(seed)
    sim = simulate(cuba_spec(weights, registers), spikes, "dense", record=True)
    for i, sample in enumerate(spikes):
        job, out = tmp_path / f"job{i}.npz", tmp_path / f"out{i}.npz"
        np.savez(job, spikes=sample.T, **{f"w{k}": w for k, w in enumerate(weights)},
                 **{f"p{k}": r for k, r in enumerate(registers)})
        run_isolated([sys.executable, str(ANCHOR), str(job), str(out)], timeout=120)
        lava = np.load(out)
        for k in range(len(weights)):
            np.testing.assert_array_equal(sim.sent[f"l{k}"][i], lava[f"s{k}"].T)
    assert all(0.1 < sim.sent[f"l{k}"].mean() < 0.6 for k in range(len(weights)))  # both layers spike, neither saturates


def test_float_cuba_follows_its_equations():
    spikes, weights, registers = network(2)
    spec = cuba_spec(weights, registers, fixed=False)
    got = simulate(spec, spikes, "dense", record=True).sent
    x = spikes
    for k, (w, (du, dv, vth, bias)) in enumerate(zip(weights, registers)):
        u = v = np.zeros((len(x), w.shape[0]))
        out = np.zeros((len(x), T, w.shape[0]))
        for t in range(T):
            u = (1 - (du + 1) / 4096) * u + x[:, t] @ (w.T * 64.0)
            v = (1 - dv / 4096) * v + u + bias
            out[:, t] = v > vth * 64
            v = np.where(out[:, t] > 0, 0.0, v)
        np.testing.assert_array_equal(got[f"l{k}"], out)
        x = out


def test_ddla_on_cuba_is_refused_in_one_line():
    spikes, weights, registers = network(0)
    spec = cuba_spec(weights, registers)
    spec.scores = {p.name: np.ones(p.shape, np.float32) for p in spec.spiking}
    with pytest.raises(RunError, match="CUBA neurons.*dense or delta"):
        simulate(spec, spikes, "ddla", keep=0.5)
    delta, dense = simulate(spec, spikes, "delta"), simulate(spec, spikes, "dense")
    np.testing.assert_array_equal(delta.logits, dense.logits)


def test_quantizer_keeps_both_decays():
    spikes, weights, registers = network(0)
    fixed = quantize(cuba_spec(weights, registers, fixed=False))
    assert [(p.du, p.dv) for p in fixed.spiking] == [(r[0] + 1, r[1]) for r in registers]


@pytest.mark.parametrize("fixed", [True, False])
def test_our_lava_processes_run_cuba_as_the_simulator(fixed):
    spikes, weights, registers = network(1)
    spec = cuba_spec(weights, registers, fixed=fixed)
    for mode in ("dense", "delta"):
        sim, lava = simulate(spec, spikes, mode), run_lava(spec, spikes, mode)
        np.testing.assert_array_equal(lava.logits, sim.logits)
        assert lava.counts.to_dict() == sim.counts.to_dict()


NETX = Path(__file__).parent / "data" / "lava-dl-mnist" / "trained_mnist_network.net"


def test_netx_fixture_runs_as_lavas_own_network(tmp_path):
    """lava-dl's MNIST network (784-128-64-10 CUBA) read from its netx file: the fast simulator
    spikes bit for bit as Lava's Dense + LIF built from the same file's numbers."""
    import h5py
    spec = read_netx(NETX, 12)
    assert [(p.kind, p.size, p.du, p.dv, p.v_th) for p in spec.spiking] == [
        ("cuba", 128, 411, 410, 4096.0), ("cuba", 64, 411, 410, 4096.0), ("cuba", 10, 411, 410, 4096.0)]
    with h5py.File(NETX, "r") as f:
        weights = [f[f"layer/{k}/weight"][()] for k in range(3)]
    spikes = (np.random.default_rng(3).random((2, 12, 784)) > 0.8).astype(float)
    sim = simulate(spec, spikes, "dense", record=True)
    for i, sample in enumerate(spikes):
        job, out = tmp_path / f"job{i}.npz", tmp_path / f"out{i}.npz"
        np.savez(job, spikes=sample.T, **{f"w{k}": w for k, w in enumerate(weights)},
                 **{f"p{k}": (410, 410, 64, 0) for k in range(3)})
        run_isolated([sys.executable, str(ANCHOR), str(job), str(out)], timeout=120)
        lava = np.load(out)
        for k in range(3):
            np.testing.assert_array_equal(sim.sent[f"layer{k}"][i], lava[f"s{k}"].T)
    assert all(sim.sent[f"layer{k}"].sum() > 0 for k in range(3))


def test_netx_deploys_on_event_frames_and_refuses_images(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frames = lambda n: (rng.random((n, 12, 1, 28, 28)) > 0.8).astype(np.uint8)  # noqa: E731
    np.savez(tmp_path / "events.npz", images=frames(10), labels=np.arange(10), test_images=frames(4),
             test_labels=np.arange(4))
    base = ["--profile", "loihi2", "--netx", str(NETX), "--timesteps", "12"]
    out = tmp_path / "report"
    events = ["--dataset", "npz", "--data-dir", str(tmp_path / "events.npz")]
    assert run_cli(main, base + events + ["--out", str(out)]) == 0  # on Lava, checked against the simulator
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["arch"] == "netx" and set(report["modes"]) >= {"dense", "delta"}
    assert report["checks"] and all(report["checks"].values()), report["checks"]
    capsys.readouterr()
    assert run_cli(main, base + ["--dataset", "digits", "--backend", "fast", "--out", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "takes input spikes" in err, err
    assert not (tmp_path / "no").exists()


def test_netx_layers_not_supported_yet_are_named(tmp_path):
    import h5py
    with h5py.File(tmp_path / "conv.net", "w") as f:
        layer = f.create_group("layer/0")
        layer["type"] = np.array([b"conv"])
    with pytest.raises(IRError, match=r"netx layer 0 \(conv\): only dense layers"):
        read_netx(tmp_path / "conv.net", 4)


def test_current_wraps_as_lavas_lif_computes_it():
    """wrap_current (shared by the simulator and our Lava neuron) against the two `where`s of
    Lava's bit-accurate LIF, at the edges of the 24-bit register."""
    from ddla_neuro.deploy.spec import SATURATION, wrap_current
    u = np.array([-2 * SATURATION, -SATURATION - 1, -SATURATION, -SATURATION + 1, 0, SATURATION - 1, SATURATION,
                  SATURATION + 1, 2 * SATURATION - 1])
    wrapped = np.where(u > SATURATION, u - 2 * SATURATION, u)
    lava = np.where(wrapped <= -SATURATION, u + 2 * SATURATION, wrapped)
    np.testing.assert_array_equal(wrap_current(u), lava)
    np.testing.assert_array_equal(wrap_current(torch.as_tensor(u, dtype=torch.float64)).numpy(), lava)
