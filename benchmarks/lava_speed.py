"""Speed of the Lava runner and of the fast simulator.

    python benchmarks/lava_speed.py [--samples 50] [--fast-samples 2000] [--batch 64] [--float] [--repeat 3]
                                    [--json PATH]

Networks: the default digits model (`models/digits-convnet-ddla`, its test images) and a
784-512-512-10 IF MLP with random dyadic weights on random 28x28 images (direct input).
Runners: `lava-builtin-dense` (the same network from Lava's own Dense + LIFReset, dense
spikes, float: the anchor), `lava-dense` and `lava-delta` (our split graph: a synapse process
per projection and a neuron process per population, fixed point unless --float), `lava-fused`
(delta, one process per population, the encoder and readout folded in), `lava-fused-batched`
(the same, --batch samples in lockstep; its ms/step is per step of the batch) and `fast` (the
batched torch simulator, delta mode, the same arithmetic). Lava figures are the streaming phase
only (one run(RunSteps(T)) per sample or batch), without the build; with --repeat, each figure
is the median of that many runs in this one command, and each ratio the median of the ratios
within each run. Targets: lava-delta costs no more per step than lava-builtin-dense,
lava-fused at most 0.8x; lava-fused-batched at least 10x its samples/s; fast is >= 100x
faster per sample than lava-delta and >= 10x lava-fused-batched.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddla_neuro.checkpoint import load_checkpoint  # noqa: E402
from ddla_neuro.data import load_dataset  # noqa: E402
from ddla_neuro.deploy.ir import checkpoint_to_spec, input_frames, network_to_nir, nir_to_spec  # noqa: E402
from ddla_neuro.deploy.isolation import run_isolated  # noqa: E402
from ddla_neuro.deploy.lava_run import LavaRunError, check_lava_memory, run_lava  # noqa: E402
from ddla_neuro.deploy.quant import quantize, quantize_input  # noqa: E402
from ddla_neuro.deploy.sim import simulate  # noqa: E402
from ddla_neuro.deploy.spec import NetSpec, save_spec  # noqa: E402
from ddla_neuro.zoo import build_model  # noqa: E402

DEFAULT_MODEL = ROOT / "models" / "digits-convnet-ddla" / "model.pt"


def digits_model(n: int) -> tuple[NetSpec, np.ndarray]:
    ckpt = load_checkpoint(DEFAULT_MODEL)
    x = load_dataset("digits").x_test
    x = x.repeat((n + len(x) - 1) // len(x), 1, 1, 1)[:n]
    return checkpoint_to_spec(ckpt), input_frames(ckpt.net, x)


def mlp_784(n: int, timesteps: int = 6) -> tuple[NetSpec, np.ndarray]:
    torch.manual_seed(0)
    net = build_model("mlp", num_classes=10, input_shape=(1, 28, 28), timesteps=timesteps, hidden=[512, 512]).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.round(torch.randn(m.weight.shape) * 64 * 3 / m.in_features ** 0.5) / 64)
    x = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return nir_to_spec(network_to_nir(net)), input_frames(net, x)


def anchor(spec: NetSpec, frames: np.ndarray) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.npz"
        save_spec(job, spec, frames=frames)
        lines: list[str] = []
        run_isolated([sys.executable, str(ROOT / "benchmarks" / "lava_builtin_anchor.py"), str(job)], 600,
                     lines.append)
    return json.loads(lines[-1])


def row(network: str, runner: str, run_s: float, steps: int, samples: int, timesteps: int, **extra) -> dict:
    return {"network": network, "runner": runner, "ms_per_step": 1000 * run_s / steps,
            "samples_per_s": samples / run_s, "samples": samples, "timesteps": timesteps, **extra}


def measure(network: str, spec: NetSpec, frames: np.ndarray, n_lava: int, fixed: bool, batch: int) -> list[dict]:
    t = spec.timesteps
    rows = []
    a = anchor(spec, frames[:n_lava])
    rows.append(row(network, "lava-builtin-dense", a["run_s"], a["steps"], n_lava, t, precision="float"))
    ref = simulate(spec, frames[:n_lava], "dense").predictions
    rows[-1]["agrees_with_sim"] = float(np.mean(np.array(a["predictions"]) == ref))
    run_spec = quantize(spec) if fixed else spec
    run_frames = quantize_input(frames, run_spec) if fixed else frames
    runners = (("lava-dense", "dense", "split", 1), ("lava-delta", "delta", "split", 1),
               ("lava-fused", "delta", "fused", 1), ("lava-fused-batched", "delta", "fused", batch))
    for runner, mode, graph, b in runners:
        r = run_lava(run_spec, run_frames[:n_lava], mode, graph=graph, batch=b)
        rows.append(row(network, runner, r.run_s, r.steps, n_lava, t,
                        precision="fixed" if fixed else "float", build_s=r.build_s, batch=b))
    simulate(run_spec, run_frames[:64], "delta")  # warm-up
    t0 = time.perf_counter()
    simulate(run_spec, run_frames, "delta")
    wall = time.perf_counter() - t0
    rows.append(row(network, "fast", wall, len(frames) * t, len(frames), t, precision="fixed" if fixed else "float"))
    return rows


def add_ratios(run: list[dict]) -> None:
    """Within one run: each Lava runner's ms/step over the anchor's (the batched runner: its
    samples/s over the anchor's, the throughput it is for), the fast simulator's samples/s over
    lava-delta's. A ratio of two figures of one run cancels much of this machine's drift."""
    by = {r["runner"]: r for r in run}
    anchor = by["lava-builtin-dense"]
    for r in run:
        if r["runner"] == "lava-fused-batched":
            r["ratio"] = r["samples_per_s"] / anchor["samples_per_s"]
        elif r["runner"] == "fast":
            r["ratio"] = r["samples_per_s"] / by["lava-delta"]["samples_per_s"]
            r["ratio_batched"] = r["samples_per_s"] / by["lava-fused-batched"]["samples_per_s"]
        elif r["runner"] != "lava-builtin-dense":
            r["ratio"] = r["ms_per_step"] / anchor["ms_per_step"]


def median_row(rows: list[dict]) -> dict:
    """One runner's row over repeated runs: the median ms/step, samples/s and ratio, and every run's."""
    out = dict(rows[0])
    for key in ("ms_per_step", "samples_per_s", "ratio", "ratio_batched"):
        if key in out:
            out[key] = float(np.median([r[key] for r in rows]))
            out[f"{key}_runs"] = [r[key] for r in rows]
    return out


TARGETS = {  # (runner, ratio): (what the ratio is, the target, whether it must stay at most or reach it)
    ("lava-delta", "ratio"): ("lava-delta / lava-builtin-dense ms/step", 1.0, "at most"),
    ("lava-fused", "ratio"): ("lava-fused / lava-builtin-dense ms/step", 0.8, "at most"),
    ("lava-fused-batched", "ratio"): ("lava-fused-batched / lava-builtin-dense samples/s", 10.0, "at least"),
    ("fast", "ratio"): ("fast / lava-delta samples/s", 100.0, "at least"),
    ("fast", "ratio_batched"): ("fast / lava-fused-batched samples/s", 10.0, "at least"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=50, help="samples per Lava runner")
    ap.add_argument("--fast-samples", type=int, default=2000, help="samples for the fast simulator")
    ap.add_argument("--batch", type=int, default=64, help="samples in lockstep of the lava-fused-batched runner")
    ap.add_argument("--float", action="store_true", help="run our Lava processes in floating_pt")
    ap.add_argument("--repeat", type=int, default=1, help="runs of every runner; each figure and ratio is their median")
    ap.add_argument("--json", help="write the rows as a JSON list")
    args = ap.parse_args()
    small = [f"--{flag.replace('_', '-')}" for flag in ("samples", "fast_samples", "batch", "repeat")
             if getattr(args, flag) < 1]
    if small:
        sys.exit(f"lava_speed.py: error: {', '.join(small)} must be at least 1")
    networks = (("digits-convnet", digits_model), ("mlp-784-512-512-10", mlp_784))
    for name, make in networks:  # the batched runner's memory (the Lava run's own check), before any run
        try:
            check_lava_memory(make(1)[0], min(args.batch, args.samples), advice="use a smaller --batch")
        except LavaRunError as e:
            sys.exit(f"lava_speed.py: error: {name}: {e}")
    rows = []
    for name, make in networks:
        spec, frames = make(max(args.fast_samples, args.samples))
        runs = [measure(name, spec, frames, args.samples, not args.float, args.batch) for _ in range(args.repeat)]
        for run in runs:
            add_ratios(run)
        rows += [median_row([r[i] for r in runs]) for i in range(len(runs[0]))]
    print(f"{'network':>20} {'runner':>20} {'precision':>9} {'ms/step':>9} {'samples/s':>10}")
    for r in rows:
        print(f"{r['network']:>20} {r['runner']:>20} {r['precision']:>9} {r['ms_per_step']:9.3f} "
              f"{r['samples_per_s']:10.1f}")
    for r in rows:
        for (runner, key), (what, target, sense) in TARGETS.items():
            if r["runner"] != runner:
                continue
            met = r[key] <= target if sense == "at most" else r[key] >= target
            runs = ", ".join(f"{x:.2f}" for x in r[f"{key}_runs"])
            print(f"{r['network']}: {what} = {r[key]:.2f} (runs {runs}; target {sense} {target:g}: "
                  f"{'met' if met else 'missed'})")
        if "agrees_with_sim" in r:
            print(f"{r['network']}: the anchor agrees with the simulator on {100 * r['agrees_with_sim']:.0f}% of "
                  f"predictions")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
