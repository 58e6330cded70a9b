"""The DDLA filtering ratio k: one ratio for every spiking layer, or one per layer.

A keep ratio is a float (every layer alike) or a dict from layer name (a neuron population's
key, the same in a SpikingNetwork, its checkpoint's statistics and its NetSpec) to that
layer's ratio. Written as text (the `--keep` options, report labels) a uniform k is one number
("0.5") and a per-layer k one number per spiking layer in network order, joined by colons
("0.7:0.5:0.3"). Pure functions, so that the trainer, the deployment and the search of the
energy-aware k read and write k one way.
"""
from __future__ import annotations

from collections.abc import Sequence

Keep = float | dict[str, float]
DEFAULT_KEEP = 0.3  # the trainer's k when none is given: the uniform rule's best in pareto.py (docs/RESULTS.md)


class KeepError(ValueError):
    """A keep ratio that does not fit the network (wrong length, unknown layer, outside (0, 1])."""


def keep_of(keep: Keep, layer: str) -> float:
    """The ratio layer `layer` filters with (a per-layer k names every layer it filters; a
    layer it does not name sends all its deltas)."""
    return float(keep) if not isinstance(keep, dict) else float(keep.get(layer, 1.0))


def ratios(keep: Keep) -> list[float]:
    """Every ratio a keep ratio holds (one, or one per layer)."""
    return list(keep.values()) if isinstance(keep, dict) else [float(keep)]


def filters(keep: Keep) -> bool:
    """Whether any layer drops deltas (some k < 1)."""
    return any(k < 1.0 for k in ratios(keep))


def parse_keep(text: str) -> float | list[float]:
    """'0.5' -> 0.5; '0.7:0.5:0.3' -> [0.7, 0.5, 0.3]; every ratio in (0, 1]."""
    parts = [p.strip() for p in str(text).split(":")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise KeepError(f"a keep ratio is a number, or one number per spiking layer joined by ':' "
                        f"(0.7:0.5:0.3), got {text!r}") from None
    bad = [v for v in values if not 0.0 < v <= 1.0]  # also NaN
    if bad or not values:
        raise KeepError(f"keep ratios must lie in (0, 1], got {text!r}")
    return values[0] if len(values) == 1 else values


def per_layer(value: float | Sequence[float] | dict[str, float], layers: Sequence[str]) -> Keep:
    """A parsed k for the network whose spiking layers are `layers` (in order): a float stays
    uniform, a list gives each layer its ratio and must have one per layer; a dict must name
    only layers of the network. A per-layer k that is the same everywhere is uniform."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(layers))
        if unknown:
            raise KeepError(f"the keep ratios name layers {unknown} that the network does not have "
                            f"(its spiking layers: {list(layers)})")
        keep = {name: float(value.get(name, 1.0)) for name in layers}
    elif isinstance(value, (int, float)):
        return float(value)
    else:
        if len(value) != len(layers):
            raise KeepError(f"{len(value)} keep ratios for {len(layers)} spiking layers ({', '.join(layers)}): "
                            f"give one per layer, or one for all")
        keep = {name: float(k) for name, k in zip(layers, value)}
    ratios = set(keep.values())
    return ratios.pop() if len(ratios) == 1 else keep


def keep_label(keep: Keep) -> str:
    """The text form: '0.5', or '0.7:0.5:0.3' in the dict's (the network's) layer order."""
    if not isinstance(keep, dict):
        return f"{keep:g}"
    return ":".join(f"{k:g}" for k in keep.values())


def mean_keep(keep: Keep) -> float:
    """The unweighted mean ratio over layers (orders a sweep from the most to the least sent)."""
    return sum(keep.values()) / len(keep) if isinstance(keep, dict) and keep else float(keep)
