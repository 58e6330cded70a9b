"""Our cost model (the `loihi` profile) next to SANA-FE's silicon-fitted Loihi model on the same
runs, dense and delta mode, per sample: energy by term, latency, and the wall time of each
(ours: simulator and cost model on a batch of 64 samples, per sample, median of three; SANA-FE:
building and simulating one sample, and its simulation alone).

    python benchmarks/sanafe_agreement.py [--samples 2] [--json OUT]

Networks: the shipped digits convnet (analog input), and an IF MLP 784-512-512-10 and a LIF
convnet fed binary spikes (random weights, dyadic, and random input spikes: the figures are
about cost, not accuracy). SANA-FE runs one sample from an empty pipeline (T + depth steps);
what that and its stand-in units (biases; delta's reset step) add is taken out at its own
loihi.yaml figures (`sanafe_net.cross_check`), and shown.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "helpers"))  # deploy_nets
from deploy_nets import convnet, spec_of  # noqa: E402

from ddla_neuro.checkpoint import checkpoint_dataset, load_checkpoint  # noqa: E402
from ddla_neuro.deploy.loading import DEFAULT_CHECKPOINT  # noqa: E402
from ddla_neuro.deploy.ir import checkpoint_to_spec, input_frames  # noqa: E402
from ddla_neuro.deploy.cost import cost_run  # noqa: E402
from ddla_neuro.deploy.profiles import load_profile  # noqa: E402
from ddla_neuro.deploy.quant import quantize, quantize_run  # noqa: E402
from ddla_neuro.deploy.sanafe_net import cross_check  # noqa: E402
from ddla_neuro.deploy.sim import simulate  # noqa: E402
from ddla_neuro.deploy.spec import SPIKES, NetSpec, Op, Population, Projection, Sends, assign_depths  # noqa: E402


def shipped(samples: int):
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    _, data = checkpoint_dataset(ckpt, None, None)
    return quantize_run(checkpoint_to_spec(ckpt),
                        input_frames(ckpt.net, data.x_test[:samples], torch.Generator().manual_seed(0)))


def if_mlp(samples: int, sizes=(784, 512, 512, 10), steps: int = 6):
    """IF neurons, threshold 1, weights of +-1/32 drawn at random (fixed point: exact)."""
    rng = np.random.default_rng(0)
    pops, source = [], "input"
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.choice([-1.0, 1.0, 2.0], size=(n_out, n_in)) / 32
        kind = "readout" if k == len(sizes) - 2 else "if"
        sends = Sends(graded=True, bits=24) if kind == "readout" else SPIKES
        projection = Projection(source, [Op("linear", (n_in,), (n_out,), w)])
        pops.append(Population(f"fc{k}", (n_out,), kind, np.zeros(n_out), [projection], sends=sends))
        source = pops[-1].name
    assign_depths(pops)
    spec = quantize(NetSpec((sizes[0],), steps, "events", pops, input_sends=SPIKES))
    return spec, (rng.random((samples, steps, sizes[0])) < 0.2).astype(float)


def lif_convnet(samples: int):
    spec = spec_of(convnet(seed=1, neuron="lif"))
    spec.encoding, spec.input_sends = "events", SPIKES
    spec = quantize(spec)
    return spec, (np.random.default_rng(0).random((samples, spec.timesteps, *spec.input_shape)) < 0.4).astype(float)


NETWORKS = {"digits-convnet": shipped, "if-mlp-784-512-512-10": if_mlp, "lif-convnet": lif_convnet}


BATCH = 64  # samples our side costs at once for its per-sample wall time (a batch, as the deploy runs)


def ours_per_sample_s(spec: NetSpec, frames: np.ndarray, mode: str) -> float:
    """Our simulator and cost model on a batch, per sample: median of three runs."""
    profile, plan = load_profile("loihi"), "dense" if mode == "dense" else "delta"
    times = []
    for _ in range(3):
        start = time.perf_counter()
        counts = simulate(spec, frames, mode).counts
        cost_run(spec, counts, profile, {"input": plan, **{p.name: plan for p in spec.senders}})
        times.append((time.perf_counter() - start) / len(frames))
    return float(np.median(times))


def compare(name: str, samples: int) -> list[dict]:
    spec, frames = NETWORKS[name](max(samples, BATCH))
    c = cross_check(spec, frames[:samples], load_profile("loihi"))
    return [{"network": name, "mode": mode, "steps": c["steps"], "sanafe_steps": c["sanafe_steps"],
             **{f"{what}_{side}": m[what][side] for what in ("energy_j", "latency_s") for side in ("ours", "sanafe")},
             "wall_s_ours": ours_per_sample_s(spec, frames, mode), "wall_s_sanafe": m["wall_s"]["sanafe"],
             "energy_j_sanafe_as_run": m["energy_j"]["sanafe_as_run"], "wall_s_sanafe_sim": m["wall_s"]["sanafe_sim"],
             "terms_ours_j": m["terms_j"]["ours"],
             "terms_sanafe_j": m["terms_j"]["sanafe"], "stand_in_j": m["stand_in_j"],
             "input_synaptic_j": m["input_synaptic_j"]} for mode, m in c["modes"].items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--networks", default=",".join(NETWORKS))
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    rows = [row for n in args.networks.split(",") for row in compare(n, args.samples)]
    print("| network | mode | steps (SANA-FE) | energy ours | energy SANA-FE | ratio | latency ours | latency SANA-FE "
          "| ratio | wall ours | wall SANA-FE (its simulation) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['network']} | {r['mode']} | {r['steps']} ({r['sanafe_steps']}) | "
              f"{r['energy_j_ours'] * 1e6:.2f} uJ | "
              f"{r['energy_j_sanafe'] * 1e6:.2f} uJ | {r['energy_j_ours'] / r['energy_j_sanafe']:.2f} | "
              f"{r['latency_s_ours'] * 1e6:.0f} us | {r['latency_s_sanafe'] * 1e6:.0f} us | "
              f"{r['latency_s_ours'] / r['latency_s_sanafe']:.2f} | {r['wall_s_ours'] * 1e3:.1f} ms | "
              f"{r['wall_s_sanafe']:.1f} s ({r['wall_s_sanafe_sim'] * 1e3:.0f} ms) |")
    for r in rows:
        terms = ", ".join(f"{k} {v * 1e6:.3f}" for k, v in r["terms_ours_j"].items())
        theirs = ", ".join(f"{k} {v * 1e6:.3f}" for k, v in r["terms_sanafe_j"].items())
        print(f"{r['network']} {r['mode']}: ours (uJ) {terms}, of which the input's synaptic ops "
              f"{r['input_synaptic_j'] * 1e6:.3f}; SANA-FE (uJ) {theirs}; taken out of SANA-FE's "
              f"{sum(r['stand_in_j'].values()) * 1e6:.3f} uJ, as run {r['energy_j_sanafe_as_run'] * 1e6:.3f} uJ")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
