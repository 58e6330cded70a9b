"""Accuracy and events of a checkpoint after deployment, in the fast simulator (bit-exact with
Lava), float spec vs Loihi fixed point, dense / delta / DDLA.

    python benchmarks/deploy_accuracy.py [CHECKPOINT] [--keep K]

Default: the shipped model on the digits test split.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddla_neuro.deploy.loading import prepare  # noqa: E402
from ddla_neuro.deploy.pipeline import DeployOptions, pick_rule  # noqa: E402
from ddla_neuro.deploy.sim import simulate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", default=str(ROOT / "models" / "digits-convnet-ddla" / "model.pt"))
    ap.add_argument("--keep", type=float, help="DDLA keep ratio (default: the checkpoint's)")
    args = ap.parse_args()
    print(f"{'precision':>10} {'mode':>6} {'accuracy':>9} {'events/sample (spiking layers)':>31} {'SOPs/sample':>12}"
          f" {'wall':>8}")
    for precision in ("float", "fixed"):
        options = DeployOptions(profile="loihi2", checkpoint=args.checkpoint, fixed=precision == "fixed")
        deployed = prepare(options)
        labels = deployed.labels
        keep = args.keep if args.keep is not None else deployed.model["trained_keep"] or 1.0
        # the deploy command's rule; the checkpoint's thresholds at its own rule and k, else set on training samples
        selection = deployed.selection(pick_rule(options, deployed.model), keep)
        for mode in ("dense", "delta", "ddla"):
            t0 = time.perf_counter()
            r = simulate(deployed.spec, deployed.frames, mode, selection if mode == "ddla" else None)
            wall = time.perf_counter() - t0
            events = r.counts.total("events", skip=("input",)) / len(labels)
            sops = r.counts.total("sops") / len(labels)
            acc = float(np.mean(r.predictions == labels))
            print(f"{precision:>10} {mode:>6} {100 * acc:8.2f}% {events:31.1f} {sops:12.0f} {wall:7.3f}s")


if __name__ == "__main__":
    main()
