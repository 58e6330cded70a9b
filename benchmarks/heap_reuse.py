"""What keeping freed memory in the heap (`devices.reused_heap`) buys the fast simulator.

    OMP_NUM_THREADS=1 python benchmarks/heap_reuse.py [--networks digits,mlp,sdt] [--samples N] [--batch B]
                                                      [--repeat 3]

Each measurement is a fresh process running `simulate` (fixed point, delta mode) on the shipped
digits model and the 784-512-512-10 MLP of `lava_speed.py` (2,000 samples at batch 256), and on
the Spike-driven Transformer of `sim_scale.py` (T = 4, 96 random images at batch 32, where a
(T, B, n) tensor passes glibc's 32 MiB mmap threshold), each as `sim_profile.py` builds it;
`--samples` and `--batch` set them for all. Each runs either as shipped or with the heap left to
glibc's defaults (`reused_heap` made a no-op), alternating, so a slow spell of the machine falls
on both. Prints samples/s per run and the median of the per-round ratios.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {root!r} + "/benchmarks")
import ddla_neuro.devices as devices
if not {reuse}:
    devices._glibc = lambda: None  # glibc's own heap policy
from sim_profile import network
from ddla_neuro.deploy.sim import simulate
spec, frames = network({network!r}, {samples})
simulate(spec, frames[:{batch}], "delta", batch_size={batch})  # warm-up
t0 = time.perf_counter()
simulate(spec, frames, "delta", batch_size={batch})
print(json.dumps({samples} / (time.perf_counter() - t0)))
"""


SIZES = {"digits": (2000, 256), "mlp": (2000, 256), "sdt": (96, 32)}  # network: (samples, batch)


def rate(network: str, reuse: bool, samples: int, batch: int) -> float:
    code = CHILD.format(root=str(ROOT), reuse=reuse, network=network, samples=samples, batch=batch)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", default=",".join(SIZES))
    ap.add_argument("--samples", type=int, help="samples per run (default: per network)")
    ap.add_argument("--batch", type=int, help="the simulator's batch (default: per network)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    networks = args.networks.split(",")
    unknown = [n for n in networks if n not in SIZES]
    if unknown or (args.samples is not None and args.samples < 1) or (args.batch is not None and args.batch < 1):
        sys.exit(f"heap_reuse.py: error: networks come from {', '.join(SIZES)} and --samples, --batch are at "
                 f"least 1 (got {args.networks!r}, {args.samples}, {args.batch})")
    print("| network | batch | glibc default, samples/s | reused heap, samples/s | reused / default, per round "
          "| median |")
    print("|---|---:|---:|---:|---|---:|")
    for network in networks:
        samples, batch = args.samples or SIZES[network][0], args.batch or SIZES[network][1]
        runs = [(rate(network, False, samples, batch), rate(network, True, samples, batch))
                for _ in range(args.repeat)]
        ratios = [reused / default for default, reused in runs]
        print(f"| {network} | {batch} | {statistics.median(d for d, _ in runs):,.0f} | "
              f"{statistics.median(r for _, r in runs):,.0f} | {', '.join(f'{x:.2f}' for x in ratios)} | "
              f"**{statistics.median(ratios):.2f}x** |", flush=True)
        print(json.dumps({"network": network, "samples": samples, "batch": batch, "runs": runs}), file=sys.stderr)


if __name__ == "__main__":
    main()
