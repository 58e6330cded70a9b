"""Which torch device a command runs on: shared by training, the simulator and the benchmarks."""
from __future__ import annotations

import os
from contextlib import contextmanager
from collections.abc import Iterator

import torch

from .errors import UserError

DEVICES = ("auto", "cpu", "cuda")


def select_device(name: str, local_rank: int | None = None) -> torch.device:
    """`cpu`, `cuda` (one line of error where CUDA is missing) or `auto` (CUDA when available).
    On CUDA, the GPU of this process's rank under torchrun (LOCAL_RANK), else the first."""
    if name not in DEVICES:
        raise UserError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda given but CUDA is not available; use --device cpu or auto")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    rank = int(os.environ.get("LOCAL_RANK", "0")) if local_rank is None else local_rank
    return torch.device("cuda", rank)


@contextmanager
def exact_float32() -> Iterator[None]:
    """Float32 convolutions and matmuls in full float32 on CUDA: TF32 (cuDNN's default for
    convolutions on Ampere and later) rounds inputs to 10 mantissa bits, which would break the
    simulator's exact integer arithmetic. No effect on the CPU."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
