"""The loihi2 profile against the one Loihi 2 chip measurement of a whole network: Intel's
PilotNet LIF run (lava-dl's `pilotnet_snn/benchmark.ipynb`, three committed runs; the figures in
`../shared/notes/loihi2-silicon.md`), reproduced and compared quantity by quantity.

    python benchmarks/loihi2_silicon.py [--json FILE]

The run: PilotNet LIF on `image.npy` as its input layer's bias, inferences of 16 steps with
resets, dense spikes (Loihi's own transmission). Intel ran 625 inferences on one frame with
reset offset 3; on one frame every whole inference is the same, so here two whole ones are
simulated (32 steps, offset 0, the pipeline fill wiped by the first reset) and the figures are
per inference. Ours is costed on the loihi2 profile twice: before the fit (every fitted
quantity at its `prior`) and as fitted.

The fit (what the profile's fitted values hold; this script recomputes it and says whether the
profile holds it). One run of one network identifies one energy scale and one time scale, not
Loihi 2's per-operation figures apart: the dynamic energy per inference is one number a run,
and so is the time per step. So every per-operation energy is Loihi's prior times one common
factor s (Loihi's ratios between operations kept), fitted as the mean over the three runs of
measured / ours-before-the-fit, its band the runs' lowest and highest ratio; every
per-operation time likewise times one factor (the barrier, a vendor bound, is not fitted). The
static power is measured, not fitted: the mean of the four published runs (the three LIF runs
and the SDNN's), band their spread.

Printed: cores per layer against Intel's compiler, synaptic ops per step against the figure
read off the chip's activity plot (another frame), time per step, dynamic energy per inference
with its band, static power and energy, total, and the fit.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ddla_neuro.deploy.cost import cost_run  # noqa: E402
from ddla_neuro.deploy.ir.netx import read_netx  # noqa: E402
from ddla_neuro.deploy.ir.netx_input import frames_layout, netx_frames  # noqa: E402
from ddla_neuro.deploy.profiles import load_profile  # noqa: E402
from ddla_neuro.deploy.sim import simulate  # noqa: E402
from pilotnet_frames import IMAGE, LIF  # noqa: E402

STEPS_PER_INFERENCE = 16
# (commit, us per step, static W, dynamic mJ per inference, total mJ per inference): the notebook's three runs
RUNS = (("b9e3691", 152.8, 0.232, 1.094, 1.661), ("baa23ad", 151.1, 0.309, 1.071, 1.818),
        ("76c8fbb", 150.4, 0.178, 0.562, 0.991))
SDNN_STATIC_W = 0.282  # pilotnet_sdnn/benchmark.ipynb, b9e3691: the same chip's static power
COMPILER_CORES = (13, 25, 13, 3, 3, 2, 12, 1, 1, 1)  # input first, as the notebook's per-core table
SILICON_SOPS_PER_STEP = 2.3e6  # read off the notebook's activity plot (~2.3e10 over 10,000 steps), another frame
LAYERS = ("layer0", "layer1", "layer2", "layer3", "layer4", "layer5", "layer7", "layer8", "layer9", "layer10")


def pilotnet_run():
    spec = read_netx(LIF, 2 * STEPS_PER_INFERENCE, encoding="bias", reset_interval=STEPS_PER_INFERENCE)
    frames = netx_frames(spec, frames_layout(np.load(IMAGE), spec.input_shape, stream=False))
    return spec, simulate(spec, frames, "dense").counts


def ours(spec, counts, profile) -> dict:
    """The figures of one inference on `profile`."""
    report = cost_run(spec, counts, profile, {"input": "dense", **{p.name: "dense" for p in spec.senders}})
    totals, per = report["totals"], report["totals"]["per_inference"]
    rows = {r["layer"]: r for r in report["layers"]}
    step_s = per["latency_s"] / STEPS_PER_INFERENCE
    static_w = profile.quantity("energy", "p_static_chip").value
    dynamic = per["dynamic_energy_j"]
    static = static_w * totals["chips"] * per["latency_s"]
    return {"cores": {"total": sum(rows[n]["cores"] for n in LAYERS), "per_layer": [rows[n]["cores"] for n in LAYERS]},
            "synops_per_step": per["synaptic_ops"] / STEPS_PER_INFERENCE, "time_per_step_s": step_s,
            "dynamic_energy_per_inference_j": dynamic, "static_power_w": static_w,
            "static_energy_per_inference_j": static, "energy_per_inference_j": dynamic + static,
            "parts_per_inference_j": {k: v / spec.inferences for k, v in totals["energy_parts_j"].items()},
            "neuron_updates_per_step": {n: rows[n]["neuron_updates"] / spec.timesteps for n in LAYERS},
            "spikes_per_step": {n: rows[n]["spikes"] / spec.timesteps for n in LAYERS},
            "sops_per_step": {n: rows[n]["synaptic_ops"] / spec.timesteps for n in LAYERS},
            "band": per["band"]}


def fit(before: dict, profile) -> dict:
    """The common energy and time factors the three runs give (module docstring)."""
    barrier = profile.quantity("time", "t_barrier").value
    energy = [run[3] * 1e-3 / before["dynamic_energy_per_inference_j"] for run in RUNS]
    work = before["time_per_step_s"] - barrier
    time = [(run[1] * 1e-6 - barrier) / work for run in RUNS]
    static = [run[2] for run in RUNS] + [SDNN_STATIC_W]
    return {"energy_scale": statistics.mean(energy), "energy_scale_band": [min(energy), max(energy)],
            "time_scale": statistics.mean(time), "time_scale_band": [min(time), max(time)],
            "static_power_w": statistics.mean(static), "static_power_band_w": [min(static), max(static)]}


def holds(profile, factors: dict) -> bool:
    """Whether every fitted energy and time of the profile is its prior times the fitted factor (and band)."""
    def close(a, b):
        return abs(a - b) <= 1e-3 * abs(b)
    for section, key in (("energy", "energy_scale"), ("time", "time_scale")):
        for q in getattr(profile, section).values():
            if q.kind != "fitted":
                continue
            lo, hi = factors[f"{key}_band"]
            if not (close(q.value, q.prior * factors[key]) and close(q.low, q.prior * lo)
                    and close(q.high, q.prior * hi)):
                return False
    p = profile.quantity("energy", "p_static_chip")
    return close(p.value, factors["static_power_w"]) and [p.low, p.high] == factors["static_power_band_w"]


def _span(values, unit: str, digits: int = 2) -> str:
    return f"{min(values):.{digits}f}-{max(values):.{digits}f} {unit}"


def table(before: dict, after: dict) -> list[str]:
    low = min(r[3] for r in RUNS)
    high = max(r[3] for r in RUNS)
    band = (after["band"] or {"dynamic_energy_j": [float("nan")] * 2})["dynamic_energy_j"]
    rows = [("cores", "74", f"{before['cores']['total']}", f"{after['cores']['total']}"),
            ("synaptic ops / step", f"~{SILICON_SOPS_PER_STEP / 1e6:.1f} M (another frame)",
             f"{before['synops_per_step'] / 1e6:.2f} M", f"{after['synops_per_step'] / 1e6:.2f} M"),
            ("time / step", f"{min(r[1] for r in RUNS):.1f}-{max(r[1] for r in RUNS):.1f} us",
             f"{before['time_per_step_s'] * 1e6:.1f} us", f"{after['time_per_step_s'] * 1e6:.1f} us"),
            ("dynamic energy / inference", f"{low:.2f}-{high:.2f} mJ",
             f"{before['dynamic_energy_per_inference_j'] * 1e3:.2f} mJ",
             f"{after['dynamic_energy_per_inference_j'] * 1e3:.2f} mJ ({band[0] * 1e3:.2f}-{band[1] * 1e3:.2f})"),
            ("static power", f"{min(r[2] for r in RUNS):.3f}-{max(r[2] for r in RUNS):.3f} W",
             f"{before['static_power_w']:.3f} W", f"{after['static_power_w']:.3f} W"),
            ("static energy / inference", _span([r[4] - r[3] for r in RUNS], "mJ"),
             f"{before['static_energy_per_inference_j'] * 1e3:.2f} mJ",
             f"{after['static_energy_per_inference_j'] * 1e3:.2f} mJ"),
            ("energy / inference", _span([r[4] for r in RUNS], "mJ"),
             f"{before['energy_per_inference_j'] * 1e3:.2f} mJ", f"{after['energy_per_inference_j'] * 1e3:.2f} mJ")]
    out = ["| quantity | Loihi 2 (3 runs) | ours, before the fit | ours, fitted |", "|---|---:|---:|---:|"]
    return out + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    profile = load_profile("loihi2")
    spec, counts = pilotnet_run()
    before, after = ours(spec, counts, profile.bound("prior")), ours(spec, counts, profile)
    factors = fit(before, profile)
    print("\n".join(table(before, after)) + "\n")
    print("| layer | cores (Intel's compiler) | ours | neuron updates / step | spikes / step "
          "| synaptic ops into it / step |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, intel, mine in zip(LAYERS, COMPILER_CORES, after["cores"]["per_layer"]):
        print(f"| {name} | {intel} | {mine} | {after['neuron_updates_per_step'][name]:,.0f} | "
              f"{after['spikes_per_step'][name]:,.1f} | {after['sops_per_step'][name]:,.0f} |")
    print("\nenergy per inference by term, before the fit: "
          + ", ".join(f"{k} {v * 1e3:.3f} mJ" for k, v in before["parts_per_inference_j"].items()))
    print(f"fit: energies x {factors['energy_scale']:.4f} (runs {factors['energy_scale_band'][0]:.4f}-"
          f"{factors['energy_scale_band'][1]:.4f}), times x {factors['time_scale']:.4f} (runs "
          f"{factors['time_scale_band'][0]:.4f}-{factors['time_scale_band'][1]:.4f}), static power "
          f"{factors['static_power_w']:.4f} W "
          f"({factors['static_power_band_w'][0]}-{factors['static_power_band_w'][1]})")
    print(f"the loihi2 profile holds this fit: {'yes' if holds(profile, factors) else 'NO'}")
    goals = {"cores equal Intel's compiler's on every layer": after["cores"]["per_layer"] == list(COMPILER_CORES),
             "time per step within 25% of the chip's": abs(after["time_per_step_s"] * 1e6 / 151.4 - 1) <= 0.25,
             "dynamic energy inside the measured band": 0.562e-3 <= after["dynamic_energy_per_inference_j"] <= 1.094e-3}
    for goal, met in goals.items():
        print(f"goal: {goal}: {'met' if met else 'NOT met'}")
    if args.json:
        out = {**{k: after[k] for k in ("cores", "synops_per_step", "time_per_step_s", "dynamic_energy_per_inference_j",
                                        "static_power_w", "static_energy_per_inference_j", "energy_per_inference_j")},
               "dynamic_energy_band_j": after["band"]["dynamic_energy_j"], "before_fit": before, "fit": factors,
               "silicon": {"runs": [dict(zip(("commit", "us_per_step", "static_w", "dynamic_mj", "total_mj"), r))
                                    for r in RUNS],
                           "compiler_cores": list(COMPILER_CORES), "synops_per_step": SILICON_SOPS_PER_STEP},
               "goals": goals}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
