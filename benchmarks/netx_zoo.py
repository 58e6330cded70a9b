"""lava-dl netx files through ddla-neuro: imported or refused, and what each does on its input.

    python benchmarks/netx_zoo.py FILE.net[@N][=FRAMES.npy] ... [--encoding E] [--timesteps T]
                                  [--reset-interval N] [--reset-offset K] [--repeat 3] [--no-lava] [--json PATH]

For each file (its first N layers with @N, lava-dl's num_layers): the refusal line, or its netx
layers and neurons, its cores on Loihi 2 (the tiled mapping: per layer, what sets the count) and,
on its input, per layer the
values it sent per step (a bias input's: the host's writes into the bias registers) and the
synaptic ops into it per step, in dense and delta mode, the fast simulator's ms per step
(median of --repeat runs) and whether our Lava processes equal the simulator (logits, counters
and every layer's activity, dense and delta). The input: FRAMES (integers as `deploy --frames`
takes them, or spikes (N, T, ...)); else lava-dl's PilotNet frame where the input layer takes
3 x 66 x 200 (`pilotnet_frames.py`: image.npy as the bias, its panned stream as graded input);
else seeded random frames (spikes at rate 0.2, bias mantissas 0..40, graded values -40..40). The
encoding is read off the input layer unless --encoding says: CUBA or LOIHI input neurons take
their frame as bias, SDNN ones a graded stream, none take events. T: --timesteps, else the
file's tSample, else 16 (a graded stream has its own).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ddla_neuro.deploy.cost import Terms, map_network, mode_plan  # noqa: E402
from ddla_neuro.deploy.loading import read_frames  # noqa: E402
from ddla_neuro.deploy.profiles import load_profile  # noqa: E402
from ddla_neuro.deploy.ir import IRError  # noqa: E402
from ddla_neuro.deploy.lava_run import run_lava  # noqa: E402
from ddla_neuro.deploy.ir.netx import FRAME_ENCODINGS, load_netx_layers, netx_to_spec, stored_timesteps  # noqa: E402
from ddla_neuro.deploy.ir.netx_input import frames_layout, netx_frames  # noqa: E402
from ddla_neuro.deploy.sim import simulate  # noqa: E402
from ddla_neuro.deploy.spec import NetSpec  # noqa: E402
from pilotnet_frames import IMAGE, pilotnet_stream  # noqa: E402

PILOTNET_SHAPE = (3, 66, 200)
MODES = ("dense", "delta")


def guess_encoding(layers: list[tuple[str, dict]]) -> str:
    """The encoding an input layer of neurons takes (bias for CUBA/LOIHI, graded for SDNN), else events."""
    first = layers[0][1]
    if first.get("type") != "input" or "neuron" not in first:
        return "events"
    return "graded" if first["neuron"].get("type") == "SDNN" else "bias"


def default_input(spec: NetSpec, encoding: str, steps: int) -> np.ndarray:
    """(N = 1, ...) input in `deploy --frames` form (spikes: (1, T, ...)), PilotNet's where it fits."""
    rng = np.random.default_rng(0)
    shape = tuple(spec.input_shape)
    if encoding == "bias":
        return np.load(IMAGE).T[None] if shape == PILOTNET_SHAPE else rng.integers(0, 41, (1, *shape))
    if encoding in FRAME_ENCODINGS:
        return pilotnet_stream(steps)[None] if shape == PILOTNET_SHAPE else rng.integers(-40, 41, (1, steps, *shape))
    return (rng.random((1, steps, *shape)) < 0.2).astype(np.float64)


def load(path: str, encoding: str | None, args: argparse.Namespace) -> tuple[NetSpec, np.ndarray, str]:
    """The spec and frames (N, T, *input_shape) of one FILE[=FRAMES]; IRError where refused."""
    net, _, frames_file = path.partition("=")
    net, _, first = net.partition("@")
    layers = load_netx_layers(net)[: int(first) if first else None]
    encoding = encoding or guess_encoding(layers)
    steps = args.timesteps or stored_timesteps(net) or 16
    spec = netx_to_spec(layers, steps, True, None, net, encoding, args.reset_interval or 0, args.reset_offset)
    stream = encoding != "bias"
    given = read_frames(frames_file) if frames_file else None
    if encoding in FRAME_ENCODINGS:
        x = frames_layout(given if given is not None else default_input(spec, encoding, steps), spec.input_shape,
                          stream)
        spec = replace(spec, timesteps=x.shape[1]) if stream else spec
        return spec, netx_frames(spec, x), encoding
    x = given if given is not None else default_input(spec, encoding, steps)
    spec = replace(spec, timesteps=x.shape[1])
    return spec, np.asarray(x, dtype=np.float64).reshape(len(x), x.shape[1], *spec.input_shape), encoding


def measure(spec: NetSpec, frames: np.ndarray, repeat: int, lava: bool) -> dict:
    runs, ms = {}, {}
    for mode in MODES:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            runs[mode] = simulate(spec, frames, mode, record=lava)
            times.append(time.perf_counter() - start)
        ms[mode] = 1000 * statistics.median(times) / (frames.shape[0] * spec.timesteps)
    same = None
    if lava:
        same = True
        for mode in MODES:
            got = run_lava(spec, frames, mode, record=True)
            same &= bool(np.array_equal(got.logits, runs[mode].logits)
                         and got.counts.to_dict() == runs[mode].counts.to_dict()
                         and all(np.array_equal(got.activity[k], v) for k, v in runs[mode].activity.items()))
    per_step = len(frames) * spec.timesteps
    layers = [{"layer": name, **{f"{kind}_per_step_{mode}": float(np.sum(getattr(runs[mode].counts, kind).get(name, 0)))
                                 / per_step for mode in MODES for kind in ("events", "sops")}}
              for name in ["input"] + [p.name for p in spec.populations]]
    return {"ms_per_step_sim": ms, "lava_equals_sim": same, "per_layer": layers}


def row_of(path: str, encoding: str | None, args: argparse.Namespace) -> dict:
    try:
        spec, frames, encoding = load(path, encoding, args)
    except IRError as e:
        return {"file": path, "imported": False, "refusal": str(e)}
    row = {"file": path, "imported": True, "encoding": encoding, "timesteps": spec.timesteps,
           "samples": int(len(frames)),
           "reset": [spec.reset_interval, args.reset_offset] if spec.reset_interval else None,
           "layers": [p.name for p in spec.populations if p.name != "output"],  # not our readout of the last
           "neurons": int(sum(p.size for p in spec.populations if p.name != "output"))}
    mapping = map_network(spec, mode_plan(spec, "dense"), Terms(load_profile("loihi2")))
    row["cores_loihi2"] = sum(c for c in mapping.cores.values() if c)
    row["binds"] = {name: f"{mapping.cores[name]} ({binds})" for name, binds in mapping.binds.items()}
    return {**row, **measure(spec, frames, args.repeat, not args.no_lava)}


def print_row(row: dict) -> None:
    if not row["imported"]:
        print(f"{row['file']}: refused: {row['refusal']}\n")
        return
    ms, lava = row["ms_per_step_sim"], row["lava_equals_sim"]
    print(f"{row['file']}: {len(row['layers'])} layers, {row['neurons']:,} neurons, {row['cores_loihi2']} cores "
          f"on loihi2 ({', '.join(f'{k}: {v}' for k, v in row['binds'].items())}), {row['encoding']} input, "
          f"T = {row['timesteps']}; simulator {ms['dense']:.2f} / {ms['delta']:.2f} ms per step (dense / delta); "
          f"Lava == simulator: {'not run' if lava is None else 'yes' if lava else 'NO'}")
    print("| layer | sent/step dense | delta | synaptic ops into it/step dense | delta |")
    print("|---|---:|---:|---:|---:|")
    for r in row["per_layer"]:
        print(f"| {r['layer']} | {r['events_per_step_dense']:,.1f} | {r['events_per_step_delta']:,.1f} | "
              f"{r['sops_per_step_dense']:,.0f} | {r['sops_per_step_delta']:,.0f} |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", metavar="FILE.net[@N][=FRAMES.npy]")
    ap.add_argument("--encoding", choices=("events", "bias", "graded", "graded-host"))
    ap.add_argument("--timesteps", type=int)
    ap.add_argument("--reset-interval", type=int)
    ap.add_argument("--reset-offset", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-lava", action="store_true", help="skip the Lava runs")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    rows = []
    for path in args.files:
        rows.append(row_of(path, args.encoding, args))
        print_row(rows[-1])
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
