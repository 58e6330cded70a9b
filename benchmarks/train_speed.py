"""Training throughput (samples/s) of each zoo model, multi-step vs single-step execution.

    python benchmarks/train_speed.py [--device auto|cpu|cuda] [--timesteps 4] [--samples N] [--json PATH]

mlp and convnet train on real digits (one full epoch: 1,437 samples); convnet28 (the convnet
at 1x28x28) on the first `--samples` real Fashion-MNIST training images (apt-get install
dataset-fashion-mnist); vgg, resnet19 and sdt on CIFAR-shaped 3x32x32 inputs (random tensors:
the throughput does not depend on the pixel values), `--samples` of them (default 256 on
CPU, 4096 on GPU). One warm-up batch is excluded from the timing.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import torch

from ddla_neuro.data import load_dataset, load_digits
from ddla_neuro.ddla.executor import DeltaExecutor, ThresholdTracker
from ddla_neuro.ddla.selection import DEFAULT_RULE
from ddla_neuro.devices import select_device
from ddla_neuro.errors import UserError
from ddla_neuro.losses import tet_loss
from ddla_neuro.zoo import build_model

MODELS = {"mlp": "digits", "convnet": "digits", "convnet28": "fashion-mnist", "vgg": "cifar", "resnet19": "cifar",
          "sdt": "cifar"}
ZOO_NAME = {"convnet28": "convnet"}  # a benchmark row's network in the zoo, where the names differ


def prepare(args: argparse.Namespace) -> tuple[torch.device, str, object, tuple[torch.Tensor, torch.Tensor]]:
    """The device, its label, digits and `--samples` random CIFAR-shaped inputs and labels
    (0: 256 on CPU, 4096 on a GPU); UserError, before any work, for a bad argument."""
    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        raise UserError(f"unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    for flag in ("batch_size", "timesteps", "rounds"):
        if getattr(args, flag, 1) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.samples < 0:
        raise UserError(f"--samples must be 0 (the default size) or more, got {args.samples}")
    device = select_device(args.device)
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    n = args.samples or (4096 if device.type == "cuda" else 256)
    g = torch.Generator().manual_seed(0)
    cifar_like = (torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))
    return device, label, load_digits(), cifar_like


def run_main(main: Callable[[], None], script: str) -> None:
    """Runs a benchmark's main; a bad argument ends it with one line."""
    try:
        main()
    except UserError as e:
        sys.exit(f"{script}: error: {e}")


def add_common_args(p: argparse.ArgumentParser, timesteps: int, models: str) -> None:
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--timesteps", type=int, default=timesteps)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--samples", type=int, default=0, help="CIFAR-shaped samples per model (0: 256 CPU / 4096 GPU)")
    p.add_argument("--models", default=models)
    p.add_argument("--json", help="also write the rows as JSON")


def training_data(name: str, digits, cifar: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Real digits for the small models, as many Fashion-MNIST images as CIFAR-shaped inputs for
    the 28x28 one, CIFAR-shaped inputs for the others."""
    if MODELS[name] == "digits":
        return digits.x_train, digits.y_train
    if MODELS[name] == "fashion-mnist":
        fmnist = load_dataset("fashion-mnist")
        return fmnist.x_train[:len(cifar[0])], fmnist.y_train[:len(cifar[0])]
    return cifar


def write_rows(path: str | None, rows: list[dict]) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(rows, f, indent=2)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# DDLA's executions: (selection rule, ranking source); "ddla" is the trainer's default
DDLA_EXECUTIONS = {"ddla": (DEFAULT_RULE, "stats"), "ddla-topk": ("topk", "stats"),
                   "ddla-label-gradient": ("topk", "label-gradient")}
EXECUTIONS = ("multi", "single", *DDLA_EXECUTIONS)


def trainer(name: str, x: torch.Tensor, y: torch.Tensor, timesteps: int, batch: int, execution: str,
            device: torch.device, keep: float = 0.5, lam: float = 0.5) -> Callable[[], float]:
    """A fresh network and optimizer for `execution`: `multi`/`single`-step baseline, or DDLA with
    the default neuron-local rule (`ddla`), with top-k ranked by the learnt statistics (`ddla-topk`)
    or by the paper's per-sample label gradient (`ddla-label-gradient`). Runs one warm-up batch and
    returns a function that trains one epoch over (x, y) and returns its seconds."""
    torch.manual_seed(0)
    net = build_model(ZOO_NAME.get(name, name), num_classes=10, input_shape=tuple(x.shape[1:]),
                      timesteps=timesteps).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rule, source = DDLA_EXECUTIONS.get(execution, (None, None))
    ddla = (DeltaExecutor(net, "ddla", keep, source=source, count_events=False, learn=True, rule=rule,
                          thresholds=ThresholdTracker(learn=True)) if rule else None)

    def step(xb, yb):
        if ddla is not None:
            out, sensitivity_loss = ddla.run(net.encode(xb), yb if source == "label-gradient" else None)
            loss = lam * tet_loss(out, yb) + (1 - lam) * sensitivity_loss
        else:
            loss = tet_loss(net.run(xb, single_step=execution == "single"), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def epoch() -> float:
        sync(device)
        t0 = time.perf_counter()
        for i in range(0, len(x), batch):
            step(x[i:i + batch].to(device), y[i:i + batch].to(device))
        sync(device)
        return time.perf_counter() - t0

    step(x[:batch].to(device), y[:batch].to(device))  # warm-up
    return epoch


def interleaved_seconds(epochs: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Epoch seconds of every execution, `rounds` rounds each running every execution once in
    turn: a slow spell of a shared machine then falls on all of them, not on one."""
    seconds: dict[str, list[float]] = {e: [] for e in epochs}
    for _ in range(rounds):
        for e, epoch in epochs.items():
            seconds[e].append(epoch())
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, timesteps=4, models=",".join(MODELS))
    args = p.parse_args()
    device, name_dev, digits, cifar = prepare(args)
    print(f"device: {name_dev}, T={args.timesteps}, batch {args.batch_size}, torch {torch.__version__}")
    print(f"{'model':10s} {'data':>14s} {'multi-step':>12s} {'single-step':>12s} {'ratio':>6s}")
    rows = []
    for name in args.models.split(","):
        x, y = training_data(name, digits, cifar)
        epochs = {e: trainer(name, x, y, args.timesteps, args.batch_size, e, device) for e in ("multi", "single")}
        multi, single = (len(x) / min(t) for t in interleaved_seconds(epochs, 1).values())
        data = f"{MODELS[name]} x{len(x)}"
        print(f"{name:10s} {data:>14s} {multi:10.1f}/s {single:10.1f}/s {multi / single:6.2f}", flush=True)
        rows.append({"model": name, "data": MODELS[name], "samples": len(x), "device": name_dev,
                     "timesteps": args.timesteps, "batch_size": args.batch_size,
                     "multi_step_samples_per_s": multi, "single_step_samples_per_s": single})
    write_rows(args.json, rows)


if __name__ == "__main__":
    run_main(main, "train_speed.py")
