"""DDLA's selection: which of a spiking layer's pending changes it sends at a step, written once
for every side (the trainer and the simulator run it on torch tensors, our Lava processes on
numpy arrays; the same lines on both, their in-place arithmetic in three small functions that
take either).

A change is *pending* at neuron i when its output differs from what its receivers hold
(`s_i^t != held_i`). From a sample's second step on, the selection decides which pending changes
are sent; the receivers hold the others. The first step is sent whole.

Neuron-local rules decide per neuron from its own state and constants, as a Loihi 2 neuron
program can: an integer *credit* c_i, an 8-bit *weight* w_i (the neuron's sensitivity statistic
relative to its layer's mean, `neuron_weights`) and the layer's integer threshold theta:

    each step with a pending change:   c_i += w_i;  send it where c_i >= theta

- `patience`: the credit clears when the neuron sends or when nothing is pending (the change
  went away by itself): a change is sent once it has waited ceil(theta / w_i) steps, and one that
  flickers for fewer steps is never sent.
- `integral`: the credit is kept while nothing is pending and a send subtracts theta (a
  sigma-delta modulator on the receivers' error; at most theta is kept): a neuron sends after at
  most ceil(theta / w_i) steps of pending changes since its last send, consecutive or not.
- `uniform`: `integral` with one weight for every neuron, the ablation without sensitivity (a
  plain per-neuron threshold on the integrated unsent change, as in Delta Networks and sigma-delta
  coding).

Starvation bound (`wait_bound`): with w_i >= 1 no pending change waits more than ceil(theta / w_i)
steps that it is pending, so none waits forever. The threshold is set so that the layer sends a
share k of its pending changes over a calibration split (`--keep`; `deploy/calibrate.py`, the
trainer's `ThresholdTracker`).

`topk` is the paper's rule, kept as an option: per sample and step the ceil(k n) pending changes
of highest sensitivity in the whole layer. It is a sort across the layer, which no Loihi core does.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np

from .keep import Keep, keep_label, keep_of
from .transmission import keep_count

WEIGHT_UNIT = 16    # the weight of a neuron of its layer's mean sensitivity
WEIGHT_MAX = 255    # weights are 8-bit constants, 1..255
THRESHOLD_MAX = 2 ** 16 - 1  # a 16-bit threshold; the credit stays below THRESHOLD_MAX + WEIGHT_MAX
CREDIT_BITS = 17    # the credit's register (holds THRESHOLD_MAX + WEIGHT_MAX)
STATE_BITS = {"credit": CREDIT_BITS, "weight": 8, "held": 1}  # per neuron, what a neuron-local rule keeps


@dataclass(frozen=True)
class Rule:
    name: str
    neuron_local: bool
    weighted: bool   # weights from the sensitivity statistics (else one weight for all)
    clears: bool     # the credit clears when nothing is pending (patience); else a send subtracts theta
    summary: str


RULES = {r.name: r for r in (
    Rule("patience", True, True, True, "a change is sent once it has waited ceil(theta / w) steps"),
    Rule("integral", True, True, False, "a neuron sends once its weighted unsent change integrates to theta"),
    Rule("uniform", True, False, False, "integral with one weight for all neurons (no sensitivity)"),
    Rule("topk", False, True, False, "the ceil(k n) most sensitive pending changes of the layer (a layer-wide sort)"),
)}
DEFAULT_RULE = "uniform"  # the best of the rules on benchmarks/pareto.py (docs/RESULTS.md)


class SelectionError(ValueError):
    """A rule, threshold or keep ratio that cannot be used."""


def rule_of(name: str) -> Rule:
    if name not in RULES:
        raise SelectionError(f"unknown selection rule {name!r}: choose one of {', '.join(RULES)}")
    return RULES[name]


@dataclass(frozen=True)
class Selection:
    """How a DDLA run selects: the rule, the share k it was set for (one, or per layer) and, for a
    neuron-local rule, each filtering population's threshold. A population without a threshold
    (neuron-local) or with k = 1 (top-k) sends every change."""

    rule: str = DEFAULT_RULE
    keep: Keep = 1.0
    thresholds: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rule_of(self.rule)
        bad = {k: v for k, v in self.thresholds.items() if not (isinstance(v, int) and 1 <= v <= THRESHOLD_MAX)}
        if bad:
            raise SelectionError(f"thresholds must be integers in [1, {THRESHOLD_MAX}], got {bad}")

    @property
    def neuron_local(self) -> bool:
        return RULES[self.rule].neuron_local

    def filters(self, population: str) -> bool:
        """Whether the population may hold changes back."""
        if self.neuron_local:
            return population in self.thresholds
        return keep_of(self.keep, population) < 1.0

    def label(self) -> str:
        return f"{self.rule} k={keep_label(self.keep)}"

    def as_dict(self) -> dict:
        """The report's and the Lava job's form (`from_dict` reads it back)."""
        rule = RULES[self.rule]
        return {"rule": self.rule, "neuron_local": rule.neuron_local, "keep": self.keep,
                "thresholds": dict(self.thresholds) if rule.neuron_local else None}

    @classmethod
    def from_dict(cls, d: dict) -> Selection:
        return cls(d["rule"], d["keep"], dict(d["thresholds"] or {}))

    def layer(self, name: str) -> dict:
        """What population `name` selects with (`LayerSelection`'s arguments but its scores)."""
        return {"rule": self.rule, "keep": keep_of(self.keep, name), "threshold": self.thresholds.get(name)}


def neuron_weights(scores, rule: str) -> np.ndarray:
    """Each neuron's 8-bit weight (int64, the scores' shape): WEIGHT_UNIT times its score over the
    layer's mean score, rounded and clipped to [1, WEIGHT_MAX]; WEIGHT_UNIT everywhere for a rule
    without sensitivity, or for scores that are all zero. Computed in float64 numpy on every side,
    so the trainer, the simulator and Lava get the same integers."""
    s = np.asarray(scores, dtype=np.float64)
    mean = float(s.mean()) if s.size else 0.0
    if not RULES[rule].weighted or not mean > 0:
        return np.full(s.shape, WEIGHT_UNIT, dtype=np.int64)
    return np.clip(np.rint(WEIGHT_UNIT * s / mean), 1, WEIGHT_MAX).astype(np.int64)


def wait_bound(weights, threshold: int) -> int:
    """The most steps a change can stay pending before the neuron sends it (the starvation bound):
    ceil(theta / w) for the neuron of least weight."""
    return math.ceil(threshold / int(np.min(weights))) if np.size(weights) else 0


def credit_step(waiting, credit, weight, threshold: int, clears: bool, cap: bool = True):
    """One step of a neuron-local rule for every neuron at once: `waiting` 1 (or True) where a
    change is pending (numpy: bools or integers, as the credits), `credit` the credits before the
    step (updated in place; every caller starts them at 0, and they stay in [0, theta]), `weight`
    the neurons' weights (one number for all, or an array). Returns (where to send: numpy bools,
    or torch 1.0/0.0 in the credits' type; the credits after). `cap=False` where no weight
    exceeds the threshold: the credits then stay below theta between steps, so the cap cannot
    bind and a credit reaches theta only where a change is pending (two passes saved)."""
    _add_product(credit, weight, waiting)
    send = _sends(credit, threshold, waiting if cap else None)
    if clears:
        credit *= waiting * (1 - send)
        return send, credit
    _add_product(credit, -threshold, send)
    if cap:  # at most theta is kept (a weight above theta would otherwise pile credit up): it sends at
        _at_most(credit, threshold)  # the next pending change either way
    return send, credit


# The rule's arithmetic in place, on numpy or torch: on torch without bools (whose conversion in
# the ops after them costs more than the arithmetic) and, but for `patience`, without temporaries.
# This module imports no torch (Lava's workers import it); a torch tensor's module is already loaded.
def _torch(x):
    return sys.modules["torch"] if type(x).__module__.startswith("torch") else None


def _add_product(acc, factor, x) -> None:
    """acc += factor * x, in place; `factor` a number or an array."""
    if _torch(acc) is None:
        acc += factor * x
    elif np.isscalar(factor):
        acc.add_(x, alpha=factor)
    else:
        acc.addcmul_(factor, x)


def _sends(credit, threshold: int, waiting=None):
    """Where the credit reached the threshold (and a change is pending, where `waiting` is given)."""
    torch = _torch(credit)
    if torch is None:
        reached = credit >= threshold
        return reached if waiting is None else reached & (waiting != 0)
    reached = torch.ge(credit, threshold, out=torch.empty_like(credit))
    return reached if waiting is None else reached.mul_(waiting)


def _at_most(x, bound: int) -> None:
    if _torch(x) is None:
        np.minimum(x, bound, out=x)
    else:
        x.clamp_(max=bound)


def priority_order(scores) -> tuple[np.ndarray, np.ndarray]:
    """(order, rank) of one sample's entries for `topk`: their flat indices by descending score,
    equal scores in index order, and each entry's position in that order."""
    order = np.argsort(-np.asarray(scores, dtype=np.float32).reshape(-1), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return order, rank


def _along(x, index):
    """x (B, n) reordered along axis 1 by `index`: one order for every sample (n,), or one each (B, n)."""
    if index.ndim == 1:
        return x[:, index]
    return x.gather(1, index) if hasattr(x, "gather") else np.take_along_axis(x, index, 1)


def topk_step(waiting, order, rank, keep: float):
    """`topk` for every sample (axis 0) of `waiting` (B, n; non-zero where a change is pending):
    its ceil(keep * m) pending changes first in `order` (m of them pending). Returns where to send
    (bool)."""
    ranked = _along(waiting != 0, order)
    count = ranked.cumsum(1)
    kept = ranked & (count <= keep_count(count[:, -1:], keep))
    return _along(kept, rank)


class LayerSelection:
    """One population's selection at run time, its constants (weights, or top-k's order and
    rank, flat) made by `to_array` into the array type of the side that runs it (numpy arrays;
    torch tensors on a device). `step` runs one step for a batch (B, n), or (B, *shape) for a
    neuron-local rule given the layer's `shape`. `weight_dtype`: the weights' number type, where it
    is not the integers' (a side whose credits are floats: the same integers, without a conversion
    in every step). One weight for every neuron (`uniform`) is kept as a number."""

    def __init__(self, rule: str, keep: float, threshold: int | None, scores, to_array=np.asarray,
                 weight_dtype=np.int64, shape: tuple[int, ...] | None = None):
        self.rule, self.keep, self.threshold = RULES[rule], keep, threshold
        flat = np.asarray(scores, dtype=np.float32).reshape(-1)
        if self.rule.neuron_local:  # elementwise: the weights in the layer's `shape` (flat by default)
            weights = neuron_weights(flat, self.rule.name)
            if not weights.size or (weights == weights.flat[0]).all():  # one weight for all: a number
                self.weights = int(weights.flat[0]) if weights.size else WEIGHT_UNIT
                top = self.weights
            else:
                top = int(weights.max())
                weights = weights.astype(weight_dtype)
                self.weights = to_array(weights if shape is None else weights.reshape(shape))
            self.cap = threshold is not None and top > threshold
        else:
            self.order, self.rank = (to_array(a) for a in priority_order(flat))

    def step(self, waiting, credit):
        """(where to send: `credit_step`'s, or top-k's bools; the credits after, updated in place)
        for the changes `waiting` (1/0 or bool, (B, n)) and the credits before (a neuron-local
        rule's; top-k keeps none and returns them as they are)."""
        if self.rule.neuron_local:
            return credit_step(waiting, credit, self.weights, self.threshold, self.rule.clears, self.cap)
        return topk_step(waiting, self.order, self.rank, self.keep), credit
