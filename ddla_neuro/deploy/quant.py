"""Float NetSpec -> Loihi-style fixed point.

* Weights: 8-bit signed mantissas, one exponent per projection (`w ~= mant * 2**-q`).
* Membrane: integers in units of 2**-m per population (m = `frac_bits`), saturated to 24 bit;
  each projection's integer product is shifted left by `m - q - f_src` to land in those units
  (f_src: fractional bits of what the source sends; 0 for spikes).
* Threshold and bias: integers in membrane units; leak: a 12-bit decay constant dv, applied as
  Loihi does, `v * (4096 - dv) / 4096` rounded toward zero.
* Input: direct (analog) input is sent as `round(x * 2**8)`; spike/event input as integers.
* Compute populations (max pool, product) send values in their own membrane units, so a
  projection from one has f_src = that population's `frac_bits`.

The float semantics of the spec divided by 2**m are what the integers approximate; the fast
simulator runs the integer arithmetic in torch, so accuracy after quantization is measured there.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .ops import DECAY_BITS, MEMBRANE_BITS, SATURATION
from .spec import NEURON_KINDS, WEIGHTED, NetSpec, Population, Projection

WEIGHT_BITS = 8
INPUT_FRAC_BITS = 8          # direct input resolution: 1/256
MEMBRANE_HEADROOM_BITS = 6   # the membrane may reach 64x the threshold before it saturates


def weight_frac_bits(w: np.ndarray) -> int:
    """The largest q with max|w| * 2**q <= 127."""
    peak = float(np.max(np.abs(w))) if np.size(w) else 0.0
    return 0 if peak == 0.0 else math.floor(math.log2((2 ** (WEIGHT_BITS - 1) - 1) / peak))


def membrane_frac_bits(pop: Population, wanted: int) -> int:
    """The finest membrane resolution that keeps the threshold MEMBRANE_HEADROOM_BITS below saturation."""
    scale = max(abs(pop.v_th), float(np.max(np.abs(pop.bias))) if pop.bias.size else 0.0, 1.0)
    limit = MEMBRANE_BITS - 1 - MEMBRANE_HEADROOM_BITS - math.ceil(math.log2(scale))
    return min(wanted, limit)


def _quantize_projection(proj: Projection, m: int, f_src: int) -> Projection:
    w = proj.weighted.weight
    q = min(weight_frac_bits(w), m - f_src)
    mant = np.clip(np.round(w * 2.0 ** q), -2 ** (WEIGHT_BITS - 1), 2 ** (WEIGHT_BITS - 1) - 1).astype(np.int64)
    ops = [replace(op, weight=mant) if op.kind in WEIGHTED else op for op in proj.ops]
    return replace(proj, ops=ops, shift=m - q - f_src)


def quantize(spec: NetSpec) -> NetSpec:
    """The fixed-point NetSpec of a float one."""
    if spec.fixed:
        return spec
    input_sends = replace(spec.input_sends, frac_bits=INPUT_FRAC_BITS if spec.input_sends.graded else 0)
    sent_frac = {"input": input_sends.frac_bits}  # the fractional bits of what each sender sends
    pops = []
    for pop in spec.populations:
        f_src = [sent_frac[p.source] for p in pop.inputs]
        wanted = max(weight_frac_bits(p.weighted.weight) + f for p, f in zip(pop.inputs, f_src))
        m = membrane_frac_bits(pop, wanted)
        inputs = [_quantize_projection(p, m, f) for p, f in zip(pop.inputs, f_src)]
        bias = np.clip(np.round(pop.bias * 2.0 ** m), 1 - SATURATION, SATURATION - 1).astype(np.int64)
        # v > th in membrane units is, for an integer v, v > floor(th * 2**m): exact, where rounding
        # would move the threshold by up to half a unit (and lose a v >= th read as v > the float below th)
        v_th = max(int(np.floor(pop.v_th * 2 ** m)), 1) if pop.kind in NEURON_KINDS else 0
        dv = int(round((1.0 - pop.decay) * 2 ** DECAY_BITS))
        du = int(round((1.0 - pop.u_decay) * 2 ** DECAY_BITS))  # cuba's current decay
        sends = replace(pop.sends, frac_bits=0 if pop.kind in NEURON_KINDS else m)
        pops.append(replace(pop, bias=bias, inputs=inputs, v_th=v_th, dv=dv, du=du, frac_bits=m, sends=sends))
        sent_frac[pop.name] = sends.frac_bits
    return replace(spec, populations=pops, fixed=True, input_sends=input_sends, scores=dict(spec.scores),
                   meta=dict(spec.meta))


def quantize_run(spec: NetSpec, frames: np.ndarray) -> tuple[NetSpec, np.ndarray]:
    """A float spec and its input frames in Loihi fixed point: `quantize`, then `quantize_input`."""
    fixed = quantize(spec)
    return fixed, quantize_input(frames, fixed)


def quantize_input(x: np.ndarray, spec: NetSpec) -> np.ndarray:
    """Input frames as the fixed-point network receives them (float64 holding integers)."""
    return np.round(np.asarray(x, dtype=np.float64) * 2.0 ** spec.input_sends.frac_bits)

