"""Runs a NetSpec on Lava's CPU simulator, isolated: the Lava network lives in a worker
subprocess in its own session (`ddla_neuro.lava_worker`), and whatever happens (success, a
crash, a hang past the timeout, Ctrl-C) the whole process group is killed at the end, so no
Lava process outlives the call and a hang cannot block the caller.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import UserError
from .sim import COUNT_KINDS, Counts, SimResult, check_run
from .spec import NetSpec, save_spec


class LavaRunError(UserError):
    pass


@dataclass
class LavaResult(SimResult):
    build_s: float = 0.0   # building the processes, compiling, starting the runtime
    run_s: float = 0.0     # streaming the samples and draining the pipeline
    steps: int = 0         # Lava timesteps run

    @property
    def ms_per_step(self) -> float:
        return 1000.0 * self.run_s / max(self.steps, 1)


def default_timeout(spec: NetSpec, samples: int) -> float:
    """Generous: start-up plus 50 ms per process and step (measured: ~0.15 ms)."""
    procs = 3 + sum(1 + len(p.inputs) for p in spec.populations)
    return 120.0 + 0.05 * procs * (samples * spec.timesteps + spec.latency)


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_isolated(cmd: list[str], timeout: float, on_line: Callable[[str], None] | None = None) -> str:
    """Runs `cmd` in a new session; streams its stdout lines to `on_line`; returns its stderr.
    Raises LavaRunError on a timeout or a non-zero exit. The process group is always killed."""
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
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
            kill_group(proc.pid)
            proc.wait()
            proc.stdout.close()
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        raise LavaRunError(f"the Lava run failed (exit {proc.returncode}): {_reason(stderr)}")
    return stderr


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


def run_lava(spec: NetSpec, frames: np.ndarray, mode: str = "delta", keep: float = 1.0,
             timeout: float | None = None, on_progress: Callable[[int, int], None] | None = None) -> LavaResult:
    """Runs `frames` (N, T, *input_shape; fixed point: quantized) through the Lava network of
    `spec` and returns logits (N, T, classes) and counts in the layout of `sim.simulate`."""
    frames = check_run(spec, frames, mode, keep)  # on the host: a process model that raises hangs Lava
    check_lava_mappable(spec)
    n = frames.shape[0]

    def progress(line: str) -> None:
        parts = line.split()
        if on_progress is not None and len(parts) == 3 and parts[0] == "progress":
            on_progress(int(parts[1]), int(parts[2]))

    with tempfile.TemporaryDirectory(prefix="ddla-lava-") as tmp:
        job, result = Path(tmp) / "job.npz", Path(tmp) / "result.npz"
        save_spec(job, spec, frames=frames)
        cmd = [sys.executable, "-m", "ddla_neuro.lava_worker", str(job), str(result), mode, repr(keep)]
        run_isolated(cmd, timeout or default_timeout(spec, n), progress)
        with np.load(result, allow_pickle=False) as f:
            out = {k: f[k] for k in f.files}
    counts = Counts(spec.timesteps, samples=n)
    for key, value in out.items():
        kind, _, name = key.partition(".")
        if kind in COUNT_KINDS:
            getattr(counts, kind)[name] = value
    logits = out["logits"] / (2.0 ** spec.readout.frac_bits if spec.fixed else 1.0)
    build_s, run_s, steps = out["timing"]
    return LavaResult(logits, counts, build_s=float(build_s), run_s=float(run_s), steps=int(steps))
