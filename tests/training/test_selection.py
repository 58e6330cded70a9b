"""DDLA's selection rules (`ddla/selection.py`): the neuron-local rules decide per neuron from its
own state, send every change within their starvation bound, and run bit for bit the same on
numpy and torch; top-k keeps exactly ceil(k m) per sample; the thresholds calibrated for a share
k meet it on the calibration split."""
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from deploy_nets import convnet, inputs, spec_of
from ddla_neuro.ddla.selection import (RULES, THRESHOLD_MAX, WEIGHT_MAX, LayerSelection, Selection, SelectionError,
                                       credit_step, neuron_weights, priority_order, topk_step, wait_bound)
from ddla_neuro.deploy.run import RunError
from ddla_neuro.deploy.sim import simulate
from ddla_neuro.deploy.thresholds import calibrate_selection, replay_share

LOCAL = [name for name, rule in RULES.items() if rule.neuron_local]
patterns = st.builds(lambda t, n, p, seed: np.random.default_rng(seed).random((t, 3, n)) < p,
                     st.integers(1, 12), st.integers(1, 30), st.floats(0.05, 0.95), st.integers(0, 2**31 - 1))


def run_rule(rule: str, waiting: np.ndarray, weights: np.ndarray, threshold: int) -> np.ndarray:
    """The send decisions (T, B, n) of a neuron-local rule for a pattern of pending changes."""
    credit, sends = np.zeros(waiting.shape[1:], dtype=np.int64), []
    for w in waiting:
        send, credit = credit_step(w, credit, weights, threshold, RULES[rule].clears)
        sends.append(send)
    return np.stack(sends)


@pytest.mark.parametrize("rule", LOCAL)
@given(waiting=patterns, seed=st.integers(0, 2**31 - 1), threshold=st.integers(1, 600))
@settings(max_examples=60, deadline=None)
def test_a_neuron_decides_from_its_own_state_alone(rule, waiting, seed, threshold):
    """Changing every other neuron's pending changes, credit and weight leaves neuron 0's
    decisions as they were."""
    rng = np.random.default_rng(seed)
    n = waiting.shape[2]
    weights = rng.integers(1, WEIGHT_MAX + 1, n)
    other_waiting = rng.random(waiting.shape) < 0.5
    other_waiting[:, :, 0] = waiting[:, :, 0]
    other_weights = rng.integers(1, WEIGHT_MAX + 1, n)
    other_weights[0] = weights[0]
    a = run_rule(rule, waiting, weights, threshold)
    b = run_rule(rule, other_waiting, other_weights, threshold)
    assert np.array_equal(a[:, :, 0], b[:, :, 0])


@pytest.mark.parametrize("rule", LOCAL)
@given(waiting=patterns, seed=st.integers(0, 2**31 - 1), threshold=st.integers(1, 600))
@settings(max_examples=60, deadline=None)
def test_no_change_waits_longer_than_the_bound(rule, waiting, seed, threshold):
    """Every neuron sends by its ceil(theta / w)-th step with a pending change since it last sent
    (patience: such steps in a row; integral: counted whatever lies between), only where a change
    is pending; the credit stays in [0, theta] between steps (its register: theta + WEIGHT_MAX)."""
    weights = np.random.default_rng(seed).integers(1, WEIGHT_MAX + 1, waiting.shape[2])
    bound = np.ceil(threshold / weights).astype(int)
    assert wait_bound(weights, threshold) == bound.max()
    sends = run_rule(rule, waiting, weights, threshold)
    assert not (sends & ~waiting).any()
    run = np.zeros(waiting.shape[1:], dtype=int)  # pending steps since the last send
    for w, s in zip(waiting, sends):
        run = np.where(w, run + 1, run if not RULES[rule].clears else 0)
        assert (run <= bound).all() and (s[run == bound]).all()
        run = np.where(s, 0, run)
    credit = np.zeros(waiting.shape[1:], dtype=np.int64)
    for w in waiting:
        _, credit = credit_step(w, credit, weights, threshold, RULES[rule].clears)
        assert (credit >= 0).all() and (credit <= threshold).all()


@pytest.mark.parametrize("rule", list(RULES))
@given(waiting=patterns, seed=st.integers(0, 2**31 - 1), threshold=st.integers(1, 600),
       keep_millionths=st.integers(1, 10**6))
@settings(max_examples=40, deadline=None)
def test_numpy_and_torch_run_the_same_selection(rule, waiting, seed, threshold, keep_millionths):
    """The same lines on numpy (our Lava processes: int64 credits) and torch (the trainer and
    the simulator: float credits) send the same changes."""
    scores = np.random.default_rng(seed).random(waiting.shape[2]).astype(np.float32)
    keep = keep_millionths / 10**6
    a = LayerSelection(rule, keep, threshold, scores)
    b = LayerSelection(rule, keep, threshold, scores, torch.as_tensor)
    credit_a, credit_b = np.zeros(waiting.shape[1:], dtype=np.int64), torch.zeros(waiting.shape[1:])
    for w in waiting:
        send_a, credit_a = a.step(w, credit_a)
        send_b, credit_b = b.step(torch.as_tensor(w, dtype=torch.float32), credit_b)  # torch: 1.0/0.0
        assert np.array_equal(send_a, send_b.numpy()) and np.array_equal(credit_a, credit_b.numpy())


@given(st.integers(1, 60), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 5))
@settings(max_examples=80, deadline=None)
def test_topk_keeps_exactly_ceil_k_m_of_the_highest_scores(n, keep_millionths, seed, levels):
    keep = keep_millionths / 10**6  # k has a resolution of 1e-6
    rng = np.random.default_rng(seed)
    scores = (rng.integers(0, levels, n) / levels).astype(np.float32)  # ties
    waiting = rng.random((3, n)) < 0.6
    send = topk_step(waiting, *priority_order(scores), keep)
    assert not (send & ~waiting).any()
    for b in range(3):
        m = int(waiting[b].sum())
        assert int(send[b].sum()) == math.ceil(Fraction(keep_millionths, 10**6) * m)
        kept, dropped = np.flatnonzero(send[b]), np.flatnonzero(waiting[b] & ~send[b])
        if kept.size and dropped.size:  # every kept score >= every dropped one, ties to the lower index
            assert scores[kept].min() >= scores[dropped].max()
            tied = scores[kept].min() == scores[dropped]
            assert (dropped[tied] > kept[scores[kept] == scores[kept].min()].max()).all()


def test_weights_are_the_statistic_over_the_layer_mean_in_8_bits():
    w = neuron_weights(np.array([0.0, 1.0, 2.0, 100.0]), "patience")
    assert w.tolist() == [1, 1, 1, 62]  # 16 x score / mean (25.75), rounded, clipped to [1, 255]
    assert neuron_weights(np.array([0.0, 1.0, 2.0, 100.0]), "uniform").tolist() == [16] * 4
    assert neuron_weights(np.zeros(3), "integral").tolist() == [16] * 3  # no statistics: uniform
    assert neuron_weights(np.array([1.0, 1e6]), "patience").tolist() == [1, 32]  # 16 x 1e6 / 500000.5


def test_a_bad_rule_or_threshold_is_refused():
    with pytest.raises(SelectionError, match="unknown selection rule 'fast'"):
        Selection("fast")
    for bad in (0, THRESHOLD_MAX + 1, 2.5):
        with pytest.raises(SelectionError, match="integers in"):
            Selection("patience", 0.5, {"a": bad})


@pytest.mark.parametrize("rule", LOCAL)
@pytest.mark.parametrize("keep", [0.8, 0.5, 0.3])
def test_the_calibrated_threshold_is_the_largest_that_sends_the_share_k(rule, keep):
    """On the calibration split, each layer (its predecessors at their own thresholds) sends at
    least the share k of its pending changes at its threshold, and less than k at one more; the
    simulator's counts say the same as the replay."""
    net = convnet(seed=1, timesteps=6)
    _, frames = inputs(net, 48)
    spec = spec_of(net)
    spec.scores = {p.name: np.random.default_rng(5).random(p.shape).astype(np.float32) for p in spec.spiking}
    chosen = calibrate_selection(spec, frames, rule, keep)
    assert set(chosen.thresholds) == {p.name for p in spec.spiking}
    run = simulate(spec, frames, "ddla", chosen, record=True)
    for name, threshold in chosen.thresholds.items():
        share = run.counts.events[name][1:].sum() / run.counts.pending[name][1:].sum()
        weights = neuron_weights(spec.scores[name].reshape(-1), rule)
        sent, pending = replay_share(run.activity[name].reshape(len(frames), spec.timesteps, -1), weights,
                                     threshold, rule)
        assert (sent, pending) == (run.counts.events[name][1:].sum(), run.counts.pending[name][1:].sum())
        assert share >= keep
        more, pending = replay_share(run.activity[name].reshape(len(frames), spec.timesteps, -1), weights,
                                     threshold + 1, rule)
        assert threshold == THRESHOLD_MAX or more / pending < keep


def test_a_calibration_split_that_does_not_fit_is_one_line():
    net = convnet(seed=1)
    _, frames = inputs(net, 4)
    spec = spec_of(net)
    spec.scores = {p.name: np.ones(p.shape, np.float32) for p in spec.spiking}
    with pytest.raises(RunError, match=r"frames have shape \(4, 4, 2, 8, 8\), the network takes \(N, 4, 1, 8, 8\)"):
        calibrate_selection(spec, np.concatenate([frames, frames], axis=2), "uniform", 0.5)
    with pytest.raises(RunError, match="the calibration split of the DDLA thresholds is empty"):
        calibrate_selection(spec, frames[:0], "uniform", 0.5)
    with pytest.raises(RunError, match="keep ratios must lie in"):
        calibrate_selection(spec, frames, "uniform", 1.5)


@pytest.mark.parametrize("rule", LOCAL)
@given(waiting=patterns, seed=st.integers(0, 2**31 - 1), threshold=st.integers(1, 600))
@settings(max_examples=60, deadline=None)
def test_the_cap_and_pending_mask_can_be_left_out_where_no_weight_exceeds_theta(rule, waiting, seed, threshold):
    """With every weight at most theta, `cap=False` (no cap, no pending mask) sends as the full step
    does, on numpy and on torch (float or bool pending changes)."""
    weights = np.random.default_rng(seed).integers(1, min(threshold, WEIGHT_MAX) + 1, waiting.shape[2])
    clears = RULES[rule].clears
    full = np.zeros(waiting.shape[1:], dtype=np.int64)
    lean = np.zeros(waiting.shape[1:], dtype=np.int64)
    lean_t = torch.zeros(waiting.shape[1:])
    for w in waiting:
        sent, full = credit_step(w, full, weights, threshold, clears, cap=True)
        lean_sent, lean = credit_step(w, lean, weights, threshold, clears, cap=False)
        torch_sent, lean_t = credit_step(torch.as_tensor(w).float(), lean_t, torch.as_tensor(weights).float(),
                                         threshold, clears, cap=False)
        assert np.array_equal(sent, lean_sent) and np.array_equal(full, lean)
        assert np.array_equal(sent, torch_sent.numpy().astype(bool)) and np.array_equal(full, lean_t.numpy())
