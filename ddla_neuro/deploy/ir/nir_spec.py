"""NIR -> NetSpec: our graphs (`torch_nir.py`) and NIR files from other frameworks (Norse's
`to_nir`, snnTorch, SpikingJelly, Sinabs), with each exporter's conventions (`NIR_SOURCES`).

NIR conventions used here. Our graphs carry `metadata = {"dt": 1, ...}` and are discrete-time
with dt = 1: an `IF` node is `v += r * I`, an `LIF` node is `v += (v_leak - v + r * I) / tau`,
so the zoo's TET LIF `v = 0.5 v + x` becomes tau = 2, r = 2. A neuron resetting by subtraction
says so in its node metadata (`{"reset": "subtract"}`); NIR itself only knows reset to v_reset.
Several edges into one node add up (residual sums). Population and node names are the
checkpoint's neuron keys, so the DDLA statistics find their layer.

NIR 1.0 has no max pooling and no product of two spike maps, which the Spike-driven
Transformer needs (patch splitting; Q*K*V attention). Two node types of our own, `MaxPool2d`
and `Product` (its two edges are factors, not terms), carry them in the in-memory graph; they
become compute populations of the NetSpec (see `spec.py`). A graph holding them cannot be
written as a NIR file that other tools read.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import nir
import numpy as np
import torch

from ..ops import MEMBRANE_BITS, apply_op
from ..spec import (COMPUTE_KINDS, INPUT_PAYLOAD_BITS, NEURON_KINDS, RESETS, SPIKES, WEIGHTED, NetSpec, Op, Population,
                    Projection, Sends, assign_depths, window_op)
from .checks import check_nir_nodes
from .nodes import LINEAR_NODES, NEURON_NODES, POPULATION_NODES, IRError, MaxPool2d, Product, _pair


def _uniform(values, what: str, node: str) -> float:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0 or not np.all(arr == arr.flat[0]):
        raise IRError(f"NIR node {node!r}: {what} differs between neurons; one value per layer is supported")
    return float(arr.flat[0])


@dataclass(frozen=True)
class NirSource:
    """How one library writes its neurons into NIR, which stores no time step: the dt its
    exporter discretises with (None: the graph's metadata, else 1), its reset, which NIR's LIF
    cannot say (None: each node's `reset` metadata, else to zero), how its LIF decays and
    whether it fires at the threshold."""

    dt: float | None
    reset: str | None
    norse: bool = False  # Norse's quirks: tau = dt times the true tau, IF gain 1 (fix_exported_graph: its batch axis)
    # "euler": decay = 1 - dt / tau, input gain r dt / tau; "exp" (Sinabs): decay = exp(-dt / tau)
    # and the input scaled by 1 - decay (its LIF's `norm_input`, the default)
    decay_rule: str = "euler"
    fires_at_threshold: bool = False  # spikes when v >= threshold (Sinabs), not only above it
    # the library's own parameters (snnTorch's beta) are float32: tau = dt / (1 - beta) written in
    # float32 gives back 1 - dt / tau within half a float32 step of beta, so rounding recovers it
    float32_params: bool = False


NIR_SOURCES = {
    "generic": NirSource(None, None),
    # snntorch.export_to_nir: dt = 1e-4 hard-coded, tau = dt / (1 - beta), r = tau / dt; a Leaky
    # resets by subtraction (its default) one step late (`reset_delay`); zero-reset Leakys look the same
    "snntorch": NirSource(1e-4, "delayed-subtract", float32_params=True),
    "norse": NirSource(1e-3, "zero", norse=True),
    # sinabs.nir.to_nir: tau in steps, exponential decay, SingleSpike fires at v >= threshold and
    # MembraneSubtract resets at once; its default MultiSpike (several spikes a step) cannot be
    # told from the graph and is not supported
    "sinabs": NirSource(1.0, "subtract", decay_rule="exp", fires_at_threshold=True, float32_params=True),
    # SpikingJelly's export_to_nir (in its repository; its PyPI release 0.0.0.0.14 has none): dt
    # argument (default 1e-4), LIF tau = tau_steps * dt with r = 1, IF r = 1 / dt; hard reset
    # (a soft-reset neuron is exported as a hard one), heaviside(v - threshold) fires at v >= threshold
    "spikingjelly": NirSource(1e-4, "zero", fires_at_threshold=True),
}


def _neuron_params(name: str, node: nir.NIRNode, dt: float, source: NirSource) -> dict:
    """decay, input gain, threshold and reset of a discrete-time step with `dt`."""
    reset = source.reset or (node.metadata or {}).get("reset", "zero")
    if reset not in RESETS:
        raise IRError(f"NIR node {name!r}: unknown reset {reset!r}; one of {', '.join(RESETS)}")
    if getattr(node, "v_reset", None) is not None and _uniform(node.v_reset, "v_reset", name) != 0.0:
        raise IRError(f"NIR node {name!r}: reset to a non-zero v_reset is not supported")
    v_th = _uniform(node.v_threshold, "v_threshold", name)
    if source.fires_at_threshold:  # v >= th is v > the next float below th (float64; quant floors it)
        v_th = float(np.nextafter(v_th, -np.inf))
    r = _uniform(node.r, "r", name)
    if isinstance(node, nir.IF):
        return dict(kind="if", decay=1.0, gain=1.0 if source.norse else r * dt, v_th=v_th, reset=reset)  # v += dt r I
    if _uniform(node.v_leak, "v_leak", name) != 0.0:
        raise IRError(f"NIR node {name!r}: a non-zero v_leak is not supported")
    tau = _uniform(node.tau, "tau", name)
    # Norse exports tau = dt / tau_mem_inv (dt times the true tau); its step is v += dt/tau_true (...)
    rate = dt * dt / tau if source.norse else dt / tau
    if source.decay_rule == "exp":
        rate = -float(np.expm1(-rate))  # 1 - exp(-dt / tau)
    if not 0.0 < rate <= 1.0:
        raise IRError(f"NIR node {name!r}: tau={tau} gives a decay outside [0, 1) at dt={dt}: the exporter used "
                      f"another dt; name its library (--nir-source) or its dt (--nir-dt)")
    decay, gain = 1.0 - rate, rate * r
    if source.float32_params:
        decay, gain = float(np.float32(decay)), float(np.float32(gain))
    return dict(kind="lif", decay=decay, gain=gain, v_th=v_th, reset=reset)


def _unsupported(name: str, node: nir.NIRNode) -> IRError:
    return IRError(f"NIR node {name!r} of type {type(node).__name__} is not supported; supported: "
                   f"Input, Output, Conv2d, Affine, Linear, SumPool2d, AvgPool2d, Flatten, Scale, IF, LIF "
                   f"(and ddla-neuro's MaxPool2d and Product)")


def _op_from_node(name: str, node: nir.NIRNode, in_shape: tuple[int, ...]) -> tuple[Op, float]:
    """The bias-free op of a linear node and the scalar factor to fold into the weights."""
    if isinstance(node, nir.Conv2d):
        w = np.asarray(node.weight, dtype=np.float64)
        if int(node.groups) != 1 or _pair(node.dilation).tolist() != [1, 1] or isinstance(node.padding, str):
            raise IRError(f"NIR node {name!r}: grouped, dilated or 'same'-padded Conv2d is not supported")
        return window_op("conv2d", in_shape, w.shape[0], w.shape[2:], node.stride, node.padding, w), 1.0
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight, dtype=np.float64)
        if int(np.prod(in_shape)) != w.shape[1]:
            raise IRError(f"NIR node {name!r}: weight takes {w.shape[1]} inputs, it receives shape {in_shape}")
        return Op("linear", (w.shape[1],), (w.shape[0],), w), 1.0
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        op = window_op("sumpool2d", in_shape, in_shape[0], node.kernel_size, node.stride, node.padding)
        return op, (1.0 / float(np.prod(op.kernel)) if isinstance(node, nir.AvgPool2d) else 1.0)
    if isinstance(node, nir.Flatten):
        return Op("flatten", in_shape, (int(np.prod(in_shape)),)), 1.0
    if isinstance(node, nir.Scale):
        return Op("flatten", in_shape, in_shape), _uniform(node.scale, "scale", name)
    raise _unsupported(name, node)


def _bias(node: nir.NIRNode) -> np.ndarray | None:
    if isinstance(node, (nir.Affine, nir.Conv2d)):
        b = np.asarray(node.bias, dtype=np.float64)
        return b if b.ndim else np.full(np.asarray(node.weight).shape[0], float(b))
    return None


def _normalise(ops: list[Op], factor: float, where: str) -> list[Op]:
    """Fold the scalar factor into the projection's one weighted op (or add a `scale` op)."""
    weighted = [op for op in ops if op.kind in WEIGHTED]
    if len(weighted) > 1:
        raise IRError(f"{where}: two weighted layers follow each other without a neuron between them")
    if not weighted:
        shape = ops[-1].out_shape
        return ops + [Op("scale", shape, shape, np.array(factor))]
    return [replace(op, weight=op.weight * factor) if op.kind in WEIGHTED else op for op in ops]


class _SpecBuilder:
    def __init__(self, graph: nir.NIRGraph, input_shape: tuple[int, ...], source: NirSource, dt: float):
        self.graph, self.source, self.dt = graph, source, dt
        self.preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
        for a, b in graph.edges:
            if a not in graph.nodes or b not in graph.nodes:
                raise IRError(f"NIR edge {a!r} -> {b!r} names a node that does not exist")
            self.preds[b].append(a)
        try:
            self.order = list(TopologicalSorter(self.preds).static_order())
        except CycleError:
            raise IRError("the NIR graph has a cycle; recurrent graphs are not supported") from None
        inputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
        outputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Output)]
        if len(inputs) != 1 or len(outputs) != 1:
            raise IRError(f"the NIR graph needs one Input and one Output node, it has {len(inputs)} and {len(outputs)}")
        self.input, self.output = inputs[0], outputs[0]
        self.shapes = {self.input: tuple(input_shape)}
        self.ops: dict[str, tuple[Op, float]] = {}
        self.pools: dict[str, Op] = {}
        for name in self.order:
            self._infer(name)

    def _infer(self, name: str) -> None:
        node = self.graph.nodes[name]
        if name == self.input:
            return
        shapes = [self.shapes[p] for p in self.preds[name]]
        if isinstance(node, Product):
            self._check_factors(name)
            self.shapes[name] = tuple(np.broadcast_shapes(*shapes))
            return
        if len(set(shapes)) != 1:
            raise IRError(f"NIR node {name!r} sums inputs of different shapes {sorted(set(shapes))} (or has none)")
        shape = shapes[0]
        if isinstance(node, LINEAR_NODES):
            op, factor = _op_from_node(name, node, shape)
            self.ops[name] = (replace(op, layer=name), factor)
            shape = op.out_shape
        elif isinstance(node, MaxPool2d):
            self.pools[name] = window_op("maxpool2d", shape, shape[0], node.kernel_size, node.stride, node.padding)
            shape = self.pools[name].out_shape
        elif not isinstance(node, NEURON_NODES + (nir.Output,)):
            raise _unsupported(name, node)
        self.shapes[name] = shape

    def _check_factors(self, name: str) -> None:
        factors = self.preds[name]
        if len(factors) != 2 or not all(self.is_source(f) for f in factors):
            raise IRError(f"Product node {name!r} needs two inputs straight from neurons, pools or products, "
                          f"it has {factors}")

    def current_shape(self, name: str) -> tuple[int, ...]:
        """The shape of what sums into `name` (a max pool's input, else its own shape)."""
        return self.pools[name].in_shape if name in self.pools else self.shapes[name]

    def is_source(self, name: str) -> bool:
        return name == self.input or isinstance(self.graph.nodes[name], POPULATION_NODES)

    def paths(self, name: str) -> list[tuple[str, list[Op], float]]:
        """(source, ops in forward order, factor) of every linear path that ends at `name`."""
        if self.is_source(name):
            return [(name, [], 1.0)]
        op, factor = self.ops[name]
        return [(src, ops + [op], f * factor) for p in self.preds[name] for src, ops, f in self.paths(p)]

    def zero_response(self, name: str) -> np.ndarray:
        """The output of `name` with every source silent: the biases carried through the ops."""
        if self.is_source(name):
            return np.zeros(self.shapes[name])
        op, factor = self.ops[name]
        x = sum(self.zero_response(p).reshape(op.in_shape) for p in self.preds[name])
        y = apply_op(op, x) * factor
        b = _bias(self.graph.nodes[name])
        return y if b is None else y + b.reshape((-1,) + (1,) * (y.ndim - 1))

    def bias(self, name: str) -> np.ndarray:
        shape = self.current_shape(name)
        if isinstance(self.graph.nodes[name], Product):  # factors come straight from populations
            return np.zeros(shape)
        return sum((self.zero_response(p).reshape(shape) for p in self.preds[name]), np.zeros(shape))

    def _params(self, name: str) -> dict:
        node = self.graph.nodes[name]
        if isinstance(node, NEURON_NODES):
            return _neuron_params(name, node, self.dt, self.source)
        kind = "maxpool" if isinstance(node, MaxPool2d) else "product" if isinstance(node, Product) else "readout"
        return dict(kind=kind, decay=1.0, gain=1.0, v_th=0.0, reset="zero", pool=self.pools.get(name))

    def population(self, name: str, sends: dict[str, Sends]) -> Population:
        """The population of node `name`; `sends`: what each earlier sender transmits."""
        params = self._params(name)
        gain = params.pop("gain")
        inputs = []
        for p in self.preds[name]:
            for src, ops, factor in self.paths(p):
                if not ops:  # a population straight into another: identity synapse
                    shape = self.shapes[src]
                    ops = [Op("flatten", shape, shape)]
                source = "input" if src == self.input else src
                inputs.append(Projection(source, _normalise(ops, factor * gain, f"NIR node {name!r}")))
        bias = self.bias(name) * gain
        return Population(name=name, shape=self.shapes[name], bias=bias, inputs=inputs,
                          sends=population_sends(params["kind"], bias, inputs, sends), **params)


def input_sends(encoding: str) -> Sends:
    """The analog input (direct encoding) sends graded values; spike and event input sends spikes."""
    return Sends(graded=True, bits=INPUT_PAYLOAD_BITS) if encoding == "direct" else SPIKES


def population_sends(kind: str, bias: np.ndarray, inputs: list[Projection], sends: dict[str, Sends]) -> Sends:
    """What a population transmits: neurons send spikes; a max pool or product sends spikes when
    it takes spikes through unit synapses and no bias (the max or product of 0/1 values is 0/1),
    else graded values in membrane units; the readout's logits are graded."""
    unit = lambda proj: (all(op.kind in ("flatten", "scale") for op in proj.ops)  # noqa: E731
                         and float(proj.weighted.weight) == 1.0)
    if kind in NEURON_KINDS or (kind in COMPUTE_KINDS and not np.any(bias)
                                and all(unit(p) and not sends[p.source].graded for p in inputs)):
        return SPIKES
    return Sends(graded=True, bits=MEMBRANE_BITS)


def nir_to_spec(graph: nir.NIRGraph, input_shape: tuple[int, ...] | None = None, timesteps: int | None = None,
                encoding: str | None = None, source: str = "generic", dt: float | None = None) -> NetSpec:
    """A float NetSpec from a NIR graph written by `source` (a key of NIR_SOURCES: its dt and
    reset conventions); `dt` overrides the source's time step. The spec's meta records both."""
    if source not in NIR_SOURCES:
        raise IRError(f"unknown NIR source {source!r}; one of {', '.join(NIR_SOURCES)}")
    conventions = NIR_SOURCES[source]
    meta = dict(graph.metadata or {})
    dt = float(dt if dt is not None else conventions.dt or meta.get("dt", 1.0))
    if not dt > 0:
        raise IRError(f"the NIR time step must be positive, got {dt}")
    check_nir_nodes(graph)
    if input_shape is None:
        inp = next((node for node in graph.nodes.values() if isinstance(node, nir.Input)), None)
        if inp is None or inp.input_type.get("input") is None:
            raise IRError("the NIR graph has no Input node with a shape; export it again")
        input_shape = tuple(int(v) for v in np.asarray(inp.input_type["input"]).ravel())
    if not timesteps:  # the graph's own, where it is a number of steps
        stored = meta.get("timesteps")
        usable = isinstance(stored, (int, float, np.number)) and np.isfinite(stored) and stored >= 1
        timesteps = stored if usable else 0
    timesteps = int(timesteps)
    if timesteps < 1:
        raise IRError("the NIR graph does not say how many timesteps to run; pass timesteps")
    encoding = encoding or meta.get("encoding", "direct")
    sends = {"input": input_sends(encoding)}
    pops = []
    try:
        builder = _SpecBuilder(graph, tuple(input_shape), conventions, dt)
        for name in [n for n in builder.order if isinstance(graph.nodes[n], POPULATION_NODES)] + [builder.output]:
            pops.append(builder.population(name, sends))
            sends[name] = pops[-1].sends
    except (ValueError, TypeError, IndexError, KeyError, ArithmeticError) as e:  # fields that make no network
        reason = (str(e).strip().splitlines() or [""])[0][:100]
        raise IRError(f"the NIR graph's nodes do not make a network ({type(e).__name__}: {reason}); export it "
                      f"again") from None
    assign_depths(pops)
    meta = {k: v for k, v in meta.items() if isinstance(v, (str, int, float))}
    return NetSpec(tuple(input_shape), timesteps, encoding, pops, input_sends=sends["input"],
                   meta={**meta, "nir_source": source, "nir_dt": dt})


# --- NIR files -------------------------------------------------------------------------------------

NEURON_PARAMS = ("r", "v_threshold", "tau", "v_leak", "v_reset")


def fix_exported_graph(graph: nir.NIRGraph, source: str) -> nir.NIRGraph:
    """Makes a graph from `norse.torch.to_nir` or `sinabs.nir.to_nir` writable and readable:
    numpy parameters, scalar neuron parameters broadcast to the layer width (0-d arrays cannot
    be written), and Input/Output types without the exporter's leading axis (Norse: a batch
    axis of 1; Sinabs: the time axis of a (1, T, ...) sample, on both ends). Scalar parameters
    take the layer's shape, found by our own shape inference (NIR's needs them first)."""
    if source not in ("norse", "sinabs"):
        raise IRError(f"fix_exported_graph knows the quirks of norse and sinabs, not {source!r}")
    io = {name: np.asarray(next(iter((node.input_type if isinstance(node, nir.Input) else node.output_type)
                                      .values()))).ravel()
          for name, node in graph.nodes.items() if isinstance(node, (nir.Input, nir.Output))}
    shapes = list(io.values())
    time_axis = source == "sinabs" and all(len(v) > 1 for v in shapes) and len({int(v[0]) for v in shapes}) == 1
    nodes = {}
    for name, node in graph.nodes.items():
        if name in io:
            shape = io[name][1:] if len(io[name]) > 1 and (time_axis or (source == "norse" and io[name][0] == 1)) \
                else io[name]
            key = "input" if isinstance(node, nir.Input) else "output"
            nodes[name] = type(node)(**{f"{key}_type": {key: shape}})
            continue
        kwargs = {f.name: getattr(node, f.name) for f in dataclasses.fields(node) if f.init and hasattr(node, f.name)}
        nodes[name] = type(node)(**{k: v.detach().cpu().numpy() if torch.is_tensor(v) else v
                                    for k, v in kwargs.items()})
    input_shape = next(tuple(int(v) for v in nodes[n].input_type["input"])
                       for n in io if isinstance(nodes[n], nir.Input))
    untyped = nir.NIRGraph(nodes=dict(nodes), edges=list(graph.edges), type_check=False)
    shapes = _SpecBuilder(untyped, input_shape, NIR_SOURCES[source], 1.0).shapes  # ours: no neuron shapes needed
    for name, node in nodes.items():
        if isinstance(node, NEURON_NODES):  # rebuilt, so that its types follow the new shapes
            kwargs = {f.name: getattr(node, f.name) for f in dataclasses.fields(node) if f.init}
            nodes[name] = type(node)(**{k: np.full(shapes[name], float(np.asarray(v).ravel()[0]))
                                        if k in NEURON_PARAMS and v is not None and np.size(v) == 1 else v
                                        for k, v in kwargs.items()})
    fixed = nir.NIRGraph(nodes=nodes, edges=list(graph.edges), metadata=dict(graph.metadata or {}), type_check=False)
    if any(t is None for n in nodes.values() for t in (*n.input_type.values(), *n.output_type.values())):
        fixed.infer_types()  # Sinabs leaves its convolutions' and pools' types unset; nir.write needs them
    return fixed


def read_nir(path: str | Path) -> nir.NIRGraph:
    path = Path(path)
    if not path.is_file():
        raise IRError(f"NIR file {path} does not exist")
    try:
        return nir.read(path, type_check=False)
    except Exception as e:
        raise IRError(f"{path} is not a readable NIR file ({type(e).__name__}: {str(e)[:120]})") from None
