"""Training cost of DDLA against the baseline on the same device.

    python benchmarks/ddla_overhead.py [--device auto|cpu|cuda] [--timesteps 6] [--models convnet,convnet28,vgg]
                                       [--rounds 3] [--json PATH] [--profile]

Samples/s of training (forward, backward, Adam step) for: the baseline multi-step, the
baseline single-step, DDLA with the default neuron-local selection, DDLA with top-k ranked by the
learnt statistics, and top-k ranked by the paper's per-sample label gradient (one extra backward
of each step's loss); k = 0.5, lambda = 0.5.
convnet trains on one epoch of digits, convnet28 on `--samples` Fashion-MNIST images, vgg on
`--samples` CIFAR-shaped random inputs.
The executions run in turn, `--rounds` times (each a full pass over the data): a table row
gives each execution's median ms per step and the median of the per-round ratios.
Aims: DDLA <= 2x the time of the single-step baseline (issue 14), <= 1.3x (issues 29, 38).
`--profile`: a fresh single-step baseline and DDLA (the default) per model, an epoch each, then
one more under torch's profiler: the operator calls per training step, their mean self time, and the ops
whose self time DDLA adds most, which shows whether the overhead is per element or per call.
"""
from __future__ import annotations

import argparse
import statistics
from collections import Counter

from torch.profiler import ProfilerActivity, profile

from train_speed import (EXECUTIONS, add_common_args, interleaved_seconds, prepare, run_main, trainer, training_data,
                         write_rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, timesteps=6, models="convnet,convnet28,vgg")
    p.add_argument("--rounds", type=int, default=3, help="passes of every execution, in turn")
    p.add_argument("--profile", action="store_true", help="profile one epoch of single and ddla per model")
    args = p.parse_args()
    device, dev, digits, cifar = prepare(args)
    print(f"device: {dev}, T={args.timesteps}, batch {args.batch_size}, keep 0.5, lambda 0.5")
    print(f"{'model':9s} " + " ".join(f"{e:>13s}" for e in EXECUTIONS) + f" {'ddla/single':>12s}"
          f" {'ddla-topk/single':>17s} {'ddla-label-gradient/single':>27s}")
    rows = []
    for name in args.models.split(","):
        x, y = training_data(name, digits, cifar)
        seconds = interleaved_seconds({e: trainer(name, x, y, args.timesteps, args.batch_size, e, device)
                                       for e in EXECUTIONS}, args.rounds)
        steps = -(-len(x) // args.batch_size)
        ms = {e: [1000 * s / steps for s in t] for e, t in seconds.items()}  # per training step of one batch
        ratio = {e: statistics.median(a / b for a, b in zip(ms[e], ms["single"])) for e in EXECUTIONS}
        print(f"{name:9s} " + " ".join(f"{statistics.median(ms[e]):10.1f} ms" for e in EXECUTIONS)
              + f" {ratio['ddla']:12.2f} {ratio['ddla-topk']:17.2f} {ratio['ddla-label-gradient']:27.2f}", flush=True)
        rows.append({"model": name, "device": dev, "timesteps": args.timesteps, "batch_size": args.batch_size,
                     "samples": len(x), "ms_per_step": ms, "ratio_to_single": ratio})
        if args.profile:
            rows[-1]["profile"] = profile_overhead(name, x, y, args, device, steps)
    write_rows(args.json, rows)


def profile_overhead(name: str, x, y, args: argparse.Namespace, device, steps: int) -> dict:
    """Per training step of one profiled epoch: operator calls, self time and its mean per call,
    for the single-step baseline and DDLA; and the ops whose self time DDLA adds most."""
    per_op, figures = {}, {}
    for execution in ("single", "ddla"):
        epoch = trainer(name, x, y, args.timesteps, args.batch_size, execution, device)
        epoch()  # as in the timed rounds: statistics learnt, memory allocated once
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            epoch()
        ops = prof.key_averages()
        per_op[execution] = Counter({e.key: e.self_cpu_time_total / steps / 1e3 for e in ops})
        calls = sum(e.count for e in ops) / steps
        ms = sum(per_op[execution].values())
        figures[execution] = {"calls_per_step": calls, "self_ms_per_step": ms, "us_per_call": 1e3 * ms / calls}
        print(f"  {execution:10s} profiled: {calls:,.0f} op calls per step, {ms:.1f} ms self time, "
              f"{1e3 * ms / calls:.1f} us per call")
    added = per_op["ddla"]
    added.subtract(per_op["single"])
    top = added.most_common(8)
    print("  ops DDLA adds most, ms per step: " + ", ".join(f"{op} {ms:.2f}" for op, ms in top))
    return {"executions": figures, "added_ms_per_step": dict(top)}


if __name__ == "__main__":
    run_main(main, "ddla_overhead.py")
