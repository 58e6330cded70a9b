"""The fast simulator at scale against a plain torch forward of the same network.

    python benchmarks/sim_scale.py [--samples 8] [--batch 8] [--networks ...] [--json PATH]

For each network (random weights scaled so that every layer spikes, fixed point, random
images): samples/s of `simulate` in dense, delta and ddla (k = 0.5, random statistics) mode,
and of the network's own eval forward (multi-step, float32, the same batch), measured in one
process one after the other, each the best of two passes; and the process's peak resident set
(VmHWM, reset before each network) after the network's runs. The deploy command's dense run
also counts NeuroBench's operations (a second pass over the convolutions); this does not. JSON rows: network, mode, device, batch, samples_per_s,
torch_forward_samples_per_s, peak_rss_mb. CPU only: the simulator does not run on CUDA yet.
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
sys.path.insert(0, str(ROOT / "tests"))

from deploy_nets import dyadic_  # noqa: E402
from ddla_neuro.deploy.ir import input_frames, network_to_nir, nir_to_spec  # noqa: E402
from ddla_neuro.deploy.quant import quantize, quantize_input  # noqa: E402
from ddla_neuro.deploy.sim import simulate  # noqa: E402
from ddla_neuro.zoo import build_model  # noqa: E402

NETWORKS = {"convnet28": ("convnet", (1, 28, 28)), "vgg": ("vgg", (3, 32, 32)),
            "resnet19": ("resnet19", (3, 32, 32)), "sdt": ("sdt", (3, 32, 32))}
MODES = ("dense", "delta", "ddla")


def best_rate(run, samples: int) -> float:
    """Samples per second of the faster of two passes."""
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return samples / min(times)


def peak_rss_mb() -> float:
    return next(int(line.split()[1]) / 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))


def measure(name: str, samples: int, batch: int, timesteps: int) -> list[dict]:
    open("/proc/self/clear_refs", "w").write("5")  # the peak resident set from here on
    model, shape = NETWORKS[name]
    torch.manual_seed(0)
    net = dyadic_(build_model(model, num_classes=10, input_shape=shape, timesteps=timesteps), 0, 3.0).eval()
    spec = quantize(nir_to_spec(network_to_nir(net)))
    rng = np.random.default_rng(0)
    spec.scores = {p.name: rng.random(p.shape).astype(np.float32) for p in spec.spiking}
    x = torch.rand(samples, *shape)
    frames = quantize_input(input_frames(net, x), spec)

    def forward():
        with torch.no_grad():
            for i in range(0, samples, batch):
                net.run(x[i:i + batch])

    torch_rate = best_rate(forward, samples)
    rows = []
    for mode in MODES:
        rate = best_rate(lambda: simulate(spec, frames, mode, 0.5 if mode == "ddla" else 1.0, batch_size=batch),
                         samples)
        rows.append({"network": name, "mode": mode, "device": "cpu", "batch": batch, "samples_per_s": rate,
                     "torch_forward_samples_per_s": torch_rate, "peak_rss_mb": peak_rss_mb()})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--networks", default=",".join(NETWORKS))
    ap.add_argument("--json")
    args = ap.parse_args()
    print(f"| network | mode | simulator samples/s | torch forward samples/s | forward / simulator | peak RSS |")
    print("|---|---|---:|---:|---:|---:|")
    rows = []
    for name in args.networks.split(","):
        for r in measure(name, args.samples, args.batch, args.timesteps):
            rows.append(r)
            print(f"| {r['network']} | {r['mode']} | {r['samples_per_s']:.2f} | {r['torch_forward_samples_per_s']:.2f} | "
                  f"{r['torch_forward_samples_per_s'] / r['samples_per_s']:.1f}x | {r['peak_rss_mb']:,.0f} MB |",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
