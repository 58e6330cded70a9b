"""Per-layer DDLA keep ratios (training, the simulator, Lava) and the energy-aware choice of k."""
import itertools
import json

import numpy as np
import pytest
import torch

from ddla_neuro.ddla.executor import DeltaExecutor, SensitivityStats, ThresholdTracker
from ddla_neuro.ddla.selection import DEFAULT_RULE, Selection
from ddla_neuro.ddla.keep import KeepError, keep_label, keep_of, parse_keep, per_layer
from ddla_neuro.deploy.keep_choice import EXHAUSTIVE_LIMIT, GRID, Point, choose_keep, measure_on
from ddla_neuro.deploy.lava_run import run_lava
from ddla_neuro.deploy.profiles import load_profile
from ddla_neuro.deploy.quant import quantize_run
from ddla_neuro.deploy.run import RunError
from ddla_neuro.deploy.sim import simulate
from ddla_neuro.deploy.thresholds import calibrate_selection
from deploy_nets import convnet, inputs, mlp, random_scores, spec_of


def test_keep_text_and_layers():
    assert parse_keep("0.5") == 0.5 and parse_keep("0.7:0.5:0.3") == [0.7, 0.5, 0.3]
    keep = per_layer([0.7, 0.3], ["a", "b"])
    assert keep == {"a": 0.7, "b": 0.3} and keep_label(keep) == "0.7:0.3"
    assert keep_of(keep, "b") == 0.3 and keep_of(keep, "readout") == 1.0 and keep_of(0.4, "a") == 0.4
    assert per_layer([0.5, 0.5], ["a", "b"]) == 0.5  # the same everywhere is uniform
    assert per_layer({"b": 0.2}, ["a", "b"]) == {"a": 1.0, "b": 0.2}
    for bad in ("0", "1.5", "nan", "-0.1", "0.5:x", ""):
        with pytest.raises(KeepError):
            parse_keep(bad)
    with pytest.raises(KeepError, match="3 keep ratios for 2 spiking layers"):
        per_layer([0.5, 0.5, 0.5], ["a", "b"])
    with pytest.raises(KeepError, match="'c'"):
        per_layer({"c": 0.5}, ["a", "b"])


def _scored(net):
    spec = random_scores(spec_of(net), seed=2)
    return spec, SensitivityStats(values={k: torch.as_tensor(v) for k, v in spec.scores.items()})


@pytest.mark.parametrize("rule", ["uniform", "patience", "topk"])
def test_per_layer_k_in_the_simulator_equals_the_torch_executor(rule):
    net = convnet(seed=1)
    x, frames = inputs(net, 16)
    spec, stats = _scored(net)
    first, second = [p.name for p in spec.spiking]
    keep = {first: 1.0, second: 0.3}
    chosen = Selection(rule, keep, {second: 40} if rule != "topk" else {})
    ex = DeltaExecutor(net, "ddla", keep=keep, source="stats", stats=stats, rule=rule,
                       thresholds=ThresholdTracker(chosen.thresholds))
    with torch.no_grad():
        out, _ = ex.run(net.encode(x))
    result = simulate(spec, frames, "ddla", chosen)
    np.testing.assert_array_equal(result.logits, out.transpose(0, 1).numpy())
    sent = {k: v["transmitted"].tolist() for k, v in ex.counts.totals.items()}
    assert sent == {k: result.counts.events[k].tolist() for k in sent}
    # the layer at k = 1 sends every delta; the other drops some
    assert ex.counts.totals[first]["dropped"].sum() == 0 and ex.counts.totals[second]["dropped"].sum() > 0
    delta = simulate(spec, frames, "delta")
    np.testing.assert_array_equal(result.counts.events[first], delta.counts.events[first])
    assert result.counts.events[second].sum() < delta.counts.events[second].sum()
    # one ratio named for every layer is the uniform run
    same = simulate(spec, frames, "ddla", Selection("topk", {first: 0.4, second: 0.4}))
    np.testing.assert_array_equal(same.logits, simulate(spec, frames, "ddla", Selection("topk", 0.4)).logits)


def test_per_layer_k_in_lava_equals_the_simulator():
    net = mlp(seed=3)
    _, frames = inputs(net, 3)
    spec, _ = _scored(net)
    spec, frames = quantize_run(spec, frames)
    for chosen in (Selection("topk", dict(zip([p.name for p in spec.spiking], (0.3, 0.8)))),
                   Selection("integral", 0.5, dict(zip([p.name for p in spec.spiking], (20, 40))))):
        run, sim = run_lava(spec, frames, "ddla", chosen), simulate(spec, frames, "ddla", chosen)
        np.testing.assert_array_equal(run.logits, sim.logits)
        assert run.counts.to_dict() == sim.counts.to_dict()


def _linear_measure(costs: dict[str, float], harm: dict[str, float]):
    """A network whose energy is sum_l cost_l * k_l and whose accuracy is 1 - sum_l harm_l * (1 - k_l)."""
    def measure(keep):
        ks = {name: keep_of(keep, name) for name in costs}
        return Point(keep, 1.0 - sum(harm[n] * (1 - k) for n, k in ks.items()),
                     sum(costs[n] * k for n, k in ks.items()))
    return measure


def test_the_choice_filters_the_layer_whose_deltas_cost_most_and_matter_least():
    """Two layers: `wide` costs 10x a delta of `narrow` and its deltas barely matter. The
    answer, by brute force over the grid: `wide` at the grid's lowest k; `narrow` as low as
    the floor allows; the best uniform k costs 4.5x more."""
    measure = _linear_measure({"wide": 10.0, "narrow": 1.0}, {"wide": 0.01, "narrow": 0.2})
    choice = choose_keep(measure, ["wide", "narrow"], floor=0.9)
    grid = sorted(GRID)
    brute = min((measure(dict(zip(("wide", "narrow"), ks))) for ks in itertools.product(grid, repeat=2)
                 if measure(dict(zip(("wide", "narrow"), ks))).accuracy >= 0.9), key=lambda p: p.energy_j)
    assert choice.best.energy_j == pytest.approx(brute.energy_j)
    # narrow: 0.2 (1 - k) <= 0.1 - 0.009 needs k >= 0.545; uniform: 0.21 (1 - k) <= 0.1 needs k >= 0.524
    assert choice.best.keep == {"wide": min(GRID), "narrow": 0.7}
    assert choice.best_uniform.keep == 0.7
    assert choice.best.energy_j == pytest.approx(10 * 0.1 + 0.7) and choice.best_uniform.energy_j == pytest.approx(7.7)
    assert len(choice.points) == len(GRID) ** 2


def test_the_greedy_search_of_many_layers_never_costs_more_than_the_best_uniform_k():
    rng = np.random.default_rng(0)
    names = [f"l{i}" for i in range(5)]
    assert len(GRID) ** len(names) > EXHAUSTIVE_LIMIT  # the greedy branch
    for _ in range(20):
        costs = dict(zip(names, rng.uniform(0.1, 10, 5)))
        harm = dict(zip(names, rng.uniform(0, 0.1, 5)))
        choice = choose_keep(_linear_measure(costs, harm), names, floor=0.9)
        assert choice.best.accuracy >= 0.9
        assert choice.best.energy_j <= choice.best_uniform.energy_j
        assert len(choice.points) < 200  # far fewer than the 7,776 combinations


def test_an_energy_target_takes_the_most_accurate_k_within_it():
    """The same two layers, a budget of 3 (k = 1 costs 11): brute force over the grid gives the
    most accurate point within it; the best uniform k within it is 0.2 (2.2), less accurate."""
    measure = _linear_measure({"wide": 10.0, "narrow": 1.0}, {"wide": 0.01, "narrow": 0.2})
    choice = choose_keep(measure, ["wide", "narrow"], energy_target_j=3.0)
    within = [measure(dict(zip(("wide", "narrow"), ks))) for ks in itertools.product(GRID, repeat=2)]
    best = max((p for p in within if p.energy_j <= 3.0), key=lambda p: p.accuracy)
    assert choice.best.accuracy == pytest.approx(best.accuracy) and choice.best.energy_j <= 3.0
    assert choice.best.keep == {"wide": 0.2, "narrow": 1.0}  # 10 * 0.2 + 1 = 3
    assert choice.best_uniform.keep == 0.2 and choice.best.accuracy > choice.best_uniform.accuracy
    names = [f"l{i}" for i in range(5)]  # the greedy branch: never less accurate than the best uniform k
    rng = np.random.default_rng(1)
    for _ in range(10):
        costs, harm = dict(zip(names, rng.uniform(0.1, 10, 5))), dict(zip(names, rng.uniform(0, 0.1, 5)))
        target = 0.4 * sum(costs.values())
        c = choose_keep(_linear_measure(costs, harm), names, energy_target_j=target)
        assert c.best.energy_j <= target and c.best.accuracy >= c.best_uniform.accuracy
    with pytest.raises(KeepError, match="the cheapest measured is 1.1 J"):
        choose_keep(measure, ["wide", "narrow"], energy_target_j=1.0)


def test_an_accuracy_floor_no_k_reaches_names_the_best_reachable():
    measure = _linear_measure({"a": 1.0}, {"a": 0.5})
    with pytest.raises(KeepError, match=r"best reachable on the validation split is 80.00% \(k = 1\)"):
        choose_keep(lambda k: Point(k, measure(k).accuracy - 0.2, measure(k).energy_j), ["a"], floor=0.9)


def test_the_choice_on_a_real_network_is_the_brute_force_optimum():
    """The mlp test network in fixed point, costed on loihi2, labels its own lossless predictions:
    the search (exhaustive for two layers) finds the cheapest per-layer k of the grid that keeps
    90% of them, at no more energy than the best uniform k."""
    net = mlp(seed=3)
    _, frames = inputs(net, 24)
    spec, _ = _scored(net)
    spec, frames = quantize_run(spec, frames)
    labels = simulate(spec, frames, "delta").predictions
    profile = load_profile("loihi2")
    measure = measure_on(spec, frames, labels, profile, lambda k: calibrate_selection(spec, frames, DEFAULT_RULE, k))
    layers = [p.name for p in spec.spiking]
    choice = choose_keep(measure, layers, floor=0.9)
    brute = [measure(per_layer(list(ks), layers)) for ks in itertools.product(GRID, repeat=len(layers))]
    best = min(p.energy_j for p in brute if p.accuracy >= 0.9)
    assert choice.best.energy_j == best and choice.best.accuracy >= 0.9
    assert choice.best.energy_j <= choice.best_uniform.energy_j


def deploy_cli(*argv, out):
    from ddla_neuro.deploy.cli import main
    return main(["--profile", "loihi2", "--backend", "fast", "--out", str(out), *argv])


def test_deploy_chooses_k_on_a_validation_split_and_reports_the_rest(tmp_path, capsys):
    assert deploy_cli("--accuracy-floor", "0.95", "--validation-samples", "100", out=tmp_path) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    choice = report["keep_choice"]
    assert report["run"]["samples"] == 360 - 100 and choice["validation_samples"] == 100
    assert choice["chosen"]["accuracy"] >= 0.95
    assert choice["chosen"]["energy_j"] <= choice["best_uniform"]["energy_j"]
    assert report["modes"]["ddla"]["keep"] == choice["chosen"]["keep"]  # the ddla mode runs the choice
    assert len(choice["points"]) == len(GRID) ** 2  # two spiking layers: every combination
    assert "Energy-aware k" in capsys.readouterr().out and "Energy-aware k" in (tmp_path / "report.md").read_text()


def test_deploy_takes_the_most_accurate_k_within_an_energy_target(tmp_path):
    assert deploy_cli("--energy-target", "3e-5", "--validation-samples", "100", out=tmp_path) == 0
    choice = json.loads((tmp_path / "report.json").read_text())["keep_choice"]
    assert choice["energy_target_j"] == 3e-5 and choice["accuracy_floor"] is None
    assert choice["chosen"]["energy_j"] <= 3e-5
    assert choice["chosen"]["accuracy"] >= choice["best_uniform"]["accuracy"]
    assert choice["chosen"]["accuracy"] == max(p["accuracy"] for p in choice["points"] if p["energy_j"] <= 3e-5)


@pytest.mark.parametrize("keep", [0.0, {"3": 0.5, "6": 0.0}, 1.5])
def test_the_run_contract_takes_the_keep_range_the_command_line_reads(keep):
    """k in (0, 1] everywhere (`keep.parse_keep`, `run.check_run`): no backend runs k = 0."""
    net = mlp()
    _, frames = inputs(net, 2)
    with pytest.raises(RunError, match=r"keep ratios must lie in \(0, 1\]"):
        simulate(random_scores(spec_of(net)), frames, "ddla", Selection("topk", keep))


@pytest.mark.parametrize("argv, message", [
    (["--energy-target", "-1"], "joules per inference, > 0"),
    (["--energy-target", "1e-9"], "raise the target"),
    (["--keep", "0.5:0.5:0.5"], "3 keep ratios for 2 spiking layers"),
    (["--keep", "0"], "keep ratios must lie in (0, 1]"),
    (["--keep", "1.5,0.5"], "keep ratios must lie in (0, 1]"),
    (["--accuracy-floor", "97"], "a fraction in (0, 1]"),
    (["--accuracy-floor", "1.0"], "best reachable on the validation split is"),
    (["--accuracy-floor", "0.9", "--validation-samples", "360"], "leave test samples"),
    (["--accuracy-floor", "0.9", "--mode", "dense,delta"], "needs the ddla mode"),
])
def test_bad_keep_and_floor_are_one_line_and_write_nothing(tmp_path, capsys, argv, message):
    from ddla_neuro.deploy.cli import main
    from ddla_neuro.errors import run_cli
    out = tmp_path / "out"
    assert run_cli(main, ["--profile", "loihi2", "--backend", "fast", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
