"""Pure neuron dynamics: state in, state out (the style of Norse's functional core).

One step of the integrate-and-fire family used throughout the project (the paper's Eq. 1-4):

    v_pre = decay * v + gain * x          # integrate (decay = 1, gain = 1: IF)
    z     = H(v_pre - v_th)               # fire (Norse's `threshold`, with a surrogate gradient)
    v     = reset(z, v_pre)               # to zero, or by subtracting v_th

`decay` and `gain` cover the three conventions in use: IF (1, 1), the TET LIF
`v = tau * v + x` (tau, 1) and the SpikingJelly / Norse box LIF `v += (x - v) / tau`
(1 - 1/tau, 1/tau). The spike test is strict (`v_pre > v_th`), as in Norse and on Loihi.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

with warnings.catch_warnings():  # norse 1.1 calls the deprecated torch.jit.script at import
    warnings.simplefilter("ignore", FutureWarning)
    from norse.torch.functional.reset import reset_subtract, reset_value
    from norse.torch.functional.threshold import threshold

RESET_MODES = ("zero", "subtract")


@dataclass(frozen=True)
class NeuronParameters:
    """Parameters of one population of IF/LIF neurons."""

    v_th: float = 1.0
    decay: float = 1.0
    gain: float = 1.0
    reset: str = "zero"
    surrogate: str = "triangle"
    alpha: float = 1.0
    detach_reset: bool = False

    def __post_init__(self) -> None:
        if self.reset not in RESET_MODES:
            raise ValueError(f"reset must be one of {RESET_MODES}, got {self.reset!r}")
        if not 0.0 <= self.decay <= 1.0:
            raise ValueError(f"decay must lie in [0, 1], got {self.decay}")
        if self.v_th <= 0:
            raise ValueError(f"v_th must be positive, got {self.v_th}")

    @property
    def is_if(self) -> bool:
        return self.decay == 1.0


def if_parameters(v_th: float = 1.0, reset: str = "zero", **kw) -> NeuronParameters:
    """Integrate-and-fire: no leak."""
    return NeuronParameters(v_th=v_th, decay=1.0, gain=1.0, reset=reset, **kw)


def lif_parameters(decay: float = 0.5, v_th: float = 1.0, reset: str = "zero", **kw) -> NeuronParameters:
    """LIF in the TET form `v = decay * v + x` (TET/ResNet-19 uses decay 0.5)."""
    return NeuronParameters(v_th=v_th, decay=decay, gain=1.0, reset=reset, **kw)


def lif_box_parameters(tau: float = 2.0, v_th: float = 1.0, reset: str = "zero", **kw) -> NeuronParameters:
    """LIF in the SpikingJelly / Norse LIFBox form `v = v + (x - v) / tau` (dt = 1, v_leak = 0)."""
    return NeuronParameters(v_th=v_th, decay=1.0 - 1.0 / tau, gain=1.0 / tau, reset=reset, **kw)


def neuron_step(x: torch.Tensor, v: torch.Tensor, p: NeuronParameters) -> tuple[torch.Tensor, torch.Tensor]:
    """One timestep: returns (spikes z, membrane v after reset)."""
    v_pre = v + x if (p.decay == 1.0 and p.gain == 1.0) else p.decay * v + p.gain * x
    z = threshold(v_pre - p.v_th, p.surrogate, p.alpha)
    z_reset = z.detach() if p.detach_reset else z
    th = torch.as_tensor(p.v_th, dtype=v_pre.dtype)
    if p.reset == "zero":
        v_new = reset_value(z_reset, v_pre, torch.zeros_like(th), th)
    else:
        v_new = reset_subtract(z_reset, v_pre, torch.zeros_like(th), th)
    return z, v_new


def neuron_sequence(
    x_seq: torch.Tensor, p: NeuronParameters, v0: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs `neuron_step` over the leading time axis of `x_seq` (T, ...): returns (spikes (T, ...), final v)."""
    v = torch.zeros_like(x_seq[0]) if v0 is None else v0
    spikes = []
    for x in x_seq:
        z, v = neuron_step(x, v, p)
        spikes.append(z)
    return torch.stack(spikes), v
