"""The deploy tables of docs/RESULTS.md: the shipped model on every shipped hardware profile
(dense, delta, DDLA, mixed), the DDLA keep sweep, and the compatibility modes.

    python benchmarks/deploy_profiles.py [--backend fast|lava] [--samples N] [--keep 0.5,0.3,0.7,1]

Default: the fast simulator (bit-exact with Lava, checked by the deploy tests and by every
Lava deploy) on the whole digits test split, fixed point, seed 0.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddla_neuro.deploy.pipeline import DeployOptions, deploy  # noqa: E402
from ddla_neuro.deploy.profiles import list_profiles  # noqa: E402
from ddla_neuro.deploy.report import banded_total, si  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="fast", choices=("fast", "lava"))
    ap.add_argument("--samples", type=int)
    ap.add_argument("--keep", help="DDLA keep ratios, the first for the ddla rows (default: the model's k, "
                                   "swept with 1,0.7,0.5,0.3)")
    args = ap.parse_args()
    print("| profile | mode | accuracy | SOPs | events | energy | dynamic | cores | latency | unknown terms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    reports = {}
    t0 = time.perf_counter()
    for profile in list_profiles():
        reports[profile] = r = deploy(DeployOptions(profile=profile, backend=args.backend, keep=args.keep,
                                                    samples=args.samples))
        for mode, m in r["modes"].items():
            t = m["totals"]
            cells = [banded_total(r, mode, key, unit) for key, unit in
                     (("energy_j", "J"), ("dynamic_energy_j", "J"), ("latency_s", "s"))]
            print(f"| {profile} | {mode} | {100 * t['accuracy']:.2f}% | {t['synaptic_ops']:,.0f} | "
                  f"{t['events']:,.0f} | "
                  f"{cells[0]} | {cells[1]} | {t['cores'] or 'unknown'} | {cells[2]} | "
                  f"{', '.join(t['unknown_terms']) or '-'} |")
    r = reports["loihi2"]
    print(f"\nDDLA keep sweep on loihi2 ({r['run']['samples']} samples):\n")
    print("| keep | accuracy | SOPs | events | energy |\n|---:|---:|---:|---:|---:|")
    for s in r["sweep"]:
        print(f"| {s['keep']:g} | {100 * s['accuracy']:.2f}% | {s['synaptic_ops']:,.0f} | {s['events']:,.0f} | "
              f"{si(s['energy_j'], 'J')} |")
    lit = r["literature"]
    dense, delta, ddla = (r["modes"][m]["totals"] for m in ("dense", "delta", "ddla"))
    float_run = DeployOptions(profile="loihi2", backend="fast", fixed=False, mode="dense", samples=args.samples)
    for precision, nb in (("fixed-point", r["neurobench"]),  # what the default report shows
                          ("float", deploy(float_run)["neurobench"])):  # = NeuroBench 2.3.0
        print(f"\nNeuroBench SynapticOperations, dense run of the {precision} model: Effective_ACs "
              f"{nb['effective_acs']:,.0f}, Effective_MACs {nb['effective_macs']:,.0f}, Dense {nb['dense']:,.0f}")
    print(f"Literature estimate (45 nm, dense): {lit['first_layer_flops']:,.0f} first-layer FLOPs, "
          f"{lit['synaptic_ops']:,.0f} SOPs, {si(lit['energy_j'], 'J')}")
    for name, t in (("delta", delta), ("ddla", ddla)):
        steps = r["modes"][name]["per_timestep"]["events"]
        dense_steps = r["modes"]["dense"]["per_timestep"]["events"]
        print(f"{name}: events {100 * (1 - t['events'] / dense['events']):.1f}% fewer than dense in total, "
              f"{100 * (1 - steps[-1] / dense_steps[-1]):.1f}% fewer at the last step; SOPs "
              f"{100 * (1 - t['synaptic_ops'] / dense['synaptic_ops']):.1f}% fewer")
    print(f"\nwall time: {time.perf_counter() - t0:.1f} s ({args.backend} backend)")


if __name__ == "__main__":
    main()
