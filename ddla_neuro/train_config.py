"""The settings of a training run, resolved: `TrainConfig` holds every option of `python -m
ddla_neuro.train` and its default once (`build_parser`, its command line, takes its defaults
from it); `check_config`
refuses in one line what cannot run; `starting_point` loads the checkpoints a run starts from
and returns the config with what they fix (a resumed run's method and DDLA settings, an initial
network's architecture), instead of editing the parsed arguments.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, fields, replace

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .data import DATASETS
from .ddla.executor import LEGACY_SOURCES, SENSITIVITY_SOURCES
from .ddla.keep import DEFAULT_KEEP, Keep, KeepError, parse_keep
from .ddla.selection import DEFAULT_RULE, RULES
from .devices import DEVICES
from .errors import UserError
from .losses import LOSSES
from .snn.encoders import ENCODINGS
from .zoo import MODELS
from .zoo.models import NEURONS

DDLA_LAM = 0.5  # chosen by a sweep on digits at T = 6, 3 seeds (docs/RESULTS.md)
# A training method is how a network learns; its forward transmits in one mode of ddla.transmission.
MODE_OF_METHOD = {"baseline": "dense", "tdd": "delta", "ddla": "ddla"}
METHODS = tuple(MODE_OF_METHOD)
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
    if config.sensitivity == "label-gradient":  # a ranking of the whole layer per sample: top-k's
        if config.selection not in (None, "topk"):
            raise UserError(f"--sensitivity label-gradient ranks a whole layer per sample: it runs with --selection "
                            f"topk, not {config.selection}")
        config = replace(config, selection="topk")
    if not 0.0 <= config.stats_momentum < 1.0:
        raise UserError(f"--stats-momentum must lie in [0, 1), got {config.stats_momentum}")
    if config.init and config.resume:
        raise UserError("--init starts a new run from a checkpoint's weights, --resume continues one: give one")
    if config.warmup_epochs < 0:
        raise UserError(f"--warmup-epochs must be >= 0, got {config.warmup_epochs}")
    if config.warmup_epochs and config.warmup_epochs >= config.epochs:
        # the thresholds of the target k are steered only in epochs that train at it
        raise UserError(f"--warmup-epochs ({config.warmup_epochs}) must be fewer than --epochs ({config.epochs}): "
                        f"the last epoch trains at the target --keep")
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


DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}  # the parser's defaults are the config's


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ddla_neuro.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULTS["model"], choices=sorted(MODELS))
    p.add_argument("--dataset", default=DEFAULTS["dataset"], choices=DATASETS,
                   help="default: digits (or the checkpoint's with --eval)")
    p.add_argument("--data-dir", default=DEFAULTS["data_dir"],
                   help="local dataset directory (npz: the file); nothing is downloaded")
    p.add_argument("--timesteps", "-T", type=int, default=DEFAULTS["timesteps"])
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="per process")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--loss", default=DEFAULTS["loss"], choices=sorted(LOSSES))
    p.add_argument("--neuron", default=DEFAULTS["neuron"], choices=NEURONS)
    p.add_argument("--reset", default=DEFAULTS["reset"], choices=("zero", "subtract"))
    p.add_argument("--encoding", default=DEFAULTS["encoding"], choices=ENCODINGS[:2],
                   help="events datasets always use 'events'")
    p.add_argument("--step-mode", default=DEFAULTS["step_mode"], choices=("multi", "single"),
                   help="multi: all T at once (fast); single: one timestep at a time with explicit state "
                        "(ddla always runs single-step)")
    p.add_argument("--method", default=DEFAULTS["method"], choices=METHODS,
                   help="baseline (default): dense spikes; tdd: lossless deltas (same outputs, counts deltas); "
                        "ddla: top-k sensitive deltas + sensitivity loss (--eval: the checkpoint's)")
    p.add_argument("--keep", default=DEFAULTS["keep"],
                   help=f"ddla filtering ratio k: share of deltas kept, (0, 1], one for all spiking layers or one per "
                        f"layer joined by ':' (0.7:0.5:0.3, network order) (default {DEFAULT_KEEP}; --eval: the "
                        f"checkpoint's)")
    p.add_argument("--spike-penalty", type=float, default=DEFAULTS["spike_penalty"], metavar="W",
                   help="add W x the mean firing rate (spikes per neuron and step, over every spiking layer, before "
                        "DDLA's selection) to the loss, an L1 penalty on spikes: the rate-regularised baseline DDLA is "
                        "compared with, or composed with it (--method ddla) "
                        f"(default {DEFAULTS['spike_penalty']:g}: none)")
    p.add_argument("--lam", type=float, default=DEFAULTS["lam"],
                   help="ddla: L = lam * L_model + (1 - lam) * sum_l L_sensi_l")
    p.add_argument("--sensitivity", default=DEFAULTS["sensitivity"], choices=SENSITIVITY_SOURCES,
                   help="ddla ranking of the deltas. stats (default): per-neuron statistics (running mean of "
                        "|dL/dO| from past training batches) times |delta|, exactly what evaluation and deployment "
                        "use (a weighted rule's weights, topk's ranking; uniform reads none). label-gradient: the "
                        "paper's scheme, each sample's gradient of the previous step's loss; it uses the sample's "
                        "LABEL to choose which deltas pass, which inference cannot do, "
                        "so the network can learn to read the label from the selection and its training accuracy "
                        "does not carry over to the test set or the chip")
    p.add_argument("--selection", default=DEFAULTS["selection"], choices=tuple(RULES),
                   help="ddla: which pending changes a layer sends. " + "; ".join(
                       f"{r.name}: {r.summary}{'' if r.neuron_local else ' (not neuron-local)'}"
                       for r in RULES.values()) + f" (default {DEFAULT_RULE}; --eval: the checkpoint's). A "
                   "neuron-local rule's per-layer thresholds are steered while training so that each layer sends "
                   "the share --keep of its pending changes, and stored in the checkpoint")
    p.add_argument("--stats-momentum", type=float, default=DEFAULTS["stats_momentum"], metavar="M",
                   help="ddla: decay of the running mean of |dL/dO| per timestep (a training batch of T steps "
                        "keeps M^T of it and adds (1 - M^T) times the batch's mean; under uniform, which reads no "
                        f"statistics, one batch in 8 is recorded; default {DEFAULTS['stats_momentum']})")
    p.add_argument("--warmup-epochs", type=int, default=DEFAULTS["warmup_epochs"], metavar="N",
                   help="ddla: anneal k linearly from 1 (every delta sent) to --keep over the first N epochs")
    p.add_argument("--device", default=DEFAULTS["device"], choices=DEVICES)
    p.add_argument("--ddp-timeout", type=float, default=DEFAULTS["ddp_timeout"], metavar="S",
                   help="torchrun: a rank that waits longer than S seconds for the others (one died or hangs) "
                        f"stops with an error instead of waiting forever (default {DEFAULTS['ddp_timeout']:g})")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--out", default=DEFAULTS["out"], help="output directory (model.pt, model.json, summary.json)")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue training from a checkpoint written by this command")
    p.add_argument("--stop-after", type=int, default=DEFAULTS["stop_after"], metavar="EPOCH",
                   help="stop after this epoch of the schedule (e.g. a job slot ends); continue with --resume")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="start from this checkpoint's network and weights with a new optimizer, schedule and "
                        "method (e.g. a baseline, then DDLA fine-tuning)")
    p.add_argument("--eval", metavar="CHECKPOINT", help="only evaluate a checkpoint on the test split")
    return p
