"""The graph IR's shared parts: the two node types of our own that NIR 1.0 lacks (`MaxPool2d`,
`Product`: see `nir_spec.py`), the node families the reader maps, and the error every reader
raises."""
from __future__ import annotations

from dataclasses import dataclass

import nir
import numpy as np
import torch

from ...errors import UserError


@dataclass(eq=False)
class MaxPool2d(nir.NIRNode):
    """ddla-neuro's extension node: 2-d max pooling (padding counts as -inf, as in torch)."""

    kernel_size: np.ndarray  # (rows, cols)
    stride: np.ndarray
    padding: np.ndarray

    def __post_init__(self):
        self.input_type = {"input": None}
        self.output_type = {"output": None}


@dataclass(eq=False)
class Product(nir.NIRNode):
    """ddla-neuro's extension node: the element-wise product of its two inputs (broadcast),
    e.g. the Q * K and Q * KV gates of spike-driven self-attention."""

    def __post_init__(self):
        self.input_type = {"input": None}
        self.output_type = {"output": None}


NEURON_NODES = (nir.IF, nir.LIF)
POPULATION_NODES = NEURON_NODES + (MaxPool2d, Product)
LINEAR_NODES = (nir.Conv2d, nir.Affine, nir.Linear, nir.SumPool2d, nir.AvgPool2d, nir.Flatten, nir.Scale)


class IRError(UserError):
    pass


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _pair(v) -> np.ndarray:
    """An int, a pair or a 1-/2-element array as a (rows, cols) int array."""
    return np.broadcast_to(np.asarray(v, dtype=np.int64).ravel(), (2,)).copy()
