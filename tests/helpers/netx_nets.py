"""Helpers of the netx tests: slayer networks written by slayer's own exporter, and lava-dl's
own runner of a netx file (`lava_netx_anchor.py`), run isolated."""
import sys
from pathlib import Path

import h5py
import numpy as np
import torch
from lava.lib.dl import slayer

from ddla_neuro.deploy.isolation import run_isolated
from ddla_neuro.deploy.lava_run import run_lava
from ddla_neuro.deploy.sim import simulate

ANCHOR = Path(__file__).parents[1] / "anchors" / "lava_netx_anchor.py"
FIXTURE = Path(__file__).parents[1] / "data" / "lava-dl-mnist" / "trained_mnist_network.net"
T = 12
CUBA = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.1}


def export(blocks: list, x: torch.Tensor, path: Path) -> list[np.ndarray]:
    """Runs slayer's forward (input NCHWT or NCT) and writes the netx file with slayer's own
    exporter. Returns the spikes of every neuron block as (N, T, ...) in our step alignment:
    slayer delays each block's output by one step, as Lava's synapses do."""
    outs, shift = [], 0
    with torch.no_grad():
        for block in blocks:
            x = block(x)
            if getattr(block, "neuron", None) is not None:
                shift += 1
                outs.append(np.moveaxis(x.numpy(), -1, 1)[:, shift:])
    with h5py.File(path, "w") as f:
        group = f.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(group.create_group(str(i)))
    return outs


def lava_dl_blocks(path: Path, tmp_path: Path, steps: int | None = None, **job) -> list[np.ndarray]:
    """Every block's output (T, ...) from lava-dl's netx runner on one job (`lava_netx_anchor.py`:
    spikes, bias, graded or host, and reset); `steps` for a bias frame (a stream has its own)."""
    job_file, out = tmp_path / "job.npz", tmp_path / "out.npz"
    steps = steps or len(next(v for k, v in job.items() if k in ("spikes", "graded", "host")))
    np.savez(job_file, steps=steps, **job)
    run_isolated([sys.executable, str(ANCHOR), str(path), str(job_file), str(out)], timeout=300)
    with np.load(out) as f:
        return [f[f"s{k}"] for k in range(len(f.files))]


def lava_dl_run(path: Path, spikes: np.ndarray, tmp_path: Path) -> list[np.ndarray]:
    """Per sample of (N, T, ...) spikes: every block's spikes from lava-dl's netx runner."""
    per_sample = [lava_dl_blocks(path, tmp_path, spikes=sample) for sample in spikes]
    return [np.stack(layer) for layer in zip(*per_sample)]


def conv_net(pool: bool) -> list:
    torch.manual_seed(0)
    blocks = [slayer.block.cuba.Conv(CUBA, 2, 4, 3, padding=1, weight_scale=2)]
    if pool:
        blocks.append(slayer.block.cuba.Pool(CUBA, 2))
    side = 4 if pool else 8
    return blocks + [slayer.block.cuba.Flatten(), slayer.block.cuba.Dense(CUBA, 4 * side * side, 10, weight_scale=3)]


def spikes(shape: tuple[int, ...], seed: int = 0, rate: float = 0.3) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.float32)


def assert_same_spikes(spec, sim, reference: list[np.ndarray], skip: int = 0) -> None:
    """Our simulator's spikes of every population equal the reference's, over the steps both have."""
    for pop, ref in zip(spec.spiking[skip:], reference):
        ours = sim.sent[pop.name].reshape(ref.shape[0], -1, *pop.shape)[:, :ref.shape[1]]
        np.testing.assert_array_equal(ours, ref, err_msg=pop.name)
        assert ref.sum() > 0, pop.name


def assert_lava_equals_simulator(spec, frames: np.ndarray, modes=("dense", "delta"), batch: int = 1) -> None:
    """Our Lava processes: the simulator's logits, counters and every population's activity."""
    for mode in modes:
        sim, lava = simulate(spec, frames, mode, record=True), run_lava(spec, frames, mode, batch=batch, record=True)
        np.testing.assert_array_equal(lava.logits, sim.logits)
        assert lava.counts.to_dict() == sim.counts.to_dict()
        for name, values in sim.activity.items():
            np.testing.assert_array_equal(lava.activity[name], values, err_msg=f"{mode} {name}")


def edit(path: Path, change) -> Path:
    with h5py.File(path, "a") as f:
        change(f)
    return path


def bias_net(path: Path) -> Path:
    """An input layer of CUBA neurons (slayer's Input block, weight 1.5 and bias 0.25: 96 and 16
    as the file stores them), then a conv and a dense layer."""
    export([slayer.block.cuba.Input(CUBA, weight=1.5, bias=0.25)] + conv_net(pool=False), torch.zeros(1, 2, 8, 8, 2),
           path)
    return path


def sdnn_net(path: Path) -> Path:
    """slayer's sigma-delta blocks: Input (SDNN), a conv with biases, a dense layer and the sigma
    readout (Output), as slayer exports them."""
    torch.manual_seed(0)
    params = {"threshold": 0.1, "activation": torch.nn.functional.relu}
    sd = slayer.block.sigma_delta
    blocks = [sd.Input(params), sd.Conv(params, 2, 4, 3, padding=1, weight_scale=2), sd.Flatten(),
              sd.Dense(params, 4 * 8 * 8, 12, weight_scale=3), sd.Output(params, 12, 3)]
    with torch.no_grad():
        x = torch.zeros(1, 2, 8, 8, 2)
        for block in blocks:
            x = block(x)
    with h5py.File(path, "w") as f:
        group = f.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(group.create_group(str(i)))
        f["layer/1/bias"] = np.array([3.0, -2.0, 5.0, 0.0])
    return path


def graded(steps: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-40, 40, (steps, 2, 8, 8))
