"""The shape of the paper's Table 2 on our own runs: events per sample and accuracy for
T in {1, 2, 4, 6}, baseline vs TDD vs DDLA, each row a fresh training run.

    python benchmarks/spike_table.py [--dataset digits|mnist|fashion-mnist|cifar10 --data-dir DIR]
                                     [--model convnet] [--timesteps 1,2,4,6] [--epochs 30]
                                     [--keep 0.5] [--lam 0.5] [--seed 0] [--json PATH] [--plot PATH]

baseline: dense spikes of the baseline network; tdd: the same training, every delta sent
(identical outputs, counts deltas); ddla: trained with DDLA, evaluated with the stored
sensitivity statistics (no labels, no gradients). Events are counted over all spiking layers.
At the largest T it checks the targets: DDLA sends >= 50% fewer events than the baseline's
spikes, loses <= 1 point of accuracy, and its last timestep carries >= 80% fewer events.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("baseline", "tdd", "ddla")


def run(dataset: str, data_dir: str | None, model: str, t: int, method: str, args, out: Path) -> dict:
    cmd = [sys.executable, "-m", "ddla_neuro.train", "--model", model, "--dataset", dataset, "--timesteps", str(t),
           "--epochs", str(args.epochs), "--method", method, "--seed", str(args.seed), "--out", str(out)]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    if method == "ddla":
        cmd += ["--keep", str(args.keep), "--lam", str(args.lam)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"training failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    s = json.loads((out / "summary.json").read_text())
    return {"dataset": dataset, "model": model, "T": t, "method": method, "keep": s["keep"],
            "lam": s["lam"], "epochs": args.epochs, "seed": args.seed,
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
    curves = {r["method"]: r["events_per_timestep"] for r in rows if r["T"] == t}
    plot_events(Path(path), curves, f"{rows[0]['model']} on {rows[0]['dataset']}, T={t}: events per timestep")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir")
    p.add_argument("--model", default="convnet")
    p.add_argument("--timesteps", default="1,2,4,6")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--keep", type=float, default=0.5)
    p.add_argument("--lam", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the rows as a JSON list")
    p.add_argument("--plot", help="PNG of events per timestep at the largest T")
    args = p.parse_args()
    rows = []
    print(f"{'T':>2s} {'method':>9s} {'events/sample':>14s} {'last step':>10s} {'accuracy':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        for t in (int(v) for v in args.timesteps.split(",")):
            for method in METHODS:
                r = run(args.dataset, args.data_dir, args.model, t, method, args, Path(tmp) / f"{t}-{method}")
                rows.append(r)
                print(f"{t:2d} {method:>9s} {r['events_per_sample']:14.1f} {r['last_step_events_per_sample']:10.1f} "
                      f"{100 * r['accuracy']:8.2f}%", flush=True)
    for line in check_targets(rows):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
