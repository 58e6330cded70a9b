"""The shipped models on one hardware profile, next to the dense deployment of a reference
network: the "shipped models" tables of docs/RESULTS.md.

    OMP_NUM_THREADS=1 python benchmarks/deploy_models.py [--profile loihi2] [--samples N]
        [--model models/fmnist-convnet-ddla] [--reference runs/models/fmnist-convnet-baseline/model.pt]

For the model (default: the shipped 28x28 one): its dense, delta and DDLA deployment (at its
trained k, then the deploy command's keep sweep) on its dataset's whole test split (or the
first `--samples`), fixed point, the fast simulator (bit-exact with Lava); then the reference
checkpoint (default: the baseline it was fine-tuned from, which `make models` writes) deployed
dense, and the model's DDLA savings against it, the goal of issue 14.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddla_neuro.deploy.pipeline import DeployOptions, deploy  # noqa: E402
from ddla_neuro.deploy.report import si  # noqa: E402


def _cell(v, unit: str) -> str:
    return "-" if v is None else si(v, unit)


def _row(label: str, t: dict) -> str:
    return (f"| {label} | {100 * t['accuracy']:.2f}% | {t['synaptic_ops']:,.0f} | {t['events']:,.0f} | "
            f"{_cell(t.get('energy_j'), 'J')} | {_cell(t.get('dynamic_energy_j'), 'J')} | {t.get('cores') or '-'} | "
            f"{_cell(t.get('latency_s'), 's')} |")


def _deploy(checkpoint: str, profile: str, samples: int | None, mode: str | None = None) -> dict:
    return deploy(DeployOptions(profile=profile, checkpoint=checkpoint, backend="fast", samples=samples, mode=mode))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="loihi2")
    ap.add_argument("--model", default="models/fmnist-convnet-ddla")
    ap.add_argument("--reference", default="runs/models/fmnist-convnet-baseline/model.pt",
                    help="a checkpoint deployed dense as the reference (make models writes the default)")
    ap.add_argument("--samples", type=int)
    args = ap.parse_args()
    model = f"{args.model}/model.pt"
    r = _deploy(model, args.profile, args.samples)
    k = r["modes"]["ddla"]["keep"]
    ref = _deploy(args.reference, args.profile, args.samples, mode="dense")["modes"]["dense"]["totals"]
    name = Path(args.model).name
    print(f"{name} on {args.profile}: {r['run']['samples']} {r['model']['dataset']} test samples, "
          f"{'fixed point' if r['model']['precision'] == 'fixed' else 'float'}, per inference\n")
    print("| network, mode | accuracy | synaptic ops | events | energy | dynamic | cores | latency |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode in ("dense", "delta", "ddla"):
        print(_row(f"{name}, {mode}" + (f" k = {k:g}" if mode == "ddla" else ""), r["modes"][mode]["totals"]))
    for point in r["sweep"]:
        if point["keep"] not in (k, 1.0):  # k = 1 is the delta row
            print(_row(f"{name}, ddla k = {point['keep']:g}", point))
    print(_row(f"reference {args.reference}, dense", ref))
    ddla = r["modes"]["ddla"]["totals"]
    print(f"\nDDLA (k = {k:g}) against the reference's dense deployment: "
          f"{100 * (1 - ddla['synaptic_ops'] / ref['synaptic_ops']):.1f}% fewer synaptic ops, "
          f"{100 * (1 - ddla['events'] / ref['events']):.1f}% fewer events, "
          f"accuracy {100 * (ddla['accuracy'] - ref['accuracy']):+.2f} points "
          f"({100 * ddla['accuracy']:.2f}% vs {100 * ref['accuracy']:.2f}%), "
          f"energy {si(ddla['energy_j'], 'J')} vs {si(ref['energy_j'], 'J')}")


if __name__ == "__main__":
    main()
