"""Runs a NetSpec on Lava's CPU simulator, isolated. The host side (`run_lava`) writes a job
file (the spec, the frames, the mode and keep ratio), starts this module as a worker in its own
session (`python -m ddla_neuro.deploy.lava_run JOB.npz RESULT.npz`) and, whatever happens
(success, a crash, a hang past the timeout, Ctrl-C), kills the whole process group at the end,
so no Lava process outlives the call and a hang cannot block the caller.

The worker builds the Lava network of the spec once, streams the samples through it (one
`run(RunSteps(T))` per sample, frames in through an Injector, logits out through an Extractor,
per-sample state reset by time), drains the pipeline, reads the counters and stops Lava. It
prints `progress DONE TOTAL` lines on stdout and writes RESULT atomically. Nothing here imports
torch: the worker starts fast.
"""
from __future__ import annotations

import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import numpy as np
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.process.variable import Var
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
from lava.proc.io.injector import Injector, PyLoihiInjectorModel

from ..ddla.keep import Keep, keep_of
from ..errors import STOP_SIGNALS, UserError
from .lava.models import as_matrix
from .lava.process import DeltaEncoder, DeltaNeuron, DeltaPopulation, DeltaSynapse, Readout
from .run import COUNT_KINDS, Counts, RunResult, available_memory, check_run, gib
from .spec import NetSpec, Population, Projection, load_spec, projection_key, save_spec

PR_SET_PDEATHSIG = 1  # linux/prctl.h


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
    projection's composed matrix (`models.Synapse`), each fan-out entry and, per sample in
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


def check_lava_memory(spec: NetSpec, batch: int = 1) -> None:
    need, free = estimate_lava_bytes(spec, batch), int(0.8 * available_memory())
    if need > free:
        raise LavaRunError(f"the Lava run needs about {gib(need)} for this network and batch ({batch} samples in "
                           f"lockstep), {gib(free)} is free: lower --lava-batch, use the fast simulator "
                           f"(--backend fast) or a machine with more memory")


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


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_isolated(cmd: list[str], timeout: float, on_line: Callable[[str], None] | None = None) -> str:
    """Runs `cmd` in a new session; streams its stdout lines to `on_line`; returns its stderr.
    Raises LavaRunError on a timeout or a non-zero exit. The process group is always killed,
    also on a stop signal; if this process dies without cleaning up (SIGKILL, the OOM killer),
    the child sees its stdin reach EOF (`die_with_parent`)."""
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                                start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(proc.stdout, selectors.EVENT_READ)
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise LavaRunError(f"the Lava run timed out after {timeout:.0f} s (a process hung or failed); "
                                           f"all its processes were killed; raise --timeout if the job is just large")
                    if not sel.select(timeout=min(left, 1.0)):
                        continue
                    line = proc.stdout.readline()
                    if not line:
                        break
                    if on_line is not None:
                        on_line(line.strip())
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            raise LavaRunError(f"the Lava run timed out after {timeout:.0f} s; all its processes were killed") from None
        finally:
            with _signals_held():  # a second Ctrl-C or SIGTERM must not cut the clean-up short
                kill_group(proc.pid)
                proc.wait()
                proc.stdout.close()
                proc.stdin.close()
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        raise LavaRunError(f"the Lava run failed (exit {proc.returncode}): {_reason(stderr)}")
    return stderr


@contextmanager
def _signals_held():
    """Stop signals that arrive inside are delivered on leaving (and raise `Stopped` then)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _reason(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("{"):
            try:
                return json.loads(ln)["error"]
            except (ValueError, KeyError):
                pass
    return lines[-1][:300] if lines else "no message"


def check_lava_mappable(spec: NetSpec) -> None:
    """Max pools and spike products (the Spike-driven Transformer) have no Loihi synapse or neuron
    model, so they stay in the fast simulator rather than in a Lava process that would pretend."""
    if spec.compute:
        names = ", ".join(f"{p.name} ({p.kind})" for p in spec.compute)
        raise LavaRunError(f"the network has max-pool/product populations, which are not mapped to Lava: {names}; "
                           f"run it with the fast simulator (--backend fast)")


def run_lava(spec: NetSpec, frames: np.ndarray, mode: str = "delta", keep: Keep = 1.0,
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
    frames = check_run(spec, frames, mode, keep)  # on the host: a process model that raises hangs Lava
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
        save_spec(job, spec, frames=frames, run=_json_bytes({"mode": mode, "keep": keep, "graph": graph, "batch": batch,
                                                             "record": None if activity is None else str(activity)}))
        cmd = [sys.executable, "-m", "ddla_neuro.deploy.lava_run", str(job), str(result)]
        run_isolated(cmd, timeout or default_timeout(spec, n, graph, batch), progress)
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
    """What each population's process wrote (`models.Recorder`), (N, T, n)."""
    missing = [p.name for p in spec.populations if not (folder / f"{p.name}.npy").is_file()]
    if missing:
        raise LavaRunError(f"the Lava run recorded no activity of {', '.join(missing)} (the disk of the temporary "
                           f"directory may be full)")
    return {p.name: np.load(folder / f"{p.name}.npy") for p in spec.populations}


# --- the worker (in its own session) ---------------------------------------------------------------

def _synapse_params(proj: Projection) -> dict:
    """What a projection's synapse process takes from the spec (DeltaSynapse, DeltaPopulation)."""
    return dict(ops=list(proj.ops), fanout=proj.fanout, in_size=int(np.prod(proj.ops[0].in_shape)), shift=proj.shift,
                delay=proj.delay)


def _neuron_params(spec: NetSpec, pop: Population, mode: str, keep: Keep) -> dict:
    """What a population's neuron process takes from the spec and the run (DeltaNeuron, DeltaPopulation)."""
    return dict(bias=pop.bias, v_th=pop.v_th, decay=pop.decay, dv=pop.dv, reset=pop.reset, mode=mode,
                keep=keep_of(keep, pop.name), scores=spec.scores.get(pop.name), depth=pop.depth, fill=pop.fill,
                kind=pop.kind, u_decay=pop.u_decay,
                du=pop.du, input_delay=pop.input_delay, bias_input=pop.inputs[0].to_bias, activation=pop.activation,
                message_shift=pop.message_shift, reset_interval=spec.reset_interval, reset_offset=spec.reset_offset)


def _fill_of(spec: NetSpec, source: str) -> int:
    """The pipeline fill of a projection's source: 0 for the input."""
    return 0 if source == "input" else spec.population(source).fill


class LavaNetwork:
    """The processes of one NetSpec, connected: Injector -> DeltaEncoder -> (DeltaPopulation, or
    DeltaSynapse(s) -> DeltaNeuron)* -> DeltaSynapse -> Readout -> Extractor, the encoder and
    the readout folded into the first and last DeltaPopulation where `folds` allows. Ports carry
    `batch` samples in lockstep."""

    def __init__(self, spec: NetSpec, mode: str, keep: Keep, num_samples: int, graph: str = "fused",
                 batch: int = 1, record: str | None = None):
        t = spec.timesteps
        window = dict(timesteps=t, num_samples=num_samples, batch=batch, pad=spec.fill)
        self.spec, self.folds, self.record = spec, folds(spec, graph), record
        self.buffer = t + spec.latency + 1
        n_in = int(np.prod(spec.input_shape))
        encoding = "dense" if mode == "dense" else "delta"
        self.injector = Injector(shape=(batch, n_in), buffer_size=self.buffer)
        # the counter Vars: per neuron population its process (events, spikes, active), per target
        # its synapses' (source, sops Var), and the input's events and the readout's active units
        self.neurons: dict[str, DeltaNeuron | DeltaPopulation] = {}
        self.synapses: dict[str, list[tuple[str, Var]]] = {}
        self.input_events: Var | None = None
        self.readout_active: Var | None = None
        if self.folds.encoder is None:
            encoder = DeltaEncoder(size=n_in, mode=encoding, **window)
            self.injector.out_port.connect(encoder.a_in)
            self.input_events = encoder.events
            outputs = {"input": encoder.s_out}
        else:
            outputs = {"input": self.injector.out_port}
        for pop in spec.populations:
            if pop.kind == "readout" and self.folds.readout is not None:
                continue  # built into its source population
            if fused(pop, graph):
                proc = self.population(pop, mode, keep, window, encoding)
                outputs[pop.inputs[0].source].connect(proc.s_in)
                outputs[spec.readout.name if pop.name == self.folds.readout else pop.name] = proc.s_out
                continue
            if pop.kind == "readout":
                proc = Readout(size=pop.size, bias=pop.bias, depth=pop.depth, fill=pop.fill,
                               record=self.record_path(pop), **window)
                self.readout_active = proc.active
            else:
                proc = DeltaNeuron(size=pop.size, **_neuron_params(spec, pop, mode, keep),
                                   record=self.record_path(pop), **window)
                self.neurons[pop.name] = proc
            self.synapses[pop.name] = []
            for proj in pop.inputs:
                syn = DeltaSynapse(**_synapse_params(proj), out_size=pop.size, accumulate=mode != "dense",
                                   depth=spec.depth_of(proj.source), fill=_fill_of(spec, proj.source), **window)
                outputs[proj.source].connect(syn.s_in)
                syn.a_out.connect(proc.a_in)
                self.synapses[pop.name].append((proj.source, syn.sops))
            outputs[pop.name] = proc.out if pop.kind == "readout" else proc.s_out
        self.extractor = Extractor(shape=(batch, spec.readout.size), buffer_size=self.buffer)
        outputs[spec.readout.name].connect(self.extractor.in_port)

    def record_path(self, pop: Population) -> str | None:
        return None if self.record is None else str(Path(self.record) / f"{pop.name}.npy")

    def population(self, pop: Population, mode: str, keep: Keep, window: dict, encoding: str) -> DeltaPopulation:
        """The fused process of `pop`, with the encoder and the readout if they fold into it."""
        spec, proj = self.spec, pop.inputs[0]
        readout = None
        if pop.name == self.folds.readout:
            r = spec.readout
            readout = dict(**_synapse_params(r.inputs[0]), bias=r.bias, depth=r.depth, fill=r.fill, size=r.size,
                           record=self.record_path(r))
        proc = DeltaPopulation(size=pop.size, **_synapse_params(proj), synapse_depth=spec.depth_of(proj.source),
                               synapse_fill=_fill_of(spec, proj.source), **_neuron_params(spec, pop, mode, keep),
                               record=self.record_path(pop), **window,
                               encode=encoding if pop.name == self.folds.encoder else None, readout=readout)
        self.neurons[pop.name] = proc
        self.synapses[pop.name] = [(proj.source, proc.sops)]
        if readout is not None:
            self.synapses[spec.readout.name] = [(pop.name, proc.readout_sops)]
            self.readout_active = proc.readout_active
        if pop.name == self.folds.encoder:
            self.input_events = proc.input_events
        return proc

    def run_config(self) -> Loihi2SimCfg:
        # Injector and Extractor have two untagged models each; pick the Loihi-protocol ones
        return Loihi2SimCfg(select_tag="fixed_pt" if self.spec.fixed else "floating_pt",
                            exception_proc_model_map={Extractor: PyLoihiExtractorModel,
                                                      Injector: PyLoihiInjectorModel})

    def steps(self, frames: list[np.ndarray]) -> np.ndarray:
        """Feeds the frames (one (batch, n) array per step) and returns the readout of those steps."""
        for f in frames:
            self.injector.send(f)
        self.extractor.run(condition=RunSteps(num_steps=len(frames)))
        return np.stack([self.extractor.receive() for _ in frames])

    def counters(self) -> dict[str, np.ndarray]:
        out = {"events.input": self.input_events.get(), f"active.{self.spec.readout.name}": self.readout_active.get()}
        for name, proc in self.neurons.items():
            out[f"events.{name}"] = proc.events.get()
            out[f"spikes.{name}"] = proc.spikes.get()
            out[f"active.{name}"] = proc.active.get()
        for name, syns in self.synapses.items():
            sops = [var.get() for _, var in syns]
            out[f"sops.{name}"] = sum(sops)
            for (source, _), value in zip(syns, sops):  # two paths from one source add up, as in sim.py
                key = f"sops_proj.{projection_key(source, name)}"
                out[key] = out.get(key, 0) + value
        return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


def run_network(spec: NetSpec, frames: np.ndarray, mode: str, keep: Keep, graph: str = "fused",
                batch: int = 1, record: str | None = None) -> dict[str, np.ndarray]:
    """In the worker: the logits, counters and timing of the frames through the Lava network,
    `batch` samples at a time (the last round padded with zero frames, which nothing counts),
    each round after `spec.fill` zero frames (the pipeline fill); with `record`, each process
    writes its activity into that folder."""
    n, t = frames.shape[:2]
    rounds, pad = -(-n // batch), spec.fill
    flat = np.zeros((rounds * batch, pad + t, int(np.prod(frames.shape[2:]))), dtype=frames.dtype)
    flat[:n, pad:] = frames.reshape(n, t, -1)
    flat = flat.reshape(rounds, batch, pad + t, -1)
    if record is not None:
        Path(record).mkdir()
    t0 = time.perf_counter()
    net = LavaNetwork(spec, mode, keep, n, graph, batch, record)
    net.extractor.create_runtime(run_cfg=net.run_config())
    t_built = time.perf_counter()
    readout = []
    for r in range(rounds):
        readout.append(net.steps(list(flat[r].transpose(1, 0, 2))))
        print(f"progress {min((r + 1) * batch, n)} {n}", flush=True)
    zero = np.zeros(flat.shape[1::2])
    readout.append(net.steps([zero] * spec.latency))  # drain the pipeline
    t_ran = time.perf_counter()
    counts = net.counters()
    # Only after success: stop() hangs once a process model has failed; then the runner kills the group.
    net.extractor.stop()
    steps = np.concatenate(readout)[spec.latency:]  # the readout of frame (i, t) leaves `latency` steps later
    steps = steps.reshape(rounds, pad + t, batch, -1)[:, pad:]
    logits = steps.transpose(0, 2, 1, 3).reshape(rounds * batch, t, -1)[:n]
    return {"logits": logits, **counts, "timing": np.array([t_built - t0, t_ran - t_built, lava_steps(spec, n, batch)])}


def _json_bytes(obj) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)


def die_with_parent() -> None:
    """In the worker: take its whole process group (every process Lava forks) down when the
    parent goes, however it goes. The parent holds the only write end of our stdin and never
    writes, so a read returns EOF once it exits, crashes or is SIGKILLed: a watchdog thread then
    kills the group. Linux's parent-death signal (not inherited by Lava's processes) does the
    same through a handler, in case the main thread gets there first."""
    def kill_all(*_) -> None:
        os.killpg(os.getpgrp(), signal.SIGKILL)

    def watch() -> None:
        while os.read(0, 4096):
            pass
        kill_all()

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
    signal.signal(signal.SIGHUP, kill_all)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGHUP)


def worker_main(argv: list[str]) -> int:
    die_with_parent()
    job, result = argv
    spec, extra = load_spec(job)
    params = json.loads(extra["run"].tobytes().decode())
    try:
        out = run_network(spec, extra["frames"], params["mode"], params["keep"], params["graph"],
                          int(params["batch"]), params["record"])
    except Exception as e:  # the runner kills the process group: never call stop() after a failure (it hangs)
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), file=sys.stderr, flush=True)
        os._exit(3)
    tmp = f"{result}.part.npz"
    np.savez(tmp, **out)
    os.replace(tmp, result)
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
