"""The thresholds of a neuron-local DDLA rule (`ddla/selection.py`) for a share k, set on a
calibration split: each filtering population, in network order, gets the largest threshold at
which it still sends at least the share k of its pending changes (steps t >= 2, summed over the
split), the populations before it selecting with theirs.

A population's spikes do not depend on its own threshold (only what it sends does), so one
simulator run records them and the threshold is found by bisection on a replay of the rule over
them, numpy only. One run per filtering population.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..ddla.keep import Keep, keep_of, ratios
from ..ddla.selection import RULES, STATE_BITS, THRESHOLD_MAX, Selection, credit_step, neuron_weights, wait_bound
from .run import RunError
from .sim import simulate
from .spec import NEURON_KINDS, NetSpec


def replay_share(spikes: np.ndarray, weights: np.ndarray, threshold: int, rule: str) -> tuple[int, int]:
    """(changes sent, changes pending) over steps t >= 2 of `spikes` (N, T, n), the selection
    starting from the first step sent whole, as every backend runs it."""
    clears = RULES[rule].clears
    held = spikes[:, 0]
    credit = np.zeros(held.shape, dtype=np.int64)
    sent = pending = 0
    for t in range(1, spikes.shape[1]):
        waiting = spikes[:, t] != held
        send, credit = credit_step(waiting, credit, weights, threshold, clears)
        held = np.where(send, spikes[:, t], held)
        sent += int(np.count_nonzero(send))
        pending += int(np.count_nonzero(waiting))
    return sent, pending


def largest_threshold(share: Callable[[int], float], keep: float) -> int:
    """The largest threshold in [1, THRESHOLD_MAX] whose share is at least `keep`, by bisection
    (`share(1)` is 1: every weight is at least 1, so every change is sent at once)."""
    low, high = 1, THRESHOLD_MAX + 1
    while high - low > 1:
        mid = (low + high) // 2
        if share(mid) >= keep:
            low = mid
        else:
            high = mid
    return low


def calibrate_selection(spec: NetSpec, frames: np.ndarray, rule: str, keep: Keep,
                        device: str = "cpu") -> Selection:
    """The selection of `rule` for the share `keep` (one, or one per population), its thresholds
    set on `frames` (N, T, ...; quantized as `spec` is). A top-k rule needs none."""
    if any(not 0.0 < k <= 1.0 for k in ratios(keep)):  # the range `keep.parse_keep` reads
        raise RunError(f"keep ratios must lie in (0, 1], got {keep}")
    if not RULES[rule].neuron_local:
        return Selection(rule, keep)
    if len(frames) == 0:
        raise RunError("the calibration split of the DDLA thresholds is empty")
    thresholds: dict[str, int] = {}
    for pop in spec.populations:
        k = keep_of(keep, pop.name)
        if pop.kind not in NEURON_KINDS or k >= 1.0:
            continue
        if pop.name not in spec.scores:
            raise RunError(f"no sensitivity statistics for population {pop.name!r}: DDLA with keep < 1 needs a "
                           f"checkpoint trained with --method ddla (or --ddla-calibrate)")
        run = simulate(spec, frames, "ddla", Selection(rule, keep, dict(thresholds)), record=(pop.name,),
                       device=device)
        spikes = run.activity[pop.name]
        weights = neuron_weights(np.asarray(spec.scores[pop.name]).reshape(-1), rule)

        def share(threshold: int, spikes=spikes, weights=weights) -> float:
            sent, pending = replay_share(spikes, weights, threshold, rule)
            return sent / pending if pending else 1.0
        thresholds[pop.name] = largest_threshold(share, k)
    return Selection(rule, keep, thresholds)


TOPK_LEFT_OUT = ("the layer-wide sort of each step's pending changes: no Loihi core sorts its neurons, so these "
                 "figures price a network the chip cannot run, without the sort")


def selection_report(spec: NetSpec, selection: Selection) -> dict:
    """report.json's `modes.ddla.selection`: the rule, whether it is neuron-local, k, and for a
    neuron-local rule each population's threshold, its starvation bound (`wait_bound`, steps) and
    the state a neuron keeps; for top-k what the figures leave out."""
    out = selection.as_dict()
    if selection.neuron_local:
        out["wait_bound"] = {name: wait_bound(neuron_weights(spec.scores[name], selection.rule), threshold)
                             for name, threshold in selection.thresholds.items()}
        out["state_bits_per_neuron"] = dict(STATE_BITS)
    else:
        out["left_out"] = TOPK_LEFT_OUT
    return out
