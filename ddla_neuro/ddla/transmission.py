"""How a network transmits, shared by training (the delta executor, torch) and the deploy side
(the simulator, the Lava process models): no torch and no numpy here, so Lava's workers import it.

A *mode* is how each spiking population sends its output from one step to the next: `dense`
(its spikes), `delta` (their change since the last step: lossless) or `ddla` (only the top-k
most sensitive changes from t = 2 on, the receivers holding the rest). The keep ratio k is
applied in exact integer arithmetic.
"""
from __future__ import annotations

MODES = ("dense", "delta", "ddla")

KEEP_SCALE = 1_000_000  # k in millionths: ceil(k * n) without float rounding (0.7 * 10 is 7.000000000000001)


def keep_count(n, keep: float):
    """ceil(keep * n) exactly, for integer n (a Python int, numpy or torch integers)."""
    k = round(keep * KEEP_SCALE)
    return (n * k + KEEP_SCALE - 1) // KEEP_SCALE
