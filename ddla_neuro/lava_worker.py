"""Lava worker: `python -m ddla_neuro.lava_worker JOB.npz RESULT.npz MODE KEEP`.

Runs in its own session, started by `ddla_neuro.lava_runner` (which kills the whole process
group when it ends, times out or is interrupted). Builds the Lava network of the NetSpec in
JOB once, streams the samples through it (one `run(RunSteps(T))` per sample, frames in through
an Injector, logits out through an Extractor, per-sample state reset by time), drains the
pipeline, reads the counters and always stops Lava. No torch is imported here.

Prints `progress DONE TOTAL` lines on stdout; writes RESULT atomically.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
from lava.proc.io.injector import Injector, PyLoihiInjectorModel

from .lava.process import DeltaEncoder, DeltaNeuron, DeltaSynapse, Readout
from .spec import NetSpec, load_spec, projection_key


class LavaNetwork:
    """The processes of one NetSpec, connected: Injector -> DeltaEncoder -> (DeltaSynapse ->
    DeltaNeuron)* -> DeltaSynapse -> Readout -> Extractor."""

    def __init__(self, spec: NetSpec, mode: str, keep: float, num_samples: int):
        t, n = spec.timesteps, num_samples
        self.spec = spec
        self.buffer = t + spec.latency + 1
        n_in = int(np.prod(spec.input_shape))
        self.injector = Injector(shape=(n_in,), buffer_size=self.buffer)
        self.encoder = DeltaEncoder(size=n_in, mode="dense" if mode == "dense" else "delta", timesteps=t,
                                    num_samples=n)
        self.injector.out_port.connect(self.encoder.a_in)
        outputs = {"input": self.encoder.s_out}
        self.neurons: dict[str, DeltaNeuron] = {}
        self.readout: Readout | None = None
        self.synapses: dict[str, list[tuple[str, DeltaSynapse]]] = {}  # target -> (source, synapse)
        for pop in spec.populations:
            if pop.kind == "readout":
                proc = self.readout = Readout(size=pop.size, bias=pop.bias, depth=pop.depth, timesteps=t,
                                              num_samples=n)
            else:
                proc = DeltaNeuron(size=pop.size, bias=pop.bias, v_th=pop.v_th, decay=pop.decay, dv=pop.dv,
                                   reset=pop.reset, mode=mode, keep=keep, scores=spec.scores.get(pop.name),
                                   depth=pop.depth, timesteps=t, num_samples=n)
                self.neurons[pop.name] = proc
            self.synapses[pop.name] = []
            for proj in pop.inputs:
                syn = DeltaSynapse(ops=list(proj.ops), in_size=int(np.prod(proj.ops[0].in_shape)),
                                   out_size=pop.size, shift=proj.shift, delay=proj.delay,
                                   accumulate=mode != "dense", depth=spec.depth_of(proj.source), timesteps=t,
                                   num_samples=n)
                outputs[proj.source].connect(syn.s_in)
                syn.a_out.connect(proc.a_in)
                self.synapses[pop.name].append((proj.source, syn))
            outputs[pop.name] = proc.out if pop.kind == "readout" else proc.s_out
        self.extractor = Extractor(shape=(spec.readout.size,), buffer_size=self.buffer)
        outputs[spec.readout.name].connect(self.extractor.in_port)

    def run_config(self) -> Loihi2SimCfg:
        # Injector and Extractor have two untagged models each; pick the Loihi-protocol ones
        return Loihi2SimCfg(select_tag="fixed_pt" if self.spec.fixed else "floating_pt",
                            exception_proc_model_map={Extractor: PyLoihiExtractorModel,
                                                      Injector: PyLoihiInjectorModel})

    def steps(self, frames: list[np.ndarray]) -> np.ndarray:
        """Feeds the frames (one per step) and returns the readout of those steps."""
        for f in frames:
            self.injector.send(f)
        self.extractor.run(condition=RunSteps(num_steps=len(frames)))
        return np.stack([self.extractor.receive() for _ in frames])

    def counters(self) -> dict[str, np.ndarray]:
        out = {"events.input": self.encoder.events.get(),
               f"active.{self.spec.readout.name}": self.readout.active.get()}
        for name, proc in self.neurons.items():
            out[f"events.{name}"] = proc.events.get()
            out[f"spikes.{name}"] = proc.spikes.get()
            out[f"active.{name}"] = proc.active.get()
        for name, syns in self.synapses.items():
            sops = [syn.sops.get() for _, syn in syns]
            out[f"sops.{name}"] = sum(sops)
            for (source, _), value in zip(syns, sops):  # two paths from one source add up, as in sim.py
                key = f"sops_proj.{projection_key(source, name)}"
                out[key] = out.get(key, 0) + value
        return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


def run(spec: NetSpec, frames: np.ndarray, mode: str, keep: float) -> dict[str, np.ndarray]:
    n, t = frames.shape[:2]
    flat = frames.reshape(n, t, -1)
    t0 = time.perf_counter()
    net = LavaNetwork(spec, mode, keep, n)
    net.extractor.create_runtime(run_cfg=net.run_config())
    t_built = time.perf_counter()
    readout = []
    for i in range(n):
        readout.append(net.steps(list(flat[i])))
        print(f"progress {i + 1} {n}", flush=True)
    zero = np.zeros(flat.shape[2])
    readout.append(net.steps([zero] * spec.latency))  # drain the pipeline
    t_ran = time.perf_counter()
    counts = net.counters()
    # Only after success: stop() hangs once a process model has failed; then the runner kills the group.
    net.extractor.stop()
    steps = np.concatenate(readout)[spec.latency:]  # the readout of frame (i, t) leaves `latency` steps later
    return {"logits": steps.reshape(n, t, -1), **counts,
            "timing": np.array([t_built - t0, t_ran - t_built, n * t + spec.latency])}


def main(argv: list[str]) -> int:
    job, result, mode, keep = argv[0], argv[1], argv[2], float(argv[3])
    spec, extra = load_spec(job)
    try:
        out = run(spec, extra["frames"], mode, keep)
    except Exception as e:  # the runner kills the process group: never call stop() after a failure (it hangs)
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), file=sys.stderr, flush=True)
        os._exit(3)
    tmp = f"{result}.part.npz"
    np.savez(tmp, **out)
    os.replace(tmp, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
