"""Which torch device a command runs on, and the settings its arithmetic and memory run under:
shared by training, the simulator and the benchmarks."""
from __future__ import annotations

import ctypes
import functools
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
    """Convolutions and matmuls on CUDA that keep integers exact: TF32 off (cuDNN's default for
    convolutions on Ampere and later rounds inputs to 10 mantissa bits) and cuDNN off. cuDNN's
    heuristics may pick a Winograd or FFT algorithm for a float32 convolution even without
    `benchmark`, and both transform the operands with rounding; torch has no switch to exclude
    them, so the convolutions take torch's own kernels (im2col and a cuBLAS product, or direct
    depthwise kernels), whose sums of integers below 2**24 are exact in any order. No effect on
    the CPU."""
    saved = torch.backends.cudnn.enabled, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.enabled = False
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.enabled, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4  # glibc's mallopt parameters (malloc.h)
_MMAP_THRESHOLD_MAX = 32 * 2 ** 20  # glibc's largest on 64 bits, where its dynamic threshold ends
_MMAP_MAX_DEFAULT = 65536  # glibc's default count of blocks mapped at once


@functools.lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    """The process's C library where it is glibc, looked up once (`ctypes.util.find_library`
    runs `ldconfig` in a subprocess: 2 ms, more than a small simulator call)."""
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into the process, libc's among them
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


@contextmanager
def reused_heap() -> Iterator[None]:
    """Keeps freed tensor memory in the process's heap while a batch loop runs, and gives it
    back to the system after. Torch's CPU tensors come from malloc; glibc maps a large block
    fresh and gives it back when freed (and trims the heap's free top), so every batch of the
    simulator paid a page fault per 4 KiB written, most of its time at a batch of 256 on the
    digits network (`benchmarks/heap_reuse.py`). Inside: every block from the heap (no mmap:
    glibc's threshold stops at 32 MiB, and a (T, B, n) tensor of the Spike-driven Transformer at
    batch 32 is larger; another thread's arena still maps a block above its 64 MiB heap) and no
    trimming; after: glibc's own steady state (mmap threshold 32 MiB, trim threshold twice
    that), which gives back the heap's free top on the next free. (Not `malloc_trim`: the
    deploy's keep sweep calls the simulator many times, each then faulting its memory in
    again.) No effect where the C library is not glibc."""
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
    libc.mallopt(_M_MMAP_MAX, 0)  # glibc still maps a block when the heap cannot grow
    libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1)  # a C int
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_MAX, _MMAP_MAX_DEFAULT)
        libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX)
