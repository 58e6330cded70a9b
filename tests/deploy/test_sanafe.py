"""Our networks exported to SANA-FE (its Loihi architecture, `deploy/sanafe_net.py`) compute our
function: every layer's spikes at every step equal our fixed-point simulator's."""
import builtins
import json

import numpy as np
import pytest
import torch

from deploy_nets import convnet, residual, spec_of
from ddla_neuro.checkpoint import checkpoint_dataset, load_checkpoint
from ddla_neuro.deploy.cli import main
from ddla_neuro.deploy.loading import DEFAULT_CHECKPOINT
from ddla_neuro.deploy.cost import Terms, map_network
from ddla_neuro.deploy.ir import checkpoint_to_spec, input_frames
from ddla_neuro.deploy.profiles import load_profile
from ddla_neuro.deploy.quant import quantize, quantize_run
from ddla_neuro.deploy.sanafe_net import SanafeError, run_sanafe
from ddla_neuro.deploy.sim import simulate
from ddla_neuro.deploy.spec import SPIKES
from ddla_neuro.errors import run_cli

pytest.importorskip("sanafe")  # installed by make setup


def loihi_mapping(spec):
    return map_network(spec, {}, Terms(load_profile("loihi")))


def assert_same_spikes(spec, frames, mode="dense"):
    """SANA-FE's spikes per layer and step equal our simulator's (in delta mode the receivers
    integrate the replayed changes: the same spikes)."""
    sim = simulate(spec, frames, "dense", record=True)
    for i, sample in enumerate(frames):
        run = run_sanafe(spec, sample, loihi_mapping(spec), mode)
        for pop in spec.spiking:
            np.testing.assert_array_equal(run.spikes[pop.name], sim.sent[pop.name][i], err_msg=pop.name)
            assert 0 < run.spikes[pop.name].mean() < 1, pop.name
    return run


def test_shipped_model_spikes_as_our_simulator():
    """Analog input: the first layer's current joins its bias; the biases (folded BatchNorm)
    come from bias units, active only during each layer's steps of the sample."""
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    _, data = checkpoint_dataset(ckpt, None, None)
    spec, frames = quantize_run(checkpoint_to_spec(ckpt),
                                input_frames(ckpt.net, data.x_test[:2], torch.Generator().manual_seed(0)))
    run = assert_same_spikes(spec, frames)
    assert set(run.extra) == {"bias:2", "bias:6"} and run.fill == spec.latency == 3 and run.energy["total"] > 0
    biased = int(np.count_nonzero(np.asarray(spec.population("6").bias).reshape(-1)))
    assert biased > 400  # most of the 512 neurons have a bias: the count below is not vacuous
    assert run.extra["bias:6"] == (6 * biased, 6 * 2, "loihi_conv_synapse")  # one spike per step each, on 2 cores
    assert run.energy["total"] == pytest.approx(sum(run.energy[k] for k in ("synapse", "dendrite", "soma", "network")))


def test_lif_convnet_on_input_spikes_spikes_as_our_simulator():
    """Binary input from SANA-FE's input units, leaky neurons (decay 1/2), every layer late."""
    net = convnet(seed=1, neuron="lif")
    spec = spec_of(net)
    spec.encoding, spec.input_sends = "events", SPIKES
    spec = quantize(spec)
    frames = (np.random.default_rng(0).random((2, spec.timesteps, *spec.input_shape)) < 0.4).astype(float)
    assert {p.dv for p in spec.spiking} == {2048}
    run = assert_same_spikes(spec, frames)
    assert run.fill == spec.latency
    delta = assert_same_spikes(spec, frames, "delta")
    assert set(delta.extra) == {"bias:2", "bias:6"} and delta.reset_step and len(delta.step_time) == run.fill + 5


def test_what_sanafe_cannot_carry_is_one_line():
    spec = spec_of(residual())
    with pytest.raises(SanafeError, match="the fixed-point spec"):
        run_sanafe(spec, np.zeros((spec.timesteps, *spec.input_shape)), None)
    fixed = quantize(spec)
    with pytest.raises(SanafeError, match="residual shortcut") as err:
        run_sanafe(fixed, np.zeros((fixed.timesteps, *fixed.input_shape)), loihi_mapping(fixed))
    assert "\n" not in str(err.value)


def test_missing_sanafe_says_how_to_install(monkeypatch):
    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__",
                        lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name)) if name == "sanafe"
                        else real(name, *a, **k))
    spec = quantize(spec_of(convnet()))
    with pytest.raises(SanafeError, match=r"pip install 'ddla-neuro\[sanafe\]'"):
        run_sanafe(spec, np.zeros((spec.timesteps, *spec.input_shape)), None)


def test_deploy_cross_check_reports_both_sides(tmp_path, capsys):
    base = ["--profile", "loihi", "--backend", "fast", "--samples", "4", "--cross-check", "sanafe",
            "--cross-check-samples", "1"]
    assert run_cli(main, base + ["--out", str(tmp_path / "r")]) == 0
    c = json.loads((tmp_path / "r" / "report.json").read_text())["cross_check"]
    assert c["samples"] == 1 and c["sanafe_steps"] == c["steps"] + 3 and set(c["modes"]) == {"dense", "delta", "ddla"}
    for m in c["modes"].values():
        assert m["energy_j"]["ratio"] == pytest.approx(m["energy_j"]["ours"] / m["energy_j"]["sanafe"])
        assert m["energy_j"]["sanafe"] == pytest.approx(sum(m["terms_j"]["sanafe"].values()))
        assert m["energy_j"]["sanafe_as_run"] == pytest.approx(m["energy_j"]["sanafe"] + sum(m["stand_in_j"].values()))
        assert len(m["step_latency_s"]["ours"]) == c["steps"]
        assert len(m["step_latency_s"]["sanafe"]) == c["sanafe_steps"]
        assert sum(m["step_latency_s"]["sanafe"]) == pytest.approx(m["latency_s"]["sanafe"])
    assert "## Cross-check: sanafe" in (tmp_path / "r" / "report.md").read_text()
    assert "cross-check sanafe" in capsys.readouterr().out


@pytest.mark.parametrize("change, message", [(["--profile", "loihi2"], "first-generation chip only"),
                                             (["--float"], "drop --float")])
def test_cross_check_that_cannot_run_is_one_line(change, message, tmp_path, capsys):
    argv = ["--profile", "loihi", "--backend", "fast", "--samples", "2", "--cross-check", "sanafe"] + change
    assert run_cli(main, argv + ["--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and not (tmp_path / "r").exists()


def test_loihi2_report_says_the_cross_check_covers_loihi_only(tmp_path):
    assert run_cli(main, ["--profile", "loihi2", "--backend", "fast", "--samples", "2", "--mode", "dense",
                          "--out", str(tmp_path / "r")]) == 0
    assert "covers the first-generation Loihi only" in (tmp_path / "r" / "report.md").read_text()
