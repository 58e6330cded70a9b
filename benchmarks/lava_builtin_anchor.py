"""The anchor of benchmarks/lava_speed.py: the same feed-forward network built from Lava's own
processes, `Dense` (every projection unrolled to a dense matrix) and `LIFReset` (IF/LIF with
time-based reset), sending dense spikes, float. Streams the samples exactly as our runner
does (Injector in, one `run(RunSteps(T))` per sample, Extractor out).

    python benchmarks/lava_builtin_anchor.py JOB.npz     (a float NetSpec with `frames`)

Prints one JSON line: build_s, run_s, steps and the logits' predictions. Run it through
`ddla_neuro.deploy.isolation.run_isolated`, which kills its process group at the end.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.dense.process import Dense
from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
from lava.proc.io.injector import Injector, PyLoihiInjectorModel
from lava.proc.lif.process import LIFReset

from ddla_neuro.deploy.ops import apply_ops
from ddla_neuro.deploy.spec import load_spec


def dense_matrix(proj) -> np.ndarray:
    """The projection's linear ops as one (n_out, n_in) matrix, column by column."""
    n_in = int(np.prod(proj.ops[0].in_shape))
    eye = np.eye(n_in)
    return np.stack([apply_ops(proj.ops, eye[i]).reshape(-1) for i in range(n_in)], axis=1)


def main(job: str) -> None:
    spec, extra = load_spec(job)
    frames = extra["frames"]
    n, t = frames.shape[:2]
    flat = frames.reshape(n, t, -1)
    t0 = time.perf_counter()
    buffer = t + spec.latency + 1
    inj = Injector(shape=(flat.shape[2],), buffer_size=buffer)
    port = inj.out_port
    for pop in spec.populations:
        if len(pop.inputs) != 1 or pop.inputs[0].delay != 1:
            raise SystemExit("the built-in anchor handles feed-forward chains only")
        dense = Dense(weights=dense_matrix(pop.inputs[0]), num_message_bits=24 if pop.depth == 1 else 0)
        port.connect(dense.s_in)
        if pop.kind == "readout":
            port = dense.a_out
            break
        lif = LIFReset(shape=(pop.size,), du=1.0, dv=1.0 - pop.decay, vth=pop.v_th, bias_mant=pop.bias.reshape(-1),
                       reset_interval=t, reset_offset=(1 + pop.depth) % t)
        dense.a_out.connect(lif.a_in)
        port = lif.s_out
    ext = Extractor(shape=(spec.readout.size,), buffer_size=buffer)
    port.connect(ext.in_port)
    cfg = Loihi2SimCfg(select_tag="floating_pt",
                       exception_proc_model_map={Extractor: PyLoihiExtractorModel, Injector: PyLoihiInjectorModel})
    ext.create_runtime(run_cfg=cfg)
    t1 = time.perf_counter()
    outs = []
    for frames_i in list(flat) + [np.zeros((spec.latency, flat.shape[2]))]:
        for f in frames_i:
            inj.send(f)
        ext.run(condition=RunSteps(num_steps=len(frames_i)))
        outs += [ext.receive() for _ in frames_i]
    t2 = time.perf_counter()
    ext.stop()
    logits = np.stack(outs)[spec.latency:].reshape(n, t, -1) + spec.readout.bias.reshape(-1)
    print(json.dumps({"build_s": t1 - t0, "run_s": t2 - t1, "steps": n * t + spec.latency,
                      "predictions": logits.mean(1).argmax(1).tolist()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
