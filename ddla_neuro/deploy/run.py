"""The run contract every backend keeps (the fast simulator, `sim.py`, and the Lava runner,
`lava_run.py`) and the cost model reads: the modes a network runs in, the counters a run
returns (`Counts`), the result (`RunResult`) and the checks made on the host before a run.
Numpy only: the Lava worker imports it.

Memory is checked before work too: each backend estimates its peak from the spec
(`sim.estimate_peak_bytes`, `lava_run.estimate_lava_bytes`) against `available_memory()`.

Modes (`ddla.transmission.MODES`): `dense` (every sender sends its values each step), `delta`
(every sender sends the change since the last step: lossless) and `ddla` (from t = 2 on,
spiking populations send the pending changes their selection chooses, `ddla.selection`,
weighted or ranked by the spec's sensitivity scores; receivers hold the rest).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..ddla.keep import ratios
from ..ddla.selection import Selection
from ..ddla.transmission import MODES
from ..errors import UserError
from .spec import NetSpec

COUNT_KINDS = ("spikes", "events", "sops", "sops_proj", "active", "pending")


@dataclass
class Counts:
    """Totals over the samples run, per timestep (arrays of length T)."""

    timesteps: int
    spikes: dict[str, np.ndarray] = field(default_factory=dict)   # non-zero s^t of each spiking population
    events: dict[str, np.ndarray] = field(default_factory=dict)   # values sent by "input" and each sender
    sops: dict[str, np.ndarray] = field(default_factory=dict)     # synaptic ops into each population
    sops_proj: dict[str, np.ndarray] = field(default_factory=dict)  # synaptic ops per projection "source>target"
    active: dict[str, np.ndarray] = field(default_factory=dict)   # units with a non-zero synaptic current (cuba: state)
                                                                  # (a product: both factors non-zero)
    pending: dict[str, np.ndarray] = field(default_factory=dict)  # DDLA: changes pending where a selection ran
    neurobench: dict[str, np.ndarray] = field(default_factory=dict)  # see `sim.neurobench_ops` (simulator only)
    samples: int = 0

    def add(self, kind: str, key: str, per_step) -> None:
        """Adds per-timestep values (T,) to a counter."""
        table = getattr(self, kind)
        values = np.rint(np.asarray(per_step, dtype=np.float64)).astype(np.int64)
        table.setdefault(key, np.zeros(self.timesteps, dtype=np.int64))[:] += values

    def total(self, kind: str, skip: tuple[str, ...] = ()) -> int:
        """One counter summed over its keys (but `skip`) and the timesteps."""
        return int(sum(v.sum() for k, v in getattr(self, kind).items() if k not in skip))

    def to_dict(self) -> dict:
        """The counters every backend returns (not the simulator-only `neurobench`)."""
        return {"samples": self.samples, **{k: {n: v.tolist() for n, v in getattr(self, k).items()}
                                            for k in COUNT_KINDS}}


@dataclass
class RunResult:
    logits: np.ndarray   # (N, T, classes), float (fixed point: divided by 2**frac_bits)
    counts: Counts
    sent: dict[str, np.ndarray] = field(default_factory=dict)  # if recorded: what each population sent (N, T, n)
    activity: dict[str, np.ndarray] = field(default_factory=dict)  # if recorded: what each computed (N, T, n)

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.mean(axis=1).argmax(axis=1)


class RunError(UserError, ValueError):
    """A run that cannot be done as asked (mode, keep, input shape, missing DDLA statistics)."""


def available_memory() -> int:
    """Bytes this process may still allocate: the kernel's MemAvailable, or less where a cgroup
    (a container, a Slurm job) sets a lower limit."""
    free = _meminfo_available()
    limit, used = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if limit is not None and used is not None:
        free = min(free, max(limit - used, 0))
    return free


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):  # absent, or "max" (no limit)
        return None


def gib(n: float) -> str:
    return f"{n / 2 ** 30:.2f} GiB"


def check_run(spec: NetSpec, frames: np.ndarray, mode: str, selection: Selection | None
              ) -> tuple[np.ndarray, Selection]:
    """Validates a run on the host (before the simulator runs and before Lava is started: a
    Lava process model must never raise); returns the frames as float64 and the selection (one
    that filters nothing where none is given)."""
    if mode not in MODES:
        raise RunError(f"mode must be one of {MODES}, got {mode!r}")
    selection = selection if selection is not None else Selection()
    if not isinstance(selection, Selection):
        raise RunError(f"a run's DDLA selection is a ddla.selection.Selection, got {selection!r}")
    keep = selection.keep
    if any(not 0.0 < k <= 1.0 for k in ratios(keep)):  # the range `keep.parse_keep` reads
        raise RunError(f"keep ratios must lie in (0, 1], got {keep}")
    spiking = {p.name for p in spec.spiking}
    unknown = sorted(((set(keep) if isinstance(keep, dict) else set()) | set(selection.thresholds)) - spiking)
    if unknown:
        raise RunError(f"keep ratios or thresholds for {unknown}, which are not spiking populations of the network")
    filtering = {p.name for p in spec.populations if selection.filters(p.name)}
    frames = np.asarray(frames, dtype=np.float64)
    if tuple(frames.shape[1:]) != (spec.timesteps, *spec.input_shape):
        raise RunError(f"frames have shape {frames.shape}, the network takes (N, {spec.timesteps}, "
                       f"{', '.join(map(str, spec.input_shape))})")
    unfiltered = [p.name for p in spec.populations if p.kind == "sdnn" and p.name in filtering]
    if mode == "ddla" and unfiltered:
        raise RunError(f"populations {unfiltered} are sigma-delta neurons, whose graded messages DDLA's selection "
                       f"does not rank; run them in dense or delta mode")
    for pop in spec.populations:
        if any(p.to_bias for p in pop.inputs) and (len(pop.inputs) != 1 or pop.inputs[0].source != "input"
                                                   or pop.kind not in ("if", "lif", "cuba")):
            raise RunError(f"population {pop.name!r}: a bias write must be the only projection of a neuron "
                           f"population, and read the input")
    if spec.reset_interval < 0 or (spec.reset_interval and spec.sigma_delta):
        raise RunError(f"a reset interval must be at least 1 (0: none), on spiking neurons only (lava-dl's runner "
                       f"ignores it on sigma-delta neurons), got {spec.reset_interval}")
    missing = [p.name for p in spec.spiking if p.name not in spec.scores and p.name in filtering]
    if mode == "ddla" and missing:
        raise RunError(f"no sensitivity statistics for populations {missing}: DDLA with keep < 1 needs a "
                       f"checkpoint trained with --method ddla")
    return frames, selection
