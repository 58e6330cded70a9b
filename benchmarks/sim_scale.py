"""The fast simulator at scale against a plain torch forward of the same network.

    python benchmarks/sim_scale.py [--samples 8] [--batch 8[,32,...]] [--networks ...] [--device cpu|cuda|auto]
                                   [--json PATH]

For each network (random weights scaled so that every layer spikes, fixed point, random
images): samples/s of `simulate` in dense, delta and ddla (the default rule, k = 0.5, its
thresholds set on the frames) mode,
and of the network's own eval forward (multi-step, float32, the same batch, the same device)
measured right before each mode, in one process, each the fastest of its passes (at least
two, and at least a second of them); and the peak memory after the network's runs: the
process's resident set (VmHWM, reset before each network) on the CPU, the GPU's peak
allocation on CUDA. The deploy command's dense run also counts NeuroBench's operations (a
second pass over the convolutions); this does not. JSON rows: network, mode, device, batch,
samples_per_s, torch_forward_samples_per_s, peak_rss_mb (the peak memory, either kind). Several
batches give the scale table: how rate and memory grow with the batch and the network. A bad
argument, CUDA asked for where there is none, or a batch the simulator's memory estimate says
will not fit: one line before any run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "helpers"))  # deploy_nets: the tests' networks

from deploy_nets import dyadic_  # noqa: E402
from ddla_neuro.deploy.ir import input_frames, network_to_nir, nir_to_spec  # noqa: E402
from ddla_neuro.deploy.quant import quantize, quantize_input  # noqa: E402
from ddla_neuro.deploy.run import gib  # noqa: E402
from ddla_neuro.deploy.sim import device_memory, estimate_peak_bytes, simulate  # noqa: E402
from ddla_neuro.deploy.spec import NetSpec  # noqa: E402
from ddla_neuro.deploy.thresholds import calibrate_selection  # noqa: E402
from ddla_neuro.ddla.selection import DEFAULT_RULE  # noqa: E402
from ddla_neuro.devices import DEVICES, select_device  # noqa: E402
from ddla_neuro.errors import UserError  # noqa: E402
from ddla_neuro.zoo import build_model  # noqa: E402

NETWORKS = {"convnet28": ("convnet", (1, 28, 28)), "vgg": ("vgg", (3, 32, 32)),
            "resnet19": ("resnet19", (3, 32, 32)), "sdt": ("sdt", (3, 32, 32))}
MODES = ("dense", "delta", "ddla")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_rate(run, samples: int, min_seconds: float = 1.0) -> float:
    """Samples per second of the fastest pass, of at least two and as many more as fit in
    `min_seconds` (a small network's pass takes milliseconds)."""
    times: list[float] = []
    while len(times) < 2 or sum(times) < min_seconds:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return samples / min(times)


def peak_mb(device: torch.device) -> float:
    """The peak memory since `reset_peak`: the GPU's allocations, or the process's resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return next(int(line.split()[1]) / 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        open("/proc/self/clear_refs", "w").write("5")  # VmHWM from here on


def network(name: str, timesteps: int) -> tuple[torch.nn.Module, NetSpec]:
    """The benchmark's network (random weights scaled so that every layer spikes) and its fixed-point spec."""
    model, shape = NETWORKS[name]
    torch.manual_seed(0)
    net = dyadic_(build_model(model, num_classes=10, input_shape=shape, timesteps=timesteps), 0, 3.0).eval()
    return net, quantize(nir_to_spec(network_to_nir(net)))


def check_fits(names: list[str], batches: list[int], timesteps: int, device: torch.device) -> None:
    """UserError, before any run, for a batch whose estimated peak (`sim.estimate_peak_bytes`)
    exceeds what `simulate` would allow itself (80% of the memory free on the device): it would
    shrink the batch and the row would not measure the batch it names."""
    budget = int(0.8 * device_memory(device))
    for name in names:
        spec = network(name, timesteps)[1]
        for batch in batches:
            need = estimate_peak_bytes(spec, batch)
            if need > budget:
                raise UserError(f"{name} at batch {batch} needs about {gib(need)} by the simulator's estimate, "
                                f"{gib(budget)} may be used on {device.type}: use a smaller --batch")


def measure(name: str, samples: int, batch: int, timesteps: int, device: torch.device) -> list[dict]:
    reset_peak(device)
    net, spec = network(name, timesteps)
    shape = NETWORKS[name][1]
    rng = np.random.default_rng(0)
    spec.scores = {p.name: rng.random(p.shape).astype(np.float32) for p in spec.spiking}
    x = torch.rand(samples, *shape)
    frames = quantize_input(input_frames(net, x), spec)
    net, x = net.to(device), x.to(device)

    def forward():
        with torch.no_grad():
            for i in range(0, samples, batch):
                net.run(x[i:i + batch])
        sync(device)

    # DDLA: the default rule, its thresholds set on these frames to send half the changes
    selection = calibrate_selection(spec, frames, DEFAULT_RULE, 0.5)
    rows = []
    for mode in MODES:  # the forward measured next to each mode: a slow spell falls on both
        torch_rate = best_rate(forward, samples)
        rate = best_rate(lambda mode=mode: simulate(spec, frames, mode, selection if mode == "ddla" else None,
                                                    batch_size=batch, device=device), samples)
        rows.append({"network": name, "mode": mode, "device": device.type, "batch": batch, "samples_per_s": rate,
                     "torch_forward_samples_per_s": torch_rate, "peak_rss_mb": peak_mb(device)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=8, help="samples per row (at least the batch)")
    ap.add_argument("--batch", default="8", help="the batch, or several (8,32,128): a row per network and batch")
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--networks", default=",".join(NETWORKS))
    ap.add_argument("--device", default="cpu", choices=DEVICES)
    ap.add_argument("--json")
    args = ap.parse_args()
    try:
        names, batches, device = checked(args)
    except UserError as e:
        sys.exit(f"sim_scale.py: error: {e}")
    print("| network | batch | mode | simulator samples/s | torch forward samples/s | forward / simulator | peak RSS |")
    print("|---|---:|---|---:|---:|---:|---:|")
    rows = []
    for name in names:
        for batch in batches:
            for r in measure(name, max(args.samples, batch), batch, args.timesteps, device):
                rows.append(r)
                print(f"| {r['network']} | {batch} | {r['mode']} | {r['samples_per_s']:.2f} | "
                      f"{r['torch_forward_samples_per_s']:.2f} | "
                      f"{r['torch_forward_samples_per_s'] / r['samples_per_s']:.1f}x | {r['peak_rss_mb']:,.0f} MB |",
                      flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


def checked(args: argparse.Namespace) -> tuple[list[str], list[int], torch.device]:
    """The networks, batches and device of the command line, each checked before any run."""
    names = args.networks.split(",")
    unknown = [n for n in names if n not in NETWORKS]
    if unknown:
        raise UserError(f"unknown network {unknown[0]!r}; choose from {', '.join(NETWORKS)}")
    try:
        batches = [int(b) for b in args.batch.split(",")]
    except ValueError:
        raise UserError(f"--batch takes whole numbers separated by commas, got {args.batch!r}") from None
    if min(batches) < 1 or args.samples < 1 or args.timesteps < 1:
        raise UserError("--batch, --samples and --timesteps must be at least 1")
    device = select_device(args.device)
    check_fits(names, batches, args.timesteps, device)
    return names, batches, device


if __name__ == "__main__":
    main()
