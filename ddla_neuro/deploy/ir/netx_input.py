"""The frames a netx network's input layer takes (`netx.py`): raw images through lava-dl's input
transform (`input_transform`, `transform_images`), integer frames laid out for the input
shape, a bias frame held T steps, graded streams, and the host's delta encoder
(`host_delta_frames`, lava-dl's `skip_layers=1`)."""
from __future__ import annotations


import numpy as np

from .nodes import IRError
from ..ops import MEMBRANE_BITS
from ..spec import NetSpec

from .netx import ACT_SHIFT, BIAS_BITS, FRAME_ENCODINGS, SPIKE_EXP, STATE_EXP


def input_transform(spec: NetSpec) -> dict[str, int]:
    """lava-dl's input transform of raw images (the input layer's weight and bias, as lava-dl's
    PilotNet dataset applies them); identity-like {64, 0} where the file has none."""
    return spec.meta.get("netx_input", {}).get("transform", {"weight": 2 ** ACT_SHIFT, "bias": 0})


def transform_images(x: np.ndarray, transform: dict[str, int]) -> np.ndarray:
    """Raw images in [0, 1] as the integers an input layer of neurons takes, as lava-dl's PilotNet
    dataset class computes them: 2 w x - w + b, truncated toward zero."""
    w, b = transform["weight"], transform["bias"]
    return np.trunc(2 * w * np.asarray(x, dtype=np.float64) - w + b)


def untransform_images(m: np.ndarray, transform: dict[str, int]) -> np.ndarray:
    """The images in [0, 1] behind transformed integers (`transform_images`), to within the
    truncation: (m - b + w) / 2w, clipped to [0, 1]."""
    w, b = transform["weight"], transform["bias"]
    return np.clip((np.asarray(m, dtype=np.float64) - b + w) / (2 * w), 0.0, 1.0)


def frames_layout(x: np.ndarray, input_shape: tuple[int, ...], stream: bool) -> np.ndarray:
    """Integer input in our layout: (N, *input_shape) frames (`stream` False: a bias frame per
    sample) or (N, T, *input_shape) streams. One frame or one stream may come alone, and in
    lava-dl's layout too ((W, H, C) as its `image.npy`; (W, H, C, T) as a RingBuffer's data)."""
    x = np.asarray(x)
    shape, lava = tuple(input_shape), tuple(input_shape[::-1])
    leading = 2 if stream else 1  # (N, T) or (N,)
    if lava != shape and (x.shape == lava or (stream and x.shape[:-1] == lava)):
        return x.T[None]
    extra = x.ndim - len(shape)
    if 0 <= extra <= leading and x.shape[extra:] == shape:
        return x.reshape((1,) * (leading - extra) + x.shape)
    kind = "(N, T, *shape) or (T, *shape)" if stream else "(N, *shape) or one frame"
    raise IRError(f"frames of shape {x.shape} do not fit the input layer's {shape}: give {kind}, in (C, H, W) "
                  f"order (or lava-dl's {lava})")


def netx_frames(spec: NetSpec, x: np.ndarray) -> np.ndarray:
    """The frames (N, T, *input_shape) a netx spec of a frame encoding runs, from integers in our
    layout (`frames_layout`): a bias frame per sample held T steps; a graded stream as it is;
    for graded-host what the host's delta encoder has sent (`host_delta_frames`). Checks that
    they are integers the input layer can hold."""
    meta = spec.meta.get("netx_input", {})
    encoding = meta.get("encoding")
    if encoding not in FRAME_ENCODINGS:
        raise IRError(f"netx_frames feeds --netx-encoding {', '.join(FRAME_ENCODINGS)}, not {encoding}")
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)) or not np.array_equal(x, np.round(x)):
        raise IRError("the input layer takes integer frames (lava-dl's mantissas); raw images in [0, 1] go through "
                      "the input layer's transform: pass them as a --dataset")
    if encoding == "bias":
        _in_range(x, BIAS_BITS, "bias mantissas (Lava's LIF: signed 13 bits)")
        return np.repeat(x[:, None], spec.timesteps, axis=1)
    # the input neurons' state holds the frame shifted by spike_exp + state_exp in 24 bits
    _in_range(x, MEMBRANE_BITS - SPIKE_EXP - STATE_EXP, "graded frames (a sigma-delta state of 24 bits)")
    if encoding == "graded":
        return x
    received = host_delta_frames(x, meta["v_th"])
    sent = np.diff(received, axis=1, prepend=0)
    _in_range(sent, meta["bits"], f"the host encoder's messages ({meta['bits']}-bit payloads)")
    return received.astype(np.float64)


def _in_range(x: np.ndarray, bits: int, what: str) -> None:
    low, high = -2 ** (bits - 1), 2 ** (bits - 1) - 1
    if x.size and (x.min() < low or x.max() > high):
        raise IRError(f"{what} must lie in {low}..{high}, got {x.min():.0f}..{x.max():.0f}")


def host_delta_frames(x: np.ndarray, v_th_mant: int) -> np.ndarray:
    """Graded frames (N, T, ...) through the host's delta encoder of lava-dl's PilotNet SDNN
    (Lava's `DeltaEncoder`, spike_exp 6): each step the frame shifted left by 6, its change plus
    the residue sent where it reaches `v_th_mant << 6`. Returns what the chip has received by
    each step (the sum of the messages), which the network's input sends (its changes: the
    messages)."""
    x = np.asarray(x, dtype=np.int64) << SPIKE_EXP
    v_th = v_th_mant << SPIKE_EXP
    received = np.zeros_like(x)
    act = residue = total = np.zeros_like(x[:, 0])
    for t in range(x.shape[1]):
        delta = x[:, t] - act + residue
        sent = np.where(np.abs(delta) >= v_th, delta, 0)
        residue, act = delta - sent, x[:, t]
        total = total + sent
        received[:, t] = total
    return received
