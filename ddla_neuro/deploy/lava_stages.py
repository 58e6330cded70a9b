"""The step logic of our Lava process models (`lava/models.py`), without Lava: small stage
classes on (batch, n) arrays, one row per sample in lockstep. `Encoding` (the input code),
`Synapse` (a projection's ops and delay), `Neurons` (IF/LIF/CUBA or sigma-delta neurons and
what they send, DDLA's selection included), `Logits` (the readout) and `Recorder` (what a
process computed, to a file); `Window` and `Step` say where a stage is in the run at a Lava
step. The behaviour per step is that of `spec.py`; `sim.py` implements the same in batched
torch and the tests hold the two bit-exact. It lives beside `lava/`, not in it: Lava's compiler
executes every module there.
"""
from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from ..ddla.selection import LayerSelection
from .ops import (EXACT_FLOAT, EXACT_FLOAT32, SATURATION, apply_ops_batch, decay_fixed, reset_due, sigma_delta,
                  synaptic_ops, wrap_current)
from .spec import Op
MATRIX_ENTRIES = 2 ** 21  # a projection with at most this many synapses runs as one matrix (16 MiB)


class Step(NamedTuple):
    """Where a stage is in the run at one Lava step."""

    t: int        # the timestep within the sample, from 0 (negative in the pipeline fill)
    rows: int     # the rows that hold real samples
    first: bool   # the stage's first step of this round of samples: per-sample state starts fresh
    round: int    # which round of `batch` samples

    @property
    def counted(self) -> bool:
        return self.t >= 0


def _dtype(fixed: bool) -> type:
    return np.int64 if fixed else np.float64


def values(x, fixed: bool) -> np.ndarray:
    """`x` as the model's numbers: rounded int64 in fixed point, float64 otherwise."""
    return np.rint(x).astype(np.int64) if fixed else np.asarray(x, dtype=np.float64)


class Window:
    """Where a stage of depth `depth` that starts `fill` steps before its first input is in the
    run: each of the ceil(N / batch) rounds lasts `pad` + T Lava steps, the round's frames
    entering after `pad` zero ones (process.py). At Lava step `time_step` (from 1), its `Step`,
    or None outside its part of a round."""

    def __init__(self, depth: int, fill: int, timesteps: int, num_samples: int, batch: int, pad: int):
        self.fill, self.timesteps, self.num_samples, self.batch = fill, timesteps, num_samples, batch
        self.rounds, self.round_steps = -(-num_samples // batch), timesteps + pad
        self.start = depth + pad - fill  # Lava steps before its first one

    def at(self, time_step: int) -> Step | None:
        w = time_step - 1 - self.start
        r, e = divmod(w, self.round_steps)
        t = e - self.fill
        if w < 0 or r >= self.rounds or t >= self.timesteps:
            return None
        return Step(t, min(self.batch, self.num_samples - r * self.batch), e == 0, r)


class Encoding:
    """The input code of a delta network: the frame (dense) or its change since the last step
    (delta; the whole frame at t = 0)."""

    def __init__(self, mode: str):
        self.mode, self.previous = mode, None

    def step(self, at: Step, x: np.ndarray) -> np.ndarray:
        out = x if self.mode == "dense" or at.first else x - self.previous
        self.previous = x
        return out


def as_matrix(n_in: int, n_out: int) -> bool:
    """Whether a projection runs as its composed matrix (`Synapse`)."""
    return n_in * n_out <= MATRIX_ENTRIES


def _exact_in_float32(w: np.ndarray) -> bool:
    return bool(np.array_equal(w, w.astype(np.float32)))


def composed_matrix(ops: list[Op], n_in: int, n_out: int, chunk: int = 256) -> np.ndarray:
    """Row i: the output of the ops for one unit at input i. Built `chunk` rows at a time, so
    the identity it applies the ops to stays small however wide the input is."""
    matrix = np.empty((n_in, n_out))
    for start in range(0, n_in, chunk):
        rows = min(chunk, n_in - start)
        eye = np.zeros((rows, n_in))
        eye[np.arange(rows), start + np.arange(rows)] = 1.0
        matrix[start:start + rows] = apply_ops_batch(ops, eye).reshape(rows, n_out)
    return matrix


class Synapse:
    """A projection's ops on what its source sent (a batch), turned into the current `delay`
    steps later; with `accumulate` (a delta-coded source) the sum of all it received in the
    sample. A projection of at most `MATRIX_ENTRIES` synapses runs as its composed matrix (as a
    chip stores it), multiplying only the rows of inputs that changed when few did; a bigger one
    runs its ops (a conv on the whole input).

    Fixed point multiplies integers in BLAS, exactly: in float32 while every partial sum stays
    below 2**24 (the weights are then held in float32), in float64 below 2**53, in int64
    beyond. Floating point runs float64, as the simulator does."""

    def __init__(self, p: dict, fixed: bool, batch: int):
        self.fixed, self.shift, self.accumulate = fixed, p["shift"], p["accumulate"]
        ops = [op if op.weight is None else replace(op, weight=np.asarray(op.weight, dtype=np.float64))
               for op in p["ops"]]
        self.gain = float(np.prod([op.gain for op in ops]))
        self.fanout = np.asarray(p["fanout"]).reshape(-1)
        n_in, n_out = self.fanout.size, int(np.prod(ops[-1].out_shape))
        self.ops, self.matrix = ops, None
        if as_matrix(n_in, n_out):
            self.ops, self.matrix = [], composed_matrix(ops, n_in, n_out)
        self.float32 = fixed and all(_exact_in_float32(w) for w in self.weights())
        if self.float32:
            self.ops = [op if op.weight is None else replace(op, weight=op.weight.astype(np.float32))
                        for op in self.ops]
            self.matrix = None if self.matrix is None else self.matrix.astype(np.float32)
        self.zeros = np.zeros((batch, n_out), dtype=_dtype(fixed))
        self.queue = deque(self.zeros for _ in range(p["delay"]))
        self.accumulated = self.zeros

    def weights(self) -> list[np.ndarray]:
        return [op.weight for op in self.ops if op.weight is not None] if self.matrix is None else [self.matrix]

    def pop(self) -> np.ndarray:
        """The current that arrives now (computed `delay` steps ago)."""
        return self.queue.popleft()

    def product(self, x: np.ndarray) -> np.ndarray:
        """The ops on `x` in its own number type (the weights cast to it where they differ)."""
        def cast(w: np.ndarray) -> np.ndarray:
            return w if w.dtype == x.dtype else w.astype(x.dtype)

        if self.matrix is None:
            return apply_ops_batch([op if op.weight is None else replace(op, weight=cast(op.weight))
                                    for op in self.ops], x)
        changed = np.flatnonzero(x.any(axis=0))
        if 4 * changed.size < x.shape[1]:  # few inputs changed: only their rows
            return x[:, changed] @ cast(self.matrix[changed])
        return x @ cast(self.matrix)

    def apply(self, d: np.ndarray) -> np.ndarray:
        if not self.fixed:
            return self.product(d).reshape(self.zeros.shape)
        peak = np.abs(d).max() * self.gain
        if peak < EXACT_FLOAT32 and self.float32:
            a = np.rint(self.product(d.astype(np.float32))).astype(np.int64)
        elif peak < EXACT_FLOAT:
            a = np.rint(self.product(d.astype(np.float64))).astype(np.int64)
        else:
            a = self.product(d)
        return a.reshape(self.zeros.shape) << self.shift

    def push(self, at: Step | None, d: np.ndarray) -> int:
        """Takes what the source sent this step; returns its synaptic ops (each non-zero value
        of a real sample times its fan-out)."""
        if at is None:
            self.queue.append(self.zeros)
            return 0
        if d.any():
            a, sops = self.apply(d), synaptic_ops(self.fanout, d[:at.rows])
        else:  # event-driven: no event, no synaptic work (a delta-coded input after t = 1)
            a, sops = self.zeros, 0
        if self.accumulate:
            self.accumulated = a if at.first else self.accumulated + a
            a = self.accumulated
        self.queue.append(a)
        return sops


class Neurons:
    """IF/LIF/CUBA or sigma-delta neurons of a batch and what they send (spec.py): `step`
    integrates the current of one step and returns what is sent, what the neurons computed (their
    spikes or messages) and (spikes, sent events, active units, DDLA's pending changes) over the
    real rows."""

    def __init__(self, p: dict, fixed: bool, batch: int):
        self.p, self.fixed = p, fixed
        self.bias = values(p["bias"], fixed).reshape(-1)
        n = self.bias.size
        self.zeros = np.zeros((batch, n), dtype=_dtype(fixed))
        delay = p["input_delay"]
        self.delay = None if delay is None else np.asarray(delay, dtype=np.int64).reshape(-1)
        if self.delay is not None:  # [k, b]: sample b's current received k steps ago
            self.history = np.zeros((int(self.delay.max()) + 1, batch, n), dtype=self.bias.dtype)
        # DDLA (`ddla.selection`): the rule's integer state held per neuron, as a Loihi 2 neuron program holds it
        self.select = None if p["select"] is None else LayerSelection(**p["select"])
        self.fresh()

    def fresh(self) -> None:
        """Every state at rest: a sample's first step."""
        self.v = self.held = self.u = self.act = self.residue = self.sent_sum = self.last_input = self.zeros
        self.credit = np.zeros(self.zeros.shape, dtype=np.int64)
        self.fired = np.zeros(self.zeros.shape, dtype=bool)  # the last step's spikes (delayed resets)
        if self.delay is not None:
            self.history[:] = 0

    def decay(self, v: np.ndarray, factor: str = "decay", register: str = "dv") -> np.ndarray:
        if self.fixed:
            return decay_fixed(v, self.p[register])
        return v * self.p[factor] if self.p[factor] != 1.0 else v

    def delayed(self, a: np.ndarray) -> np.ndarray:
        """Each unit's current from `input_delay` steps ago in this sample (zero before its start)."""
        self.history = np.roll(self.history, 1, axis=0)
        self.history[0] = a
        return self.history[self.delay, :, np.arange(a.shape[1])].T

    def integrate_cuba(self, a: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """Loihi's current-based LIF (spec.py): the current is a state (fixed point: 24-bit wrap,
        as Lava's LIF), the bias goes to the voltage (clipped to +-(2**23 - 1)); v before firing."""
        u = self.decay(self.u, "u_decay", "du") + a
        self.u = u = wrap_current(u) if self.fixed else u
        v = self.decay(self.v) + u + bias
        return np.clip(v, 1 - SATURATION, SATURATION - 1) if self.fixed else v

    def integrate(self, a: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """IF/LIF: v before firing."""
        p = self.p
        v = self.decay(np.where(self.fired, 0, self.v) if p["reset"] == "delayed-zero" else self.v) + a + bias
        if p["reset"] == "delayed-subtract":  # a delayed reset acts on the step after the spike
            v = v - self.fired * p["v_th"]
        return np.clip(v, -SATURATION, SATURATION - 1) if self.fixed else v

    def step(self, at: Step, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
        p = self.p
        if at.first:
            self.fresh()
        elif reset_due(at.t, p["reset_interval"], p["reset_offset"]):  # a stream's next inference
            self.v, self.u, self.fired = self.zeros, self.zeros, np.zeros(self.zeros.shape, dtype=bool)
        if self.delay is not None and not p["bias_input"]:  # each unit's synaptic current, its own steps late
            a = self.delayed(a)
        if p["kind"] == "sdnn":
            return self.step_sigma_delta(at, a)
        bias = self.bias + a if p["bias_input"] else self.bias  # the input written into the bias register
        a = self.zeros if p["bias_input"] else a
        v = self.integrate_cuba(a, bias) if p["kind"] == "cuba" else self.integrate(a, bias)
        s = v > p["v_th"]
        if p["reset"] == "zero":
            v = np.where(s, 0, v)
        elif p["reset"] == "subtract":
            v = v - s * p["v_th"]
        self.v = v.astype(self.zeros.dtype)
        self.fired = s
        s = s.astype(self.zeros.dtype)
        pending = 0
        if p["mode"] == "dense":
            out = s
        else:
            out = s - self.held
            if self.select is not None and not at.first:  # DDLA: the changes the selection sends
                waiting = out != 0
                send, self.credit = self.select.step(waiting, self.credit)
                out = out * send
                pending = np.count_nonzero(waiting[:at.rows]) if self.select.rule.neuron_local else 0
            self.held = self.held + out
        active = self.u if p["kind"] == "cuba" else a  # cuba: its current state
        rows = at.rows
        return out, s, (np.count_nonzero(s[:rows]), np.count_nonzero(out[:rows]), np.count_nonzero(active[:rows]),
                        pending)

    def step_sigma_delta(self, at: Step, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
        """Sigma-delta neurons (`spec.sigma_delta`): sigma is the current as it arrives (the
        synapse holds the sum of what the source sent); active where it changed."""
        p = self.p
        message, self.act, self.residue = sigma_delta(sigma, self.act, self.residue, self.bias, p["v_th"],
                                                      p["activation"] == "relu", p["message_shift"])
        self.sent_sum = self.sent_sum + message
        out = self.sent_sum if p["mode"] == "dense" else message
        changed, self.last_input = sigma != self.last_input, sigma
        rows = at.rows
        return out, message, (np.count_nonzero(message[:rows]), np.count_nonzero(out[:rows]),
                              np.count_nonzero(changed[:rows]), 0)


class Logits:
    """The non-spiking readout: its current plus bias; counts active units (non-zero current)."""

    def __init__(self, bias: np.ndarray, fixed: bool):
        self.bias = values(bias, fixed).reshape(-1)

    def step(self, at: Step, a: np.ndarray) -> tuple[np.ndarray, int]:
        return a + self.bias, np.count_nonzero(a[:at.rows])


class Recorder:
    """What a stage computed at each counted step of the real samples, (N, T, n), written to
    `path` (.npy) once the run's last step is done (never raising: a write that fails leaves no
    file, which the host reports)."""

    def __init__(self, path: str, num_samples: int, timesteps: int, batch: int, size: int, dtype):
        self.path, self.batch = path, batch
        self.values = np.zeros((num_samples, timesteps, size), dtype=dtype)

    def store(self, at: Step, x: np.ndarray) -> None:
        if not at.counted:
            return
        lo = at.round * self.batch
        self.values[lo: lo + at.rows, at.t] = x[:at.rows]
        if lo + at.rows == len(self.values) and at.t == self.values.shape[1] - 1:
            try:
                np.save(self.path, self.values)
            except OSError:
                pass
