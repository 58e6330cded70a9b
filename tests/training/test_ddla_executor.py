"""The delta executor on whole networks: k = 1 equals the baseline, counts, statistics."""
import json

import pytest
import torch
from torch import nn

from conftest import run_module
from ddla_neuro.checkpoint import load_checkpoint
from ddla_neuro.ddla.executor import STATS_EVERY, DeltaExecutor, SensitivityStats
from ddla_neuro.snn.functional import if_parameters
from ddla_neuro.snn.layers import Neuron, Sequential, Stateless
from ddla_neuro.snn.network import SpikingNetwork
from ddla_neuro.zoo import build_model


def convnet(timesteps=4):
    torch.manual_seed(0)
    return build_model("convnet", num_classes=10, input_shape=(1, 8, 8), timesteps=timesteps)


@pytest.mark.parametrize("source, rule", [("stats", "uniform"), ("stats", "topk"), ("label-gradient", "topk")])
def test_keep_one_equals_the_baseline_with_zero_sensitivity_loss(source, rule):
    net = convnet()
    x, y = torch.rand(6, 1, 8, 8) * 2, torch.randint(0, 10, (6,))
    seq = net.encode(x)
    ref = net(seq, single_step=True)
    for mode in ("dense", "delta", "ddla"):
        out, sensi = DeltaExecutor(net, mode, keep=1.0, source=source, learn=True, rule=rule).run(seq, y)
        assert torch.equal(out, ref)
        assert sensi.item() == 0.0


def test_T1_ddla_equals_the_baseline():
    net = convnet(timesteps=1).eval()
    seq = net.encode(torch.rand(4, 1, 8, 8))
    ex = DeltaExecutor(net, "ddla", keep=0.2, source="label-gradient", learn=True, rule="topk")
    out, sensi = ex.run(seq, torch.zeros(4, dtype=torch.long))
    assert torch.equal(out, net(seq)) and sensi.item() == 0.0


def one_layer_net():
    """Identity synapse into IF neurons: the spikes are known by hand."""
    body = Sequential(Stateless(nn.Identity()), Neuron(if_parameters()))
    return SpikingNetwork(body, timesteps=4, encoding="direct", arch={"name": "hand"})


def test_counts_hand_computed():
    net = one_layer_net()
    # input 0.6 every step: v 0.6, 1.2 fire, 0.6, 1.2 fire -> spikes 0 1 0 1: 2 spikes, deltas at t=2,3,4
    # input 1.5 every step: fires every step -> 4 spikes, 1 delta (t=1)
    x_seq = torch.tensor([[[0.6, 1.5]]]).expand(4, 1, 2)
    ex = DeltaExecutor(net, "delta")
    ex.run(x_seq)
    s = ex.counts.summary("delta")
    assert s["spikes_per_timestep"] == [1, 2, 1, 2] and s["spikes_per_sample"] == 6
    assert s["deltas_per_timestep"] == [1, 1, 1, 1] and s["events_per_sample"] == 4
    assert s["dropped_per_sample"] == 0


def test_ddla_drops_and_holds_with_statistics():
    net = one_layer_net()
    # three toggling neurons; the statistics rank neuron 2 highest, then 0, then 1
    x_seq = torch.tensor([[[0.6, 0.6, 0.6]]]).expand(4, 1, 3)
    stats = SensitivityStats(values={"1": torch.tensor([2.0, 1.0, 3.0])})
    ex = DeltaExecutor(net, "ddla", keep=0.5, source="stats", stats=stats, rule="topk")
    out = ex.run(x_seq)[0]
    s = ex.counts.summary("ddla")
    # spikes 000, 111, 000, 111. t=1: nothing. t=2: 3 changes, ceil(1.5) = 2 sent (neurons 2 and 0),
    # held 101. t=3: changes at 0 and 2, ceil(1) = 1 sent (neuron 2), held 100.
    # t=4: changes at 1 and 2, 1 sent (neuron 2), held 101.
    assert s["spikes_per_timestep"] == [0, 3, 0, 3]
    assert s["transmitted_per_timestep"] == [0, 2, 1, 1]
    assert s["dropped_per_timestep"] == [0, 1, 1, 1]
    assert out.tolist() == [[[0, 0, 0]], [[1, 0, 1]], [[1, 0, 0]], [[1, 0, 1]]]


def test_stats_source_without_statistics_is_an_error():
    net = convnet()
    with pytest.raises(ValueError, match="statistics"):
        DeltaExecutor(net, "ddla", keep=0.5, source="stats", rule="topk").run(net.encode(torch.rand(2, 1, 8, 8) * 3))


@pytest.mark.slow
def test_ddla_training_stores_statistics_and_eval_reproduces(tmp_path):
    out = tmp_path / "ddla"
    r = run_module("ddla_neuro.train", "--method", "ddla", "--keep", "0.5", "--lam", "0.5", "--timesteps", "3",
                   "--epochs", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["method"] == "ddla" and s["keep"] == 0.5
    assert s["transmitted_per_sample"] + s["dropped_per_sample"] > 0
    assert s["events_per_sample"] == s["transmitted_per_sample"] < s["spikes_per_sample"]
    assert set(s["transmitted_per_layer_timestep"]) == set(s["spikes_per_layer_timestep"])
    ckpt = load_checkpoint(out / "model.pt")
    assert set(ckpt.sensitivity) == {n.key for n in ckpt.net.neurons}
    assert all(v.abs().sum() > 0 for v in ckpt.sensitivity.values())
    r = run_module("ddla_neuro.train", "--eval", str(out / "model.pt"), "--out", str(tmp_path / "ev"))
    assert r.returncode == 0, r.stderr
    ev = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert ev["test_accuracy"] == s["test_accuracy"] and ev["events_per_sample"] == s["events_per_sample"]


def test_training_statistics_are_the_mean_gradient_magnitude_per_neuron():
    """At T = 1 DDLA sends every spike, so the forward is the plain network's: the statistic of
    each layer after one backward pass is |dL/dO| averaged over the batch, per neuron, where O is
    what the layer transmits (read here through the transmission hook with retain_grad)."""
    net = convnet(timesteps=1)
    x, y = torch.rand(4, 1, 8, 8) * 2, torch.randint(0, 10, (4,))
    seq = net.encode(x)
    ex = DeltaExecutor(net, "ddla", keep=0.5, source="stats", learn=True, rule="topk")
    out, sensi = ex.run(seq, y)
    (torch.nn.functional.cross_entropy(out.mean(0), y) + sensi).backward()
    sent = {}

    def keep_grad(neuron, z):
        z.retain_grad()
        sent[neuron.key] = z
        return z

    ref = net(seq, single_step=True, transmit=keep_grad)
    torch.nn.functional.cross_entropy(ref.mean(0), y).backward()
    assert torch.equal(ref, out) and set(ex.stats.values) == set(sent) == {n.key for n in net.neurons}
    for key, z in sent.items():
        assert z.grad.abs().sum() > 0
        torch.testing.assert_close(ex.stats[key], z.grad.abs().mean(0), rtol=0, atol=0)


@pytest.mark.parametrize("rule", ["uniform", "topk"])
def test_statistics_fold_once_per_batch_and_a_rule_without_weights_records_one_batch_in_stats_every(rule):
    """A weighted rule reads the statistics, so every training batch updates them; `uniform`
    reads none and records them from batches 1, 1 + STATS_EVERY, ... . A recorded batch of T
    steps keeps momentum^T of the old value and adds the rest times its mean |dL/dO|."""
    net = convnet(timesteps=3)
    ex = DeltaExecutor(net, "ddla", keep=0.5, learn=True, rule=rule, stats=SensitivityStats(momentum=0.5))
    changed = []
    for _ in range(STATS_EVERY + 2):
        before = {k: v.clone() for k, v in ex.stats.values.items()}
        y = torch.randint(0, 10, (4,))
        out, sensi = ex.run(net.encode(torch.rand(4, 1, 8, 8) * 2))
        (torch.nn.functional.cross_entropy(out.mean(0), y) + sensi).backward()
        after = ex.stats.values
        changed.append(set(after) != set(before) or any(not torch.equal(after[k], before[k]) for k in before))
    every = [True] * (STATS_EVERY + 2)
    assert changed == (every if rule == "topk" else [i % STATS_EVERY == 0 for i in range(STATS_EVERY + 2)])
    ex.stats.add("x", torch.full((2, 3), 4.0))
    ex.stats.add("x", torch.full((2, 3), -2.0))
    ex.stats.values["x"].fill_(1.0)  # the folded value; the next batch's two steps decay it by 0.5^2
    ex.stats.add("x", torch.full((2, 3), 6.0))
    ex.stats.add("x", torch.full((2, 3), 2.0))
    torch.testing.assert_close(ex.stats["x"], torch.full((3,), 0.25 * 1.0 + 0.75 * 4.0))
