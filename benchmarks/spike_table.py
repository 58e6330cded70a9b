"""The shape of the paper's Table 2 on our own runs: events per sample and accuracy for
T in {1, 2, 4, 6}, baseline vs TDD vs DDLA, each row a fresh training run.

    python benchmarks/spike_table.py [--dataset digits|mnist|fashion-mnist|cifar10 --data-dir DIR]
                                     [--model convnet] [--timesteps 1,2,4,6] [--epochs 60]
                                     [--keep 0.3] [--lam 0.2] [--sensitivity step] [--seed 0]
                                     [--json PATH] [--plot PATH]

--keep, --lam and --sensitivity take comma-separated lists: one DDLA row per combination
(a sweep); the targets are checked on the first combination.

baseline: dense spikes of the baseline network; tdd: the same training, every delta sent
(identical outputs, counts deltas); ddla: trained with DDLA, evaluated with the stored
sensitivity statistics (no labels, no gradients). Events are counted over all spiking layers.
At the largest T it checks the targets: DDLA sends >= 50% fewer events than the baseline's
spikes, loses <= 1 point of accuracy, and its last timestep carries >= 80% fewer events.
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("baseline", "tdd", "ddla")


def run(t: int, method: str, args, out: Path, ddla: tuple[str, str, str] | None = None) -> dict:
    cmd = [sys.executable, "-m", "ddla_neuro.train", "--model", args.model, "--dataset", args.dataset,
           "--timesteps", str(t), "--epochs", str(args.epochs), "--method", method, "--seed", str(args.seed),
           "--out", str(out)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    if ddla:
        cmd += ["--keep", ddla[0], "--lam", ddla[1], "--sensitivity", ddla[2]]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"training failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    s = json.loads((out / "summary.json").read_text())
    return {"dataset": args.dataset, "model": args.model, "T": t, "method": method, "keep": s["keep"],
            "lam": s["lam"], "sensitivity": ddla[2] if ddla else None, "epochs": args.epochs, "seed": args.seed,
            "events_per_sample": s["events_per_sample"], "last_step_events_per_sample": s["events_per_timestep"][-1],
            "events_per_timestep": s["events_per_timestep"], "spikes_per_sample": s["spikes_per_sample"],
            "accuracy": s["test_accuracy"], "wall_s": s["wall_s"], "command": " ".join(cmd[1:])}


def check_targets(rows: list[dict]) -> list[str]:
    t = max(r["T"] for r in rows)
    base = next(r for r in rows if r["T"] == t and r["method"] == "baseline")
    ddla = next(r for r in rows if r["T"] == t and r["method"] == "ddla")
    fewer = 1 - ddla["events_per_sample"] / base["events_per_sample"]
    last = 1 - ddla["last_step_events_per_sample"] / base["last_step_events_per_sample"]
    drop = 100 * (base["accuracy"] - ddla["accuracy"])
    ok = lambda c: "met" if c else "MISSED"  # noqa: E731
    return [f"T={t}: DDLA sends {100 * fewer:.1f}% fewer events than the baseline's spikes (target >= 50%: {ok(fewer >= 0.5)})",
            f"T={t}: last timestep {100 * last:.1f}% fewer events (target >= 80%: {ok(last >= 0.8)})",
            f"T={t}: accuracy {100 * ddla['accuracy']:.2f}% vs {100 * base['accuracy']:.2f}%, "
            f"{drop:+.2f} points lost (target <= 1: {ok(drop <= 1.0)})"]


def plot(rows: list[dict], path: str) -> None:
    from ddla_neuro.analyze import plot_events

    t = max(r["T"] for r in rows)
    label = lambda r: r["method"] if r["method"] != "ddla" else f"ddla k={r['keep']} lambda={r['lam']}"  # noqa: E731
    curves = {label(r): r["events_per_timestep"] for r in rows if r["T"] == t}
    plot_events(Path(path), curves, f"{rows[0]['model']} on {rows[0]['dataset']}, T={t}: events per timestep")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir")
    p.add_argument("--model", default="convnet")
    p.add_argument("--timesteps", default="1,2,4,6")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--keep", default="0.3")
    p.add_argument("--lam", default="0.2")
    p.add_argument("--sensitivity", default="step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the rows as a JSON list")
    p.add_argument("--plot", help="PNG of events per timestep at the largest T")
    args = p.parse_args()
    rows = []
    combos = list(itertools.product(args.keep.split(","), args.lam.split(","), args.sensitivity.split(",")))
    print(f"{'T':>2s} {'method':>9s} {'k':>5s} {'lambda':>6s} {'events/sample':>14s} {'last step':>10s} {'accuracy':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        for t in (int(v) for v in args.timesteps.split(",")):
            runs = [(m, None) for m in METHODS[:2]] + [("ddla", c) for c in combos]
            for i, (method, combo) in enumerate(runs):
                r = run(t, method, args, Path(tmp) / f"{t}-{i}", combo)
                rows.append(r)
                k, lam = (combo[0], combo[1]) if combo else ("-", "-")
                tag = f" ({combo[2]})" if combo and len(combos) > 1 else ""
                print(f"{t:2d} {method:>9s} {k:>5s} {lam:>6s} {r['events_per_sample']:14.1f} "
                      f"{r['last_step_events_per_sample']:10.1f} {100 * r['accuracy']:8.2f}%{tag}", flush=True)
    for line in check_targets(rows):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
