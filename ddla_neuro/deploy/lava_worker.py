"""The Lava worker: `python -m ddla_neuro.deploy.lava_worker JOB.npz RESULT.npz`, started by
`lava_run.run_lava` in its own session (`isolation.run_isolated`). It builds the Lava network
of the job's spec once, streams the samples through it (one `run(RunSteps(T))` per round of
samples, frames in through an Injector, logits out through an Extractor, per-sample state reset
by time), drains the pipeline, reads the counters and stops Lava. It prints `progress DONE
TOTAL` lines on stdout and writes RESULT atomically. Nothing here imports torch: the worker
starts fast.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from lava.magma.core.process.variable import Var
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
from lava.proc.io.injector import Injector, PyLoihiInjectorModel

from ..ddla.selection import RULES, Selection
from .isolation import die_with_parent
from .lava.process import DeltaEncoder, DeltaNeuron, DeltaPopulation, DeltaSynapse, Readout
from .lava_run import folds, fused, lava_steps
from .spec import NetSpec, Population, Projection, load_spec, projection_key


def _synapse_params(proj: Projection) -> dict:
    """What a projection's synapse process takes from the spec (DeltaSynapse, DeltaPopulation)."""
    return dict(ops=list(proj.ops), fanout=proj.fanout, in_size=int(np.prod(proj.ops[0].in_shape)), shift=proj.shift,
                delay=proj.delay)


def _neuron_params(spec: NetSpec, pop: Population, mode: str, selection: Selection) -> dict:
    """What a population's neuron process takes from the spec and the run (DeltaNeuron, DeltaPopulation)."""
    filters = mode == "ddla" and selection.filters(pop.name)
    select = {**selection.layer(pop.name), "scores": spec.scores[pop.name]} if filters else None
    return dict(bias=pop.bias, v_th=pop.v_th, decay=pop.decay, dv=pop.dv, reset=pop.reset, mode=mode,
                select=select, depth=pop.depth, fill=pop.fill,
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

    def __init__(self, spec: NetSpec, mode: str, selection: Selection, num_samples: int, graph: str = "fused",
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
                proc = self.population(pop, mode, selection, window, encoding)
                outputs[pop.inputs[0].source].connect(proc.s_in)
                outputs[spec.readout.name if pop.name == self.folds.readout else pop.name] = proc.s_out
                continue
            if pop.kind == "readout":
                proc = Readout(size=pop.size, bias=pop.bias, depth=pop.depth, fill=pop.fill,
                               record=self.record_path(pop), **window)
                self.readout_active = proc.active
            else:
                proc = DeltaNeuron(size=pop.size, **_neuron_params(spec, pop, mode, selection),
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

    def population(self, pop: Population, mode: str, selection: Selection, window: dict, encoding: str
                   ) -> DeltaPopulation:
        """The fused process of `pop`, with the encoder and the readout if they fold into it."""
        spec, proj = self.spec, pop.inputs[0]
        readout = None
        if pop.name == self.folds.readout:
            r = spec.readout
            readout = dict(**_synapse_params(r.inputs[0]), bias=r.bias, depth=r.depth, fill=r.fill, size=r.size,
                           record=self.record_path(r))
        proc = DeltaPopulation(size=pop.size, **_synapse_params(proj), synapse_depth=spec.depth_of(proj.source),
                               synapse_fill=_fill_of(spec, proj.source), **_neuron_params(spec, pop, mode, selection),
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
            select = proc.proc_params["select"]
            if select is not None and RULES[select["rule"]].neuron_local:  # a neuron-local rule's work
                out[f"pending.{name}"] = proc.pending.get()
        for name, syns in self.synapses.items():
            sops = [var.get() for _, var in syns]
            out[f"sops.{name}"] = sum(sops)
            for (source, _), value in zip(syns, sops):  # two paths from one source add up, as in sim.py
                key = f"sops_proj.{projection_key(source, name)}"
                out[key] = out.get(key, 0) + value
        return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


def run_network(spec: NetSpec, frames: np.ndarray, mode: str, selection: Selection, graph: str = "fused",
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
    net = LavaNetwork(spec, mode, selection, n, graph, batch, record)
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


def worker_main(argv: list[str]) -> int:
    die_with_parent()
    job, result = argv
    spec, extra = load_spec(job)
    params = json.loads(extra["run"].tobytes().decode())
    try:
        out = run_network(spec, extra["frames"], params["mode"], Selection.from_dict(params["selection"]),
                          params["graph"],
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
