"""lava-dl's own reader and runner of a netx file, the anchor of `netx.read_netx`: the network that
`lava.lib.dl.netx.hdf5.Network` builds from the file (Lava `Dense`/`Conv` + `LIFReset` or
`SigmaDelta` blocks, bit-accurate fixed point, `Loihi2SimCfg(select_tag='fixed_pt')`), fed as
lava-dl's tests and tutorials feed it. Run through `isolation.run_isolated`.

    python tests/anchors/lava_netx_anchor.py NET.net JOB.npz OUT.npz

JOB holds one of (our layout, channels first):
- `spikes` (T, C, H, W) or (T, n): input spikes from a `RingBuffer` into `net.inp`;
- `bias` (C, H, W) or (n,): the frame as the input layer's bias mantissa (`in_layer.neuron.bias_mant`);
- `graded` (T, C, H, W): integers from a `RingBuffer` into the input layer's `neuron.a_in`;
- `host` (T, C, H, W): integers through Lava's `DeltaEncoder` (threshold `v_th`, spike_exp 6) into
  `net.inp` of the network built with `skip_layers=1` (lava-dl's PilotNet SDNN encoder on the CPU);
and optionally `reset` = [interval, offset] (lava-dl's; default: none). The run lasts T steps
plus the pipeline. OUT holds each block's output `s{k}` (T, *shape in our layout) realigned so
that step t of every block answers input step t (one step per synapse, one for the encoder).
"""
from __future__ import annotations

import sys

import numpy as np
from lava.lib.dl import netx
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.encoder import DeltaEncoder, PyDeltaEncoderModelDense
from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
from lava.proc.io.source import RingBuffer as Source


def lava_layout(x: np.ndarray) -> np.ndarray:
    """(T, C, H, W) -> Lava's (W, H, C, T); (T, n) -> (n, T)."""
    return x.T if x.ndim == 2 else x.transpose(3, 2, 1, 0)


def ours(x: np.ndarray) -> np.ndarray:
    """Lava's (W, H, C, T) or (n, T) -> (T, C, H, W) or (T, n)."""
    return x.T if x.ndim == 2 else x.transpose(3, 2, 1, 0)


def build(net_file: str, job: dict) -> tuple[netx.hdf5.Network, int, list]:
    """The network fed as the job says, the lag of its first block and the processes to keep alive."""
    reset = job.get("reset")
    kwargs = {} if reset is None else {"reset_interval": int(reset[0]), "reset_offset": int(reset[1])}
    if "host" in job:
        net = netx.hdf5.Network(net_config=net_file, skip_layers=1, **kwargs)
        frames = job["host"]
        encoder = DeltaEncoder(shape=net.inp.shape, vth=int(job["v_th"]), spike_exp=6)
        source = Source(data=lava_layout(frames).astype(np.int32))
        source.s_out.connect(encoder.a_in)
        encoder.s_out.connect(net.inp)
        return net, 1, [source, encoder]  # the encoder sends the step before's (the synapse adds one more)
    if "spikes" in job:
        net = netx.hdf5.Network(net_config=net_file, input_shape=tuple(job["spikes"].shape[1:][::-1]), **kwargs)
        source = Source(data=lava_layout(job["spikes"]).astype(np.int32))
        source.s_out.connect(net.inp)
        return net, 0, [source]
    net = netx.hdf5.Network(net_config=net_file, **kwargs)
    if "bias" in job:
        bias = job["bias"]  # (C, H, W) -> Lava's (W, H, C); a flat layer's (n,) as it is
        net.in_layer.neuron.bias_mant.init = (bias.T if bias.ndim == 3 else bias).astype(int)
        return net, 0, []
    source = Source(data=lava_layout(job["graded"]).astype(np.int32))
    source.s_out.connect(net.in_layer.neuron.a_in)
    return net, 0, [source]


def main(net_file: str, job_file: str, out: str) -> None:
    with np.load(job_file) as f:
        job = {k: f[k] for k in f.files}
    steps = int(job["steps"])
    net, lag, keep = build(net_file, job)
    total = steps + lag + len(net.layers)
    extractors = []
    for block in net.layers:
        extractor = Extractor(shape=block.out.shape, buffer_size=total)
        block.out.connect(extractor.in_port)
        extractors.append(extractor)
    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={
        Extractor: PyLoihiExtractorModel, DeltaEncoder: PyDeltaEncoderModelDense})
    try:
        net.run(condition=RunSteps(num_steps=total), run_cfg=cfg)
        recorded = [np.stack([e.receive() for _ in range(total)], axis=-1) for e in extractors]
    finally:
        net.stop()
    result = {}
    for k, (block, r) in enumerate(zip(net.layers, recorded)):
        lag += k > 0 or type(block).__name__ != "Input"  # every synapse delays by one step, an input block has none
        result[f"s{k}"] = ours(r[..., lag: lag + steps]).astype(np.int64)
    np.savez(out, **result)
    del keep


if __name__ == "__main__":
    main(*sys.argv[1:4])
