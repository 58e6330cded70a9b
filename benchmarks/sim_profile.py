"""Where the fast simulator's time goes: torch's profiler over one `simulate` call.

    OMP_NUM_THREADS=1 python benchmarks/sim_profile.py [--network mlp] [--mode delta] [--samples 2000]
                                                       [--batch 256] [--top 12] [--json PATH]

Networks: `digits` and `mlp` (the two of `lava_speed.py`: the shipped digits convnet on its test
images, the 784-512-512-10 IF MLP on random images) and `convnet28`, `vgg`, `resnet19`, `sdt`
(those of `sim_scale.py`, T = 4). Fixed point. Prints the samples/s without and with the
profiler, the ops with the most self time (share of the profiled total), and the share of the
matrix products and convolutions: the work any exact simulator of the network does, so
samples/s divided by that share is the rate this CPU allows without fewer operations. In ddla
mode, also the time of DDLA's per-step selection and send (`_Population.ddla_send`: the change,
the priority cut, the held values) in a run of its own, timed around each call: the work that a
plain forward and the delta mode do not have.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ddla_neuro.deploy.quant import quantize, quantize_input  # noqa: E402
from ddla_neuro.deploy.ir import input_frames  # noqa: E402
from ddla_neuro.deploy import sim  # noqa: E402
from ddla_neuro.deploy.sim import simulate  # noqa: E402
from ddla_neuro.deploy.spec import NetSpec  # noqa: E402
from ddla_neuro.deploy.thresholds import calibrate_selection  # noqa: E402
from ddla_neuro.ddla.selection import DEFAULT_RULE  # noqa: E402
from ddla_neuro.errors import UserError  # noqa: E402

NETWORKS = ("digits", "mlp", "convnet28", "vgg", "resnet19", "sdt")
MODES = ("dense", "delta", "ddla")


def network(name: str, samples: int) -> tuple[NetSpec, np.ndarray]:
    """The fixed-point spec and `samples` input frames of a benchmark network."""
    if name in ("digits", "mlp"):
        from lava_speed import digits_model, mlp_784
        spec, frames = (digits_model if name == "digits" else mlp_784)(samples)
        spec = quantize(spec)
        return spec, quantize_input(frames, spec)
    import torch
    from sim_scale import NETWORKS as SCALE_NETWORKS, network as scale_network
    net, spec = scale_network(name, 4)
    torch.manual_seed(0)
    return spec, quantize_input(input_frames(net, torch.rand(samples, *SCALE_NETWORKS[name][1])), spec)


def is_product(op_name: str) -> bool:
    """A matrix product or a convolution (self time lands in the BLAS/oneDNN kernel's op)."""
    return "conv" in op_name or op_name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default="mlp", choices=NETWORKS)
    ap.add_argument("--mode", default="delta", choices=MODES)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--json", default=None, help="write the figures and the op table as JSON")
    args = ap.parse_args()
    if args.samples < 1 or args.batch < 1 or args.top < 1:
        raise UserError("--samples, --batch and --top must be at least 1")
    spec, frames = network(args.network, args.samples)
    if args.mode == "ddla":
        rng = np.random.default_rng(0)
        spec.scores = {p.name: rng.random(p.shape).astype(np.float32) for p in spec.spiking}
    # DDLA: the default rule, its thresholds set on the first samples to send half the changes
    selection = calibrate_selection(spec, frames[:256], DEFAULT_RULE, 0.5) if args.mode == "ddla" else None

    def run() -> float:
        t0 = time.perf_counter()
        simulate(spec, frames, args.mode, selection, batch_size=args.batch)
        return args.samples / (time.perf_counter() - t0)

    run()  # warm-up: the heap grown
    plain = max(run(), run())
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        profiled = run()
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in ops)
    products = sum(e.self_cpu_time_total for e in ops if is_product(e.key)) / total
    print(f"{args.network}, {args.mode}, batch {args.batch}, {args.samples} samples: {plain:,.0f} samples/s "
          f"({profiled:,.0f} under the profiler)")
    print("| op | self time | share | calls |")
    print("|---|---:|---:|---:|")
    table = [{"op": e.key, "self_ms": e.self_cpu_time_total / 1e3, "share": e.self_cpu_time_total / total,
              "calls": e.count} for e in ops[:args.top]]
    for r in table:
        print(f"| {r['op']} | {r['self_ms']:,.1f} ms | {100 * r['share']:.1f}% | {r['calls']:,} |")
    print(f"matrix products and convolutions: {100 * products:.1f}% of the profiled time; at that share alone "
          f"the run would reach about {profiled / products:,.0f} samples/s under the profiler")
    figures = {"network": args.network, "mode": args.mode, "batch": args.batch, "samples": args.samples,
               "samples_per_s": plain, "profiled_samples_per_s": profiled, "product_share": products, "ops": table}
    if args.mode == "ddla":
        figures["selection"] = selection_time(run, args.samples, args.batch)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")


def selection_time(run, samples: int, batch: int) -> dict:
    """DDLA's selection and send (`_Sender.send`, each step's) in one run, timed around each call:
    ms per batch and share of the run."""
    seconds = [0.0]
    send = sim._Sender.send

    def timed(sender, *args):
        t0 = time.perf_counter()
        send(sender, *args)
        seconds[0] += time.perf_counter() - t0

    sim._Sender.send = timed
    try:
        run_seconds = samples / run()
    finally:
        sim._Sender.send = send
    figures = {"ms_per_batch": 1e3 * seconds[0] / -(-samples // batch), "share": seconds[0] / run_seconds}
    print(f"DDLA's selection and send: {figures['ms_per_batch']:.2f} ms per batch of {batch}, "
          f"{100 * figures['share']:.1f}% of a run timed around each call")
    return figures


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        sys.exit(f"error: {e}")
