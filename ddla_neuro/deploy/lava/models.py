"""Lava process models of `process.py`: per process a `floating_pt` model (float64 ports and
state) and a `fixed_pt` one (int64: integer arithmetic with a 24-bit saturating membrane and
Loihi's 12-bit leak); the counters are int64 in both. The behaviour per step is that of
`ddla_neuro/deploy/spec.py`, computed by the stage classes of `ddla_neuro/deploy/lava_stages.py`
(no Lava: `Encoding`, `Synapse`, `Neurons`, `Logits`), which a behaviour class here composes
(a `DeltaPopulation` a synapse and neurons, with the encoder or the readout folded in),
adding their counts to its counter Vars for the rows that hold real samples. A behaviour
declares its counters (int64 in both models, as Lava's abstract LIF models declare what their
float and bit-accurate models share); the models at the end declare each behaviour's two Lava
models with their ports and state, as Lava's own `PyLifModelFloat` and `PyLifModelBitAcc` are.

Imports are absolute: Lava's compiler executes this file as a top-level module named
`models` when it looks for process models, and relative imports fail there.

Models never raise while running (a raising model hangs Lava): everything is validated on the
host before the network is built.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from ddla_neuro.deploy.lava.process import DeltaEncoder, DeltaNeuron, DeltaPopulation, DeltaSynapse, Readout
from ddla_neuro.deploy.lava_stages import Encoding, Logits, Neurons, Recorder, Step, Synapse, Window, _dtype, values


# --- behaviours ------------------------------------------------------------------------------

class _WindowedModel:
    """What every model shares: its batch and the sample windows of its stages."""

    fixed = False

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.batch = proc_params["batch"]
        self.windows: dict[tuple[int, int], Window] = {}

    def at(self, depth: int | None = None, fill: int | None = None) -> Step | None:
        """Where the sample window of a stage of `depth` and `fill` (default: this process's) is at this step."""
        p = self.proc_params
        key = (p["depth"] if depth is None else depth, p["fill"] if fill is None else fill)
        if key not in self.windows:
            self.windows[key] = Window(*key, p["timesteps"], p["num_samples"], self.batch, p["pad"])
        return self.windows[key].at(self.time_step)

    def recorder(self, path: str | None, size: int, spikes: bool) -> Recorder | None:
        p = self.proc_params
        if path is None:
            return None
        dtype = np.int8 if spikes else _dtype(self.fixed)
        return Recorder(path, p["num_samples"], p["timesteps"], self.batch, size, dtype)

    def encode(self, x: np.ndarray, counter: np.ndarray) -> np.ndarray:
        """The encoder stage on a raw frame (the input's window: depth 0); its events into `counter`."""
        at = self.at(0, 0)
        if at is None:
            return np.zeros_like(x)
        out = self.encoding.step(at, x)
        counter[at.t] += np.count_nonzero(out[:at.rows])
        return out

    def feed(self, synapse: Synapse, depth: int | None, fill: int | None, x: np.ndarray, counter: np.ndarray) -> None:
        """What a source of `depth` and `fill` sent this step into `synapse`; its synaptic ops into `counter`."""
        at = self.at(depth, fill)
        sops = synapse.push(at, x)
        if at is not None and at.counted:
            counter[at.t] += sops

    def read(self, a: np.ndarray, depth: int, fill: int, counter: np.ndarray, recorder: Recorder | None
             ) -> np.ndarray:
        """The readout stage (of `depth` and `fill`) on current `a`: the logits; its active units into `counter`."""
        at = self.at(depth, fill)
        if at is None:
            return np.zeros_like(a)
        logits, active = self.logits.step(at, a)
        if at.counted:
            counter[at.t] += active
            if recorder is not None:
                recorder.store(at, logits)
        return logits


# --- encoder -----------------------------------------------------------------------------------

class _EncoderModel(_WindowedModel):
    events: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.encoding = Encoding(proc_params["mode"])

    def run_spk(self) -> None:
        self.s_out.send(self.encode(values(self.a_in.recv(), self.fixed), self.events))


# --- synapse -----------------------------------------------------------------------------------

class _SynapseModel(_WindowedModel):
    """A DeltaSynapse's depth and fill are its source's: the window of what arrives."""

    sops: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.synapse = Synapse(proc_params, self.fixed, self.batch)

    def run_spk(self) -> None:
        self.a_out.send(self.synapse.pop())
        self.feed(self.synapse, None, None, values(self.s_in.recv(), self.fixed), self.sops)


# --- neuron ------------------------------------------------------------------------------------

class _NeuronModel(_WindowedModel):
    spikes: np.ndarray = LavaPyType(np.ndarray, np.int64)
    events: np.ndarray = LavaPyType(np.ndarray, np.int64)
    active: np.ndarray = LavaPyType(np.ndarray, np.int64)
    pending: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.neurons = Neurons(proc_params, self.fixed, self.batch)
        self.activity = self.recorder(proc_params["record"], self.neurons.bias.size,
                                      spikes=proc_params["kind"] != "sdnn")

    def fire(self, a: np.ndarray) -> np.ndarray:
        """The neuron stage on current `a`: what it sends (zeros outside the window)."""
        at = self.at()
        if at is None:
            return self.neurons.zeros
        out, computed, (spikes, events, active, pending) = self.neurons.step(at, a)
        if at.counted:
            self.spikes[at.t] += spikes
            self.events[at.t] += events
            self.active[at.t] += active
            self.pending[at.t] += pending
            if self.activity is not None:
                self.activity.store(at, computed)
        self.v = self.neurons.v
        return out

    def run_spk(self) -> None:
        self.s_out.send(self.fire(values(self.a_in.recv(), self.fixed)))


# --- fused population --------------------------------------------------------------------------

class _PopulationModel(_SynapseModel, _NeuronModel):
    """A synapse and its neurons; with `encode`, the input's encoder before the synapse; with
    `readout`, the readout's synapse and logits after the neurons."""

    input_events: np.ndarray = LavaPyType(np.ndarray, np.int64)
    readout_sops: np.ndarray = LavaPyType(np.ndarray, np.int64)
    readout_active: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        p = proc_params
        self.encoding = Encoding(p["encode"]) if p["encode"] else None
        if p["readout"] is not None:
            r = p["readout"]
            self.readout = Synapse({**r, "accumulate": p["accumulate"]}, self.fixed, self.batch)
            self.logits = Logits(r["bias"], self.fixed)
            self.readout_activity = self.recorder(r["record"], r["size"], spikes=False)

    def to_logits(self, out: np.ndarray) -> np.ndarray:
        """The folded readout: the logits of the current computed `delay` steps ago, then what the
        neurons sent this step into its synapse."""
        r = self.proc_params["readout"]
        logits = self.read(self.readout.pop(), r["depth"], r["fill"], self.readout_active, self.readout_activity)
        self.feed(self.readout, None, None, out, self.readout_sops)
        return logits

    def run_spk(self) -> None:
        p = self.proc_params
        out = self.fire(self.synapse.pop())
        self.s_out.send(out if p["readout"] is None else self.to_logits(out))
        x = values(self.s_in.recv(), self.fixed)
        x = x if self.encoding is None else self.encode(x, self.input_events)
        self.feed(self.synapse, p["synapse_depth"], p["synapse_fill"], x, self.sops)


# --- readout -----------------------------------------------------------------------------------

class _ReadoutModel(_WindowedModel):
    active: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.logits = Logits(proc_params["bias"], self.fixed)
        self.activity = self.recorder(proc_params["record"], self.logits.bias.size, spikes=False)

    def run_spk(self) -> None:
        p = self.proc_params
        self.out.send(self.read(values(self.a_in.recv(), self.fixed), p["depth"], p["fill"], self.active,
                                self.activity))


# --- the models, as Lava declares them ------------------------------------------------------

@implements(proc=DeltaEncoder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDeltaEncoderFloat(_EncoderModel, PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


@implements(proc=DeltaEncoder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDeltaEncoderFixed(_EncoderModel, PyLoihiProcessModel):
    fixed = True
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)


@implements(proc=DeltaSynapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDeltaSynapseFloat(_SynapseModel, PyLoihiProcessModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


@implements(proc=DeltaSynapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDeltaSynapseFixed(_SynapseModel, PyLoihiProcessModel):
    fixed = True
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)


@implements(proc=DeltaNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDeltaNeuronFloat(_NeuronModel, PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)


@implements(proc=DeltaNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDeltaNeuronFixed(_NeuronModel, PyLoihiProcessModel):
    fixed = True
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=DeltaPopulation, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDeltaPopulationFloat(_PopulationModel, PyLoihiProcessModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)


@implements(proc=DeltaPopulation, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDeltaPopulationFixed(_PopulationModel, PyLoihiProcessModel):
    fixed = True
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyReadoutFloat(_ReadoutModel, PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReadoutFixed(_ReadoutModel, PyLoihiProcessModel):
    fixed = True
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
