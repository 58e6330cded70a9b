"""How close fusing DDLA's send into one autograd node per layer and step brings DDLA training
to the single-step baseline: a bound on what fewer operator calls can buy, not the trainer.

    python benchmarks/ddla_fused_bound.py [--device auto|cpu|cuda] [--timesteps 6] [--models convnet,convnet28,vgg]
                                          [--rounds 3] [--json PATH]

`ddla_overhead.py` profiles DDLA training as some 1,460 extra operator calls per step (the delta,
the selection, the send, the held value, the MSE of the sensitivity loss, each with its
backward). Here the trainer's statistics-ranked DDLA (k = 0.5, lambda = 0.5) runs as it is
(`ddla-stats`) and with each binary layer's send at each step as one `torch.autograd.Function`
(`ddla-fused`): the same forward values as `approx.ddla_step`, the same gradients up to the order
in which floating-point sums are taken, its backward written out by hand. That order changes
training's last bits, so the trainer does not use it (the shipped DDLA models would no longer
follow from their recipes); the statistics here learn from the gradient that reaches the held
value from downstream. The executions take turns with the single-step baseline, `--rounds`
times (each a pass over `ddla_overhead.py`'s data); a row gives each one's median ms per step
and the median of the per-round ratios.
"""
from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import torch

from train_speed import add_common_args, interleaved_seconds, prepare, run_main, trainer, training_data, write_rows
from ddla_neuro.ddla import approx, executor
from ddla_neuro.ddla.gsc import Priority, priority_cut


class FusedSend(torch.autograd.Function):
    """One binary layer's DDLA send at one step: (what the receivers hold, MSE(held', s))."""

    @staticmethod
    def forward(ctx, s: torch.Tensor, held: torch.Tensor, order: Priority, keep: float):
        change = s - held
        sent = change.abs()  # the candidates, then the selection: |change| times the cut
        sent.mul_(priority_cut(order, sent, keep))
        now = torch.addcmul(held, change, sent)  # held + change * selection
        error = now - s
        ctx.save_for_backward(sent, error)
        return now, error.pow(2).mean()

    @staticmethod
    def backward(ctx, grad_now: torch.Tensor, grad_loss: torch.Tensor):
        selection, error = ctx.saved_tensors
        grad_error = error * (2.0 * grad_loss / error.numel())
        grad_now = grad_now + grad_error
        through = grad_now * selection  # the gradient reaches s where a change was sent
        return through - grad_error, grad_now - through, None, None


def fused_step(s_t: torch.Tensor, held: torch.Tensor | None, scores: torch.Tensor | None, keep: float,
               order: Priority | None = None) -> approx.ApproxStep:
    """`approx.ddla_step` with a binary layer's send as one node (training counts no events, so
    the step's delta and sent values are not kept)."""
    if held is None or keep >= 1.0 or order is None:
        return approx.ddla_step(s_t, held, scores, keep, order)
    now, loss = FusedSend.apply(s_t, held, order, keep)
    return approx.ApproxStep(now, now, now, loss)


@contextmanager
def fused_sends() -> Iterator[None]:
    executor.ddla_step = fused_step
    try:
        yield
    finally:
        executor.ddla_step = approx.ddla_step


def fused(make: Callable[[], Callable[[], float]]) -> Callable[[], float]:
    """A trainer built and run with fused sends."""
    with fused_sends():
        epoch = make()

    def run() -> float:
        with fused_sends():
            return epoch()
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, timesteps=6, models="convnet,convnet28,vgg")
    p.add_argument("--rounds", type=int, default=3, help="passes of every execution, in turn")
    args = p.parse_args()
    device, dev, digits, cifar = prepare(args)
    print(f"device: {dev}, T={args.timesteps}, batch {args.batch_size}, keep 0.5, lambda 0.5")
    print(f"{'model':9s} {'single':>10s} {'ddla-stats':>11s} {'ddla-fused':>11s} {'ddla-stats/single':>18s} "
          f"{'ddla-fused/single':>18s}")
    rows = []
    for name in args.models.split(","):
        x, y = training_data(name, digits, cifar)
        make = partial(trainer, name, x, y, args.timesteps, args.batch_size, device=device)
        seconds = interleaved_seconds({"single": make("single"), "ddla-stats": make("ddla-stats"),
                                       "ddla-fused": fused(partial(make, "ddla-stats"))}, args.rounds)
        steps = -(-len(x) // args.batch_size)
        ms = {e: [1000 * s / steps for s in t] for e, t in seconds.items()}
        ratio = {e: statistics.median(a / b for a, b in zip(t, ms["single"])) for e, t in ms.items()}
        print(f"{name:9s} " + " ".join(f"{statistics.median(t):8.1f} ms" for t in ms.values())
              + f" {ratio['ddla-stats']:18.2f} {ratio['ddla-fused']:18.2f}", flush=True)
        rows.append({"model": name, "device": dev, "timesteps": args.timesteps, "batch_size": args.batch_size,
                     "samples": len(x), "ms_per_step": ms, "ratio_to_single": ratio})
    write_rows(args.json, rows)


if __name__ == "__main__":
    run_main(main, "ddla_fused_bound.py")
