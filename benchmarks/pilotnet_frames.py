"""Input for lava-dl's PilotNets, from the one real frame at hand (`image.npy`: a camera frame as
PilotNet LIF's input bias mantissas, lava-dl's (W, H, C) layout).

    python benchmarks/pilotnet_frames.py --steps 8 --out runs/pilotnet_stream.npy

writes a short graded stream for PilotNet SDNN, (T, C, H, W) int16: the frame's image (recovered
through the LIF input layer's transform, 2 w x - w + b with w = 40, b = 36) panned one column a
step, through the SDNN input layer's transform (w = 64, b = 0). A synthetic stream from a real
frame: the PilotNet driving dataset is not bundled (nothing downloads).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddla_neuro.deploy.ir.netx import read_netx  # noqa: E402
from ddla_neuro.deploy.ir.netx_input import input_transform, transform_images, untransform_images  # noqa: E402

DATA = ROOT / "tests" / "data" / "lava-dl-pilotnet"
LIF, SDNN = DATA / "pilotnet_snn" / "network.net", DATA / "pilotnet_sdnn" / "network.net"
IMAGE = DATA / "pilotnet_snn" / "image.npy"


def pilotnet_image() -> np.ndarray:
    """The frame's image in [0, 1], (C, H, W) = (3, 66, 200)."""
    lif = input_transform(read_netx(LIF, 1, encoding="bias"))
    return untransform_images(np.load(IMAGE).transpose(2, 1, 0), lif)


def pilotnet_stream(steps: int) -> np.ndarray:
    """(T, C, H, W) int16: the image panned one column a step, as the SDNN input layer takes it."""
    sdnn = input_transform(read_netx(SDNN, 1, encoding="graded"))
    image = pilotnet_image()
    return np.stack([transform_images(np.roll(image, t, axis=2), sdnn) for t in range(steps)]).astype(np.int16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--out", default="runs/pilotnet_stream.npy")
    args = ap.parse_args()
    if args.steps < 1:
        sys.exit("error: --steps must be at least 1")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, pilotnet_stream(args.steps))
    print(f"wrote {args.out}: {args.steps} frames of (3, 66, 200)")


if __name__ == "__main__":
    main()
