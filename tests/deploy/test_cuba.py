"""The CUBA neuron (Loihi's current-based LIF, lava-dl's CUBA) in the fast simulator: in fixed
point it spikes bit for bit as Lava's own bit-accurate `Dense` + `LIF` network, and in float it
follows the same equations."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddla_neuro.deploy.isolation import run_isolated
from ddla_neuro.deploy.lava_run import run_lava
from ddla_neuro.deploy.quant import quantize
from ddla_neuro.deploy.run import RunError
from ddla_neuro.deploy.sim import simulate
from ddla_neuro.deploy.ops import MEMBRANE_BITS
from ddla_neuro.deploy.spec import SPIKES, NetSpec, Op, Population, Projection, Sends, assign_depths
from deploy_nets import selection

ANCHOR = Path(__file__).parents[1] / "anchors" / "lava_cuba_anchor.py"
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
    # both layers spike, neither saturates
    assert all(0.1 < sim.sent[f"l{k}"].mean() < 0.6 for k in range(len(weights)))


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


@pytest.mark.parametrize("fixed", [True, False])
@pytest.mark.parametrize("rule", ["uniform", "topk"])
def test_ddla_on_cuba_selects_as_our_lava_processes(fixed, rule):
    """DDLA's selection on CUBA neurons: our Lava processes equal the simulator (logits and
    every counter), k = 1 is lossless delta, k = 0.5 sends fewer events and changes the output
    (the receivers hold back what was not sent)."""
    spikes, weights, registers = network(0)
    spec = cuba_spec(weights, registers, fixed=fixed)
    spec.scores = {p.name: np.random.default_rng(3).random(p.shape).astype(np.float32) for p in spec.spiking}
    chosen = selection(spec, rule, 0.5)
    ddla, lava = simulate(spec, spikes, "ddla", chosen, record=True), run_lava(spec, spikes, "ddla", chosen)
    np.testing.assert_array_equal(lava.logits, ddla.logits)
    assert lava.counts.to_dict() == ddla.counts.to_dict()
    delta, lossless = simulate(spec, spikes, "delta"), simulate(spec, spikes, "ddla", selection(spec, rule, 1.0))
    assert lossless.counts.to_dict() == delta.counts.to_dict()
    np.testing.assert_array_equal(lossless.logits, delta.logits)
    assert all(ddla.counts.events[p.name].sum() < delta.counts.events[p.name].sum() for p in spec.spiking)
    assert not np.array_equal(ddla.logits, delta.logits)


def test_ddla_on_sigma_delta_neurons_is_refused_in_one_line():
    spikes, weights, registers = network(0)
    spec = cuba_spec(weights, registers)
    spec.populations[0].kind = "sdnn"
    spec.scores = {p.name: np.ones(p.shape, np.float32) for p in spec.spiking}
    with pytest.raises(RunError, match=r"\['l0'\] are sigma-delta neurons.*dense or delta"):
        simulate(spec, spikes, "ddla", selection(spec, "topk", 0.5))


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


def test_an_update_is_active_while_the_current_lasts():
    """One input spike into a CUBA neuron that halves its current each step (du = 2048): the
    current 64 << 6 = 2**12 lasts 13 steps (2**12 ... 1, then 1 * 2048 >> 12 = 0), so 13 active
    updates where an IF/LIF neuron would count one; our Lava neuron counts the same."""
    spikes = np.zeros((1, 16, 1))
    spikes[0, 0, 0] = 1
    spec = cuba_spec([np.array([[64]])], [(2047, 0, 1 << 16, 0)])
    spec.timesteps = 16
    sim = simulate(spec, spikes, "dense")
    assert int(sim.counts.active["l0"].sum()) == 13 and int(sim.counts.spikes["l0"].sum()) == 0
    assert run_lava(spec, spikes, "dense").counts.to_dict() == sim.counts.to_dict()


def test_current_wraps_as_lavas_lif_computes_it():
    """wrap_current (shared by the simulator and our Lava neuron) against the two `where`s of
    Lava's bit-accurate LIF, at the edges of the 24-bit register."""
    from ddla_neuro.deploy.ops import SATURATION, wrap_current
    u = np.array([-2 * SATURATION, -SATURATION - 1, -SATURATION, -SATURATION + 1, 0, SATURATION - 1, SATURATION,
                  SATURATION + 1, 2 * SATURATION - 1])
    wrapped = np.where(u > SATURATION, u - 2 * SATURATION, u)
    lava = np.where(wrapped <= -SATURATION, u + 2 * SATURATION, wrapped)
    np.testing.assert_array_equal(wrap_current(u), lava)
    np.testing.assert_array_equal(wrap_current(torch.as_tensor(u, dtype=torch.float64)).numpy(), lava)
