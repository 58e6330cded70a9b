"""Lava at scale: the runner's build time and ms per step on bigger networks, against the
wall-time estimate `deploy` prints before a Lava run (`lava_run.estimate_lava_seconds`).

    python benchmarks/lava_scale.py [--samples 1] [--networks resnet19,convnet28] [--repeat 3]

Networks with random dyadic weights (scaled so that every layer spikes), fixed point, delta
mode, direct input of random images: ResNet-19 at CIFAR shape (3x32x32, T = 6) and the zoo
convnet at 28x28 (T = 6).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "helpers"))  # deploy_nets: the tests' networks

from deploy_nets import dyadic_  # noqa: E402
from ddla_neuro.deploy.ir import input_frames, network_to_nir, nir_to_spec  # noqa: E402
from ddla_neuro.deploy.lava_run import estimate_lava_seconds, lava_processes, run_lava  # noqa: E402
from ddla_neuro.deploy.quant import quantize_run  # noqa: E402
from ddla_neuro.zoo import build_model  # noqa: E402

NETWORKS = {"resnet19": ("resnet19", (3, 32, 32)), "convnet28": ("convnet", (1, 28, 28))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--networks", default="resnet19,convnet28")
    ap.add_argument("--repeat", type=int, default=1, help="consecutive runs of each network, one row each")
    args = ap.parse_args()
    print("| network | Lava processes | samples | build | ms / step | wall | estimate | estimate / wall |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.networks.split(","):
        model, shape = NETWORKS[name]
        torch.manual_seed(0)
        net = dyadic_(build_model(model, num_classes=10, input_shape=shape, timesteps=6), 0, 3.0).eval()
        spec, frames = quantize_run(nir_to_spec(network_to_nir(net)),
                                    input_frames(net, torch.rand(args.samples, *shape)))
        est = estimate_lava_seconds(spec, args.samples)
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            r = run_lava(spec, frames, "delta")
            wall = time.perf_counter() - t0
            print(f"| {name} | {lava_processes(spec)} | {args.samples} | {r.build_s:.1f} s | {r.ms_per_step:,.1f} | "
                  f"{wall:.1f} s | {est:.0f} s | {est / wall:.2f} |", flush=True)


if __name__ == "__main__":
    main()
