"""Training cost of DDLA against the baseline on the same device.

    python benchmarks/ddla_overhead.py [--device auto|cpu|cuda] [--timesteps 6] [--models convnet,vgg] [--json PATH]

Samples/s of training (forward, backward, Adam step) for: the baseline multi-step, the
baseline single-step, DDLA with the paper's per-step sensitivity (one extra backward of each
step's loss) and DDLA with the running-average sensitivity; k = 0.5, lambda = 0.5.
convnet trains on one epoch of digits; vgg on `--samples` CIFAR-shaped random inputs.
Aim: DDLA <= 2x the time of the single-step baseline.
"""
from __future__ import annotations

import argparse
import json

import torch

from ddla_neuro.data import load_digits
from ddla_neuro.train import select_device
from train_speed import EXECUTIONS, throughput


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--timesteps", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--samples", type=int, default=0, help="CIFAR-shaped samples for vgg (0: 256 CPU / 4096 GPU)")
    p.add_argument("--models", default="convnet,vgg")
    p.add_argument("--json")
    args = p.parse_args()
    device = select_device(args.device)
    digits = load_digits()
    n = args.samples or (4096 if device.type == "cuda" else 256)
    g = torch.Generator().manual_seed(0)
    cifar = (torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {dev}, T={args.timesteps}, batch {args.batch_size}, keep 0.5, lambda 0.5")
    print(f"{'model':8s} " + " ".join(f"{e:>13s}" for e in EXECUTIONS) + f" {'ddla-step/single':>17s}"
          f" {'ddla-running/single':>20s}")
    rows = []
    for name in args.models.split(","):
        x, y = (digits.x_train, digits.y_train) if name in ("mlp", "convnet") else cifar
        rate = {e: throughput(name, x, y, args.timesteps, args.batch_size, e, device) for e in EXECUTIONS}
        ms = {e: 1000 * args.batch_size / r for e, r in rate.items()}  # ms per training step of one batch
        print(f"{name:8s} " + " ".join(f"{ms[e]:10.1f} ms" for e in EXECUTIONS)
              + f" {ms['ddla-step'] / ms['single']:17.2f} {ms['ddla-running'] / ms['single']:20.2f}", flush=True)
        rows.append({"model": name, "device": dev, "timesteps": args.timesteps, "batch_size": args.batch_size,
                     "ms_per_step": ms, "samples_per_s": rate})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
