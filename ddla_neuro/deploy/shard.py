"""Deploying on several processes with the fast simulator:

    torchrun --nproc_per_node N -m ddla_neuro.deploy --backend fast ...

Each process takes one contiguous shard of the samples, simulates it, and the results are
gathered (torch.distributed, gloo) in sample order with every counter summed. The simulator's
arithmetic per sample does not depend on the other samples of its batch (integers in fixed
point), so the report is the single process's, byte for byte; only rank 0 writes it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch.distributed as dist

from ..errors import UserError
from .run import COUNT_KINDS, Counts, RunResult


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1

    def of(self, n: int) -> slice:
        """This process's samples of `n`: contiguous, the first n % world shards one longer."""
        base, extra = divmod(n, self.world)
        lo = self.rank * base + min(self.rank, extra)
        return slice(lo, lo + base + (self.rank < extra))


WHOLE = Shard()  # the whole run, one process


def start(backend: str) -> Shard:
    """The shard of this process: the whole run without torchrun, else one of WORLD_SIZE, with a
    process group started. gloo: what the ranks exchange are results on the host, wherever
    (CPU or each rank's GPU, `--device`) the simulator ran."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return WHOLE
    if backend != "fast":
        raise UserError("a deploy under torchrun shards the samples over the fast simulator: add --backend fast "
                        "(Lava runs in one process)")
    dist.init_process_group("gloo", timeout=timedelta(seconds=600))  # a lost rank fails the others' gather
    return Shard(dist.get_rank(), world)


def stop(shard: Shard) -> None:
    if shard.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def merge_counts(parts: list[Counts]) -> Counts:
    """The counters of several shards of one run: every per-step array summed (integers: exact)."""
    merged = Counts(parts[0].timesteps, samples=sum(p.samples for p in parts))
    for kind in (*COUNT_KINDS, "neurobench"):
        for part in parts:
            for key, values in getattr(part, kind).items():
                merged.add(kind, key, values)
    return merged


def gather(result: RunResult, shard: Shard) -> RunResult:
    """Every shard's result as one: logits (and any recorded activity) concatenated in sample
    order, counters summed."""
    if shard.world == 1:
        return result
    parts: list = [None] * shard.world
    dist.all_gather_object(parts, (result.logits, result.counts, result.activity))
    activity = {k: np.concatenate([a[k] for _, _, a in parts]) for k in result.activity}
    return RunResult(np.concatenate([logits for logits, _, _ in parts]), merge_counts([c for _, c, _ in parts]),
                     activity=activity)
