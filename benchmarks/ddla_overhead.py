"""Training cost of DDLA against the baseline on the same device.

    python benchmarks/ddla_overhead.py [--device auto|cpu|cuda] [--timesteps 6] [--models convnet,vgg] [--json PATH]

Samples/s of training (forward, backward, Adam step) for: the baseline multi-step, the
baseline single-step, DDLA ranked by the learnt statistics (the default) and DDLA with the
paper's per-sample label gradient (one extra backward of each step's loss); k = 0.5, lambda = 0.5.
convnet trains on one epoch of digits; vgg on `--samples` CIFAR-shaped random inputs.
Aim: DDLA <= 2x the time of the single-step baseline.
"""
from __future__ import annotations

import argparse

from train_speed import EXECUTIONS, add_common_args, prepare, throughput, training_data, write_rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, timesteps=6, models="convnet,vgg")
    args = p.parse_args()
    device, dev, digits, cifar = prepare(args)
    print(f"device: {dev}, T={args.timesteps}, batch {args.batch_size}, keep 0.5, lambda 0.5")
    print(f"{'model':8s} " + " ".join(f"{e:>13s}" for e in EXECUTIONS) + f" {'ddla-stats/single':>18s}"
          f" {'ddla-label-gradient/single':>27s}")
    rows = []
    for name in args.models.split(","):
        x, y = training_data(name, digits, cifar)
        rate = {e: throughput(name, x, y, args.timesteps, args.batch_size, e, device) for e in EXECUTIONS}
        ms = {e: 1000 * args.batch_size / r for e, r in rate.items()}  # ms per training step of one batch
        print(f"{name:8s} " + " ".join(f"{ms[e]:10.1f} ms" for e in EXECUTIONS)
              + f" {ms['ddla-stats'] / ms['single']:18.2f} {ms['ddla-label-gradient'] / ms['single']:27.2f}", flush=True)
        rows.append({"model": name, "device": dev, "timesteps": args.timesteps, "batch_size": args.batch_size,
                     "ms_per_step": ms, "samples_per_s": rate})
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()
