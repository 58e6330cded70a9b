"""Runs a NetSpec on Lava's CPU simulator, isolated: the host side. `run_lava` checks the run
(a Lava process model must never raise), writes a job file (the spec, the frames, the mode and
keep ratio), runs the worker (`lava_worker.py`) in its own session through
`isolation.run_isolated`, which kills its whole process group at the end whatever happens, and
reads the result. Also here: the shape of the Lava graph (`fused`, `folds`, `lava_processes`),
and the memory and wall-time estimates printed before a run. Nothing here imports torch.
"""
from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..ddla.selection import Selection
from ..errors import UserError
from .isolation import IsolationError, run_isolated
from .lava_stages import as_matrix
from .run import COUNT_KINDS, Counts, RunResult, available_memory, check_run, gib
from .spec import NetSpec, Population, save_spec


class LavaRunError(UserError):
    pass


@dataclass
class LavaResult(RunResult):
    build_s: float = 0.0   # building the processes, compiling, starting the runtime
    run_s: float = 0.0     # streaming the samples and draining the pipeline
    steps: int = 0         # Lava timesteps run

    @property
    def ms_per_step(self) -> float:
        return 1000.0 * self.run_s / max(self.steps, 1)


LAVA_GRAPHS = ("fused", "split")
LAVA_BATCH = 32  # deploy's default lockstep: a round shares Lava's per-step cost; each sample adds its state


def fused(pop: Population, graph: str) -> bool:
    """Whether a population runs as one DeltaPopulation process (a neuron population with one
    projection, in the fused graph) rather than a DeltaSynapse per projection and a neuron process."""
    return graph == "fused" and pop.kind != "readout" and len(pop.inputs) == 1


@dataclass(frozen=True)
class Folds:
    """In the fused graph, the populations that also run the input's encoder and the readout
    (with its projection), or None where the network's shape does not allow it."""

    encoder: str | None
    readout: str | None


def folds(spec: NetSpec, graph: str) -> Folds:
    """The encoder folds into the input's only reader when that is a fused population; the
    readout into its only source when that is a fused population sending nowhere else."""
    readers = [p for p in spec.populations for proj in p.inputs if proj.source == "input"]
    encoder = readers[0].name if len(readers) == 1 and fused(readers[0], graph) else None
    sources = [proj.source for proj in spec.readout.inputs]
    readout = None
    if len(sources) == 1 and sources[0] != "input":
        last = spec.population(sources[0])
        readout = last.name if fused(last, graph) and spec.targets[last.name] == [spec.readout.name] else None
    return Folds(encoder, readout)


def lava_processes(spec: NetSpec, graph: str = "fused") -> int:
    """Processes of the Lava network: Injector, Extractor, the DeltaEncoder unless folded, and
    per population one (fused), none (a folded readout) or one per projection plus one."""
    f = folds(spec, graph)
    per_population = sum(1 if fused(p, graph) else 1 + len(p.inputs) for p in spec.populations)
    return 2 + (f.encoder is None) + per_population - (0 if f.readout is None else 1 + len(spec.readout.inputs))


def lava_steps(spec: NetSpec, samples: int, batch: int = 1) -> int:
    """Lava timesteps of a run: the pipeline fill and T per round of `batch` samples, then the
    pipeline's drain (the latency)."""
    return -(-samples // batch) * (spec.fill + spec.timesteps) + spec.latency


LAVA_BASE_BYTES = 128 * 2 ** 20     # the worker: Python, numpy, Lava, the runtime (measured ~110 MiB)
LAVA_PROCESS_BYTES = 2 * 2 ** 20    # each forked process model beyond what it shares with the worker
LAVA_UNIT_BYTES = 64                # per unit: membrane, current, held and sent values, delay queues


def estimate_lava_bytes(spec: NetSpec, batch: int = 1) -> int:
    """The Lava run's memory (all its processes, shared pages counted once), independent of the
    number of samples (they stream): the worker, one process per population and projection, each
    weight twice as int64/float64 (the worker's spec and the synapse's copy), a small
    projection's composed matrix (`lava_stages.Synapse`), each fan-out entry and, per sample in
    lockstep, each unit's state and each conv's unrolled input windows (float64, all at once).
    `benchmarks/sim_memory.py --lava` compares it with the measured peak."""
    projections = [proj for p in spec.populations for proj in p.inputs]
    weights = sum(np.size(op.weight) for proj in projections for op in proj.ops if op.weight is not None)
    shapes = ((proj.fanout.size, int(np.prod(proj.ops[-1].out_shape))) for proj in projections)
    weights += sum(n_in * n_out for n_in, n_out in shapes if as_matrix(n_in, n_out)) // 2
    units = sum(batch * p.size + sum(proj.fanout.size for proj in p.inputs) for p in spec.populations)
    windows = batch * sum(op.macs // op.out_shape[0] for proj in projections for op in proj.ops if op.kind == "conv2d")
    return (LAVA_BASE_BYTES + lava_processes(spec) * LAVA_PROCESS_BYTES + 16 * weights + LAVA_UNIT_BYTES * units
            + 8 * windows)


def check_lava_memory(spec: NetSpec, batch: int = 1,
                      advice: str = "lower --lava-batch, use the fast simulator (--backend fast) or a machine with "
                                    "more memory") -> None:
    """LavaRunError, ending in `advice`, where the run's estimate passes 80% of the free memory."""
    need, free = estimate_lava_bytes(spec, batch), int(0.8 * available_memory())
    if need > free:
        raise LavaRunError(f"the Lava run needs about {gib(need)} for this network and batch ({batch} samples in "
                           f"lockstep), {gib(free)} is free: {advice}")


LAVA_START_S = 1.0            # start the worker, pass the job, stop Lava (benchmarks/lava_scale.py)
LAVA_PROCESS_BUILD_S = 0.02   # per process: build, compile and fork it (ResNet-19's 36: ~1 s in all)
LAVA_PROCESS_STEP_S = 1.5e-4  # per process and step: Lava's synchronisation (measured ~0.15 ms, lava.md)
LAVA_MAC_S = 2e-10            # per multiply-accumulate of a synapse's ops on a dense input (float64 BLAS)


def _arithmetic_seconds(spec: NetSpec, samples: int, batch: int) -> float:
    """The synapses' ops on a dense input (numpy applies a conv to the whole delta vector), each
    in its own window only: T steps per round of `batch` samples."""
    macs = sum(op.macs for p in spec.populations for proj in p.inputs for op in proj.ops)
    return -(-samples // batch) * spec.timesteps * batch * macs * LAVA_MAC_S


def estimate_lava_seconds(spec: NetSpec, samples: int, graph: str = "fused", batch: int = 1) -> float:
    """The Lava run's wall time, printed before it starts: the start-up and build, every step of
    every process (T per round of `batch` samples plus the pipeline's drain) paying its
    synchronisation, and the synapses' arithmetic. `benchmarks/lava_scale.py` compares it with
    measured runs."""
    processes = lava_processes(spec, graph)
    sync = lava_steps(spec, samples, batch) * processes * LAVA_PROCESS_STEP_S
    return LAVA_START_S + processes * LAVA_PROCESS_BUILD_S + sync + _arithmetic_seconds(spec, samples, batch)


def default_timeout(spec: NetSpec, samples: int, graph: str = "fused", batch: int = 1) -> float:
    """Generous: two minutes to start, 50 ms per process and step (measured: ~0.15 ms) and 20x
    the estimated arithmetic."""
    return (120.0 + 0.05 * lava_processes(spec, graph) * lava_steps(spec, samples, batch)
            + 20 * _arithmetic_seconds(spec, samples, batch))


def check_lava_mappable(spec: NetSpec) -> None:
    """Max pools and spike products (the Spike-driven Transformer) have no Loihi synapse or neuron
    model, so they stay in the fast simulator rather than in a Lava process that would pretend."""
    if spec.compute:
        names = ", ".join(f"{p.name} ({p.kind})" for p in spec.compute)
        raise LavaRunError(f"the network has max-pool/product populations, which are not mapped to Lava: {names}; "
                           f"run it with the fast simulator (--backend fast)")


def run_lava(spec: NetSpec, frames: np.ndarray, mode: str = "delta", selection: Selection | None = None,
             timeout: float | None = None, on_progress: Callable[[int, int], None] | None = None,
             graph: str = "fused", batch: int = 1, record: bool = False) -> LavaResult:
    """Runs `frames` (N, T, *input_shape; fixed point: quantized) through the Lava network of
    `spec` and returns logits (N, T, classes) and counts as every backend does (`run.py`).
    `graph`: fused (one process per population where it has one projection, the encoder and
    readout folded in where they can be) or split. `batch`: samples in lockstep (every process
    state carries a batch dimension; each sample's numbers are those of running it alone).
    `record`: also what each population computed (`RunResult.activity`, as the simulator's)."""
    if graph not in LAVA_GRAPHS:
        raise ValueError(f"graph must be one of {LAVA_GRAPHS}, got {graph!r}")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise LavaRunError(f"the Lava batch must be a positive integer, got {batch!r}")
    frames, selection = check_run(spec, frames, mode, selection)  # on the host: a process model that raises hangs Lava
    check_lava_mappable(spec)
    n = frames.shape[0]
    batch = min(int(batch), n)
    check_lava_memory(spec, batch)

    def progress(line: str) -> None:
        parts = line.split()
        if on_progress is not None and len(parts) == 3 and parts[0] == "progress":
            on_progress(int(parts[1]), int(parts[2]))

    with tempfile.TemporaryDirectory(prefix="ddla-lava-") as tmp:
        job, result = Path(tmp) / "job.npz", Path(tmp) / "result.npz"
        activity = Path(tmp) / "activity" if record else None
        save_spec(job, spec, frames=frames, run=_json_bytes({"mode": mode, "selection": selection.as_dict(),
                                                             "graph": graph, "batch": batch,
                                                             "record": None if activity is None else str(activity)}))
        cmd = [sys.executable, "-m", "ddla_neuro.deploy.lava_worker", str(job), str(result)]
        try:
            run_isolated(cmd, timeout or default_timeout(spec, n, graph, batch), progress)
        except IsolationError as e:
            raise LavaRunError(str(e)) from None
        with np.load(result, allow_pickle=False) as f:
            out = {k: f[k] for k in f.files}
        recorded = {} if activity is None else _recorded(spec, activity)
    counts = Counts(spec.timesteps, samples=n)
    for key, value in out.items():
        kind, _, name = key.partition(".")
        if kind in COUNT_KINDS:
            getattr(counts, kind)[name] = value
    logits = out["logits"] / (2.0 ** spec.readout.frac_bits if spec.fixed else 1.0)
    build_s, run_s, steps = out["timing"]
    return LavaResult(logits, counts, activity=recorded, build_s=float(build_s), run_s=float(run_s), steps=int(steps))


def _recorded(spec: NetSpec, folder: Path) -> dict[str, np.ndarray]:
    """What each population's process wrote (`lava_stages.Recorder`), (N, T, n)."""
    missing = [p.name for p in spec.populations if not (folder / f"{p.name}.npy").is_file()]
    if missing:
        raise LavaRunError(f"the Lava run recorded no activity of {', '.join(missing)} (the disk of the temporary "
                           f"directory may be full)")
    return {p.name: np.load(folder / f"{p.name}.npy") for p in spec.populations}


def _json_bytes(obj) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)
