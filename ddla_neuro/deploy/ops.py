"""Op arithmetic in numpy, one home for what the simulator, the Lava models, the cost model
and the readers compute on a NetSpec's ops (`spec.Op`): the ops on a batch (`apply_op*`), a
projection's composed fan-out and its synaptic ops, an op's gain (the bound behind every
exactness check, `EXACT_FLOAT32`, `EXACT_FLOAT`), and Loihi's integer arithmetic: the 24-bit
membrane and current registers, the 12-bit decay, a sigma-delta step, the resets of a stream.
The torch versions in `sim.py` must agree (tests). Nothing here imports the data model: `spec`
imports this.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .spec import Op

MEMBRANE_BITS = 24  # Loihi's membrane register
DECAY_BITS = 12     # Loihi's decay constants: v <- v * (4096 - dv) / 4096
SATURATION = 2 ** (MEMBRANE_BITS - 1)  # the membrane saturates to [-SATURATION, SATURATION - 1]
EXACT_FLOAT32 = 2 ** 24  # integers up to this magnitude add and multiply exactly in float32
EXACT_FLOAT = 2 ** 53    # and in float64 (BLAS)


def wrap_current(u):
    """Loihi's 24-bit current register (a cuba population's u): a value above 2**23 - 1 or at
    -2**23 and below wraps around, as Lava's bit-accurate LIF computes it. Plain arithmetic, so
    numpy arrays and torch tensors alike."""
    return u - 2 * SATURATION * (u > SATURATION) + 2 * SATURATION * (u <= -SATURATION)


def reset_due(t: int, interval: int, offset: int) -> bool:
    """Whether a stream of inferences resets before step t (0-based, negative in the pipeline
    fill) of a sample (`NetSpec.resets`)."""
    return interval > 0 and t % interval == offset % interval


def sigma_delta(sigma, act, residue, bias, v_th, relu: bool, shift: int):
    """One step of a sigma-delta neuron (spec.py), as Lava's `SigmaDelta` computes it: the
    activation of sigma + bias, its change since the last step plus the residue, sent where it
    reaches `v_th`; returns (message, activation, residue). A message is the sent change shifted
    right by `shift` (floor, as numpy's right shift of a negative integer). Plain arithmetic, so
    numpy arrays and torch tensors alike."""
    new_act = sigma + bias
    if relu:
        new_act = new_act * (new_act > 0)
    delta = new_act - act + residue
    sent = delta * (abs(delta) >= v_th)
    return (sent // 2 ** shift if shift else sent), new_act, delta - sent


def decay_fixed(v: np.ndarray, dv: int) -> np.ndarray:
    """Loihi's leak: v * (4096 - dv) / 4096, rounded toward zero (int64 in, int64 out)."""
    if dv == 0:
        return v
    prod = v * (2 ** DECAY_BITS - dv)
    return np.sign(prod) * (np.abs(prod) >> DECAY_BITS)


# --- ops on a batch of samples ------------------------------------------------------------------

def _windows(x: np.ndarray, op: Op) -> np.ndarray:
    """(B, C, H, W) -> (B, C, Ho, Wo, kh, kw) sliding windows with zero padding."""
    (ph, pw), (sh, sw), (kh, kw) = op.padding, op.stride, op.kernel
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    return win[:, :, ::sh, ::sw][:, :, : op.out_shape[1], : op.out_shape[2]]


def apply_op_batch(op: Op, x: np.ndarray) -> np.ndarray:
    """One op on a batch: `x` (B, *in_shape) or (B, flat) -> (B, *out_shape)."""
    x = x.reshape(x.shape[0], *op.in_shape)
    if op.kind == "conv2d":
        y = np.moveaxis(np.tensordot(op.weight, _windows(x, op), axes=([1, 2, 3], [1, 4, 5])), 0, 1)
    elif op.kind == "linear":
        y = x @ op.weight.T
    elif op.kind == "sumpool2d":
        y = _windows(x, op).sum(axis=(4, 5))
    elif op.kind == "flatten":
        y = x
    elif op.kind == "scale":
        y = op.weight * x
    else:
        raise ValueError(f"unknown op {op.kind!r}")
    return y.reshape(x.shape[0], *op.out_shape)


def apply_ops_batch(ops: list[Op], x: np.ndarray) -> np.ndarray:
    for op in ops:
        x = apply_op_batch(op, x)
    return x


def apply_op(op: Op, x: np.ndarray) -> np.ndarray:
    """One op on one sample given in the op's `in_shape` (or flat)."""
    return apply_op_batch(op, np.asarray(x).reshape(1, -1))[0]


def apply_ops(ops: list[Op], x: np.ndarray) -> np.ndarray:
    return apply_ops_batch(ops, np.asarray(x).reshape(1, -1))[0]


def _reach_back(op: Op, reach: np.ndarray) -> np.ndarray:
    """For each input position of `op`: the sum of `reach` over the outputs it connects to."""
    if op.kind in ("flatten", "scale"):  # one target per input
        return reach.reshape(op.in_shape)
    if op.kind == "linear":
        return np.full(op.in_shape, reach.sum())
    per_output = reach.sum(axis=0, keepdims=True) if op.kind == "conv2d" else reach  # conv: every channel
    (kh, kw), (sh, sw), (ph, pw) = op.kernel, op.stride, op.padding
    _, h, w = op.in_shape
    back = np.zeros((per_output.shape[0], h, w))
    for ho in range(op.out_shape[1]):
        for wo in range(op.out_shape[2]):
            r0, c0 = ho * sh - ph, wo * sw - pw
            back[:, max(r0, 0): min(r0 + kh, h), max(c0, 0): min(c0 + kw, w)] += per_output[:, ho: ho + 1, wo: wo + 1]
    return np.broadcast_to(back, op.in_shape).copy()


def projection_fanout(ops: list[Op]) -> np.ndarray:
    """Synaptic ops caused by one non-zero value at each input position of a projection (shape
    `ops[0].in_shape`): the targets it reaches through the whole chain. A chip stores a chain
    (say sum pool then conv) as one composed synapse matrix, so an event costs its composed
    fan-out, whatever the intermediate values. Where paths meet at one target (overlapping
    pool windows) each path counts: an upper bound there, exact otherwise."""
    reach = np.ones(ops[-1].out_shape)
    for op in reversed(ops):
        reach = _reach_back(op, reach)
    return reach.astype(np.int64)


def synaptic_ops(fan: np.ndarray, x: np.ndarray) -> int:
    """Synaptic ops of input `x` (one sample, or a batch with the samples first): each non-zero
    value costs its composed fan-out `fan` (`projection_fanout`)."""
    return int(np.count_nonzero(np.asarray(x).reshape(-1, fan.size), axis=0) @ fan.reshape(-1))


def op_gain(op: Op) -> float:
    """The largest factor by which `op` can grow the largest input magnitude."""
    if op.kind in ("linear", "conv2d"):
        return float(np.abs(op.weight).reshape(op.weight.shape[0], -1).sum(axis=1).max(initial=0))
    if op.kind == "sumpool2d":
        return float(np.prod(op.kernel))
    if op.kind == "scale":
        return float(np.abs(op.weight).max(initial=0))
    return 1.0
