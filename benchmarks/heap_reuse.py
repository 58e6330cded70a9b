"""What keeping freed memory in the heap (`devices.reused_heap`) buys the fast simulator.

    OMP_NUM_THREADS=1 python benchmarks/heap_reuse.py [--samples 2000] [--batch 256] [--repeat 3]

Each measurement is a fresh process running `simulate` (fixed point, delta mode) on the shipped
digits model and on the 784-512-512-10 MLP of `lava_speed.py`, either as shipped or with the
heap left to glibc's defaults (`reused_heap` made a no-op), alternating, so a slow spell of the
machine falls on both. Prints samples/s per run and the median of the per-round ratios.
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
from lava_speed import digits_model, mlp_784
from ddla_neuro.deploy.quant import quantize, quantize_input
from ddla_neuro.deploy.sim import simulate
spec, frames = {{"digits": digits_model, "mlp": mlp_784}}[{network!r}]({samples})
spec = quantize(spec)
frames = quantize_input(frames, spec)
simulate(spec, frames[:64], "delta", batch_size={batch})  # warm-up
t0 = time.perf_counter()
simulate(spec, frames, "delta", batch_size={batch})
print(json.dumps({samples} / (time.perf_counter() - t0)))
"""


def rate(network: str, reuse: bool, samples: int, batch: int) -> float:
    code = CHILD.format(root=str(ROOT), reuse=reuse, network=network, samples=samples, batch=batch)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print("| network | glibc default, samples/s | reused heap, samples/s | reused / default, per round | median |")
    print("|---|---:|---:|---|---:|")
    for network in ("digits", "mlp"):
        runs = [(rate(network, False, args.samples, args.batch), rate(network, True, args.samples, args.batch))
                for _ in range(args.repeat)]
        ratios = [reused / default for default, reused in runs]
        print(f"| {network} | {statistics.median(d for d, _ in runs):,.0f} | "
              f"{statistics.median(r for _, r in runs):,.0f} | {', '.join(f'{x:.2f}' for x in ratios)} | "
              f"**{statistics.median(ratios):.2f}x** |", flush=True)
        print(json.dumps({"network": network, "batch": args.batch, "runs": runs}), file=sys.stderr)


if __name__ == "__main__":
    main()
