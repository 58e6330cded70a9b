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

from ddla_neuro.checkpoint import checkpoint_dataset, load_checkpoint  # noqa: E402
from ddla_neuro.deploy.ir import checkpoint_to_spec, input_frames  # noqa: E402
from ddla_neuro.deploy.quant import quantize, quantize_input  # noqa: E402
from ddla_neuro.deploy.sim import simulate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", default=str(ROOT / "models" / "digits-convnet-ddla" / "model.pt"))
    ap.add_argument("--keep", type=float, help="DDLA keep ratio (default: the checkpoint's)")
    args = ap.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    keep = args.keep if args.keep is not None else ckpt.meta.get("keep", 1.0)
    _, data = checkpoint_dataset(ckpt)
    frames = input_frames(ckpt.net, data.x_test)
    labels = data.y_test.numpy()
    spec = checkpoint_to_spec(ckpt)
    print(f"{'precision':>10} {'mode':>6} {'accuracy':>9} {'events/sample (spiking layers)':>31} {'SOPs/sample':>12}"
          f" {'wall':>8}")
    for precision, s in (("float", spec), ("fixed", quantize(spec))):
        f = quantize_input(frames, s) if s.fixed else frames
        for mode in ("dense", "delta", "ddla"):
            t0 = time.perf_counter()
            r = simulate(s, f, mode, keep if mode == "ddla" else 1.0)
            wall = time.perf_counter() - t0
            events = r.counts.total("events", skip=("input",)) / len(labels)
            sops = r.counts.total("sops") / len(labels)
            acc = float(np.mean(r.predictions == labels))
            print(f"{precision:>10} {mode:>6} {100 * acc:8.2f}% {events:31.1f} {sops:12.0f} {wall:7.3f}s")


if __name__ == "__main__":
    main()
