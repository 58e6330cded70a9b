"""`SpikingNetwork`: encoder + body, run all T at once or one explicit-state step at a time."""
from __future__ import annotations

from dataclasses import replace
from collections.abc import Callable

import torch
from torch import nn

from .encoders import encode
from .layers import NetworkState, Neuron, Transmit, neurons


class SpikingNetwork(nn.Module):
    """A spiking body whose last layer is a non-spiking readout; the prediction is the mean over T.

    `arch` holds the constructor arguments of the zoo entry that built it, so a checkpoint can
    rebuild the same network.
    """

    def __init__(self, body: nn.Module, timesteps: int, encoding: str, arch: dict):
        super().__init__()
        if timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {timesteps}")
        self.body = body
        self.timesteps = timesteps
        self.encoding = encoding
        self.arch = dict(arch)
        for name, m in body.named_modules():
            if isinstance(m, Neuron):
                m.key = name

    @property
    def neurons(self) -> list[Neuron]:
        return neurons(self.body)

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return encode(x, self.encoding, self.timesteps, generator)

    def forward(self, x_seq: torch.Tensor, single_step: bool = False,
                on_step: Callable[[torch.Tensor], None] | None = None, transmit: Transmit | None = None
                ) -> torch.Tensor:
        """(T, B, ...) -> per-timestep logits (T, B, classes), all T at once or step by step.
        Both paths go through `forward` so that DistributedDataParallel sees them; `on_step`
        (single-step only) is called with each step's logits; `transmit` is the transmission
        hook (`snn.layers`)."""
        if single_step:
            return self.forward_steps(x_seq, on_step, transmit)
        return self.body(x_seq, None, transmit)[0]

    def step(self, x_t: torch.Tensor, state: NetworkState, transmit: Transmit | None = None
             ) -> tuple[torch.Tensor, NetworkState]:
        """Single-step: input of one timestep (B, ...) and the state -> (logits (B, classes), new state)."""
        out, state = self.body(x_t, state, transmit)
        return out, replace(state, t=state.t + 1)

    def forward_steps(self, x_seq: torch.Tensor, on_step: Callable[[torch.Tensor], None] | None = None,
                      transmit: Transmit | None = None) -> torch.Tensor:
        """Single-step execution of a whole sequence; equal to `forward` for the same input."""
        state = NetworkState()
        outs = []
        for x_t in x_seq:
            out, state = self.step(x_t, state, transmit)
            if on_step is not None:
                on_step(out)
            outs.append(out)
        return torch.stack(outs)

    def run(self, x: torch.Tensor, single_step: bool = False, generator: torch.Generator | None = None,
            transmit: Transmit | None = None) -> torch.Tensor:
        """Encode raw input and run it: (B, ...) -> (T, B, classes)."""
        return self(self.encode(x, generator), single_step=single_step, transmit=transmit)
