"""The fast simulator at scale against a plain torch forward of the same network.

    python benchmarks/sim_scale.py [--samples 8] [--batch 8] [--networks ...] [--device cpu|cuda|auto]
                                   [--json PATH]

For each network (random weights scaled so that every layer spikes, fixed point, random
images): samples/s of `simulate` in dense, delta and ddla (k = 0.5, random statistics) mode,
and of the network's own eval forward (multi-step, float32, the same batch, the same device)
measured right before each mode, in one process, each the fastest of its passes (at least
two, and at least a second of them); and the peak memory after the network's runs: the
process's resident set (VmHWM, reset before each network) on the CPU, the GPU's peak
allocation on CUDA. The deploy command's dense run also counts NeuroBench's operations (a
second pass over the convolutions); this does not. JSON rows: network, mode, device, batch,
samples_per_s, torch_forward_samples_per_s, peak_rss_mb (the peak memory, either kind).
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
from ddla_neuro.deploy.sim import simulate  # noqa: E402
from ddla_neuro.devices import DEVICES, select_device  # noqa: E402
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


def measure(name: str, samples: int, batch: int, timesteps: int, device: torch.device) -> list[dict]:
    reset_peak(device)
    model, shape = NETWORKS[name]
    torch.manual_seed(0)
    net = dyadic_(build_model(model, num_classes=10, input_shape=shape, timesteps=timesteps), 0, 3.0).eval()
    spec = quantize(nir_to_spec(network_to_nir(net)))
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

    rows = []
    for mode in MODES:  # the forward measured next to each mode: a slow spell falls on both
        torch_rate = best_rate(forward, samples)
        rate = best_rate(lambda mode=mode: simulate(spec, frames, mode, 0.5 if mode == "ddla" else 1.0,
                                                    batch_size=batch, device=device), samples)
        rows.append({"network": name, "mode": mode, "device": device.type, "batch": batch, "samples_per_s": rate,
                     "torch_forward_samples_per_s": torch_rate, "peak_rss_mb": peak_mb(device)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--networks", default=",".join(NETWORKS))
    ap.add_argument("--device", default="cpu", choices=DEVICES)
    ap.add_argument("--json")
    args = ap.parse_args()
    device = select_device(args.device)
    print("| network | mode | simulator samples/s | torch forward samples/s | forward / simulator | peak RSS |")
    print("|---|---|---:|---:|---:|---:|")
    rows = []
    for name in args.networks.split(","):
        for r in measure(name, args.samples, args.batch, args.timesteps, device):
            rows.append(r)
            print(f"| {r['network']} | {r['mode']} | {r['samples_per_s']:.2f} | "
                  f"{r['torch_forward_samples_per_s']:.2f} | "
                  f"{r['torch_forward_samples_per_s'] / r['samples_per_s']:.1f}x | {r['peak_rss_mb']:,.0f} MB |",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
