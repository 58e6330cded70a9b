"""Real NeuroBench 2.3 metrics next to the deploy report's on the shipped models.

    python benchmarks/neurobench_check.py [--models models/digits-convnet-ddla,models/fmnist-convnet-ddla]
                                          [--samples 256] [--out runs/neurobench_check]

For each model, the first `--samples` test images of its dataset: NeuroBench's harness
(`Benchmark` with ClassificationAccuracy, SynapticOperations, ActivationSparsity and
MembraneUpdates) on the float torch network through `ddla_neuro.neurobench_model`, and the
deploy command's dense float run (`--float --mode dense`, the fast simulator) of the same
images. NeuroBench runs the torch model in float32, the simulator's float model is float64 (as
Lava's): a membrane within float32 rounding of its threshold can spike in one and not the
other, so the figures must agree to 1e-6 (relative); the table says which are equal exactly.
Ratios (accuracy, sparsity) NeuroBench averages over batches (accuracy in float32), so they
agree to float32 precision.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.workload import (ActivationSparsity, ClassificationAccuracy, MembraneUpdates,  # noqa: E402
                                         SynapticOperations)
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from ddla_neuro.checkpoint import checkpoint_dataset, load_checkpoint  # noqa: E402
from ddla_neuro.deploy.pipeline import DeployOptions, deploy  # noqa: E402
from ddla_neuro.neurobench_model import frames, neurobench_model  # noqa: E402

METRICS = [ClassificationAccuracy, SynapticOperations, ActivationSparsity, MembraneUpdates]


def neurobench_figures(checkpoint: Path, samples: int, batch_size: int = 64) -> dict[str, float]:
    """NeuroBench's own figures, per sample: its names, SynapticOperations split in three."""
    ckpt = load_checkpoint(checkpoint)
    _, data = checkpoint_dataset(ckpt)
    x, y = data.x_test[:samples], data.y_test[:samples]
    loader = DataLoader(TensorDataset(frames(ckpt.net, x), y), batch_size=batch_size)
    res = Benchmark(neurobench_model(ckpt.net), loader, [], [lambda p: p.argmax(-1)], [[], METRICS]).run()
    synops = res.pop("SynapticOperations")
    return {**res, **{k: synops[k] for k in ("Effective_MACs", "Effective_ACs", "Dense")}}


def our_figures(checkpoint: Path, samples: int, out: Path) -> dict[str, float]:
    """The deploy report's figures under NeuroBench's names."""
    report = deploy(DeployOptions(profile="loihi2", checkpoint=str(checkpoint), backend="fast", fixed=False,
                                  mode="dense", samples=samples, out=str(out)))
    nb = report["neurobench"]
    return {"ClassificationAccuracy": report["modes"]["dense"]["totals"]["accuracy"],
            "Effective_MACs": nb["effective_macs"], "Effective_ACs": nb["effective_acs"], "Dense": nb["dense"],
            "ActivationSparsity": nb["activation_sparsity"], "MembraneUpdates": nb["membrane_updates"]}


def _fmt(v: float) -> str:
    return f"{v:.6f}" if abs(v) < 1 else f"{v:,.1f}"


def relative_difference(theirs: float, ours: float) -> float:
    return abs(theirs - ours) / max(abs(theirs), abs(ours)) if theirs != ours else 0.0


def agree(name: str, theirs: float, ours: float) -> bool:
    """Counts exactly; ratios (NeuroBench averages them over batches, accuracy in float32) to float32 precision."""
    if name in ("ActivationSparsity", "ClassificationAccuracy"):
        return relative_difference(theirs, ours) <= 1e-6
    return theirs == ours


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="models/digits-convnet-ddla,models/fmnist-convnet-ddla")
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--out", default="runs/neurobench_check", help="where the deploy reports go")
    args = ap.parse_args()
    print("| model | metric | NeuroBench 2.3 | ddla-neuro (deploy --float --mode dense) | relative difference "
          "| equal |")
    print("|---|---|---:|---:|---:|---|")
    failed = False
    for model in args.models.split(","):
        checkpoint = ROOT / model / "model.pt"
        theirs = neurobench_figures(checkpoint, args.samples)
        ours = our_figures(checkpoint, args.samples, Path(args.out) / Path(model).name)
        for name, value in theirs.items():
            diff = relative_difference(value, ours[name])
            failed |= diff > 1e-6
            print(f"| {Path(model).name} | {name} | {_fmt(value)} | {_fmt(ours[name])} | {diff:.1e} | "
                  f"{'yes' if agree(name, value, ours[name]) else 'no'} |", flush=True)
    print(f"\nThe first {args.samples} test samples of each model's dataset (all, where fewer); per-sample figures.")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
