"""Energy-aware DDLA: the per-layer keep ratios that cost a target the least energy while the
accuracy on a validation split stays at or above a floor (or that are the most accurate within
an energy budget per inference).

Layers differ in what a delta costs (its fan-out's synaptic ops, its message, its hops) and in
how much the output needs it, so one k for all rarely is the cheapest. `choose_keep` searches
per-layer ratios on a grid with any `measure(keep) -> Point` (tests give it known answers);
`measure_on` measures with the fast simulator and the cost model of a profile. The search
always evaluates every uniform k of the grid and returns the cheapest point that meets the
floor among all it evaluated, so its choice never costs more than the best uniform k (within
a budget: is never less accurate than it).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from collections.abc import Callable, Sequence

import numpy as np

from ..ddla.selection import Selection
from ..ddla.keep import Keep, KeepError, keep_label, per_layer
from .cost import cost_run, mode_plan
from .profiles import Profile
from .sim import simulate
from .spec import NetSpec

GRID = (1.0, 0.7, 0.5, 0.3, 0.2, 0.1)  # the ratios tried per layer
EXHAUSTIVE_LIMIT = 64  # up to this many per-layer combinations every one is measured; above, a greedy descent


@dataclass(frozen=True)
class Point:
    keep: Keep
    accuracy: float
    energy_j: float

    def as_dict(self) -> dict:
        return {"keep": self.keep, "accuracy": self.accuracy, "energy_j": self.energy_j}


@dataclass(frozen=True)
class Choice:
    best: Point                  # the best point meeting the goal
    best_uniform: Point | None   # the best uniform k meeting it
    points: list[Point]          # every point measured, in order


@dataclass(frozen=True)
class Goal:
    """What the choice must meet and what it then optimises: an accuracy floor (least energy
    among the points at or above it) or an energy target (most accuracy among the points at or
    below it)."""

    floor: float | None = None
    energy_target_j: float | None = None

    def meets(self, p: Point) -> bool:
        return p.accuracy >= self.floor if self.floor is not None else p.energy_j <= self.energy_target_j

    def rank(self, p: Point) -> tuple[float, float]:
        """Sorts the better point first."""
        return (p.energy_j, -p.accuracy) if self.floor is not None else (-p.accuracy, p.energy_j)

    def unmet(self, points: list[Point]) -> KeepError:
        if self.floor is not None:
            best = max(points, key=lambda p: p.accuracy)
            return KeepError(f"no keep ratio reaches the accuracy floor {100 * self.floor:.2f}%: the best reachable on "
                             f"the validation split is {100 * best.accuracy:.2f}% (k = {keep_label(best.keep)}); "
                             f"lower the floor")
        cheapest = min(points, key=lambda p: p.energy_j)
        return KeepError(f"no keep ratio costs at most {self.energy_target_j:.4g} J per inference: the cheapest "
                         f"measured is {cheapest.energy_j:.4g} J (k = {keep_label(cheapest.keep)}); raise the target")


def choose_keep(measure: Callable[[Keep], Point], layers: Sequence[str], floor: float | None = None,
                energy_target_j: float | None = None, grid: Sequence[float] = GRID) -> Choice:
    """The per-layer k of least energy with accuracy >= `floor` (or of most accuracy at an
    energy per inference <= `energy_target_j`), searched on `grid`: every combination when
    there are at most EXHAUSTIVE_LIMIT, else a greedy descent from k = 1 (and, for a floor,
    from the best uniform k): lower the one layer's ratio by one grid step that does best (a
    floor: saves the most energy and keeps it; a target: loses the least accuracy while saving
    energy) until none does (a target: or it is met). Raises KeepError when no point measured
    meets the goal, naming the best one."""
    if (floor is None) == (energy_target_j is None):
        raise ValueError("give an accuracy floor or an energy target")
    goal = Goal(floor, energy_target_j)
    grid = sorted(set(grid), reverse=True)
    seen: dict[str, Point] = {}

    def at(keep: Keep) -> Point:
        label = keep_label(keep)
        if label not in seen:
            seen[label] = measure(keep)
        return seen[label]

    uniform = [at(k) for k in grid]
    meeting_uniform = sorted((p for p in uniform if goal.meets(p)), key=goal.rank)  # stable: uniform first
    if len(grid) ** len(layers) <= EXHAUSTIVE_LIMIT:
        for ratios in itertools.product(grid, repeat=len(layers)):
            at(per_layer(list(ratios), layers))
    else:
        starts = [1.0] + ([meeting_uniform[0].keep] if meeting_uniform and floor is not None else [])
        for start in starts:
            _descend(at, {name: float(start) for name in layers}, grid, goal)
    points = list(seen.values())
    meeting = sorted((p for p in points if goal.meets(p)), key=goal.rank)
    if not meeting:
        raise goal.unmet(points)
    return Choice(meeting[0], meeting_uniform[0] if meeting_uniform else None, points)


def _descend(at: Callable[[Keep], Point], keep: dict[str, float], grid: list[float], goal: Goal) -> None:
    current = at(per_layer(keep, list(keep)))
    while not (goal.floor is None and goal.meets(current)):
        moves = []
        for name, k in keep.items():
            lower = [g for g in grid if g < k]
            if lower:
                moves.append({**keep, name: lower[0]})
        points = [(m, at(per_layer(m, list(m)))) for m in moves]
        better = [(m, p) for m, p in points
                  if p.energy_j < current.energy_j and (goal.floor is None or goal.meets(p))]
        if not better:
            return
        keep, current = min(better, key=lambda mp: goal.rank(mp[1]))


def validation_split(n: int, size: int, seed: int) -> np.ndarray:
    """A bool mask of `size` of n samples drawn with `seed`: the validation split of a test
    split (drawn, not its first samples: a split stored class by class would validate on some
    classes only); the rest, in their order, are reported."""
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng(seed).permutation(n)[:size]] = True
    return chosen


def measure_on(spec: NetSpec, frames: np.ndarray, labels: np.ndarray, profile: Profile,
               select: Callable[[Keep], Selection], device: str = "cpu") -> Callable[[Keep], Point]:
    """Measures a k on (frames, labels): the fast simulator's accuracy in DDLA mode, selecting as
    `select(k)` says (a neuron-local rule's thresholds set for k), and the profile's energy per
    inference (its best estimate; bands aside)."""
    def measure(keep: Keep) -> Point:
        result = simulate(spec, frames, "ddla", select(keep), device=device)
        energy = cost_run(spec, result.counts, profile, mode_plan(spec, "ddla"))["totals"]["energy_j"]
        if energy is None:
            raise KeepError(f"profile {profile.name} prices no energy for this network: choose k with a profile "
                            f"that does (loihi2, loihi)")
        return Point(keep, float(np.mean(result.predictions == labels)), float(energy))
    return measure
