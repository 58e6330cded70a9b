"""lava-dl netx files (`.net`, HDF5) -> NetSpec, as lava-dl's `netx.hdf5.Network` builds them,
read from the file (the frames each kind of input layer takes: `netx_input.py`).

A file holds group `layer/` with layers "0".."n-1", applied in order; each has a `type`
(`input`, `conv`, `pool`, `flatten`, `dense`, ...), its `shape` (C, H, W), its weights (stored
x64: a weight of 64 is 1.0), an optional `bias` and its `neuron/` fields. Read here:

* `CUBA` neurons and `LOIHI` ones (CUBA plus slayer's training fields): cuba populations with
  the file's integers as Lava runs them: the synaptic input and the bias shifted left by 6,
  threshold `vThMant << 6`, decays `iDecay` and `vDecay` of 4096. LOIHI's extra fields come
  from slayer's training: `theta` (the threshold the surrogate gradient is centred on; PilotNet's
  readout layer keeps 1,600 beside a vThMant raised so that it never fires), `scaleRho` and
  `tauRho` (the gradient's height and width) shape the backward pass only and are accepted;
  `wgtExp` must be 0 (the chip would scale the weights by 2**wgtExp, lava-dl's runner ignores it).
* `SDNN` neurons (sigma-delta, graded spikes): sdnn populations as Lava's `SigmaDelta` runs them
  under netx (spike_exp 6, state_exp 6): sigma of W x (weights as stored), bias `<< 12`,
  threshold `vThMant << 12`, ReLU, each message the change `>> 6`; a last layer with
  `sigma_output` is Lava's `Sigma`, the readout. Fixed point only: a float model of the
  dropped message bits would be another network.
* The input layer, by the input encoding (`NETX_ENCODINGS`, `--netx-encoding`):
  - `events`, `if-rate`: spikes into the input layer's neurons as slayer's `Input` block
    computes them (current = weight * x); lava-dl's own runner cannot feed that block.
  - `bias`: the frame is the input neurons' bias mantissa, held every step, as lava-dl's
    PilotNet benchmark runs it (`net.in_layer.neuron.bias_mant = frame`): no input spikes. The
    layer's `weight` and `bias` are then lava-dl's input transform of raw images
    (`input_transform`, `transform_images`), not part of the network.
  - `graded`: integer frames into the input layer's sigma-delta neurons each step (Lava's
    `Delta`: no activation, no bias), as lava-dl's tests feed `in_layer.neuron.a_in`.
  - `graded-host`: the same delta encoding done on the host (lava-dl's `skip_layers=1` with
    its PilotNet encoder), so the first layer receives the encoder's graded messages
    (`host_delta_frames`) and the input layer takes no place on the chip.
* Streams of inferences: lava-dl's `reset_interval` and `reset_offset` (layer k resets when
  `time_step % interval == offset + 1 + k`, one step later per synapse, which is one step of
  the NetSpec's aligned time; see spec.py).

A dense layer's `delay` (one per neuron, or one for all) delays each neuron's synaptic input by
its steps, as lava-dl's runner does (`DelayDense`), CUBA and sigma-delta alike; a dense layer
without neurons gets lava-dl's output integrator (`OUTPUT_INTEGRATOR`). Anything else
(recurrent or complex layers, per-synapse or per-input delays, delays on conv layers, other
neuron types, resets of sigma-delta neurons) gets one line naming the layer and the feature.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from ..ops import DECAY_BITS, MEMBRANE_BITS
from ..spec import SPIKES, WEIGHTED, NetSpec, Op, Population, Projection, Sends, assign_depths, window_op
from .checks import whole
from .netx_fields import (OUTPUT_INTEGRATOR, check_fields, cuba_neuron, dense_weight, netx_bias, netx_delay,
                          netx_weight, sdnn_neuron)
from .nodes import IRError

NETX_ENCODINGS = ("events", "if-rate", "bias", "graded", "graded-host")
FRAME_ENCODINGS = ("bias", "graded", "graded-host")  # integer frames written into the input layer's neurons
ACT_SHIFT = 6        # Loihi: a synaptic input, a bias mantissa and a threshold mantissa are shifted left by 6
FRAC_BITS = 12       # membrane units of a netx network: a threshold mantissa of 64 is 1.0
SPIKE_EXP = 6        # netx's graded spikes: a message is in units of 2**-6 (Network(spike_exp=6))
STATE_EXP = 6        # netx's sigma-delta state: 6 more bits below the message's
BIAS_BITS = 13       # Lava's LIF bias mantissa: signed 13 bits
LAYERS = ("input", "conv", "pool", "flatten", "dense")


def read_netx(path: str | Path, timesteps: int, fixed: bool = True, input_shape: tuple[int, ...] | None = None,
              encoding: str = "events", reset_interval: int = 0, reset_offset: int = 0) -> NetSpec:
    """The NetSpec of a netx file (`netx_to_spec`). `input_shape` (C, H, W) is needed when the
    first layer is a conv or pool without an `input` layer before it (the file does not store it)."""
    return netx_to_spec(load_netx_layers(path), timesteps, fixed, input_shape, str(path), encoding, reset_interval,
                        reset_offset)


def load_netx_layers(path: str | Path) -> list[tuple[str, dict]]:
    """The layers of a netx file in order, as (index, nested dict of its datasets)."""
    path = Path(path)
    if not path.is_file():
        raise IRError(f"netx file {path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            if "layer" not in f:
                raise KeyError("no 'layer' group")
            layers = [(k, _h5_dict(f["layer"][k])) for k in sorted(f["layer"], key=int)]
    except (OSError, KeyError, ValueError, TypeError, IndexError) as e:
        raise IRError(f"{path} is not a readable lava-dl netx file ({type(e).__name__}: {str(e)[:100]}); "
                      f"export it again with slayer's export_hdf5") from None
    if not layers:
        raise IRError(f"{path} holds no layers")
    return layers


def netx_to_spec(layers: list[tuple[str, dict]], timesteps: int, fixed: bool = True,
                 input_shape: tuple[int, ...] | None = None, source: str = "netx", encoding: str = "events",
                 reset_interval: int = 0, reset_offset: int = 0) -> NetSpec:
    """The NetSpec of a netx file's layers (`load_netx_layers`) for an input `encoding`, with
    lava-dl's resets (`reset_interval` 0: none)."""
    if encoding not in NETX_ENCODINGS:
        raise IRError(f"netx input encoding must be one of {', '.join(NETX_ENCODINGS)}, got {encoding!r}")
    if reset_interval < 0 or reset_offset < 0:
        raise IRError(f"a reset interval must be at least 1 and an offset at least 0, got {reset_interval} and "
                      f"{reset_offset}")
    reader = _NetxReader(tuple(int(v) for v in input_shape) if input_shape else None, fixed, encoding)
    for index, layer in layers:
        kind = layer.get("type")
        where = f"netx layer {index} ({kind if isinstance(kind, str) and kind else '?'})"
        check_fields(layer, where)
        try:
            reader.add(index, layer, where)
        except KeyError as e:
            raise IRError(f"{where}: lacks the field {e}; export the file again with slayer") from None
        except (ValueError, TypeError, IndexError, ArithmeticError) as e:  # fields that fit no layer lava-dl reads
            reason = (str(e).strip().splitlines() or [""])[0][:100]
            raise IRError(f"{where}: its fields do not make a layer ({type(e).__name__}: {reason}); export the "
                          f"file again with slayer") from None
    return reader.spec(timesteps, source, reset_interval, reset_offset)


def _h5_dict(group) -> dict:
    """An HDF5 group as nested dicts of numpy values (strings decoded)."""
    out = {}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            out[key] = _h5_dict(item)
            continue
        value = item[()]
        if isinstance(value, np.ndarray) and value.dtype.kind == "S":
            value = value.ravel()[0] if value.size else b""
        out[key] = value.decode() if isinstance(value, bytes) else value
    return out


class _NetxReader:
    """Walks the layers in order, keeping the shape of what the last layer sends (C, H, W or
    (n,)) and the stateless ops (flatten) waiting for the next synapse."""

    def __init__(self, input_shape: tuple[int, ...] | None, fixed: bool, encoding: str):
        self.input_shape, self.shape, self.fixed, self.encoding = input_shape, input_shape, fixed, encoding
        self.pops: list[Population] = []
        self.pending: list[Op] = []
        self.input_sends = SPIKES
        self.input_meta: dict = {"encoding": encoding}
        self.input_neurons = False  # whether the input layer is a population (lava-dl: no synapse before it)

    @property
    def source(self) -> str:
        return self.pops[-1].name if self.pops else "input"

    def add(self, index: str, layer: dict, where: str) -> None:
        kind = layer.get("type", "?")
        if kind not in LAYERS:
            raise IRError(f"{where}: not supported; supported: {', '.join(LAYERS)} (lava-dl's own netx "
                          f"runner also lacks pool, average, concat, convT and unpool)")
        if "weight_rec" in layer:
            raise IRError(f"{where}: recurrent weights ('weight_rec') are not supported")
        if "delay" in layer and kind != "dense":  # lava-dl's runner reads delays of dense layers only
            raise IRError(f"{where}: its 'delay' is ignored by lava-dl's netx runner; remove it")
        if kind == "dense" and "neuron" not in layer:
            layer = {**layer, "neuron": OUTPUT_INTEGRATOR}
        if self.pops and self.pops[-1].kind == "readout":
            raise IRError(f"{where}: follows a sigma_output layer, which lava-dl reads out; it must be the last")
        if kind == "input":
            return self._input(index, layer, where)
        if self.shape is None and kind == "dense":  # a flat network: the input is its first layer's fan-in
            self.shape = self.input_shape = (dense_weight(layer, where).shape[1],)
        if self.shape is None:
            raise IRError(f"{where}: the input shape is unknown (no input layer before it); give it (C, H, W)")
        if kind == "flatten":
            self._flatten()
            return
        op = getattr(self, f"_{kind}")(layer, where)
        self._population(f"layer{index}", self.pending + [op], layer, where)

    # --- the input layer -------------------------------------------------------------------------

    def _input(self, index: str, layer: dict, where: str) -> None:
        if self.pops:
            raise IRError(f"{where}: an input layer after other layers")
        if "shape" in layer:
            self.shape = self.input_shape = tuple(int(v) for v in np.atleast_1d(layer["shape"]))
        if "neuron" not in layer:
            if self.encoding in FRAME_ENCODINGS:
                raise IRError(f"{where}: --netx-encoding {self.encoding} feeds the input layer's neurons, and this "
                              f"input layer has none; use events")
            return
        if self.shape is None:
            raise IRError(f"{where}: has no shape")
        neuron_type = layer["neuron"].get("type")
        wanted = {"SDNN": ("graded", "graded-host")}.get(neuron_type, ("events", "if-rate", "bias"))
        # lava-dl reads the layer's weight and bias as ints: the host's transform of raw images
        self.input_meta["transform"] = {key: int(np.asarray(layer.get(key, default)).ravel()[0])
                                        for key, default in (("weight", 2 ** ACT_SHIFT), ("bias", 0))}
        if self.encoding not in wanted:
            raise IRError(f"{where}: {neuron_type} input neurons take --netx-encoding {' or '.join(wanted)}, "
                          f"not {self.encoding}")
        if self.encoding == "bias":
            self._bias_input(index, layer, where)
        elif self.encoding == "graded":
            self._graded_input(index, layer, where)
        elif self.encoding == "graded-host":
            sdnn = sdnn_neuron(layer, where)
            self.input_sends = Sends(graded=True, bits=sdnn["bits"])  # the host's messages, as the chip receives them
            self.input_meta.update(v_th=sdnn["v_th_mant"], bits=sdnn["bits"])
        else:
            self._spike_input(index, layer, where)

    def _spike_input(self, index: str, layer: dict, where: str) -> None:
        """Input neurons on spikes, as slayer's `Input` block computes them (lava-nc 0.10 cannot
        feed netx's `Input` block, and netx keeps its weight for the dataset): current = weight * x,
        in the stored units (a weight of 64, the default, is 1.0)."""
        if "bias" in layer:  # slayer adds it to the current, not to the voltage as a CUBA neuron's bias
            raise IRError(f"{where}: an input layer's bias (added to the current by slayer) is not supported on "
                          f"spike input; a frame-driven network takes --netx-encoding bias")
        weight = np.asarray(layer.get("weight", 2 ** ACT_SHIFT), dtype=np.float64)
        if weight.size != 1:
            raise IRError(f"{where}: one scalar weight expected, got {weight.size}")
        scale = Op("scale", self.shape, self.shape, weight.reshape(()))
        self._population(f"layer{index}", [scale], layer, where)
        self.input_neurons = True

    def _bias_input(self, index: str, layer: dict, where: str) -> None:
        """The frame as the input neurons' bias mantissa."""
        write = Op("scale", self.shape, self.shape, np.array(1.0))
        self._population(f"layer{index}", [write], {**layer, "bias": 0.0}, where, to_bias=True)
        self.input_sends = Sends(graded=True, bits=BIAS_BITS)
        self.input_neurons = True

    def _graded_input(self, index: str, layer: dict, where: str) -> None:
        """Integer frames into the input layer's sigma-delta neurons (Lava's `Delta`: the frame
        shifted by spike_exp + state_exp, no activation, no bias)."""
        if not self.fixed:
            raise IRError(f"{where}: sigma-delta networks run in Loihi's fixed point only; drop --float")
        sdnn = sdnn_neuron(layer, where)
        ops = [Op("scale", self.shape, self.shape, np.array(1.0))]
        self.pops.append(self._sdnn(f"layer{index}", ops, np.zeros(self.shape), sdnn, "identity",
                                    SPIKE_EXP + STATE_EXP))
        self.input_sends = Sends(graded=True, bits=sdnn["bits"])
        self.input_neurons = True

    # --- synapses ---------------------------------------------------------------------------------

    def _flatten(self) -> None:
        n = int(np.prod(self.shape))
        if len(self.shape) > 1:
            self.pending.append(Op("flatten", self.shape, (n,)))
        self.shape = (n,)

    def _dense(self, layer: dict, where: str) -> Op:
        w = dense_weight(layer, where)
        shape = w.shape
        if int(np.prod(self.shape)) != shape[1]:
            raise IRError(f"{where}: takes {shape[1]} inputs, the layer before sends {int(np.prod(self.shape))}")
        if len(self.shape) > 1:  # a flat layer on a map reads it flattened (C, H, W order, as netx's flatten)
            self._flatten()
        return Op("linear", (shape[1],), (shape[0],), w)

    def _conv(self, layer: dict, where: str) -> Op:
        w = netx_weight(layer, where)
        if w.ndim > 4 and int(np.prod(w.shape[4:])) == 1:  # slayer's trailing time axis, (out, in, kH, kW, 1)
            w = w.reshape(w.shape[:4])
        if w.ndim != 4 or len(self.shape) != 3 or w.shape[1] != self.shape[0]:
            raise IRError(f"{where}: weights of shape {w.shape} do not take input of shape {self.shape}")
        self._plain_window(layer, where)
        if int(np.asarray(layer.get("groups", 1))) != 1:
            raise IRError(f"{where}: grouped convolution is not supported")
        return self._checked(window_op("conv2d", self.shape, w.shape[0], w.shape[2:], layer["stride"],
                                       layer["padding"], w), layer, where)

    def _pool(self, layer: dict, where: str) -> Op:
        w = netx_weight(layer, where)
        if len(self.shape) != 3 or np.unique(w).size != 1:
            raise IRError(f"{where}: a pool needs a (C, H, W) input and one weight for its whole window")
        self._plain_window(layer, where)
        op = window_op("sumpool2d", self.shape, self.shape[0], layer["kernelSize"], layer["stride"], layer["padding"])
        self._checked(op, layer, where)  # slayer pads an odd size at the end: such a file is refused here
        self.pending.append(op)
        return Op("scale", op.out_shape, op.out_shape, np.array(float(w.ravel()[0])))

    @staticmethod
    def _plain_window(layer: dict, where: str) -> None:
        if np.any(np.asarray(layer.get("dilation", 1)) != 1):
            raise IRError(f"{where}: dilation is not supported")

    @staticmethod
    def _checked(op: Op, layer: dict, where: str) -> Op:
        stored = tuple(int(v) for v in np.atleast_1d(layer["shape"]))
        if stored != tuple(op.out_shape):
            raise IRError(f"{where}: stores output shape {stored}, its window gives {op.out_shape}")
        return op

    # --- neurons ----------------------------------------------------------------------------------

    def _population(self, name: str, ops: list[Op], layer: dict, where: str, to_bias: bool = False) -> None:
        if "neuron" not in layer:
            raise IRError(f"{where}: has no neurons (lava-dl's runner gives a default neuron to a dense layer only)")
        out_shape = tuple(ops[-1].out_shape)
        bias = netx_bias(layer, out_shape, where)
        delay = netx_delay(layer, out_shape, int(np.prod(self.shape)), where)
        if layer["neuron"].get("type") == "SDNN":
            sdnn = sdnn_neuron(layer, where)
            if not self.fixed:
                raise IRError(f"{where}: sigma-delta networks run in Loihi's fixed point only; drop --float")
            if sdnn["readout"]:
                if delay is not None:
                    raise IRError(f"{where}: delays into a sigma_output layer (the readout) are not supported")
                self.pops.append(self._sigma(name, ops, bias, where))
            else:
                self.pops.append(self._sdnn(name, ops, bias * 2 ** (SPIKE_EXP + STATE_EXP), sdnn, "relu", 0, delay))
            return
        cuba = cuba_neuron(layer, where)
        scale = 1.0 if self.fixed else 2.0 ** -FRAC_BITS
        weighted = next(op for op in ops if op.kind in WEIGHTED)
        if not self.fixed:
            ops = [replace(op, weight=op.weight * 2.0 ** (ACT_SHIFT - FRAC_BITS)) if op is weighted else op
                   for op in ops]
        du, dv = cuba["iDecay"], cuba["vDecay"]
        projection = Projection(self.source, ops, shift=ACT_SHIFT if self.fixed else 0, to_bias=to_bias)
        self.pops.append(Population(
            name, out_shape, "cuba", bias * (2 ** ACT_SHIFT * scale), [projection],
            v_th=float(cuba["vThMant"] << ACT_SHIFT) * scale, decay=1 - dv / 2 ** DECAY_BITS, dv=dv,
            u_decay=1 - du / 2 ** DECAY_BITS, du=du, input_delay=delay,
            frac_bits=FRAC_BITS if self.fixed else 0, sends=SPIKES))
        self._advance(out_shape)

    def _sdnn(self, name: str, ops: list[Op], bias: np.ndarray, sdnn: dict, activation: str, shift: int,
              delay: np.ndarray | None = None) -> Population:
        """A sigma-delta population in Lava's fixed point (state 2**-12, messages 2**-6)."""
        out_shape = tuple(ops[-1].out_shape)
        self._advance(out_shape)
        return Population(name, out_shape, "sdnn", bias, [Projection(self.source, ops, shift=shift)], input_delay=delay,
                          v_th=float(sdnn["v_th_mant"] << (SPIKE_EXP + STATE_EXP)), activation=activation,
                          message_shift=STATE_EXP, frac_bits=SPIKE_EXP + STATE_EXP,
                          sends=Sends(graded=True, bits=sdnn["bits"], frac_bits=SPIKE_EXP))

    def _sigma(self, name: str, ops: list[Op], bias: np.ndarray, where: str) -> Population:
        """A `sigma_output` layer: Lava's `Sigma`, the sum of what it received, read out."""
        if np.any(bias):
            raise IRError(f"{where}: a sigma_output layer has no bias in lava-dl's runner (Lava's Sigma); remove it")
        out_shape = tuple(ops[-1].out_shape)
        self._advance(out_shape)
        return Population(name, out_shape, "readout", np.zeros(out_shape), [Projection(self.source, ops)],
                          frac_bits=SPIKE_EXP + STATE_EXP, sends=Sends(graded=True, bits=MEMBRANE_BITS))

    def _advance(self, out_shape: tuple[int, ...]) -> None:
        self.pending, self.shape = [], out_shape

    def spec(self, timesteps: int, source: str, reset_interval: int, reset_offset: int) -> NetSpec:
        if not self.pops:
            raise IRError(f"{source} holds no layer of neurons")
        if reset_interval and any(p.kind == "sdnn" for p in self.pops):
            raise IRError(f"{source}: lava-dl's runner ignores resets on sigma-delta (SDNN) neurons; drop "
                          f"--reset-interval")
        pops = list(self.pops)
        if pops[-1].kind != "readout":  # a readout of the last layer's output (identity: counts what it sends)
            shape = pops[-1].shape
            n = int(np.prod(shape))
            identity = [Op("flatten", shape, (n,)), Op("scale", (n,), (n,), np.array(1.0))]
            pops.append(Population("output", (n,), "readout", np.zeros(n), [Projection(self.source, identity)],
                                   frac_bits=pops[-1].sends.frac_bits, host=True,
                                   sends=Sends(graded=True, bits=MEMBRANE_BITS)))
        assign_depths(pops)
        # lava-dl's run: the frame's step s reaches a population of depth d at time step s + d + lead
        # (an input layer of neurons has no synapse before it; the host's encoder sends a step
        # late), so it runs d + lead steps before step 0; and layer k = d - 1 resets at
        # time_step % interval == offset + 1 + k: before the spec's step offset - 1 - lead
        lead = -1 if self.input_neurons else 1 if self.encoding == "graded-host" else 0
        for pop in pops:
            pop.fill = pop.depth + lead
        phase = (reset_offset - 1 - lead) % reset_interval if reset_interval else 0
        encoding = "events" if self.encoding in ("events", "if-rate") else self.encoding
        return NetSpec(self.input_shape, timesteps, encoding, pops, fixed=self.fixed, input_sends=self.input_sends,
                       meta={"netx": source, "netx_input": self.input_meta}, reset_interval=int(reset_interval),
                       reset_offset=int(phase))


def stored_timesteps(path: str | Path) -> int | None:
    """The steps per sample a netx file stores (`simulation/tSample`, lava-dl's export), if any."""
    try:
        with h5py.File(path, "r") as f:
            if "simulation/tSample" not in f:
                return None
            stored = f["simulation/tSample"][()]
    except (OSError, KeyError, ValueError, TypeError):
        return None
    whole(stored, f"{path}: its 'simulation/tSample'", 1, (1,))
    return int(np.asarray(stored).ravel()[0])
