"""Which neurons DDLA's selection starves: per spiking layer of a DDLA checkpoint, the share of
each neuron's pending changes (steps t >= 2 where what it spikes differs from what its
receivers hold) that the filter drops, deployed (Loihi fixed point, the fast simulator).

    OMP_NUM_THREADS=1 python benchmarks/ddla_starvation.py CHECKPOINT [--data-dir DIR] [--keep K]
        [--selection RULE] [--samples 300]

Top-k ranks the same neurons first at every step, so a neuron ranked last can lose every change
it has: its receivers then hold its first-step value for the whole sample. A neuron-local rule
sends every change within its bound. The table gives, per layer, the neurons with a pending
change, the median share dropped, the neurons that lose 99% or more of theirs and those that
lose none, and the share of (sample, neuron) pairs whose receivers hold a wrong value at the
last step. Default: the checkpoint's rule and k (a neuron-local rule's thresholds are set on 256
training samples for another rule or k).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddla_neuro.checkpoint import load_checkpoint  # noqa: E402
from ddla_neuro.ddla.keep import keep_label, keep_of  # noqa: E402
from ddla_neuro.ddla.selection import RULES  # noqa: E402
from ddla_neuro.deploy.loading import prepare  # noqa: E402
from ddla_neuro.deploy.pipeline import DeployOptions, pick_rule  # noqa: E402
from ddla_neuro.deploy.sim import simulate  # noqa: E402
from ddla_neuro.train import resolve_keep  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--data-dir")
    ap.add_argument("--keep", help="default: the checkpoint's")
    ap.add_argument("--selection", choices=tuple(RULES), help="default: the checkpoint's")
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    options = DeployOptions(profile="loihi2", checkpoint=args.checkpoint, data_dir=args.data_dir, seed=args.seed,
                            selection=args.selection)
    deployed = prepare(options)
    spec, meta = deployed.spec, deployed.spec.meta
    net = load_checkpoint(args.checkpoint).net
    keep = resolve_keep(args.keep if args.keep else meta.get("keep", 0.5), net)
    rule = pick_rule(options, deployed.model)
    frames = deployed.frames[: args.samples]
    run = simulate(spec, frames, "ddla", deployed.selection(rule, keep), record=True)
    n, steps = len(frames), spec.timesteps
    print(f"{args.checkpoint} on {n} {deployed.model['dataset']} test samples, {rule}, k = {keep_label(keep)}, "
          f"deployed\n")
    print("| layer | k | neurons | with a pending change | median share dropped | lose >= 99% | lose none "
          "| receivers wrong at the last step |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for pop in spec.spiking:
        spikes = run.activity[pop.name].reshape(n, steps, -1).astype(np.float64)
        sent = run.sent[pop.name].reshape(n, steps, -1)
        held = np.cumsum(sent, axis=1)  # what the receivers hold after each step
        pending = np.concatenate([spikes[:, :1], spikes[:, 1:] - held[:, :-1]], axis=1) != 0
        dropped = pending & (sent == 0)
        changes, drops = pending[:, 1:].sum((0, 1)), dropped[:, 1:].sum((0, 1))  # t >= 2: the filter's steps
        active = changes > 0
        share = drops[active] / changes[active]
        wrong = float(np.mean(spikes[:, -1] != held[:, -1]))
        print(f"| {pop.name} | {keep_of(keep, pop.name):g} | {spikes.shape[2]:,} | {int(active.sum()):,} | "
              f"{np.median(share):.2f} | {100 * np.mean(share >= 0.99):.1f}% | {100 * np.mean(share == 0):.1f}% | "
              f"{100 * wrong:.1f}% |")


if __name__ == "__main__":
    main()
