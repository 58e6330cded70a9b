"""The DDLA keep ratio k as exact integer arithmetic, shared by training (torch) and the deploy
side (numpy, the Lava process models): no torch, no numpy here, so Lava's workers can import it."""
from __future__ import annotations

KEEP_SCALE = 1_000_000  # k in millionths: ceil(k * n) without float rounding (0.7 * 10 is 7.000000000000001)


def keep_count(n, keep: float):
    """ceil(keep * n) exactly, for integer n (a Python int, numpy or torch integers)."""
    k = round(keep * KEEP_SCALE)
    return (n * k + KEEP_SCALE - 1) // KEEP_SCALE
