"""Energy-aware DDLA: the per-layer keep ratios that cost a target the least energy while the
accuracy on a validation split stays at or above a floor.

Layers differ in what a delta costs (its fan-out's synaptic ops, its message, its hops) and in
how much the output needs it, so one k for all rarely is the cheapest. `choose_keep` searches
per-layer ratios on a grid with any `measure(keep) -> Point` (tests give it known answers);
`measure_on` measures with the fast simulator and the cost model of a profile. The search
always evaluates every uniform k of the grid and returns the cheapest point that meets the
floor among all it evaluated, so its choice never costs more than the best uniform k.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

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
    best: Point                  # the cheapest point at or above the floor
    best_uniform: Point | None   # the cheapest uniform k at or above the floor
    points: list[Point]          # every point measured, in order
    validation: int = 0          # the samples measured (set by the caller that knows them)


def choose_keep(measure: Callable[[Keep], Point], layers: Sequence[str], floor: float,
                grid: Sequence[float] = GRID) -> Choice:
    """The per-layer k of least energy with accuracy >= `floor`, searched on `grid`: every
    combination when there are at most EXHAUSTIVE_LIMIT, else a greedy descent (lower the one
    layer's ratio by one grid step that saves the most energy and keeps the floor, until none
    does) from k = 1 and from the best uniform k. Raises KeepError when no point measured
    reaches the floor, naming the best accuracy reached."""
    grid = sorted(set(grid), reverse=True)
    seen: dict[str, Point] = {}

    def at(keep: Keep) -> Point:
        label = keep_label(keep)
        if label not in seen:
            seen[label] = measure(keep)
        return seen[label]

    uniform = [at(k) for k in grid]
    if len(grid) ** len(layers) <= EXHAUSTIVE_LIMIT:
        for ratios in itertools.product(grid, repeat=len(layers)):
            at(per_layer(list(ratios), layers))
    else:
        feasible_uniform = [p for p in uniform if p.accuracy >= floor]
        starts = [1.0] + ([min(feasible_uniform, key=lambda p: p.energy_j).keep] if feasible_uniform else [])
        for start in starts:
            _descend(at, {name: float(start) for name in layers}, grid, floor)
    points = list(seen.values())
    feasible = [p for p in points if p.accuracy >= floor]
    if not feasible:
        best = max(points, key=lambda p: p.accuracy)
        raise KeepError(f"no keep ratio reaches the accuracy floor {100 * floor:.2f}%: the best reachable on the "
                        f"validation split is {100 * best.accuracy:.2f}% (k = {keep_label(best.keep)}); "
                        f"lower the floor")
    in_floor = [p for p in uniform if p.accuracy >= floor]
    cheapest = lambda ps: min(ps, key=lambda p: (p.energy_j, -p.accuracy))  # noqa: E731 (first of equals: uniform)
    return Choice(cheapest(feasible), cheapest(in_floor) if in_floor else None, points)


def _descend(at: Callable[[Keep], Point], keep: dict[str, float], grid: list[float], floor: float) -> None:
    current = at(per_layer(keep, list(keep)))
    while True:
        moves = []
        for name, k in keep.items():
            lower = [g for g in grid if g < k]
            if lower:
                moves.append({**keep, name: lower[0]})
        points = [(m, at(per_layer(m, list(m)))) for m in moves]
        better = [(m, p) for m, p in points if p.accuracy >= floor and p.energy_j < current.energy_j]
        if not better:
            return
        keep, current = min(better, key=lambda mp: mp[1].energy_j)


def measure_on(spec: NetSpec, frames: np.ndarray, labels: np.ndarray, profile: Profile, device: str = "cpu"
               ) -> Callable[[Keep], Point]:
    """Measures a k on (frames, labels): the fast simulator's accuracy in DDLA mode and the
    profile's energy per inference (its best estimate; bands aside)."""
    def measure(keep: Keep) -> Point:
        result = simulate(spec, frames, "ddla", keep, device=device)
        energy = cost_run(spec, result.counts, profile, mode_plan(spec, "ddla"))["totals"]["energy_j"]
        if energy is None:
            raise KeepError(f"profile {profile.name} prices no energy for this network: choose k with a profile "
                            f"that does (loihi2, loihi)")
        return Point(keep, float(np.mean(result.predictions == labels)), float(energy))
    return measure
