"""lava-dl's own reader and runner of a netx file, the anchor of `ir.read_netx`: the network that
`lava.lib.dl.netx.hdf5.Network` builds from the file (Lava `Dense`/`Conv` + `LIF` blocks, bit-accurate
fixed point), fed spikes from a `RingBuffer`. Run through `lava_run.run_isolated`. The network
resets as lava-dl's tutorials run it (`reset_offset=1`): netx staggers the layers' resets so that
each layer starts from rest in the step its first input arrives, rather than integrating its bias
alone while Lava's pipeline fills; that is our semantics of one sample.

    python tests/lava_netx_anchor.py NET.net JOB.npz OUT.npz

JOB holds `spikes` (T, C, H, W) or (T, n) in our layout (channels first). OUT holds each block's
spikes `s{k}` (T, *shape of block k in our layout), realigned for the one-step delay of every
synapse so that step t of every block answers input step t.
"""
from __future__ import annotations

import sys

import numpy as np
from lava.lib.dl import netx
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.sink import RingBuffer as Sink
from lava.proc.io.source import RingBuffer as Source


def lava_layout(x: np.ndarray) -> np.ndarray:
    """(T, C, H, W) -> Lava's (W, H, C, T); (T, n) -> (n, T)."""
    return x.T if x.ndim == 2 else x.transpose(3, 2, 1, 0)


def main(net_file: str, job: str, out: str) -> None:
    spikes = np.load(job)["spikes"]
    steps = spikes.shape[0]
    input_shape = tuple(spikes.shape[1:][::-1])  # WHC
    net = netx.hdf5.Network(net_config=net_file, input_shape=input_shape, reset_interval=2 * steps + 8, reset_offset=1)
    source = Source(data=lava_layout(spikes).astype(float))
    source.s_out.connect(net.inp)
    sinks = []
    for block in net.layers:
        sink = Sink(shape=block.out.shape, buffer=steps + len(net.layers))
        block.out.connect(sink.a_in)
        sinks.append(sink)
    try:
        net.run(condition=RunSteps(num_steps=steps + len(net.layers)), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        recorded = [s.data.get() for s in sinks]
    finally:
        net.stop()
    result, lag = {}, 0
    for k, (block, r) in enumerate(zip(net.layers, recorded)):
        lag += type(block).__name__ != "Input"  # every synapse delays by one step, the input block has none
        r = r[..., lag: lag + steps]
        result[f"s{k}"] = r.T if r.ndim == 2 else r.transpose(3, 2, 1, 0)
    np.savez(out, **result)


if __name__ == "__main__":
    main(*sys.argv[1:4])
