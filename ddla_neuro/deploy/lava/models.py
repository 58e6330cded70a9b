"""Process models (`floating_pt`: float64, `fixed_pt`: int64 integer arithmetic with a 24-bit
saturating membrane and Loihi's 12-bit leak). The behaviour per step is that of
`ddla_neuro/deploy/spec.py`; `ddla_neuro/deploy/sim.py` implements the same in batched torch and the tests
hold the two bit-exact.

Imports are absolute: Lava's compiler executes this file as a top-level module named
`models` when it looks for process models, and relative imports fail there.

Models never raise while running (a raising model hangs Lava): everything is validated on the
host before the network is built.
"""
from __future__ import annotations

from collections import deque
from dataclasses import replace

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from ddla_neuro.ddla.transmission import keep_count
from ddla_neuro.deploy.lava.process import DeltaEncoder, DeltaNeuron, DeltaPopulation, DeltaSynapse, Readout
from ddla_neuro.deploy.spec import SATURATION, apply_counting, decay_fixed, wrap_current


class _WindowedModel:
    """Sample window of a process: `step()` is the 0-based timestep within the sample being
    processed, or None outside the run's N*T steps (before the first frame reaches this depth,
    or while the last samples drain)."""

    fixed = False

    def step(self, depth: int | None = None) -> int | None:
        p = self.proc_params
        w = self.time_step - 1 - (p["depth"] if depth is None else depth)
        return w % p["timesteps"] if 0 <= w < p["timesteps"] * p["num_samples"] else None

    def value(self, x: np.ndarray) -> np.ndarray:
        return np.rint(x).astype(np.int64) if self.fixed else np.asarray(x, dtype=np.float64)

    def zeros(self, n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.int64 if self.fixed else np.float64)


# --- encoder -----------------------------------------------------------------------------------

class _EncoderModel(_WindowedModel):
    def run_spk(self) -> None:
        x = self.value(self.a_in.recv())
        t = self.step()
        if t is None:
            self.s_out.send(self.zeros(x.size))
            return
        out = x if (self.proc_params["mode"] == "dense" or t == 0) else x - self.previous
        self.previous = x
        self.events[t] += np.count_nonzero(out)
        self.s_out.send(out)


@implements(proc=DeltaEncoder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDeltaEncoderFloat(_EncoderModel, PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    events: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=DeltaEncoder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDeltaEncoderFixed(_EncoderModel, PyLoihiProcessModel):
    fixed = True
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    events: np.ndarray = LavaPyType(np.ndarray, np.int64)


# --- synapse -----------------------------------------------------------------------------------

class _SynapseModel(_WindowedModel):
    """A projection's ops on what its source sent; `synapse_depth` (default `depth`) is the
    source's depth, the window of what arrives."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        dtype = np.int64 if self.fixed else np.float64
        self.ops = [op if op.weight is None else replace(op, weight=np.asarray(op.weight, dtype=dtype))
                    for op in proc_params["ops"]]
        self.fanout = proc_params["fanout"]
        self.out_size = int(np.prod(self.ops[-1].out_shape))
        self.queue = deque(self.zeros(self.out_size) for _ in range(proc_params["delay"]))
        self.accumulated = self.zeros(self.out_size)

    def receive(self, d: np.ndarray) -> None:
        """What the source sent this step, turned into the current `delay` steps later."""
        p = self.proc_params
        t = self.step(p.get("synapse_depth"))
        if t is None:
            self.queue.append(self.zeros(self.out_size))
            return
        if d.any():
            a, sops = apply_counting(self.ops, self.fanout, d)
            self.sops[t] += sops
            a = a.reshape(-1)
        else:  # event-driven: no event, no synaptic work (a delta-coded input after t = 1)
            a = self.zeros(self.out_size)
        a = a << p["shift"] if self.fixed else a
        if p["accumulate"]:
            self.accumulated = a if t == 0 else self.accumulated + a
            a = self.accumulated
        self.queue.append(a.copy())

    def run_spk(self) -> None:
        self.a_out.send(self.queue.popleft())  # what arrived `delay` steps ago
        self.receive(self.value(self.s_in.recv()))


@implements(proc=DeltaSynapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDeltaSynapseFloat(_SynapseModel, PyLoihiProcessModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    sops: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=DeltaSynapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDeltaSynapseFixed(_SynapseModel, PyLoihiProcessModel):
    fixed = True
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    sops: np.ndarray = LavaPyType(np.ndarray, np.int64)


# --- neuron ------------------------------------------------------------------------------------

class _NeuronModel(_WindowedModel):
    def __init__(self, proc_params):
        super().__init__(proc_params)
        p = proc_params
        self.bias = self.value(np.asarray(p["bias"]).reshape(-1))
        self.held = self.zeros(self.bias.size)
        self.fired = np.zeros(self.bias.size, dtype=bool)  # the last step's spikes (delayed resets)
        self.u = self.zeros(self.bias.size)  # cuba: the current state
        delay = p["input_delay"]
        self.delay = None if delay is None else np.asarray(delay, dtype=np.int64).reshape(-1)
        if self.delay is not None:  # row k: the current received k steps ago in this sample
            self.history = np.zeros((int(self.delay.max()) + 1, self.bias.size), dtype=self.bias.dtype)
        self.scores = None if p["scores"] is None else np.asarray(p["scores"], dtype=np.float32).reshape(-1)

    def decay(self, v: np.ndarray, factor: str = "decay", register: str = "dv") -> np.ndarray:
        p = self.proc_params
        if self.fixed:
            return decay_fixed(v, p[register])
        return v * p[factor] if p[factor] != 1.0 else v

    def delayed(self, t: int, a: np.ndarray) -> np.ndarray:
        """Each unit's current from `input_delay` steps ago in this sample (zero before its start)."""
        if t == 0:
            self.history[:] = 0
        self.history = np.roll(self.history, 1, axis=0)
        self.history[0] = a
        return self.history[self.delay, np.arange(a.size)]

    def integrate_cuba(self, t: int, a: np.ndarray) -> np.ndarray:
        """Loihi's current-based LIF (spec.py): the current is a state (fixed point: 24-bit wrap,
        as Lava's LIF), the bias goes to the voltage (clipped to +-(2**23 - 1)); v before firing."""
        if self.delay is not None:
            a = self.delayed(t, a)
        u = (self.decay(self.u, "u_decay", "du") if t > 0 else self.zeros(a.size)) + a
        self.u = u = wrap_current(u) if self.fixed else u
        v = (self.decay(self.v) if t > 0 else self.zeros(a.size)) + u + self.bias
        return np.clip(v, 1 - SATURATION, SATURATION - 1) if self.fixed else v

    def select(self, d: np.ndarray) -> np.ndarray:
        """DDLA: the ceil(keep * n) non-zero deltas with the highest scores (ties: lower index)."""
        idx = np.flatnonzero(d)
        order = np.argsort(-self.scores[idx], kind="stable")
        kept = idx[order[: keep_count(idx.size, self.proc_params["keep"])]]
        out = np.zeros_like(d)
        out[kept] = d[kept]
        return out

    def run_spk(self) -> None:
        self.s_out.send(self.integrate(self.value(self.a_in.recv())))

    def integrate(self, a: np.ndarray) -> np.ndarray:
        """One step with synaptic current `a`: what the neurons send (zeros outside the window)."""
        t = self.step()
        if t is None:
            return self.zeros(a.size)
        p = self.proc_params
        if p["kind"] == "cuba":
            v = self.integrate_cuba(t, a)
        else:
            fired = self.fired if t > 0 else np.zeros(a.size, dtype=bool)
            v = self.v if t > 0 else self.zeros(a.size)
            v = self.decay(np.where(fired, 0, v) if p["reset"] == "delayed-zero" else v) if t > 0 else v
            v = v + a + self.bias
            if p["reset"] == "delayed-subtract":  # a delayed reset acts on the step after the spike
                v = v - fired * p["v_th"]
            if self.fixed:
                v = np.clip(v, -SATURATION, SATURATION - 1)
        s = v > p["v_th"]
        if p["reset"] == "zero":
            v = np.where(s, 0, v)
        elif p["reset"] == "subtract":
            v = v - s * p["v_th"]
        self.v = v.astype(self.v.dtype)
        self.fired = s
        s = s.astype(v.dtype)
        if p["mode"] == "dense":
            out = s
        else:
            out = s - self.held if t > 0 else s
            if p["mode"] == "ddla" and t > 0 and p["keep"] < 1.0:
                out = self.select(out)
            self.held = out if t == 0 else self.held + out
        self.spikes[t] += np.count_nonzero(s)
        self.events[t] += np.count_nonzero(out)
        self.active[t] += np.count_nonzero(self.u if p["kind"] == "cuba" else a)  # cuba: its current state
        return out


@implements(proc=DeltaNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDeltaNeuronFloat(_NeuronModel, PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    spikes: np.ndarray = LavaPyType(np.ndarray, np.int64)
    events: np.ndarray = LavaPyType(np.ndarray, np.int64)
    active: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=DeltaNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDeltaNeuronFixed(_NeuronModel, PyLoihiProcessModel):
    fixed = True
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64)
    spikes: np.ndarray = LavaPyType(np.ndarray, np.int64)
    events: np.ndarray = LavaPyType(np.ndarray, np.int64)
    active: np.ndarray = LavaPyType(np.ndarray, np.int64)


# --- fused population --------------------------------------------------------------------------

class _PopulationModel(_SynapseModel, _NeuronModel):
    def run_spk(self) -> None:
        self.s_out.send(self.integrate(self.queue.popleft()))  # the current computed `delay` steps ago
        self.receive(self.value(self.s_in.recv()))


@implements(proc=DeltaPopulation, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDeltaPopulationFloat(_PopulationModel, PyLoihiProcessModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    sops: np.ndarray = LavaPyType(np.ndarray, np.int64)
    spikes: np.ndarray = LavaPyType(np.ndarray, np.int64)
    events: np.ndarray = LavaPyType(np.ndarray, np.int64)
    active: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=DeltaPopulation, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDeltaPopulationFixed(_PopulationModel, PyLoihiProcessModel):
    fixed = True
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64)
    sops: np.ndarray = LavaPyType(np.ndarray, np.int64)
    spikes: np.ndarray = LavaPyType(np.ndarray, np.int64)
    events: np.ndarray = LavaPyType(np.ndarray, np.int64)
    active: np.ndarray = LavaPyType(np.ndarray, np.int64)


# --- readout -----------------------------------------------------------------------------------

class _ReadoutModel(_WindowedModel):
    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.bias = self.value(np.asarray(proc_params["bias"]).reshape(-1))

    def run_spk(self) -> None:
        a = self.value(self.a_in.recv())
        t = self.step()
        if t is None:
            self.out.send(self.zeros(a.size))
            return
        self.active[t] += np.count_nonzero(a)
        self.out.send(a + self.bias)


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyReadoutFloat(_ReadoutModel, PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    active: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReadoutFixed(_ReadoutModel, PyLoihiProcessModel):
    fixed = True
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    active: np.ndarray = LavaPyType(np.ndarray, np.int64)
