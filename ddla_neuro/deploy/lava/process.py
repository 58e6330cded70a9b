"""Processes of a delta-spike network. Ports carry (batch, n) arrays: `batch` samples in
lockstep, each row a population's values in torch's C-order ((C, H, W) flattened), so no
layout conversion is needed anywhere; we do not use Lava's `Conv` process, whose (W, H, C)
layout and flipped kernel therefore never come in.

Every process knows its `depth` (the steps from the input frame to it), T, the number of
samples N of the run and the batch B: each round of B samples lasts `pad` + T steps (`pad`, the
network's longest pipeline fill: zero frames before the round's, so that a population starts
`fill` steps before its first input, as a fresh Lava run does), and a process resets its
per-sample state when its part of a round starts (time-based, as Lava's `LIFReset` does). Outside
its part it sends zeros; it counts the T steps of the samples only; the rows of the last round
beyond sample N run on zero frames and are not counted. A process given `record` (a path)
writes what it computed at each counted step there, (N, T, n), once its last round is done.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from ddla_neuro.deploy.run import MODES


class _WindowedProcess(AbstractProcess):
    def __init__(self, *, depth: int, timesteps: int, num_samples: int, batch: int = 1, fill: int = 0, pad: int = 0,
                 **kwargs):
        super().__init__(depth=depth, timesteps=timesteps, num_samples=num_samples, batch=batch, fill=fill, pad=pad,
                         **kwargs)


class DeltaEncoder(_WindowedProcess):
    """Input frames in, sent on as the frame (dense) or its change since the last step (delta;
    the whole frame at t = 1). Counts the non-zero values it sends per timestep.

    Parameters
    ----------
    size : int
        Input values per frame.
    mode : str
        "dense" (the frame) or "delta" (its change).
    timesteps, num_samples, batch, pad
        As every process (`DeltaSynapse`); its depth is 0.
    """

    def __init__(self, *, size: int, mode: str, timesteps: int, num_samples: int, batch: int = 1, pad: int = 0):
        super().__init__(depth=0, timesteps=timesteps, num_samples=num_samples, batch=batch, pad=pad, mode=mode)
        self.a_in = InPort(shape=(batch, size))
        self.s_out = OutPort(shape=(batch, size))
        self.events = Var(shape=(timesteps,), init=0)


class DeltaSynapse(_WindowedProcess):
    """A projection: a chain of linear ops (conv2d, linear, sum pool, flatten, scale) applied
    to what its source sends. With a delta-coded source (`accumulate`) it adds the result to the
    current it holds and sends that, so the target sees the same current as in dense mode.
    `delay` steps of synaptic delay (1 as in Lava's Dense; more aligns residual paths).
    `ops` are the projection's `ddla_neuro.deploy.spec.Op`s, `fanout` its `Projection.fanout`;
    `shift` scales the fixed-point result by 2**shift. Counts synaptic ops (each non-zero input
    times its fan-out) per timestep. Its `depth` and `fill` are its source's.

    Parameters
    ----------
    ops : list of Op
        The projection's chain of linear ops.
    fanout : np.ndarray
        Synapses out of each input unit (`Projection.fanout`).
    in_size, out_size : int
        Units of the source and of the target.
    shift : int
        Fixed point: the result scaled by 2**shift.
    delay : int
        Steps of synaptic delay (>= 1).
    accumulate : bool
        The source is delta-coded: send the running sum of what arrived.
    depth : int
        Steps from the input frame to this process (its source's for a synapse).
    timesteps, num_samples : int
        T, and the samples N of the run.
    batch : int
        Samples in lockstep (the ports' first axis).
    fill : int
        Steps it starts before its first input (lava-dl's pipeline fill).
    pad : int
        Zero frames before each round's (the network's longest fill).
    """

    def __init__(self, *, ops: list, fanout: np.ndarray, in_size: int, out_size: int, shift: int, delay: int,
                 accumulate: bool, depth: int, timesteps: int, num_samples: int, batch: int = 1, fill: int = 0,
                 pad: int = 0):
        super().__init__(depth=depth, timesteps=timesteps, num_samples=num_samples, batch=batch, fill=fill, pad=pad,
                         ops=ops, fanout=fanout, shift=shift, delay=delay, accumulate=accumulate)
        self.s_in = InPort(shape=(batch, in_size))
        self.a_out = OutPort(shape=(batch, out_size))
        self.sops = Var(shape=(timesteps,), init=0)


class DeltaNeuron(_WindowedProcess):
    """IF/LIF neurons: sum the synaptic currents, add the bias, integrate (with leak), fire on
    v > v_th, reset to zero or by subtraction; send s (dense), s - held (delta), or in `ddla`
    mode from t = 2 only the pending changes its `select` rule chooses (`ddla.selection`), the
    receivers holding the rest. Counts spikes, sent events, active neurons (non-zero synaptic
    current) and DDLA's pending changes per timestep. `kind` cuba: Loihi's current-based LIF (spec.py), the current
    a state with its decay `u_decay` (float) or `du` (fixed point), each unit's current arriving
    `input_delay` steps late; with `bias_input` what arrives is written into the bias register.
    `kind` sdnn: sigma-delta neurons (`activation`, `message_shift`; spec.py), sending the sum of
    their messages (dense) or the messages. With `reset_interval` > 0 the state returns to zero
    before each step t with t % reset_interval == reset_offset.

    Parameters
    ----------
    size : int
        Neurons.
    bias : np.ndarray
        Per neuron, in membrane units.
    v_th : float
        Threshold: a spike where v > v_th.
    decay, dv : float, int
        The membrane's decay: a factor (float) or Loihi's 12-bit `dv` (fixed point).
    reset : str
        "zero", "subtract", "delayed-zero" or "delayed-subtract" (spec.py).
    mode : str
        "dense", "delta" or "ddla" (`run.MODES`).
    select : dict or None
        DDLA's selection in `ddla` mode (`ddla.selection.LayerSelection`'s arguments: rule, keep,
        threshold, scores); None: every change is sent.
    kind : str
        "if", "lif", "cuba" or "sdnn".
    u_decay, du : float, int
        CUBA: the current's decay, as `decay` and `dv`.
    input_delay : np.ndarray or None
        CUBA: per neuron, the steps its synaptic current arrives late.
    bias_input : bool
        What arrives is written into the bias register (lava-dl's PilotNet input).
    activation, message_shift : str, int
        Sigma-delta neurons: "relu" or "identity", and the message's shift.
    reset_interval, reset_offset : int
        A stream of inferences: the state returns to zero every `reset_interval` steps.
    record : str or None
        A path: what it computed at each counted step is saved there, (N, T, n).
    depth, timesteps, num_samples, batch, fill, pad
        Its window, as every process's (`DeltaSynapse`).
    """

    def __init__(self, *, size: int, bias: np.ndarray, v_th: float, decay: float, dv: int, reset: str, mode: str,
                 select: dict | None, depth: int, timesteps: int, num_samples: int,
                 batch: int = 1, fill: int = 0, pad: int = 0, kind: str = "if", u_decay: float = 1.0, du: int = 0,
                 input_delay: np.ndarray | None = None, bias_input: bool = False, activation: str = "relu",
                 message_shift: int = 0, reset_interval: int = 0, reset_offset: int = 0, record: str | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        super().__init__(depth=depth, timesteps=timesteps, num_samples=num_samples, batch=batch, fill=fill, pad=pad,
                         bias=bias, v_th=v_th, decay=decay, dv=dv, reset=reset, mode=mode, select=select,
                         kind=kind, u_decay=u_decay, du=du, input_delay=input_delay, bias_input=bias_input,
                         activation=activation, message_shift=message_shift, reset_interval=reset_interval,
                         reset_offset=reset_offset, record=record)
        self.a_in = InPort(shape=(batch, size))
        self.s_out = OutPort(shape=(batch, size))
        self.v = Var(shape=(batch, size), init=0)
        self.spikes = Var(shape=(timesteps,), init=0)
        self.events = Var(shape=(timesteps,), init=0)
        self.active = Var(shape=(timesteps,), init=0)
        self.pending = Var(shape=(timesteps,), init=0)


class DeltaPopulation(_WindowedProcess):
    """A `DeltaSynapse` and its `DeltaNeuron` in one process, as a Loihi core holds a layer's
    synapses and its neurons: one process instead of two to synchronise every step. Each step
    it integrates the current that arrives now (computed `delay` steps ago), sends what its
    neurons send, then takes what its source sent (`synapse_depth`: the source's depth) into
    the current of a later step. The same numbers as the two processes, counters included.

    Folded in where the graph allows (`lava_run.folds`): `encode` (dense or delta), the
    `DeltaEncoder` of the network's input when this population is its only reader (s_in then
    takes the raw frames, `input_events` counts what the encoder would send); `readout`, the
    network's `Readout` and its one projection when it reads only this population (a dict:
    ops, fanout, shift, delay, bias, depth, fill, size, record; s_out then sends the logits,
    `readout_sops` and `readout_active` count them).

    Parameters
    ----------
    size : int
        Neurons.
    ops, fanout, in_size, shift, delay
        Its synapse's, as `DeltaSynapse`'s.
    synapse_depth, synapse_fill : int
        The source's depth and fill (the window of what arrives).
    bias, v_th, decay, dv, reset, mode, select, kind, u_decay, du, input_delay, bias_input,
    activation, message_shift, reset_interval, reset_offset, record
        Its neurons', as `DeltaNeuron`'s.
    encode : str or None
        "dense" or "delta": the network's input encoder folded in.
    readout : dict or None
        The network's readout folded in (ops, fanout, shift, delay, bias, depth, fill, size, record).
    depth, timesteps, num_samples, batch, fill, pad
        Its neurons' window, as every process's (`DeltaSynapse`).
    """

    def __init__(self, *, size: int, ops: list, fanout: np.ndarray, in_size: int, shift: int, delay: int,
                 synapse_depth: int, bias: np.ndarray, v_th: float, decay: float, dv: int, reset: str, mode: str,
                 select: dict | None, depth: int, timesteps: int, num_samples: int,
                 batch: int = 1, fill: int = 0, pad: int = 0, synapse_fill: int = 0, kind: str = "if",
                 u_decay: float = 1.0, du: int = 0, input_delay: np.ndarray | None = None, bias_input: bool = False,
                 activation: str = "relu", message_shift: int = 0, reset_interval: int = 0, reset_offset: int = 0,
                 record: str | None = None, encode: str | None = None, readout: dict | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        super().__init__(depth=depth, timesteps=timesteps, num_samples=num_samples, batch=batch, fill=fill, pad=pad,
                         ops=ops, fanout=fanout, shift=shift, delay=delay, accumulate=mode != "dense",
                         synapse_depth=synapse_depth, synapse_fill=synapse_fill, bias=bias, v_th=v_th, decay=decay,
                         dv=dv, reset=reset, mode=mode, select=select, kind=kind, u_decay=u_decay, du=du,
                         input_delay=input_delay, bias_input=bias_input, activation=activation,
                         message_shift=message_shift, reset_interval=reset_interval, reset_offset=reset_offset,
                         record=record, encode=encode, readout=readout)
        self.s_in = InPort(shape=(batch, in_size))
        self.s_out = OutPort(shape=(batch, size if readout is None else readout["size"]))
        self.v = Var(shape=(batch, size), init=0)
        self.sops = Var(shape=(timesteps,), init=0)
        self.spikes = Var(shape=(timesteps,), init=0)
        self.events = Var(shape=(timesteps,), init=0)
        self.active = Var(shape=(timesteps,), init=0)
        self.pending = Var(shape=(timesteps,), init=0)
        self.input_events = Var(shape=(timesteps,), init=0)
        self.readout_sops = Var(shape=(timesteps,), init=0)
        self.readout_active = Var(shape=(timesteps,), init=0)


class Readout(_WindowedProcess):
    """Non-spiking output: sends its input current plus bias (the logits of the step). Counts
    active neurons (non-zero synaptic current) per timestep.

    Parameters
    ----------
    size : int
        Classes.
    bias : np.ndarray
        Per class, in the readout's units.
    record : str or None
        As `DeltaNeuron`'s.
    depth, timesteps, num_samples, batch, fill, pad
        Its window, as every process's (`DeltaSynapse`).
    """

    def __init__(self, *, size: int, bias: np.ndarray, depth: int, timesteps: int, num_samples: int,
                 batch: int = 1, fill: int = 0, pad: int = 0, record: str | None = None):
        super().__init__(depth=depth, timesteps=timesteps, num_samples=num_samples, batch=batch, fill=fill, pad=pad,
                         bias=bias, record=record)
        self.a_in = InPort(shape=(batch, size))
        self.out = OutPort(shape=(batch, size))
        self.active = Var(shape=(timesteps,), init=0)
