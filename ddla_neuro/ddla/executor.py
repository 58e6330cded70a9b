"""Runs a SpikingNetwork one timestep at a time, every neuron population transmitting in one of
the modes of `transmission.py`: `dense` (spikes), `delta` (every delta: same outputs, counts
deltas) or `ddla` (from t = 2 the pending changes the selection chooses, `selection.py`; the
receivers hold the rest).

The executor is the network's transmission hook (`snn.layers.Transmit`); it counts spikes, deltas,
sent and dropped events per layer and timestep, accumulates the sensitivity loss, and keeps
per-neuron sensitivity statistics (a running mean of |dL/dO|) that training stores in the
checkpoint and deployment turns into a weighted rule's weights (a rule without weights, the
default `uniform`, reads none: its training records them from one batch in STATS_EVERY, for a
deploy-time switch of rule).

The selection (`rule`): a neuron-local rule (the default; its per-layer thresholds steered by a
`ThresholdTracker` while training, fixed when evaluating) or the paper's layer-wide `topk`. Two
rankings for `topk` (`source`):
- `stats` (the default, also in training): the statistics learnt from the gradients of past
  training batches. It needs no label and no gradient of the current input, so training,
  evaluation and deployment select the same deltas for the same input.
- `label-gradient` (the paper's scheme): the deltas of step t+1 are ranked by each sample's
  own gradient of the step-t loss, which depends on that sample's label. Inference has no
  label, so it ranks by the statistics instead: a network trained this way can learn to read
  the label from which deltas get through, and its training accuracy does not carry over.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from ..snn.layers import Neuron
from ..snn.network import SpikingNetwork
from .approx import ddla_step
from .gsc import gsc_scores
from .keep import Keep, filters, keep_of, ratios
from .selection import DEFAULT_RULE, THRESHOLD_MAX, WEIGHT_UNIT, LayerSelection, rule_of, topk_step
from .transmission import MODES

SENSITIVITY_SOURCES = ("stats", "label-gradient")
# Names written into checkpoints before the sources were renamed (`running` ranked by the
# statistics as `stats` does now; `step` was the paper's per-sample scheme).
LEGACY_SOURCES = {"running": "stats", "step": "label-gradient"}
STATS_EVERY = 8  # an unweighted rule's training batches per one whose statistics are recorded
# spikes: the dense events; deltas: lossless changes s^t - s^{t-1}; transmitted: deltas actually
# sent (ddla: the kept ones, measured against what the receivers hold); dropped: held back.
COUNTS = ("spikes", "deltas", "transmitted", "dropped")
EVENTS_OF = {"dense": "spikes", "delta": "deltas", "ddla": "transmitted"}  # what each mode transmits


@dataclass
class EventCounts:
    """Per layer, per timestep totals over the samples seen."""

    timesteps: int
    totals: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    samples: int = 0

    def add(self, key: str, t: int, **values: torch.Tensor) -> None:
        layer = self.totals.setdefault(key, {c: torch.zeros(self.timesteps, dtype=torch.float64) for c in COUNTS})
        for name, v in values.items():
            layer[name][t] += float(v)

    def per_sample(self, count: str) -> dict[str, list[float]]:
        n = max(self.samples, 1)
        return {key: (c[count] / n).tolist() for key, c in self.totals.items()}

    def summary(self, mode: str) -> dict:
        """Flat per-sample figures: `{count}_per_sample`, `_per_timestep`, `_per_layer` and
        `_per_layer_timestep` for every count, and `events_*`: what `mode` transmits."""
        out = {}
        for count in COUNTS + ("events",):
            per_layer = self.per_sample(EVENTS_OF[mode] if count == "events" else count)
            per_step = [sum(v[t] for v in per_layer.values()) for t in range(self.timesteps)]
            out.update({f"{count}_per_sample": sum(per_step), f"{count}_per_timestep": per_step,
                        f"{count}_per_layer": {k: sum(v) for k, v in per_layer.items()},
                        f"{count}_per_layer_timestep": per_layer})
        return out


class SensitivityStats:
    """Per-neuron running mean of |dL/dO|, one tensor per layer of the shape of one sample's
    output. The gradients of a training batch's steps are summed as they arrive (`add`) and folded
    in once per batch, when the statistics are next read: decay `momentum` per step, so a batch of
    T steps keeps momentum^T of the old value and adds the rest times the batch's mean over its
    samples and steps (a running mean step by step, the steps of one batch weighted alike)."""

    def __init__(self, momentum: float = 0.9, values: dict[str, torch.Tensor] | None = None):
        self.momentum = momentum
        self._values: dict[str, torch.Tensor] = dict(values or {})
        self._pending: dict[str, list] = {}  # per layer, [sum of |dL/dO| (B, ...), steps summed]

    def add(self, key: str, grad: torch.Tensor) -> None:
        """One step's gradient (B, ...) of a layer's output."""
        g = grad.detach().abs()
        pending = self._pending.get(key)
        if pending is not None and pending[0].shape != g.shape:  # another batch's, of another size
            self._fold(key)
            pending = None
        if pending is None:
            self._pending[key] = [g, 1]
        else:
            pending[0].add_(g)
            pending[1] += 1

    def fold(self) -> None:
        """Folds in the gradients summed so far."""
        for key in list(self._pending):
            self._fold(key)

    def _fold(self, key: str) -> None:
        total, steps = self._pending.pop(key)
        g = _mean_over_batch(total) / steps
        old = self._values.get(key)
        decay = self.momentum ** steps
        self._values[key] = g if old is None else decay * old.to(g.device) + (1 - decay) * g

    @property
    def values(self) -> dict[str, torch.Tensor]:
        self.fold()
        return self._values

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.values[key]


def _mean_over_batch(x: torch.Tensor) -> torch.Tensor:
    """x.mean(0); a channels-last (B, C, H, W) tensor, which is contiguous as (B, H, W, C), is
    averaged in that order (torch reduces the outer axis of a tensor of another layout slowly)."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1).mean(0).permute(2, 0, 1)
    return x.mean(0)


class ThresholdTracker:
    """Per layer, the threshold of a neuron-local rule. While training (`learn`) it is steered so
    that each layer sends the share k of its pending changes (t >= 2) that `keep` asks for: after
    every batch, log(theta) moves by RATE times (the share the batch sent - k), and the next batch
    runs with the new integer threshold, so every forward runs with a threshold fixed before it
    (as deployment does). Without `learn` the thresholds are fixed (a checkpoint's)."""

    RATE = 0.5

    def __init__(self, thresholds: dict[str, int] | None = None, logs: dict[str, float] | None = None,
                 learn: bool = False):
        self.logs = dict(logs or {k: math.log(v) for k, v in (thresholds or {}).items()})
        self.learn = learn

    def threshold(self, key: str) -> int | None:
        """The layer's integer threshold (learning: WEIGHT_UNIT before its first batch)."""
        if key not in self.logs:
            if not self.learn:
                return None
            self.logs[key] = math.log(WEIGHT_UNIT)
        return int(min(max(round(math.exp(self.logs[key])), 1), THRESHOLD_MAX))

    def observe(self, key: str, keep: float, sent: float, pending: float) -> None:
        if self.learn and pending > 0:
            log_max = math.log(THRESHOLD_MAX)
            self.logs[key] = min(max(self.logs[key] + self.RATE * (sent / pending - keep), 0.0), log_max)

    def thresholds(self) -> dict[str, int]:
        return {k: self.threshold(k) for k in self.logs}


class DeltaExecutor:
    def __init__(self, net: SpikingNetwork, mode: str = "ddla", keep: Keep = 1.0, source: str = "stats",
                 stats: SensitivityStats | None = None, count_events: bool = True, learn: bool = False,
                 rule: str = DEFAULT_RULE, thresholds: ThresholdTracker | None = None, collect_spikes: bool = False):
        """`learn`: update the statistics from the gradients of training (`stats`: the gradient of
        the total loss that reaches each layer's transmitted output, read in the backward pass;
        `label-gradient`: each step's per-sample gradients). Without `learn` the `stats` ranking
        needs statistics for every layer; while learning, a layer without statistics yet (the
        first batch) sends all its deltas. `keep`: one ratio, or one per layer (`ddla.keep`): top-k's
        share per step, or the share a neuron-local rule's `thresholds` steer toward.
        `collect_spikes`: keep every layer's spikes of the last run in `spikes` (a penalty on them)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if source not in SENSITIVITY_SOURCES:
            raise ValueError(f"sensitivity source must be one of {SENSITIVITY_SOURCES}, got {source!r}")
        if any(not 0.0 <= k <= 1.0 for k in ratios(keep)):
            raise ValueError(f"keep ratios must lie in [0, 1], got {keep}")
        self.rule = rule_of(rule)
        if source == "label-gradient" and self.rule.neuron_local:
            raise ValueError("the label-gradient ranking ranks a whole layer per sample: use it with the topk rule")
        self.net, self.mode, self.source, self.learn = net, mode, source, learn
        self.keep = keep if mode == "ddla" else 1.0
        self.stats = stats if stats is not None else SensitivityStats()
        self.thresholds = thresholds if thresholds is not None else ThresholdTracker(learn=learn)
        self.counts = EventCounts(net.timesteps)
        self.count_events = count_events  # training needs no counts; skipping them saves time
        self.collect_spikes = collect_spikes
        self.runs = 0  # batches run
        self._reset_sequence()

    def _reset_sequence(self) -> None:
        self.t = 0
        self.held: dict[str, torch.Tensor] = {}       # what the receivers hold (F' of the last step)
        self.spikes_prev: dict[str, torch.Tensor] = {}
        self.step_grads: dict[str, torch.Tensor] = {}  # label-gradient: dL_{t-1}/dF'_{t-1} per sample
        self.transmitted: dict[str, torch.Tensor] = {}
        self.sensitivity_losses: list[torch.Tensor] = []
        self.sent: dict[str, list[torch.Tensor]] = {}  # per layer, the deltas sent at each step
        self.credit: dict[str, torch.Tensor] = {}     # neuron-local rules: each neuron's credit
        self.layers: dict[str, LayerSelection | None] = {}  # per layer, its selection in this run
        self.tally: dict[str, tuple[list, list]] = {}  # per layer, (sent, pending) per step t >= 2 (the tracker's)
        self.spikes: list[torch.Tensor] = []  # with collect_spikes: every layer's output at every step

    @property
    def recording(self) -> bool:
        """Whether this batch records statistics: a rule without sensitivity weights does not read
        them, so they are kept (for a deploy-time switch to a weighted rule) from batches 1,
        1 + STATS_EVERY, ..."""
        return self.rule.weighted or (self.runs - 1) % STATS_EVERY == 0

    def _layer(self, key: str, like: torch.Tensor) -> LayerSelection | None:
        """The layer's selection for this run (its statistics change only in the backward pass),
        or None: it sends everything (learning, before its first statistics)."""
        if key not in self.layers:
            # a rule without sensitivity weights reads no statistics
            grad = self.stats.values.get(key) if self.rule.weighted else None
            if grad is None and self.rule.weighted and not self.learn:
                raise ValueError(f"no sensitivity statistics for layer {key!r}: the checkpoint was not trained "
                                 f"with DDLA")
            threshold = self.thresholds.threshold(key) if self.rule.neuron_local else None
            if self.rule.neuron_local and threshold is None:
                raise ValueError(f"no selection threshold for layer {key!r}: calibrate the {self.rule.name} rule "
                                 f"for it, or give it k = 1")
            if grad is None and not self.rule.neuron_local:
                self.layers[key] = None
            else:
                scores = np.ones(like.shape[1:]) if grad is None else grad.detach().cpu().numpy()
                self.layers[key] = LayerSelection(self.rule.name, keep_of(self.keep, key), threshold, scores,
                                                  lambda a: torch.as_tensor(a, device=like.device), np.float32,
                                                  tuple(like.shape[1:]))
        return self.layers[key]

    def _selected(self, key: str, s: torch.Tensor, held: torch.Tensor, keep: float) -> torch.Tensor | None:
        """Where the layer sends its pending changes s - held (1.0 or True; 0.0 or False
        elsewhere), or None: everywhere. A neuron-local rule runs elementwise in the layer's shape
        and memory format, on 1.0/0.0 floats (no bool, whose conversions cost more than the
        arithmetic)."""
        # 1.0 where a change is pending, in s's memory format
        waiting = torch.ne(s.detach(), held.detach(), out=torch.empty_like(s, requires_grad=False))
        if self.source == "label-gradient":
            if key not in self.step_grads:
                return None
            scores = gsc_scores(self.step_grads[key], (s - held).detach()).reshape(s.shape[0], -1)
            order = torch.argsort(scores, dim=1, descending=True, stable=True)
            rank = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1], device=s.device)
                                                    .expand_as(order).contiguous())
            send = topk_step(waiting.reshape(s.shape[0], -1), order, rank, keep).reshape(s.shape)
        else:
            layer = self._layer(key, s)
            if layer is None:
                return None
            if layer.rule.neuron_local:
                credit = self.credit.get(key)
                send, self.credit[key] = layer.step(waiting, torch.zeros_like(waiting) if credit is None else credit)
            else:
                send = layer.step(waiting.reshape(s.shape[0], -1), None)[0].reshape(s.shape)
        if self.learn:
            sent, pending = self.tally.setdefault(key, ([], []))
            sent.append(send.sum())
            pending.append(waiting.sum())
        return send

    def _transmit(self, neuron: Neuron, s: torch.Tensor) -> torch.Tensor:
        """The network's transmission hook (one step, (B, ...)): what the receivers get instead of s."""
        key, held = neuron.key, self.held.get(neuron.key)
        if self.collect_spikes:
            self.spikes.append(s)
        keep = keep_of(self.keep, key)
        learn = self.learn and self.source == "stats" and s.requires_grad and self.recording
        update = partial(self.stats.add, key) if learn else None
        send = self._selected(key, s, held, keep) if (held is not None and keep < 1.0) else None
        step = ddla_step(s, held, send, update)
        if send is not None:
            self.sensitivity_losses.append(step.sensitivity_loss)
        elif update is not None:
            step.transmitted.register_hook(update)
        if self.count_events:
            d_lossless = s if self.t == 0 else s - self.spikes_prev[key]
            # x.bool(): x != 0, much faster on CPU
            d, sent = step.delta, step.sent
            self.counts.add(key, self.t, spikes=s.bool().sum(), deltas=d_lossless.bool().sum(),
                            transmitted=sent.bool().sum(), dropped=(d != sent).sum())
            self.spikes_prev[key] = s.detach()
            self.sent.setdefault(key, []).append(sent)
        self.held[key] = step.transmitted
        self.transmitted[key] = step.transmitted
        return step.transmitted

    def _after_step(self, out_t: torch.Tensor, y: torch.Tensor | None) -> None:
        """label-gradient: the gradient of the step-t loss ranks the deltas of step t+1."""
        if self.source == "label-gradient" and filters(self.keep) and self.t < self.net.timesteps - 1:
            if y is None or not out_t.requires_grad:
                raise ValueError("the label-gradient ranking needs labels and gradients (training); "
                                 "evaluate with the statistics ranking")
            keys = list(self.transmitted)
            loss_t = F.cross_entropy(out_t, y)
            grads = torch.autograd.grad(loss_t, [self.transmitted[k] for k in keys], retain_graph=True,
                                        allow_unused=True)
            self.step_grads = {k: g.detach() for k, g in zip(keys, grads) if g is not None}
            if self.learn:
                for k, g in self.step_grads.items():
                    self.stats.add(k, g)
        self.transmitted = {}
        self.t += 1

    def run(self, x_seq: torch.Tensor, y: torch.Tensor | None = None, model: torch.nn.Module | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Runs one batch of sequences (T, B, ...). Returns (logits (T, B, classes), sensitivity
        loss: the sum over the filtering layers of the mean over steps t >= 2 of MSE(F', F)). `y`, the labels,
        only serves the label-gradient ranking. `model` is the module to call (a
        DistributedDataParallel wrapper of the network, for instance). While learning, a
        neuron-local rule's thresholds are steered by what this batch sent."""
        self._reset_sequence()
        self.runs += 1
        self.stats.fold()  # the last batch's gradients, once per batch
        model = model if model is not None else self.net
        out = model(x_seq, single_step=True, on_step=lambda out_t: self._after_step(out_t, y), transmit=self._transmit)
        self.counts.samples += x_seq.shape[1]
        if self.rule.neuron_local:
            for key, (sent, pending) in self.tally.items():
                self.thresholds.observe(key, keep_of(self.keep, key), float(torch.stack(sent).sum()),
                                        float(torch.stack(pending).sum()))
        losses = self.sensitivity_losses
        # the sum over the filtering layers of each one's mean over its steps
        n_layers = max(sum(keep_of(self.keep, n.key) < 1.0 for n in self.net.neurons), 1)
        sensi = torch.stack(losses).sum() * n_layers / len(losses) if losses else out.new_zeros(())
        return out, sensi

    def sent_deltas(self) -> dict[str, torch.Tensor]:
        """Per layer, the deltas sent in the last `run` (T, B, ...): zero where nothing was sent."""
        return {k: torch.stack(v) for k, v in self.sent.items()}
