"""The sharded deploy: wall time of `torchrun --nproc_per_node N -m ddla_neuro.deploy --backend
fast` for N = 1 and 2 processes, and whether their reports are the same.

    OMP_NUM_THREADS=1 python benchmarks/shard_scale.py [--checkpoint models/fmnist-convnet-ddla/model.pt]
        [--data-dir /usr/share/datasets/fashion-mnist] [--samples 10000] [--procs 1,2] [--repeat 3] [--json PATH]

Each run is the whole command (start-up, loading, every mode and the keep sweep, the report),
one thread per process; the process counts take turns, `--repeat` rounds. Prints each run's
wall time, the median, and the speed-up over one process per round (its median in bold), and
checks that every run's report.json equals the first one's byte for byte.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddla_neuro.errors import UserError  # noqa: E402


def deploy(procs: int, args: argparse.Namespace, out: Path) -> float:
    """The wall time of one sharded deploy writing to `out`."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs), "--master_port",
           str(29500 + procs), "-m", "ddla_neuro.deploy", "--backend", "fast", "--profile", args.profile,
           "--checkpoint", args.checkpoint, "--out", str(out), "--samples", str(args.samples)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise UserError(f"the deploy with {procs} processes failed: {done.stderr.strip().splitlines()[-1:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(ROOT / "models" / "fmnist-convnet-ddla" / "model.pt"))
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--profile", default="loihi2")
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    try:
        procs = [int(p) for p in args.procs.split(",")]
    except ValueError:
        sys.exit(f"shard_scale.py: error: --procs takes whole numbers separated by commas, got {args.procs!r}")
    if min(procs) < 1 or args.samples < 1 or args.repeat < 1:
        sys.exit("shard_scale.py: error: --procs, --samples and --repeat must be at least 1")
    if args.data_dir and not Path(args.data_dir).is_dir():
        sys.exit(f"shard_scale.py: error: no dataset directory {args.data_dir}; name one with --data-dir")
    walls: dict[int, list[float]] = {p: [] for p in procs}
    reports: list[bytes] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for r in range(args.repeat):
                for p in procs:
                    out = Path(tmp) / f"{p}-{r}"
                    walls[p].append(deploy(p, args, out))
                    reports.append((out / "report.json").read_bytes())
                    print(f"round {r + 1}, {p} process(es): {walls[p][-1]:.1f} s", flush=True)
        except UserError as e:
            sys.exit(f"shard_scale.py: error: {e}")
    one = walls[procs[0]]
    print(f"\n| processes | wall, runs | median | speed-up over {procs[0]}, per round | median |")
    print("|---:|---|---:|---|---:|")
    for p in procs:
        ups = [a / b for a, b in zip(one, walls[p])]
        print(f"| {p} | {', '.join(f'{w:.1f} s' for w in walls[p])} | {statistics.median(walls[p]):.1f} s | "
              f"{', '.join(f'{u:.2f}' for u in ups)} | **{statistics.median(ups):.2f}x** |")
    same = all(rep == reports[0] for rep in reports)
    print(f"\nreport.json identical across all {len(reports)} runs: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps({"samples": args.samples, "walls": walls, "reports_identical": same},
                                              indent=2) + "\n")


if __name__ == "__main__":
    main()
