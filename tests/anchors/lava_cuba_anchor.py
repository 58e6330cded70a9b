"""Lava's own CUBA network, the anchor of the CUBA neuron: `Dense` + `LIF` (Loihi's current-based
LIF, bit-accurate fixed point) per layer, fed spikes from a `RingBuffer`. Run through
`isolation.run_isolated`.

    python tests/anchors/lava_cuba_anchor.py JOB.npz OUT.npz

JOB holds `spikes` (n_in, T), and per layer k `w{k}` (integer weights), `p{k}` = [du, dv, vth,
bias] (Lava's registers: vth is shifted left by 6 inside, du gets Loihi's +1). OUT holds each
layer's spikes `s{k}` (n_k, T), realigned for the one-step delay of every Dense.
"""
from __future__ import annotations

import sys

import numpy as np
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.dense.process import Dense
from lava.proc.io.sink import RingBuffer as Sink
from lava.proc.io.source import RingBuffer as Source
from lava.proc.lif.process import LIF


def main(job: str, out: str) -> None:
    data = np.load(job)
    spikes = data["spikes"]
    steps = spikes.shape[1]
    layers = sum(1 for k in data.files if k.startswith("w"))
    source = Source(data=spikes.astype(float))
    port, sinks, procs = source.s_out, [], [source]
    for k in range(layers):
        du, dv, vth, bias = (int(v) for v in data[f"p{k}"])
        w = data[f"w{k}"].astype(np.int32)
        dense = Dense(weights=w, num_weight_bits=8)
        lif = LIF(shape=(w.shape[0],), du=du, dv=dv, vth=vth, bias_mant=bias, bias_exp=0)
        port.connect(dense.s_in)
        dense.a_out.connect(lif.a_in)
        sink = Sink(shape=(w.shape[0],), buffer=steps + layers)
        lif.s_out.connect(sink.a_in)
        port, sinks = lif.s_out, sinks + [sink]
        procs += [dense, lif, sink]
    try:
        source.run(condition=RunSteps(num_steps=steps + layers), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        recorded = [s.data.get() for s in sinks]
    finally:
        source.stop()
    # layer k's spike for input step t arrives at step t + k + 1 (one step per Dense)
    np.savez(out, **{f"s{k}": r[:, k + 1: k + 1 + steps] for k, r in enumerate(recorded)})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
