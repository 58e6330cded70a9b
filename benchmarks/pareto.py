"""Accuracy against events and against Loihi 2 energy, at equal training: the baseline, the
rate-regularised baseline, TDD, DDLA with uniform k and DDLA with energy-aware per-layer k
(issue 27). The "DDLA where it is hard" table and plot of docs/RESULTS.md.

    OMP_NUM_THREADS=1 python benchmarks/pareto.py [--model convnet] [--dataset npz]
        [--data-dir ../shared/data/cifar10-dev/cifar10_dev.npz] [--timesteps 6] [--start-epochs 5]
        [--epochs 5] [--penalties 3,10,30] [--keeps 0.7,0.5,0.3] [--seed 0] [--runs runs/pareto]
        [--json FILE] [--png FILE]

Every method starts from one baseline trained --start-epochs epochs and trains --epochs more
from it with a fresh optimizer and schedule (`train --init`): the baseline itself, the baseline
with an L1 penalty on spikes (`--spike-penalty W`, each W of --penalties), DDLA at each uniform k
of --keeps, and DDLA at the energy-aware per-layer k. TDD is the baseline's network sending
lossless deltas (it trains as the baseline does), and so is each penalised one ("+ TDD").

The test split is cut in two at random (seeded): the energy-aware k is chosen on one half (the
validation split: the cheapest per-layer k on the profile whose accuracy is at least the
equal-epoch baseline's there minus --floor-drop points, from the uniform-k model nearest to
the mean of --keeps; where no k of that model reaches it, the floor is the model's own
lossless accuracy minus --floor-drop, and the table says so), and every figure is measured
on the other half. Figures are per inference, in
Loihi fixed point with the fast simulator (bit-exact with Lava), costed on --profile. A run
whose directory already holds its summary (the same command) is not trained again.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddla_neuro.ddla.keep import Keep, KeepError, keep_label  # noqa: E402
from ddla_neuro.deploy.cost import cost_run, mode_plan  # noqa: E402
from ddla_neuro.deploy.keep_choice import choose_keep, measure_on, validation_split  # noqa: E402
from ddla_neuro.deploy.pipeline import DeployOptions, prepare  # noqa: E402
from ddla_neuro.deploy.profiles import load_profile  # noqa: E402
from ddla_neuro.deploy.report import si  # noqa: E402
from ddla_neuro.deploy.sim import simulate  # noqa: E402


def train(out: Path, argv: list[str]) -> Path:
    """Runs `python -m ddla_neuro.train ARGV --out OUT` unless OUT holds the summary of that command."""
    stamp = out / "bench_argv.json"
    if (out / "summary.json").exists() and stamp.exists() and json.loads(stamp.read_text()) == argv:
        return out / "model.pt"
    print(f"training {out.name}: {' '.join(argv)}", flush=True)
    r = subprocess.run([sys.executable, "-m", "ddla_neuro.train", *argv, "--out", str(out)], cwd=ROOT)
    if r.returncode:
        sys.exit(f"training {out.name} failed (exit {r.returncode})")
    stamp.write_text(json.dumps(argv))
    return out / "model.pt"


class Split:
    """A checkpoint's fixed-point spec and the test split's frames and labels, cut into the
    validation half and the half reported."""

    def __init__(self, path: Path, data_dir: str | None, seed: int, profile: str):
        deployed = prepare(DeployOptions(profile=profile, checkpoint=str(path), data_dir=data_dir, seed=seed))
        self.spec, frames, labels = deployed.spec, deployed.frames, deployed.labels
        chosen = validation_split(len(frames), len(frames) // 2, seed)
        self.validation = (frames[chosen], labels[chosen])
        self.reported = (frames[~chosen], labels[~chosen])


def point(split: Split, mode: str, keep: Keep, profile) -> dict:
    """Accuracy, events, synaptic ops and energy per inference on the reported half."""
    frames, labels = split.reported
    result = simulate(split.spec, frames, mode, keep)
    totals = cost_run(split.spec, result.counts, profile, mode_plan(split.spec, mode))["totals"]
    return {"mode": mode, "keep": keep, "accuracy": float(np.mean(result.predictions == labels)),
            "events": totals["events"], "synaptic_ops": totals["synaptic_ops"],
            "dynamic_energy_j": totals["dynamic_energy_j"], "energy_j": totals["energy_j"]}


def validation_accuracy(split: Split, mode: str, keep: Keep) -> float:
    frames, labels = split.validation
    return float(np.mean(simulate(split.spec, frames, mode, keep).predictions == labels))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="convnet")
    ap.add_argument("--dataset", default="npz")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared/data/cifar10-dev/cifar10_dev.npz"))
    ap.add_argument("--timesteps", type=int, default=6)
    ap.add_argument("--start-epochs", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--penalties", default="3,10,30")
    ap.add_argument("--keeps", default="0.7,0.5,0.3")
    ap.add_argument("--floor-drop", type=float, default=1.0,
                    help="points below the baseline the energy-aware k may lose")
    ap.add_argument("--ddla-args", default="", help="extra train options of every DDLA run (\"--warmup-epochs 2\")")
    ap.add_argument("--profile", default="loihi2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", default="runs/pareto")
    ap.add_argument("--json")
    ap.add_argument("--png")
    args = ap.parse_args()
    profile = load_profile(args.profile)
    runs = Path(args.runs) / f"{args.model}-{Path(args.data_dir).stem if args.data_dir else args.dataset}-s{args.seed}"
    common = ["--dataset", args.dataset, "--seed", str(args.seed)]
    common += ["--data-dir", args.data_dir] if args.data_dir else []
    ddla_args = args.ddla_args.split()
    variant = "".join(f"_{a.lstrip('-')}" for a in ddla_args)  # the run directories of these settings
    start = train(runs / "start", ["--model", args.model, "--timesteps", str(args.timesteps),
                                   "--epochs", str(args.start_epochs), *common])
    tune = ["--init", str(start), "--epochs", str(args.epochs), *common]
    models = {"baseline": train(runs / "baseline", tune)}
    for w in args.penalties.split(","):
        models[f"penalty {w}"] = train(runs / f"penalty-{w}", [*tune, "--spike-penalty", w])
    for k in args.keeps.split(","):
        models[f"ddla {k}"] = train(runs / f"ddla-{k}{variant}", [*tune, "--method", "ddla", "--keep", k, *ddla_args])
    splits = {name: Split(path, args.data_dir, args.seed, args.profile) for name, path in models.items()}

    rows = [("baseline", point(splits["baseline"], "dense", 1.0, profile)),
            ("TDD (baseline, deltas)", point(splits["baseline"], "delta", 1.0, profile))]
    for w in args.penalties.split(","):
        rows += [(f"spike penalty {w}", point(splits[f"penalty {w}"], "dense", 1.0, profile)),
                 (f"spike penalty {w} + TDD", point(splits[f"penalty {w}"], "delta", 1.0, profile))]
    for k in args.keeps.split(","):
        rows.append((f"DDLA k = {k}", point(splits[f"ddla {k}"], "ddla", float(k), profile)))
    for k in args.keeps.split(","):  # what DDLA's fine-tuning did to the network itself
        rows.append((f"DDLA k = {k} model without its filter", point(splits[f"ddla {k}"], "delta", 1.0, profile)))

    # energy-aware: chosen on the validation half from the uniform model nearest the sweep's middle
    keeps = [float(k) for k in args.keeps.split(",")]
    source = f"ddla {min(keeps, key=lambda k: abs(k - float(np.mean(keeps)))):g}"
    floor = validation_accuracy(splits["baseline"], "dense", 1.0) - args.floor_drop / 100
    chooser = splits[source]
    measure, layers = measure_on(chooser.spec, *chooser.validation, profile), [p.name for p in chooser.spec.spiking]
    floor_of = "the baseline's"
    try:
        choice = choose_keep(measure, layers, floor)
    except KeepError as e:
        print(f"energy-aware k at the baseline's floor: {e}")
        floor, floor_of = validation_accuracy(chooser, "delta", 1.0) - args.floor_drop / 100, f"the {source} model's"
        choice = choose_keep(measure, layers, floor)
    chosen = choice.best.keep
    rows.append((f"DDLA energy-aware k = {keep_label(chosen)} (deploy-time, {source} model, floor: {floor_of})",
                 point(chooser, "ddla", chosen, profile)))
    if isinstance(chosen, dict):
        label = keep_label(chosen)
        aware = train(runs / f"ddla-aware-{label.replace(':', '_')}{variant}",
                      [*tune, "--method", "ddla", "--keep", label, *ddla_args])
        rows.append((f"DDLA energy-aware k = {label} (trained with it)",
                     point(Split(aware, args.data_dir, args.seed, args.profile), "ddla", chosen, profile)))

    base = rows[0][1]
    print(f"\n{args.model} on {Path(args.data_dir).name if args.data_dir else args.dataset}, T = {args.timesteps}, "
          f"seed {args.seed}: a baseline of {args.start_epochs} epochs, then {args.epochs} more epochs per method"
          f"{f' (DDLA with {args.ddla_args})' if ddla_args else ''}; "
          f"{len(splits['baseline'].reported[1])} test samples reported (the other "
          f"{len(splits['baseline'].validation[1])} chose the energy-aware k, floor {100 * floor:.2f}%: "
          f"{floor_of} minus {args.floor_drop:g} points), "
          f"fixed point, {args.profile}, per inference\n")
    print("| method | accuracy | vs baseline | events | fewer events | synaptic ops | dynamic energy | energy |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, p in rows:
        print(f"| {name} | {100 * p['accuracy']:.2f}% | {100 * (p['accuracy'] - base['accuracy']):+.2f} | "
              f"{p['events']:,.0f} | {100 * (1 - p['events'] / base['events']):.1f}% | {p['synaptic_ops']:,.0f} | "
              f"{si(p['dynamic_energy_j'], 'J')} | {si(p['energy_j'], 'J')} |")
    result = {"model": args.model, "data": args.data_dir or args.dataset, "timesteps": args.timesteps,
              "start_epochs": args.start_epochs, "epochs": args.epochs, "seed": args.seed, "profile": args.profile,
              "ddla_args": args.ddla_args, "floor": floor, "floor_of": floor_of, "energy_aware_from": source,
              "choice_points": [p.as_dict() for p in choice.points],
              "rows": [{"method": name, **p} for name, p in rows]}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.png:
        plot(rows, args, Path(args.png))


def plot(rows: list[tuple[str, dict]], args, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    groups = {"baseline": "k", "TDD": "tab:gray", "spike penalty": "tab:blue", "DDLA k": "tab:red",
              "DDLA energy-aware": "tab:green"}
    for ax, key, unit, scale in ((axes[0], "events", "events per inference", 1.0),
                                 (axes[1], "dynamic_energy_j", "dynamic energy per inference (uJ)", 1e6)):
        for group, colour in groups.items():
            pts = [(p[key] * scale, 100 * p["accuracy"]) for name, p in rows
                   if name.startswith(group) and not (group == "spike penalty" and "TDD" in name)
                   and "without its filter" not in name]
            tdd = [(p[key] * scale, 100 * p["accuracy"]) for name, p in rows
                   if group == "spike penalty" and name.startswith(group) and "TDD" in name]
            marker = "D" if group == "DDLA energy-aware" else "o-"  # two points: deploy-time and trained
            for series, style, label in ((pts, marker, group), (tdd, "s--", f"{group} + TDD")):
                if series:
                    series.sort()
                    ax.plot(*zip(*series), style, color=colour, label=label, alpha=0.85)
        ax.set_xlabel(unit)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{args.model}, T = {args.timesteps}, {args.start_epochs} + {args.epochs} epochs, seed {args.seed}, "
                 f"{args.profile}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
