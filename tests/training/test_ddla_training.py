"""DDLA trains as it runs: the training forward ranks deltas the way deployment does, the
sensitivity loss pulls the true output toward what was transmitted, no label leaks into the
selection, and the k warm-up schedule."""
import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from conftest import run_module
from ddla_neuro.checkpoint import load_checkpoint
from ddla_neuro.ddla.approx import annealed_keep, ddla_step
from ddla_neuro.ddla.executor import DeltaExecutor, SensitivityStats, ThresholdTracker
from ddla_neuro.ddla.selection import DEFAULT_RULE, Selection
from ddla_neuro.deploy.ir import checkpoint_to_spec, input_frames
from ddla_neuro.deploy.sim import simulate
from ddla_neuro.zoo import build_model


@pytest.fixture(scope="module")
def ddla_checkpoint(tmp_path_factory):
    """A convnet trained 3 epochs on digits with DDLA and the default (statistics) ranking."""
    out = tmp_path_factory.mktemp("ddla")
    r = run_module("ddla_neuro.train", "--model", "convnet", "--method", "ddla", "--keep", "0.3", "--timesteps", "4",
                   "--epochs", "3", "--seed", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.slow
def test_training_forward_and_deployment_select_the_same_deltas(ddla_checkpoint):
    ckpt = load_checkpoint(ddla_checkpoint / "model.pt")
    assert ckpt.meta["sensitivity"] == "stats"
    net, keep = ckpt.net.eval(), ckpt.meta["keep"]
    rule, thresholds = ckpt.meta["selection"], ckpt.meta["thresholds"]
    assert rule == DEFAULT_RULE and set(thresholds) == {n.key for n in net.neurons}
    x = torch.as_tensor(load_digits().images[:96] / 16.0, dtype=torch.float32)[:, None]
    # The executor exactly as the trainer builds it (learning statistics, gradients on), in eval mode.
    stats = SensitivityStats(values=ckpt.sensitivity)
    ex = DeltaExecutor(net, "ddla", keep, source="stats", stats=stats, learn=True, rule=rule,
                       thresholds=ThresholdTracker(thresholds))
    out, _ = ex.run(net.encode(x))
    trained = ex.sent_deltas()
    deployed = simulate(checkpoint_to_spec(ckpt), input_frames(net, x), "ddla", Selection(rule, keep, thresholds),
                        record=True)
    dropped = 0
    for key, sent in trained.items():
        sent = sent.detach().flatten(2).transpose(0, 1).numpy()  # (B, T, n) as the simulator records
        np.testing.assert_array_equal(deployed.sent[key], sent, err_msg=f"layer {key}")
        dropped += ex.counts.totals[key]["dropped"].sum().item()
    assert dropped > 0  # the filter was at work
    np.testing.assert_array_equal(deployed.predictions, out.detach().mean(0).argmax(1).numpy())


def test_sensitivity_loss_pulls_the_output_toward_what_was_transmitted():
    # Gradient of MSE(F', F) w.r.t. F: 2 (F - F') / n where a delta was dropped, 0 where sent.
    torch.manual_seed(0)
    held = (torch.rand(4, 50) < 0.5).float().requires_grad_()
    s = (torch.rand(4, 50) < 0.5).float().requires_grad_()
    step = ddla_step(s, held, torch.rand(4, 50) < 0.3)
    grad, grad_held = torch.autograd.grad(step.sensitivity_loss, [s, held])
    dropped = step.delta != step.sent
    assert dropped.any() and (step.sent != 0).any()
    expected = torch.where(dropped, 2 * (s - held) / s.numel(), torch.zeros_like(s))
    torch.testing.assert_close(grad, expected)
    torch.testing.assert_close(grad_held, -expected)  # and pushes what is held toward F
    held = held.detach()
    # A descent step on it moves every dropped entry of F toward what the receivers hold.
    moved = s.detach() - grad
    assert ((moved - held).abs() < (s - held).abs())[dropped].all()


def test_minimising_the_sensitivity_loss_alone_shrinks_it_under_the_statistics_ranking():
    torch.manual_seed(0)
    net = build_model("convnet", num_classes=10, input_shape=(1, 8, 8), timesteps=6)
    x = torch.as_tensor(load_digits().images[:64] / 16.0, dtype=torch.float32)[:, None]
    shapes = DeltaExecutor(net, "delta")
    with torch.no_grad():
        shapes.run(net.encode(x[:1]))
    stats = SensitivityStats(values={k: torch.rand(v.shape[2:]) for k, v in shapes.sent_deltas().items()})
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    ex = DeltaExecutor(net, "ddla", keep=0.3, source="stats", stats=stats, rule="topk")
    for _ in range(15):
        _, sensi = ex.run(net.encode(x))
        opt.zero_grad()
        sensi.backward()
        opt.step()
        losses.append(sensi.item())
    assert losses[-1] < 0.5 * losses[0]


def random_label_run(tmp_path, name, *args):
    out = tmp_path / name
    r = run_module("ddla_neuro.train", "--model", "convnet", "--dataset", "npz", "--data-dir",
                   str(tmp_path / "random.npz"), "--timesteps", "4", "--epochs", "10", "--seed", "0", "--out", str(out),
                   *args)
    assert r.returncode == 0, r.stderr
    return json.loads((out / "summary.json").read_text())["history"][-1]


@pytest.mark.slow
def test_ddla_does_not_fit_random_labels_but_the_label_ranking_does(tmp_path):
    """Nothing to learn: digits images with random labels. The default DDLA fits the training set
    no better than the baseline; the paper's label-gradient ranking does, by reading the label from
    which deltas pass, and the honest (inference-ranked) training accuracy shows it."""
    d = load_digits()
    np.savez(tmp_path / "random.npz", images=(d.images / 16.0).astype(np.float32),
             labels=np.random.default_rng(0).integers(0, 10, len(d.images)))
    base = random_label_run(tmp_path, "base", "--method", "baseline")
    stats = random_label_run(tmp_path, "stats", "--method", "ddla", "--keep", "0.3")
    label = random_label_run(tmp_path, "label", "--method", "ddla", "--keep", "0.3", "--sensitivity",
                             "label-gradient")
    assert stats["train_accuracy"] < base["train_accuracy"] + 0.04
    assert label["train_accuracy_label_ranked"] > base["train_accuracy"] + 0.08
    assert label["train_accuracy"] < base["train_accuracy"] + 0.04  # honest: no better than chance fitting
    for run in (base, stats, label):
        assert run["test_accuracy"] < 0.2


def test_keep_annealing_schedule():
    assert [annealed_keep(0.3, e, 4) for e in range(6)] == [1.0, 0.825, 0.65, 0.475, 0.3, 0.3]
    assert annealed_keep(0.3, 0, 0) == 0.3


@pytest.mark.slow
def test_warmup_is_recorded_per_epoch(tmp_path):
    r = run_module("ddla_neuro.train", "--model", "mlp", "--method", "ddla", "--keep", "0.5", "--warmup-epochs", "2",
                   "--timesteps", "2", "--epochs", "3", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "summary.json").read_text())
    assert [h["keep"] for h in s["history"]] == [1.0, 0.75, 0.5]
    assert s["keep"] == 0.5 and s["warmup_epochs"] == 2 and s["sensitivity"] == "stats"


@pytest.mark.slow
def test_init_fine_tunes_a_baseline_with_ddla(trained_digits, tmp_path):
    r = run_module("ddla_neuro.train", "--init", str(trained_digits / "model.pt"), "--method", "ddla", "--epochs", "1",
                   "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    base, tuned = load_checkpoint(trained_digits / "model.pt"), load_checkpoint(tmp_path / "model.pt")
    assert tuned.meta["init"] == str(trained_digits / "model.pt") and tuned.meta["method"] == "ddla"
    assert tuned.meta["arch"] == base.meta["arch"] and tuned.net.timesteps == base.net.timesteps
    assert set(tuned.sensitivity) == {n.key for n in tuned.net.neurons}
    base_w, tuned_w = base.net.state_dict(), tuned.net.state_dict()
    assert any(not torch.equal(base_w[k], tuned_w[k]) for k in base_w)
    r = run_module("ddla_neuro.train", "--init", str(trained_digits / "model.pt"), "--resume",
                   str(trained_digits / "model.pt"), "--out", str(tmp_path / "both"))
    assert r.returncode != 0 and "give one" in r.stderr and "Traceback" not in r.stderr


def test_annealing_a_per_layer_k_anneals_every_layer():
    assert annealed_keep({"a": 0.2, "b": 1.0}, 1, 2) == {"a": 0.6, "b": 1.0}
    assert annealed_keep({"a": 0.2, "b": 1.0}, 2, 2) == {"a": 0.2, "b": 1.0}


def test_a_per_layer_k_trains_is_stored_and_deploys(tmp_path):
    """DDLA with one k per spiking layer: the checkpoint holds it by layer, evaluation and the
    deployment run it, and the layer at k = 1 drops nothing."""
    r = run_module("ddla_neuro.train", "--model", "convnet", "--method", "ddla", "--keep", "1:0.3", "--timesteps", "3",
                   "--epochs", "1", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    ckpt = load_checkpoint(tmp_path / "model.pt")
    first, second = (n.key for n in ckpt.net.neurons)
    assert ckpt.meta["keep"] == {first: 1.0, second: 0.3}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dropped_per_layer"][first] == 0 and summary["dropped_per_layer"][second] > 0
    net = ckpt.net.eval()
    x = torch.as_tensor(load_digits().images[:32] / 16.0, dtype=torch.float32)[:, None]
    chosen = Selection(ckpt.meta["selection"], ckpt.meta["keep"], ckpt.meta["thresholds"])
    assert set(chosen.thresholds) == {second}  # the layer at k = 1 sends everything: no threshold
    ex = DeltaExecutor(net, "ddla", chosen.keep, stats=SensitivityStats(values=ckpt.sensitivity), rule=chosen.rule,
                       thresholds=ThresholdTracker(chosen.thresholds))
    with torch.no_grad():
        out, _ = ex.run(net.encode(x))
    deployed = simulate(checkpoint_to_spec(ckpt), input_frames(net, x), "ddla", chosen, record=True)
    for key, sent in ex.sent_deltas().items():
        np.testing.assert_array_equal(deployed.sent[key], sent.flatten(2).transpose(0, 1).numpy(), err_msg=key)
    bad = run_module("ddla_neuro.train", "--method", "ddla", "--keep", "0.5:0.5:0.5", "--epochs", "1",
                     "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "3 keep ratios for 2 spiking layers" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()


def test_the_spike_penalty_is_the_mean_firing_rate_and_lowers_it(tmp_path):
    from ddla_neuro.losses import firing_rate
    z = [torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True), torch.tensor([0.0, 0.0, 0.0, 1.0])]
    rate = firing_rate(z)
    assert rate.item() == pytest.approx(4 / 8)
    rate.backward()
    assert torch.equal(z[0].grad, torch.full((2, 2), 1 / 8))  # L1: every spike weighs the same
    runs = {}
    for method in ("baseline", "ddla"):  # the penalty composes with DDLA: its spikes, before the selection
        for w in ("0", "5"):
            out = tmp_path / method / w
            r = run_module("ddla_neuro.train", "--model", "convnet", "--timesteps", "3", "--epochs", "2", "--seed",
                           "1", "--method", method, "--spike-penalty", w, "--out", str(out))
            assert r.returncode == 0, r.stderr
            runs[method, w] = json.loads((out / "summary.json").read_text())
        assert runs[method, "5"]["spike_penalty"] == 5.0
        assert load_checkpoint(tmp_path / method / "5" / "model.pt").meta["spike_penalty"] == 5
        assert runs[method, "5"]["spikes_per_sample"] < 0.9 * runs[method, "0"]["spikes_per_sample"]
    bad = run_module("ddla_neuro.train", "--spike-penalty", "-1", "--epochs", "1", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "must be a number >= 0" in bad.stderr and "Traceback" not in bad.stderr


def test_a_resumed_ddla_run_carries_its_thresholds_and_eval_runs_it_as_trained(tmp_path):
    """Interrupted after 2 of 3 epochs and resumed: the same weights and thresholds as the run
    done in one go (the tracker's state is in the checkpoint). --eval runs the checkpoint with its
    rule and thresholds; another rule, or another k of a neuron-local rule, is one line sending
    the user to the deploy command, which calibrates them."""
    common = ["--model", "mlp", "--timesteps", "3", "--seed", "5", "--method", "ddla", "--keep", "0.4"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert run_module("ddla_neuro.train", *common, "--epochs", "3", "--out", str(full)).returncode == 0
    r = run_module("ddla_neuro.train", *common, "--epochs", "3", "--stop-after", "2", "--out", str(part))
    assert r.returncode == 0, r.stderr
    r = run_module("ddla_neuro.train", "--resume", str(part / "model.pt"), "--epochs", "3", "--out", str(part))
    assert r.returncode == 0, r.stderr
    a, b = (load_checkpoint(d / "model.pt") for d in (full, part))
    assert all(torch.equal(a.net.state_dict()[k], b.net.state_dict()[k]) for k in a.net.state_dict())
    assert a.meta["thresholds"] == b.meta["thresholds"] and a.meta["selection"] == DEFAULT_RULE
    summary = json.loads((full / "summary.json").read_text())
    r = run_module("ddla_neuro.train", "--eval", str(full / "model.pt"), "--out", str(tmp_path / "ev"))
    assert r.returncode == 0, r.stderr
    ev = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert (ev["test_accuracy"], ev["events_per_sample"]) == (summary["test_accuracy"], summary["events_per_sample"])
    for argv, needle in ((["--selection", "topk"], "was trained with the uniform selection"),
                         (["--keep", "0.7"], "thresholds were set for k = 0.4")):
        bad = run_module("ddla_neuro.train", "--eval", str(full / "model.pt"), *argv, "--out", str(tmp_path / "bad"))
        assert bad.returncode == 2 and needle in bad.stderr and "python -m ddla_neuro.deploy" in bad.stderr
        assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()
