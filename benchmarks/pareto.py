"""Accuracy against events and against Loihi 2 energy, at equal training: the baseline, the
rate-regularised baseline, TDD, DDLA with each selection rule and uniform k, and DDLA with the
energy-aware per-layer k (issues 27 and 38). The "DDLA where it is hard" tables and plots of
docs/RESULTS.md.

    OMP_NUM_THREADS=1 python benchmarks/pareto.py [--model convnet] [--dataset npz]
        [--data-dir ../shared/data/cifar10-dev/cifar10_dev.npz] [--timesteps 6] [--start-epochs 5 | --start CKPT]
        [--epochs 5] [--penalties 3,10,30] [--rules uniform,integral,patience,topk] [--keeps 0.7,0.5,0.3]
        [--ddla-args "..."] [--seed 0] [--runs runs/pareto] [--json FILE] [--png FILE]

Every method starts from one baseline (trained --start-epochs epochs here, or --start, a
checkpoint trained elsewhere) and trains --epochs more from it with a fresh optimizer and
schedule (`train --init`): the baseline itself, the baseline with an L1 penalty on spikes
(`--spike-penalty W`, each W of --penalties), and DDLA with each selection rule of --rules at
each k of --keeps (the first rule is the one the energy-aware k and the "without its filter"
rows use), and the control: DDLA's training path at k = 1 (single steps, the statistics, the
loss weight lambda; nothing filtered), sent as lossless deltas. TDD is the baseline's network
sending lossless deltas, and so is each penalised one ("+ TDD"). A DDLA model runs with the
selection it was trained with (a neuron-local rule: its trained thresholds).

The test split is cut in two at random (seeded): the energy-aware k is chosen on one half (the
validation split: the cheapest per-layer k on the profile whose accuracy is at least the
equal-epoch baseline's there minus --floor-drop points, from the first rule's model nearest to
the mean of --keeps, a neuron-local rule's thresholds set on 256 training samples for each k
measured; where no k of that model reaches it, the floor is the model's own lossless accuracy
minus --floor-drop, and the table says so), and every figure is measured on the other half. The
"vs curve" columns are a row's accuracy minus the spike-penalised baseline's curve sent as deltas
(TDD and every "+ TDD" row, linear between them) at the row's events and at its dynamic energy
(outside the curve's range: a row that dominates its cheapest point, or is dominated by its
dearest, gets the difference; others stay empty). Figures are per inference, in Loihi fixed point with the fast
simulator (bit-exact with Lava), costed on --profile. A run whose directory already holds its
summary (the same command) is not trained again.
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
from ddla_neuro.ddla.selection import RULES, Selection  # noqa: E402
from ddla_neuro.deploy.cost import cost_run, mode_plan  # noqa: E402
from ddla_neuro.deploy.keep_choice import choose_keep, measure_on, validation_split  # noqa: E402
from ddla_neuro.deploy.loading import prepare  # noqa: E402
from ddla_neuro.deploy.pipeline import DeployOptions  # noqa: E402
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
    """A checkpoint deployed (fixed point, its calibration split) and the test split's frames and
    labels, cut into the validation half and the half reported."""

    def __init__(self, path: Path, data_dir: str | None, seed: int, profile: str):
        self.deployment = prepare(DeployOptions(profile=profile, checkpoint=str(path), data_dir=data_dir, seed=seed))
        self.spec, frames, labels = self.deployment.spec, self.deployment.frames, self.deployment.labels
        chosen = validation_split(len(frames), len(frames) // 2, seed)
        self.validation = (frames[chosen], labels[chosen])
        self.reported = (frames[~chosen], labels[~chosen])

    def trained(self) -> Selection:
        """The selection the model was trained with, at its own k."""
        meta = self.spec.meta
        return self.deployment.selection(meta["selection"], meta["keep"])


def point(split: Split, mode: str, selection: Selection | None, profile) -> dict:
    """Accuracy, events, synaptic ops and energy per inference on the reported half."""
    frames, labels = split.reported
    result = simulate(split.spec, frames, mode, selection)
    totals = cost_run(split.spec, result.counts, profile, mode_plan(split.spec, mode))["totals"]
    return {"mode": mode, "selection": None if selection is None else selection.as_dict(),
            "accuracy": float(np.mean(result.predictions == labels)),
            "events": totals["events"], "synaptic_ops": totals["synaptic_ops"],
            "dynamic_energy_j": totals["dynamic_energy_j"], "energy_j": totals["energy_j"]}


def validation_accuracy(split: Split, mode: str, selection: Selection | None = None) -> float:
    frames, labels = split.validation
    return float(np.mean(simulate(split.spec, frames, mode, selection).predictions == labels))


def curve_margin(rows: list[tuple[str, dict]], p: dict, key: str) -> float | None:
    """p's accuracy minus the spike-penalised baseline's curve sent as deltas (TDD and the
    "+ TDD" rows: their upper frontier, linear between its points) at p's `key`. Outside the
    curve's range only dominance says something: a point with fewer events (less energy) than the
    curve's cheapest and more accuracy is above it by at least the difference, one with more than
    its dearest and less accuracy below it; else None."""
    pts = sorted((r[key], r["accuracy"]) for name, r in rows if name.startswith("TDD") or name.endswith("+ TDD"))
    frontier = [pts[0]]
    for x, y in pts[1:]:  # more events (energy) never buys less accuracy on the frontier
        if y > frontier[-1][1]:
            frontier.append((x, y))
    xs, ys = zip(*frontier)
    if p[key] < xs[0]:
        return p["accuracy"] - ys[0] if p["accuracy"] > ys[0] else None
    if p[key] > xs[-1]:
        return p["accuracy"] - ys[-1] if p["accuracy"] < ys[-1] else None
    return p["accuracy"] - float(np.interp(p[key], xs, ys))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="convnet")
    ap.add_argument("--dataset", default="npz")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared/data/cifar10-dev/cifar10_dev.npz"))
    ap.add_argument("--timesteps", type=int, default=6)
    ap.add_argument("--start-epochs", type=int, default=5)
    ap.add_argument("--start", help="a baseline checkpoint to start every method from (instead of --start-epochs)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--penalties", default="3,10,30")
    ap.add_argument("--rules", default="uniform,integral,patience,topk",
                    help="DDLA's selection rules, the first one the default's")
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
    bad = [r for r in args.rules.split(",") if r not in RULES]
    if bad:
        ap.error(f"--rules: unknown {bad}; choose from {', '.join(RULES)}")
    if args.start and not Path(args.start).is_file():
        ap.error(f"--start {args.start} does not exist")
    return args


def main() -> None:
    args = parse_args()
    profile = load_profile(args.profile)
    runs = Path(args.runs) / f"{args.model}-{Path(args.data_dir).stem if args.data_dir else args.dataset}-s{args.seed}"
    common = ["--dataset", args.dataset, "--seed", str(args.seed)]
    common += ["--data-dir", args.data_dir] if args.data_dir else []
    ddla_args = args.ddla_args.split()
    variant = "".join(f"_{a.lstrip('-')}" for a in ddla_args)  # the run directories of these settings
    start = Path(args.start) if args.start else train(
        runs / "start", ["--model", args.model, "--timesteps", str(args.timesteps), "--epochs",
                         str(args.start_epochs), *common])
    tune = ["--init", str(start), "--epochs", str(args.epochs), *common]
    rules, keeps = args.rules.split(","), args.keeps.split(",")
    models = {"baseline": train(runs / "baseline", tune)}
    for w in args.penalties.split(","):
        models[f"penalty {w}"] = train(runs / f"penalty-{w}", [*tune, "--spike-penalty", w])
    for rule in rules:
        for k in keeps:
            models[f"{rule} {k}"] = train(runs / f"ddla-{rule}-{k}{variant}",
                                          [*tune, "--method", "ddla", "--selection", rule, "--keep", k, *ddla_args])
    # the control: DDLA's training path (single steps, the statistics, lambda) with nothing filtered
    models["ddla 1"] = train(runs / f"ddla-1{variant}", [*tune, "--method", "ddla", "--keep", "1", *ddla_args])
    splits = {name: Split(path, args.data_dir, args.seed, args.profile) for name, path in models.items()}

    rows = [("baseline", point(splits["baseline"], "dense", None, profile)),
            ("TDD (baseline, deltas)", point(splits["baseline"], "delta", None, profile))]
    for w in args.penalties.split(","):
        rows += [(f"spike penalty {w}", point(splits[f"penalty {w}"], "dense", None, profile)),
                 (f"spike penalty {w} + TDD", point(splits[f"penalty {w}"], "delta", None, profile))]
    for rule in rules:
        for k in keeps:
            rows.append((f"DDLA {rule} k = {k}", point(splits[f"{rule} {k}"], "ddla", splits[f"{rule} {k}"].trained(),
                                                       profile)))
    rows.append(("DDLA k = 1 (its training path, nothing filtered)", point(splits["ddla 1"], "delta", None, profile)))
    for k in keeps:  # what DDLA's fine-tuning did to the network itself
        rows.append((f"DDLA {rules[0]} k = {k} model without its filter",
                     point(splits[f"{rules[0]} {k}"], "delta", None, profile)))
    floor, floor_of, choice = energy_aware(args, splits, rules[0], keeps, profile, rows, runs, tune, ddla_args,
                                           variant)
    report(args, rows, floor, floor_of, choice, splits)


def energy_aware(args, splits: dict[str, Split], rule: str, keeps: list[str], profile, rows: list, runs: Path,
                 tune: list[str], ddla_args: list[str], variant: str):
    """The energy-aware per-layer k, chosen on the validation half from `rule`'s model nearest the
    sweep's middle, deploy-time and (a per-layer k) trained with; its rows appended to `rows`."""
    mid = min(keeps, key=lambda k: abs(float(k) - float(np.mean([float(k) for k in keeps]))))
    source = f"{rule} {mid}"
    floor = validation_accuracy(splits["baseline"], "dense") - args.floor_drop / 100
    chooser = splits[source]

    def select(keep: Keep) -> Selection:
        return chooser.deployment.selection(rule, keep)
    measure = measure_on(chooser.spec, *chooser.validation, profile, select)
    layers = [p.name for p in chooser.spec.spiking]
    floor_of = "the baseline's"
    try:
        choice = choose_keep(measure, layers, floor)
    except KeepError as e:
        print(f"energy-aware k at the baseline's floor: {e}")
        floor = validation_accuracy(chooser, "delta") - args.floor_drop / 100
        floor_of = f"the {source} model's"
        choice = choose_keep(measure, layers, floor)
    chosen = choice.best.keep
    rows.append((f"DDLA {rule} energy-aware k = {keep_label(chosen)} (deploy-time, {source} model, floor: {floor_of})",
                 point(chooser, "ddla", select(chosen), profile)))
    if isinstance(chosen, dict):
        label = keep_label(chosen)
        aware = train(runs / f"ddla-{rule}-aware-{label.replace(':', '_')}{variant}",
                      [*tune, "--method", "ddla", "--selection", rule, "--keep", label, *ddla_args])
        split = Split(aware, args.data_dir, args.seed, args.profile)
        rows.append((f"DDLA {rule} energy-aware k = {label} (trained with it)", point(split, "ddla", split.trained(),
                                                                                       profile)))
    return floor, floor_of, choice


def report(args, rows: list[tuple[str, dict]], floor: float, floor_of: str, choice, splits: dict[str, Split]) -> None:
    base = rows[0][1]
    print(f"\n{args.model} on {Path(args.data_dir).name if args.data_dir else args.dataset}, T = {args.timesteps}, "
          f"seed {args.seed}: a baseline of {args.start or f'{args.start_epochs} epochs'}, then {args.epochs} more "
          f"epochs per method{f' (DDLA with {args.ddla_args})' if args.ddla_args else ''}; "
          f"{len(splits['baseline'].reported[1])} test samples reported (the other "
          f"{len(splits['baseline'].validation[1])} chose the energy-aware k, floor {100 * floor:.2f}%: "
          f"{floor_of} minus {args.floor_drop:g} points), fixed point, {args.profile}, per inference\n")
    print("| method | accuracy | vs baseline | events | fewer events | vs curve (events) | dynamic energy | "
          "vs curve (energy) | energy |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, p in rows:
        p["vs_curve_events"] = curve_margin(rows, p, "events")
        p["vs_curve_energy"] = curve_margin(rows, p, "dynamic_energy_j")
        margins = ["" if m is None else f"{100 * m:+.2f}" for m in (p["vs_curve_events"], p["vs_curve_energy"])]
        print(f"| {name} | {100 * p['accuracy']:.2f}% | {100 * (p['accuracy'] - base['accuracy']):+.2f} | "
              f"{p['events']:,.0f} | {100 * (1 - p['events'] / base['events']):.1f}% | {margins[0]} | "
              f"{si(p['dynamic_energy_j'], 'J')} | {margins[1]} | {si(p['energy_j'], 'J')} |")
    result = {"model": args.model, "data": args.data_dir or args.dataset, "timesteps": args.timesteps,
              "start": args.start, "start_epochs": None if args.start else args.start_epochs, "epochs": args.epochs,
              "seed": args.seed, "profile": args.profile, "rules": args.rules, "ddla_args": args.ddla_args,
              "floor": floor, "floor_of": floor_of, "choice_points": [p.as_dict() for p in choice.points],
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
    colours = dict(zip(args.rules.split(","), ("tab:red", "tab:orange", "tab:purple", "tab:brown")))
    groups = {"baseline": ("k", "o"), "spike penalty + TDD": ("tab:blue", "s--"),
              **{f"DDLA {r}": (c, "o-") for r, c in colours.items()}, "energy-aware": ("tab:green", "D")}
    for ax, key, unit, scale in ((axes[0], "events", "events per inference", 1.0),
                                 (axes[1], "dynamic_energy_j", "dynamic energy per inference (uJ)", 1e6)):
        for group, (colour, style) in groups.items():
            series = sorted((p[key] * scale, 100 * p["accuracy"]) for name, p in rows if _in_group(name, group))
            if series:
                ax.plot(*zip(*series), style, color=colour, label=group, alpha=0.85)
        ax.set_xlabel(unit)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    start = Path(args.start).parent.name if args.start else f"{args.start_epochs}"
    fig.suptitle(f"{args.model}, T = {args.timesteps}, {start} + {args.epochs} epochs, seed {args.seed}, "
                 f"{args.profile}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _in_group(name: str, group: str) -> bool:
    """Which curve of the plot a row belongs to (the models without their filter are left out)."""
    if "without its filter" in name:
        return False
    if group == "spike penalty + TDD":
        return name.startswith("TDD") or name.endswith("+ TDD")
    if group == "energy-aware":
        return "energy-aware" in name
    return name.startswith(group + " k") if group.startswith("DDLA") else name == group


if __name__ == "__main__":
    main()
