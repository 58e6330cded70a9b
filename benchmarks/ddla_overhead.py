"""Training cost of DDLA against the baseline on the same device.

    python benchmarks/ddla_overhead.py [--device auto|cpu|cuda] [--timesteps 6] [--models convnet,convnet28,vgg]
                                       [--rounds 3] [--json PATH]

Samples/s of training (forward, backward, Adam step) for: the baseline multi-step, the
baseline single-step, DDLA ranked by the learnt statistics (the default) and DDLA with the
paper's per-sample label gradient (one extra backward of each step's loss); k = 0.5, lambda = 0.5.
convnet trains on one epoch of digits, convnet28 on `--samples` Fashion-MNIST images, vgg on
`--samples` CIFAR-shaped random inputs.
The executions run in turn, `--rounds` times (each a full pass over the data): a table row
gives each execution's median ms per step and the median of the per-round ratios.
Aim: DDLA <= 2x the time of the single-step baseline.
"""
from __future__ import annotations

import argparse
import statistics

from train_speed import EXECUTIONS, add_common_args, interleaved_seconds, prepare, trainer, training_data, write_rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, timesteps=6, models="convnet,convnet28,vgg")
    p.add_argument("--rounds", type=int, default=3, help="passes of every execution, in turn")
    args = p.parse_args()
    device, dev, digits, cifar = prepare(args)
    print(f"device: {dev}, T={args.timesteps}, batch {args.batch_size}, keep 0.5, lambda 0.5")
    print(f"{'model':9s} " + " ".join(f"{e:>13s}" for e in EXECUTIONS) + f" {'ddla-stats/single':>18s}"
          f" {'ddla-label-gradient/single':>27s}")
    rows = []
    for name in args.models.split(","):
        x, y = training_data(name, digits, cifar)
        seconds = interleaved_seconds({e: trainer(name, x, y, args.timesteps, args.batch_size, e, device)
                                       for e in EXECUTIONS}, args.rounds)
        steps = -(-len(x) // args.batch_size)
        ms = {e: [1000 * s / steps for s in t] for e, t in seconds.items()}  # per training step of one batch
        ratio = {e: statistics.median(a / b for a, b in zip(ms[e], ms["single"])) for e in EXECUTIONS}
        print(f"{name:9s} " + " ".join(f"{statistics.median(ms[e]):10.1f} ms" for e in EXECUTIONS)
              + f" {ratio['ddla-stats']:18.2f} {ratio['ddla-label-gradient']:27.2f}", flush=True)
        rows.append({"model": name, "device": dev, "timesteps": args.timesteps, "batch_size": args.batch_size,
                     "samples": len(x), "ms_per_step": ms, "ratio_to_single": ratio})
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()
