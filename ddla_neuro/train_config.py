"""The settings of a training run, resolved: `TrainConfig` holds every option of `python -m
ddla_neuro.train` and its default once (the parser takes its defaults from it); `check_config`
refuses in one line what cannot run; `starting_point` loads the checkpoints a run starts from
and returns the config with what they fix (a resumed run's method and DDLA settings, an initial
network's architecture), instead of editing the parsed arguments.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .ddla.executor import LEGACY_SOURCES
from .ddla.keep import Keep, KeepError, parse_keep
from .errors import UserError

DDLA_LAM = 0.5  # chosen by a sweep on digits at T = 6, 3 seeds (docs/RESULTS.md)
# recorded by a DDLA run, resumed with it
DDLA_SETTINGS = ("lam", "sensitivity", "warmup_epochs", "stats_momentum", "selection")


@dataclass(frozen=True)
class TrainConfig:
    """One field per flag of `python -m ddla_neuro.train` (`--batch-size` is `batch_size`), its
    help text in `-h`. `keep` is text as given ("0.5", "0.7:0.3") until `check_config` parses it."""

    model: str = "convnet"
    dataset: str | None = None           # default: digits (or the checkpoint's)
    data_dir: str | None = None
    timesteps: int = 4
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    loss: str = "tet"
    neuron: str = "if"
    reset: str = "zero"
    encoding: str = "direct"
    step_mode: str = "multi"
    method: str | None = None            # default: baseline (or the checkpoint's)
    keep: str | Keep | None = None       # default: ddla.keep.DEFAULT_KEEP (or the checkpoint's)
    spike_penalty: float = 0.0
    lam: float = DDLA_LAM
    sensitivity: str = "stats"
    selection: str | None = None         # default: ddla.selection.DEFAULT_RULE (or the checkpoint's)
    stats_momentum: float = 0.9
    warmup_epochs: int = 0
    device: str = "auto"
    ddp_timeout: float = 600.0
    seed: int = 0
    out: str = "runs/train"
    resume: str | None = None
    stop_after: int = 0
    init: str | None = None
    eval: str | None = None


def check_config(config: TrainConfig) -> TrainConfig:
    """One line for what cannot run; the config with its keep ratio parsed."""
    if config.timesteps < 1 or config.epochs < 0 or config.batch_size < 1:
        raise UserError("--timesteps and --batch-size must be >= 1 and --epochs >= 0")
    if config.keep is not None and isinstance(config.keep, str):
        try:
            config = replace(config, keep=parse_keep(config.keep))
        except KeepError as e:
            raise UserError(f"--keep: {e}") from None
    if not config.spike_penalty >= 0:  # also NaN
        raise UserError(f"--spike-penalty must be a number >= 0, got {config.spike_penalty}")
    if config.sensitivity == "label-gradient" and config.selection not in (None, "topk"):
        raise UserError(f"--sensitivity label-gradient ranks a whole layer per sample: it runs with --selection topk, "
                        f"not {config.selection}")
    if not 0.0 <= config.stats_momentum < 1.0:
        raise UserError(f"--stats-momentum must lie in [0, 1), got {config.stats_momentum}")
    if config.init and config.resume:
        raise UserError("--init starts a new run from a checkpoint's weights, --resume continues one: give one")
    if config.warmup_epochs < 0:
        raise UserError(f"--warmup-epochs must be >= 0, got {config.warmup_epochs}")
    if not 0.0 <= config.lam <= 1.0:
        raise UserError(f"--lam must lie in [0, 1], got {config.lam}")
    if config.ddp_timeout <= 0:
        raise UserError(f"--ddp-timeout must be > 0 seconds, got {config.ddp_timeout}")
    return config


def trained_rule(meta: dict) -> str | None:
    """The selection rule a checkpoint's DDLA ran with (those written before the rules were
    neuron-local ran top-k); None for a network not trained with DDLA."""
    return meta.get("selection", "topk") if meta.get("method") == "ddla" else None


def starting_point(config: TrainConfig) -> tuple[TrainConfig, Checkpoint | None, Checkpoint | None]:
    """(the config with what the checkpoints fix: a resumed run's method and DDLA settings, an
    initial network's architecture; the checkpoint a --resume continues; the one an --init starts
    from)."""
    ckpt = load_checkpoint(config.resume) if config.resume else None
    if ckpt:
        if "optimizer" not in ckpt.extra:
            raise CheckpointError(f"{config.resume} holds no training state to resume from")
        # The method and the seed (the data order) are part of the run being resumed.
        fixed = {key: ckpt.meta[key] for key in ("method", "keep", "spike_penalty", "seed", *DDLA_SETTINGS)
                 if key in ckpt.meta}
        config = replace(config, dataset=config.dataset or ckpt.meta.get("dataset"), **fixed)
        config = replace(config, sensitivity=LEGACY_SOURCES.get(config.sensitivity, config.sensitivity),
                         selection=trained_rule(ckpt.meta))
    init = load_checkpoint(config.init) if config.init else None
    if init:  # its network (architecture, T, neuron) and weights; optimizer, schedule and method are new
        config = replace(config, dataset=config.dataset or init.meta.get("dataset"), model=init.meta["arch"]["name"],
                         timesteps=init.net.timesteps, neuron=init.meta.get("neuron", config.neuron),
                         reset=init.meta.get("reset", config.reset))
    return config, ckpt, init
