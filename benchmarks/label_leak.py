"""Label leakage of the DDLA rankings: training on digits images with random labels, where there
is nothing to learn, so any training accuracy above chance is memorisation or leakage.

    python benchmarks/label_leak.py [--epochs 15] [--timesteps 4] [--keep 0.3] [--seed 0] [--json PATH]

Rows: the baseline; DDLA ranked by the learnt statistics (the default, as deployed); DDLA ranked
by each sample's label gradient (the paper's scheme). `train (as trained)` is the accuracy the
training forward itself reached; `train (inference ranking)` the same training images run the
way evaluation and deployment run them. A gap between the two is label leakage.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from spike_table import call

RUNS = {"baseline": ["--method", "baseline"],
        "ddla (stats)": ["--method", "ddla", "--sensitivity", "stats"],
        "ddla (label-gradient)": ["--method", "ddla", "--sensitivity", "label-gradient"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--timesteps", type=int, default=4)
    p.add_argument("--keep", default="0.3")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    args = p.parse_args()
    rows = []
    print(f"{'run':>22s} {'train (as trained)':>19s} {'train (inference ranking)':>26s} {'test':>7s}")
    with tempfile.TemporaryDirectory() as tmp:
        d = load_digits()
        data = Path(tmp) / "random.npz"
        np.savez(data, images=(d.images / 16.0).astype(np.float32),
                 labels=np.random.default_rng(args.seed).integers(0, 10, len(d.images)))
        for name, extra in RUNS.items():
            out = Path(tmp) / str(len(rows))
            cmd = [sys.executable, "-m", "ddla_neuro.train", "--model", "convnet", "--dataset", "npz", "--data-dir",
                   str(data), "--timesteps", str(args.timesteps), "--epochs", str(args.epochs), "--seed",
                   str(args.seed), "--out", str(out), *extra] + (["--keep", args.keep] if "ddla" in name else [])
            call(cmd)
            last = json.loads((out / "summary.json").read_text())["history"][-1]
            as_trained = last.get("train_accuracy_label_ranked", last["train_accuracy"])
            rows.append({"run": name, "train_accuracy_as_trained": as_trained,
                         "train_accuracy_inference": last["train_accuracy"], "test_accuracy": last["test_accuracy"],
                         "command": " ".join(["python"] + cmd[1:]).replace(str(data), "RANDOM_LABELS.npz")})
            print(f"{name:>22s} {100 * as_trained:18.2f}% {100 * last['train_accuracy']:25.2f}% "
                  f"{100 * last['test_accuracy']:6.2f}%", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
