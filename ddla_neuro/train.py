"""python -m ddla_neuro.train: train (or evaluate) an SNN of the zoo on a dataset.

Single process on CPU or one GPU; several processes (GPUs, or CPU with gloo) under
`torchrun --nproc_per_node N -m ddla_neuro.train ...` through DistributedDataParallel.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from .checkpoint import Checkpoint, checkpoint_dataset, load_checkpoint, save_checkpoint
from .data import DataSplit, augment, load_dataset
from .ddla.approx import annealed_keep
from .ddla.keep import DEFAULT_KEEP, Keep, KeepError, filters, keep_label, parse_keep, per_layer
from .ddla.executor import DeltaExecutor, SensitivityStats, ThresholdTracker
from .ddla.selection import DEFAULT_RULE, RULES
from .devices import select_device
from .distributed import init_distributed, lost_peer, params_in_sync
from .errors import UserError, run_cli
from .fileio import atomic_write_json
from .losses import LOSSES, firing_rate
from .snn.network import SpikingNetwork
from .train_config import (DDLA_SETTINGS, MODE_OF_METHOD, TrainConfig, build_parser, check_config, starting_point,
                           trained_rule)
from .zoo import build_model



def seed_everything(seed: int, device: torch.device) -> None:
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def resolve_keep(value: str | Keep | list[float], net: SpikingNetwork) -> Keep:
    """A --keep value (text, parsed, or a checkpoint's) for `net`: uniform, or one ratio per spiking layer."""
    try:
        return per_layer(parse_keep(value) if isinstance(value, str) else value, [n.key for n in net.neurons])
    except KeepError as e:
        raise UserError(f"--keep: {e}") from None


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


@torch.no_grad()
def evaluate(net: SpikingNetwork, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device,
             seed: int, mode: str = "dense", keep: Keep = 1.0, stats: SensitivityStats | None = None,
             loss_fn=None, rule: str = DEFAULT_RULE, thresholds: dict[str, int] | None = None) -> dict:
    """Accuracy on (x, y) transmitting in `mode`, and the per-sample counts (spikes, deltas,
    transmitted, dropped, events) per layer and timestep; with `loss_fn`, also its mean as `loss`.
    DDLA selects with the stored sensitivity statistics and the `rule`'s fixed `thresholds`: no
    labels, no gradients, as on hardware."""
    net.eval()
    gen = make_generator(device, seed)
    correct, loss = 0, 0.0
    ex = DeltaExecutor(net, mode, keep, source="stats", stats=stats, rule=rule,
                       thresholds=ThresholdTracker(thresholds))
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        out, _ = ex.run(net.encode(xb, gen))
        correct += (out.mean(0).argmax(1) == yb).sum().item()
        if loss_fn is not None:
            loss += loss_fn(out, yb).item() * len(yb)
    return {"accuracy": correct / len(x), **({"loss": loss / len(x)} if loss_fn else {}), **ex.counts.summary(mode)}


@dataclass
class TrainRun:
    """What one training run holds between epochs."""

    net: SpikingNetwork
    model: torch.nn.Module        # the network, or its DistributedDataParallel wrapper
    data: DataSplit
    sampler: DistributedSampler
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    device: torch.device
    batch_size: int
    single_step: bool
    stats: SensitivityStats
    ddla: DeltaExecutor | None    # the DDLA forward (None: the plain one)
    lam: float                    # DDLA: L = lam * L_model + (1 - lam) * sum_l L_sensi_l
    spike_penalty: float = 0.0    # L = L_model (+ DDLA's sensitivity loss) + W * mean firing rate


def train_epoch(run: TrainRun, gen: torch.Generator, show_progress: bool, desc: str) -> tuple[float, float]:
    """One epoch; (mean loss, running accuracy)."""
    run.net.train()
    batches = torch.tensor(list(run.sampler)).split(run.batch_size)
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(batches, desc=desc, leave=False, disable=None if show_progress else True, file=sys.stderr)
    for idx in bar:
        xb, yb = run.data.x_train[idx].to(run.device), run.data.y_train[idx].to(run.device)
        if run.data.augment:
            xb = augment(xb, gen)
        out, loss = _forward_loss(run, run.net.encode(xb, gen), yb)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        total_loss += loss.item() * len(idx)
        correct += (out.detach().mean(0).argmax(1) == yb).sum().item()
        seen += len(idx)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}")
    return total_loss / seen, correct / seen


def _forward_loss(run: TrainRun, x_seq: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, loss) of one batch; the labels enter the forward only for the label-gradient ranking."""
    if run.ddla is None:
        if not run.spike_penalty:
            out = run.model(x_seq, single_step=run.single_step)
            return out, run.loss_fn(out, y)
        spikes = []
        out = run.model(x_seq, single_step=run.single_step, transmit=lambda neuron, z: spikes.append(z) or z)
        return out, run.loss_fn(out, y) + run.spike_penalty * firing_rate(spikes)
    labels = y if run.ddla.source == "label-gradient" else None  # stats: ranked without labels, as deployed
    out, sensitivity_loss = run.ddla.run(x_seq, labels, run.model)
    loss = run.lam * run.loss_fn(out, y) + (1 - run.lam) * sensitivity_loss
    return out, loss + run.spike_penalty * firing_rate(run.ddla.spikes) if run.spike_penalty else loss


def run_eval(config: TrainConfig, device: torch.device) -> int:
    t0 = time.time()
    ckpt = load_checkpoint(config.eval)
    net, meta = ckpt.net, ckpt.meta
    dataset, data = checkpoint_dataset(ckpt, config.dataset, config.data_dir)
    method = config.method or meta.get("method", "baseline")
    keep = resolve_keep(config.keep if config.keep is not None else meta.get("keep", 1.0), net)
    if method == "ddla" and filters(keep) and not ckpt.sensitivity:
        raise UserError(f"{config.eval} has no DDLA sensitivity statistics; train it with --method ddla, "
                        f"or evaluate with --method baseline/tdd")
    rule = trained_rule(meta) or "topk"
    if config.selection not in (None, rule):
        raise UserError(f"{config.eval} was trained with the {rule} selection and --eval runs it as trained; "
                        f"deploy it to run another rule (python -m ddla_neuro.deploy --selection {config.selection})")
    thresholds = meta.get("thresholds", {})
    if method == "ddla" and RULES[rule].neuron_local and config.keep is not None and keep != meta.get("keep"):
        raise UserError(f"{config.eval}'s thresholds were set for k = {keep_label(meta.get('keep', 1.0))}; "
                        f"deploy it to calibrate them for another k (python -m ddla_neuro.deploy --keep ...)")
    net.to(device)
    res = evaluate(net, data.x_test, data.y_test, config.batch_size, device, config.seed, MODE_OF_METHOD[method], keep,
                   SensitivityStats(values=ckpt.sensitivity), rule=rule, thresholds=thresholds)
    summary = {"checkpoint": str(config.eval), "dataset": dataset, "method": method, "keep": keep, "selection": rule,
               "test_accuracy": res.pop("accuracy"), **res, "wall_s": time.time() - t0, "device": str(device),
               "seed": config.seed}
    atomic_write_json(Path(config.out) / "summary.json", summary)
    print(f"test accuracy {summary['test_accuracy']:.4f}  spikes/sample {summary['spikes_per_sample']:.1f}  "
          f"{method} events/sample {summary['events_per_sample']:.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    config = check_config(TrainConfig(**vars(build_parser().parse_args(argv))))
    rank, world, local_rank = init_distributed(config.device, config.ddp_timeout)
    try:
        device = select_device(config.device, local_rank)
        seed_everything(config.seed, device)
        code = (run_eval(config, device) if rank == 0 else 0) if config.eval else train(config, device, rank, world)
        if world > 1:  # leave together: a rank tearing down its gloo pairs while another finishes can abort
            dist.barrier()
        return code
    except RuntimeError as e:
        if world == 1 or not lost_peer(e):
            raise
        raise UserError(f"rank {rank}: lost the other training processes, one died or stopped answering "
                        f"({str(e).splitlines()[0][:200]}); the last checkpoint resumes with --resume") from None
    finally:
        if world > 1:
            dist.destroy_process_group()


def train(config: TrainConfig, device: torch.device, rank: int, world: int) -> int:
    t0 = time.time()
    config, ckpt, init = starting_point(config)
    start = ckpt or init
    method = config.method or "baseline"
    config = replace(config, selection=config.selection or DEFAULT_RULE)
    dataset = config.dataset or "digits"
    data = load_dataset(dataset, config.data_dir, config.timesteps)
    encoding = "events" if data.is_events else config.encoding
    net = start.net if start else build_model(config.model, num_classes=data.num_classes, input_shape=data.input_shape,
                                            timesteps=config.timesteps, neuron=config.neuron, reset=config.reset,
                                            encoding=encoding)
    if tuple(net.arch["input_shape"]) != data.input_shape:
        raise UserError(f"the checkpoint expects inputs of shape {tuple(net.arch['input_shape'])}, "
                        f"{dataset} has {data.input_shape}")
    keep = resolve_keep(config.keep if config.keep is not None else DEFAULT_KEEP, net)
    run = _build_run(config, net.to(device), data, device, rank, world, start, ckpt.extra if ckpt else {}, method, keep)
    eval_mode, eval_keep = MODE_OF_METHOD[method], keep if method == "ddla" else 1.0
    out = Path(config.out)
    history = list(ckpt.extra.get("history", [])) if ckpt else []
    meta = {"dataset": dataset, "neuron": config.neuron, "reset": config.reset, "loss": config.loss,
            "seed": config.seed,
            "method": method, "keep": eval_keep}
    if config.spike_penalty:
        meta["spike_penalty"] = config.spike_penalty
    if init:
        meta["init"] = str(config.init)
    ddla_settings = {k: getattr(config, k) if run.ddla else None for k in DDLA_SETTINGS}
    if run.ddla:
        meta.update(ddla_settings)
    if rank == 0:
        print(f"{config.model} on {dataset}: {sum(p.numel() for p in net.parameters()):,} parameters, "
              f"T={config.timesteps}, "
              f"method {method}{f' k={keep_label(keep)} lambda={config.lam}' if run.ddla else ''}"
              f"{f' spike penalty {config.spike_penalty:g}' if config.spike_penalty else ''}, "
              f"{len(data.x_train)} train / "
              f"{len(data.x_test)} test samples, device {device}, {world} process(es)")
    for epoch in range(int(ckpt.extra["epoch"]) if ckpt else 0, config.epochs):
        te = time.time()
        run.sampler.set_epoch(epoch)
        gen = make_generator(device, config.seed * 100_003 + epoch * world + rank)
        if run.ddla is not None:
            run.ddla.keep = annealed_keep(keep, epoch, config.warmup_epochs)
        loss, acc = train_epoch(run, gen, show_progress=rank == 0, desc=f"epoch {epoch + 1}/{config.epochs}")
        run.sched.step()
        if rank == 0:
            history.append(_epoch_row(run, config, epoch, loss, acc, eval_mode, te))
            save_checkpoint(out / "model.pt", net, {**meta, **_thresholds(run), "epoch": epoch + 1,
                                                    "test_accuracy": history[-1]["test_accuracy"]},
                            extra={"epoch": epoch + 1, "optimizer": run.opt.state_dict(),
                                   "scheduler": run.sched.state_dict(), "history": history,
                                   **({"threshold_logs": run.ddla.thresholds.logs} if run.ddla else {})},
                            sensitivity=run.stats.values)
        if world > 1:
            dist.barrier()
        if epoch + 1 == config.stop_after:
            if rank == 0:
                print(f"stopped after epoch {epoch + 1} as asked; continue with --resume {out / 'model.pt'}")
            return 0
    in_sync = params_in_sync(net) if world > 1 else True
    if rank != 0:
        return 0
    final = evaluate(net, data.x_test, data.y_test, 256, device, config.seed, eval_mode, eval_keep, run.stats,
                     **_selection(run))
    summary = {
        "model": config.model, "dataset": dataset, "timesteps": config.timesteps, "neuron": config.neuron,
        "encoding": encoding, "loss": config.loss, "step_mode": "single" if run.single_step else "multi",
        "epochs": config.epochs, "method": method, "keep": eval_keep, **ddla_settings,
        "spike_penalty": config.spike_penalty, "seed": config.seed,
        **_thresholds(run), "test_accuracy": final.pop("accuracy"), **final,
        "wall_s": time.time() - t0, "device": str(device), "world_size": world, "ddp_params_in_sync": in_sync,
        "init": config.init, "checkpoint": str(out / "model.pt"), "history": history,
    }
    if not (out / "model.pt").exists():  # no epoch ran (--epochs 0, or all done already)
        save_checkpoint(out / "model.pt", net, {**meta, **_thresholds(run), "epoch": 0,
                                                "test_accuracy": summary["test_accuracy"]},
                        sensitivity=run.stats.values)
    atomic_write_json(out / "summary.json", summary)
    print(f"test accuracy {summary['test_accuracy']:.4f}  spikes/sample {summary['spikes_per_sample']:.1f}  "
          f"{method} events/sample {summary['events_per_sample']:.1f}  wall {summary['wall_s']:.1f}s  "
          f"-> {out}/summary.json")
    return 0


def _build_run(config: TrainConfig, net: SpikingNetwork, data: DataSplit, device: torch.device, rank: int,
               world: int, start: Checkpoint | None, resumed: dict, method: str, keep: Keep) -> TrainRun:
    """Optimiser, schedule (restored from `resumed`, a checkpoint's training state), sampler,
    sensitivity statistics (carried from `start`) and, for DDLA, the executor of the forward."""
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(config.epochs, 1))
    if resumed:
        opt.load_state_dict(resumed["optimizer"])
        sched.load_state_dict(resumed["scheduler"])
    stats = SensitivityStats(config.stats_momentum,
                             {k: v.to(device) for k, v in (start.sensitivity if start else {}).items()})
    ddla = None
    if method == "ddla":
        thresholds = ThresholdTracker(logs=resumed.get("threshold_logs"), learn=True)
        ddla = DeltaExecutor(net, "ddla", keep, source=config.sensitivity, stats=stats, count_events=False, learn=True,
                             rule=config.selection, thresholds=thresholds, collect_spikes=config.spike_penalty > 0)
    sampler = DistributedSampler(range(len(data.x_train)), num_replicas=world, rank=rank, shuffle=True,
                                 seed=config.seed)
    return TrainRun(net=net, model=DistributedDataParallel(net) if world > 1 else net, data=data, sampler=sampler,
                    opt=opt, sched=sched, loss_fn=LOSSES[config.loss], device=device, batch_size=config.batch_size,
                    single_step=config.step_mode == "single" or method == "ddla", stats=stats, ddla=ddla,
                    lam=config.lam,
                    spike_penalty=config.spike_penalty)


def _selection(run: TrainRun) -> dict:
    """The evaluation's selection: the rule trained with and its thresholds as they are now."""
    if run.ddla is None:
        return {}
    return {"rule": run.ddla.rule.name, "thresholds": run.ddla.thresholds.thresholds()}


def _thresholds(run: TrainRun) -> dict:
    """A DDLA checkpoint's neuron-local thresholds, as its next forward would run them."""
    return {"thresholds": run.ddla.thresholds.thresholds()} if run.ddla and run.ddla.rule.neuron_local else {}


def _epoch_row(run: TrainRun, config: TrainConfig, epoch: int, loss: float, acc: float, mode: str,
               started: float) -> dict:
    """Evaluates the epoch's network at the epoch's k (the one its thresholds were steered to),
    prints its line and returns its history row."""
    keep = run.ddla.keep if run.ddla else 1.0
    test = evaluate(run.net, run.data.x_test, run.data.y_test, 256, run.device, config.seed, mode, keep, run.stats,
                    **_selection(run))
    row = {"epoch": epoch + 1, "loss": loss, "train_accuracy": acc}
    train_acc = f"train_acc {acc:.4f}"
    if run.ddla is not None and run.ddla.source == "label-gradient":
        # the running accuracy saw label-chosen deltas: measure the inference one
        honest = evaluate(run.net, run.data.x_train, run.data.y_train, 256, run.device, config.seed, mode,
                          keep, run.stats, run.loss_fn, **_selection(run))
        row.update(train_accuracy_label_ranked=acc, train_accuracy=honest["accuracy"],
                   train_model_loss=honest["loss"])
        train_acc = f"train_acc {honest['accuracy']:.4f} (label-ranked {acc:.4f})"
    if run.ddla is not None:
        row["keep"] = keep
    row.update(test_accuracy=test["accuracy"], events_per_sample=test["events_per_sample"],
               epoch_s=time.time() - started)
    print(f"epoch {epoch + 1:3d}/{config.epochs}  loss {loss:.4f}  {train_acc}  "
          f"test_acc {test['accuracy']:.4f}  events/sample {test['events_per_sample']:.0f}  "
          f"{time.time() - started:.1f}s", flush=True)
    return row


if __name__ == "__main__":
    sys.exit(run_cli(main))
