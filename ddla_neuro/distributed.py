"""Training on several processes (torchrun): the process group, a rank lost, the weights in sync."""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

LOST_PEER_WORDS = ("gloo", "nccl", "connection", "peer", "pair closure", "timeout", "timed out")


def lost_peer(e: RuntimeError) -> bool:
    """Whether a collective failed because another rank went away (its socket closed) or did
    not answer within the process group's timeout. The backends raise plain RuntimeErrors with
    their own wording (seen: "Connection reset by peer", "Timed out waiting ... for send",
    "Application timeout caused pair closure"), so the message decides."""
    text = str(e).lower()
    return isinstance(e, dist.DistBackendError) or any(w in text for w in LOST_PEER_WORDS)


def init_distributed(device_name: str, timeout_s: float) -> tuple[int, int, int]:
    """(rank, world size, local rank); starts a process group when launched by torchrun. A
    collective that waits longer than `timeout_s` for a rank (stopped, hung, lost) fails."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_name != "cpu" and torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return dist.get_rank(), world, local_rank


def params_in_sync(net: torch.nn.Module) -> bool:
    """True when every DDP rank holds the same weights (a checksum compared across ranks)."""
    flat = torch.cat([p.detach().double().flatten().cpu() for p in net.parameters()])
    checksum = torch.stack([flat.sum(), (flat * torch.arange(len(flat), dtype=torch.float64)).sum()])
    gathered = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, checksum)
    return all(torch.equal(g, gathered[0]) for g in gathered)
