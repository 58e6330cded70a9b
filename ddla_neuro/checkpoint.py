"""Checkpoints in a safe format: one `torch.save` file of plain containers (a state dict of
tensors, JSON-like metadata, optionally the optimizer state) read back with
`torch.load(weights_only=True)`, so a file from a stranger cannot run code. A `.json` copy of
the metadata is written beside it for people and other tools."""
from __future__ import annotations

from pathlib import Path

from dataclasses import dataclass, field

import torch

from . import __version__
from .data import DataSplit, load_dataset
from .ddla.selection import THRESHOLD_MAX
from .errors import UserError
from .fileio import atomic_write, atomic_write_json
from .snn.encoders import ENCODINGS
from .snn.network import SpikingNetwork
from .zoo import rebuild

FORMAT = "ddla-neuro/checkpoint"
FORMAT_VERSION = 1
REQUIRED_META = ("arch", "timesteps", "encoding")


class CheckpointError(UserError):
    pass


@dataclass
class Checkpoint:
    net: SpikingNetwork
    meta: dict
    extra: dict = field(default_factory=dict)  # training state for resuming
    sensitivity: dict[str, torch.Tensor] = field(default_factory=dict)  # DDLA per-neuron statistics


def save_checkpoint(path: str | Path, net: SpikingNetwork, meta: dict, extra: dict | None = None,
                    sensitivity: dict[str, torch.Tensor] | None = None) -> None:
    """Writes `path` and `path.with_suffix('.json')` atomically. `extra` holds training state
    (optimizer, scheduler, epoch) for resuming; `sensitivity` the DDLA statistics per layer."""
    meta = {"arch": net.arch, "timesteps": net.timesteps, "encoding": net.encoding,
            "package_version": __version__, **meta}
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": meta,
               "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}
    if extra:
        payload["extra"] = extra
    if sensitivity:
        payload["sensitivity"] = {k: v.detach().cpu() for k, v in sensitivity.items()}
    atomic_write(path, lambda f: torch.save(payload, f))
    atomic_write_json(Path(path).with_suffix(".json"), meta)


def load_checkpoint_payload(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the model.pt written by ddla_neuro.train")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle refused by weights_only, random bytes ...
        reason = ("it holds pickled objects other than tensors and plain containers, refused for safety"
                  if "GLOBAL" in str(e) else "the file is truncated or not a torch checkpoint")
        raise CheckpointError(f"{path} is not a readable ddla-neuro checkpoint: {reason}; "
                              f"re-create it with ddla_neuro.train") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ddla-neuro checkpoint (no '{FORMAT}' header)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {payload.get('format_version')}, "
                              f"this ddla-neuro reads version {FORMAT_VERSION}")
    meta = payload.get("meta")
    if not isinstance(meta, dict) or any(k not in meta for k in REQUIRED_META):
        raise CheckpointError(f"{path}: metadata lacks one of {REQUIRED_META}")
    _check_meta(path, meta)
    tensors = {**payload.get("state_dict", {}), **payload.get("sensitivity", {})}
    for name, t in tensors.items():
        if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: tensor {name!r} holds NaN or infinite values; the model diverged, "
                                  f"retrain it")
    return payload


def _check_meta(path: Path, meta: dict) -> None:
    """The metadata the deploy reads: whole timesteps, a known encoding, names as strings, the
    keep ratio(s) in [0, 1] and the selection's thresholds as its integers."""
    def bad(key: str, what: str) -> CheckpointError:
        return CheckpointError(f"{path}: its metadata's {key!r} is {str(meta[key])[:40]!r}, not {what}; re-create "
                               f"the checkpoint with ddla_neuro.train")
    steps = meta["timesteps"]
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise bad("timesteps", "a whole number of steps")
    if meta["encoding"] not in ENCODINGS:
        raise bad("encoding", f"one of {', '.join(ENCODINGS)}")
    for key in ("method", "selection", "dataset"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise bad(key, "a name")
    keep = meta.get("keep")
    ratios = keep.values() if isinstance(keep, dict) else [] if keep is None else [keep]
    if not all(isinstance(k, (int, float)) and 0.0 <= k <= 1.0 for k in ratios):
        raise bad("keep", "a ratio in [0, 1] (or one per layer)")
    thresholds = meta.get("thresholds")
    if thresholds is not None and not (isinstance(thresholds, dict) and all(
            isinstance(v, int) and 1 <= v <= THRESHOLD_MAX for v in thresholds.values())):
        raise bad("thresholds", f"the selection's integer thresholds in [1, {THRESHOLD_MAX}] per layer")


def load_checkpoint(path: str | Path) -> Checkpoint:
    """The network with the stored weights, its metadata, training state and DDLA statistics."""
    payload = load_checkpoint_payload(path)
    meta = payload["meta"]
    try:
        net = rebuild(meta["arch"], meta["timesteps"], meta["encoding"])
        net.load_state_dict(payload["state_dict"])
    except (ValueError, TypeError, KeyError, RuntimeError) as e:
        reason = str(e).strip().splitlines()[0][:160]
        raise CheckpointError(f"{path}: the weights do not fit the stored architecture ({reason})") from None
    return Checkpoint(net, meta, payload.get("extra", {}), payload.get("sensitivity", {}))


def checkpoint_dataset(ckpt: Checkpoint, dataset: str | None = None, data_dir: str | None = None
                       ) -> tuple[str, DataSplit]:
    """The dataset to evaluate a checkpoint on (default: the one it was trained on), checked
    against the input shape the network expects."""
    name = dataset or ckpt.meta.get("dataset", "digits")
    data = load_dataset(name, data_dir, ckpt.net.timesteps)
    expected = tuple(ckpt.meta["arch"]["input_shape"])
    if data.input_shape != expected:
        raise UserError(f"{name} inputs have shape {data.input_shape}, the checkpoint expects {expected}; "
                        f"pick the dataset it was trained on")
    return name, data
