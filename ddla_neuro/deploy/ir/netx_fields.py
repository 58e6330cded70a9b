"""The fields of a netx file's layers as lava-dl's reader takes them, each checked so that a
damaged file gets one line naming the layer and the field: weights (8-bit integers as stored,
dense ones as (neurons, inputs)), biases, per-neuron delays and the neurons' registers.
`check_fields` checks every field a layer may hold before anything reads it: whole numbers where
lava-dl reads integers (shapes, strides, registers), finite numbers elsewhere, strings where it
reads strings."""
from __future__ import annotations

import sys

import numpy as np

from ..ops import DECAY_BITS
from .checks import finite, shown, whole
from .nodes import IRError

MESSAGE_BITS = 16    # netx's default payload of a sigma-delta message (`messageBits`)
MAX_DELAY = 62       # Loihi's longest synaptic delay (lava-dl's DelayDense: max_delay=62)
# A dense layer without neurons: lava-dl's runner gives it this CUBA neuron, a non-leaky integrator
# of its current whose threshold (2**17 << 6) the 24-bit voltage never reaches (netx.hdf5.create_dense)
OUTPUT_INTEGRATOR = {"type": "CUBA", "iDecay": 0, "vDecay": 4096, "vThMant": 1 << 17, "refDelay": 1,
                     "gradedSpike": False}
NEURON_FIELDS = {    # every field of a neuron type that is read (or checked, `cuba_neuron`)
    "CUBA": {"type", "iDecay", "vDecay", "vThMant", "refDelay", "gradedSpike"},
    "LOIHI": {"type", "iDecay", "vDecay", "vThMant", "refDelay", "gradedSpike", "scaleRho", "tauRho", "theta",
              "wgtExp"},
    "SDNN": {"type", "vThMant", "activation", "sigma_output", "messageBits"},
}
# whole numbers lava-dl reads as ints: (least value, the sizes an array of them may have)
WHOLE = {"shape": (1, (1, 2, 3)), "stride": (1, (1, 2)), "padding": (0, (1, 2)), "dilation": (1, (1, 2)),
         "kernelSize": (1, (1, 2)), "groups": (1, (1,)), "inFeatures": (1, (1,)), "outFeatures": (1, (1,)),
         "inChannels": (1, (1,)), "outChannels": (1, (1,))}
WHOLE_NEURON = {"iDecay": 0, "vDecay": 0, "vThMant": 0, "refDelay": 0, "wgtExp": -8, "messageBits": 0}
TEXT = ("type", "activation")


def check_fields(layer: dict, where: str) -> None:
    """Every field's kind and range (module docstring), the layer's and its neuron's."""
    for key in TEXT:
        if key in layer and not (isinstance(layer[key], str) and layer[key]):
            raise IRError(f"{where}: its '{key}' is not a name ({shown(layer[key])}); export the file again")
    for key, value in layer.items():
        if key == "neuron":
            if not isinstance(value, dict):
                raise IRError(f"{where}: its 'neuron' is not a group of fields; export the file again")
            _check_neuron(value, where)
        elif key in WHOLE:
            least, sizes = WHOLE[key]
            whole(value, f"{where}: its '{key}'", least, sizes)
        elif key not in TEXT and not isinstance(value, dict):
            finite(value, f"{where}: its '{key}'")


def _check_neuron(neuron: dict, where: str) -> None:
    for key, value in neuron.items():
        what = f"{where}: its neuron's '{key}'"
        if key in TEXT:
            if not (isinstance(value, str) and value):
                raise IRError(f"{what} is not a name ({shown(value)}); export the file again")
        elif key in WHOLE_NEURON:
            whole(value, what, WHOLE_NEURON[key], (1,))
        elif not isinstance(value, dict):
            finite(value, what)


def netx_weight(layer: dict, where: str, size: int | None = None) -> np.ndarray:
    if "weight" not in layer or isinstance(layer["weight"], dict):
        raise IRError(f"{where}: needs real weights (complex weights are not supported)")
    w = np.asarray(layer["weight"], dtype=np.float64)
    if size is not None and w.size != size:
        raise IRError(f"{where}: {w.size} weights for {size} synapses")
    if not np.all(w == np.round(w)) or np.abs(w).max(initial=0) > 256:
        raise IRError(f"{where}: weights must be Loihi's 8-bit integers (as netx stores them)")
    return w


def dense_weight(layer: dict, where: str) -> np.ndarray:
    """A dense layer's (neurons, inputs) weights as lava-dl reads them: the neurons off `shape`
    (slayer also stores `outFeatures`), a flat weight as (neurons, -1)."""
    out = int(np.prod(layer["shape"])) if "shape" in layer else int(layer["outFeatures"])
    w = netx_weight(layer, where)
    if out < 1 or w.ndim > 2 or w.size % out or w.size == 0 or (w.ndim == 2 and w.shape[0] != out):
        raise IRError(f"{where}: weights of shape {w.shape} are not (neurons, inputs) for {out} neurons")
    return w.reshape(out, -1)


def neuron_fields(layer: dict, where: str) -> dict:
    neuron = layer["neuron"]
    kind = neuron.get("type")
    if kind not in NEURON_FIELDS:
        raise IRError(f"{where}: {kind} neurons are not supported; supported: {', '.join(NEURON_FIELDS)}")
    unknown = sorted(set(neuron) - NEURON_FIELDS[kind])
    if unknown:
        raise IRError(f"{where}: {kind} neuron field(s) {', '.join(unknown)} are not supported")
    return neuron


def cuba_neuron(layer: dict, where: str) -> dict[str, int]:
    """CUBA's registers; LOIHI's training fields checked (module docstring)."""
    neuron = neuron_fields(layer, where)
    if bool(neuron.get("gradedSpike", False)):
        raise IRError(f"{where}: graded spikes of CUBA neurons are not supported")
    if int(neuron.get("refDelay", 1)) != 1:
        raise IRError(f"{where}: a refractory delay other than 1 is not supported")
    cuba = {k: int(neuron[k]) for k in ("iDecay", "vDecay", "vThMant")}
    if not (0 <= cuba["iDecay"] <= 2 ** DECAY_BITS and 0 <= cuba["vDecay"] <= 2 ** DECAY_BITS):
        raise IRError(f"{where}: decays must lie in 0..{2 ** DECAY_BITS}")
    if int(neuron.get("wgtExp", 0)) != 0:
        raise IRError(f"{where}: wgtExp {int(neuron['wgtExp'])} would scale the weights by 2**wgtExp on the chip, "
                      f"which lava-dl's runner ignores; export with wgtExp 0")
    return cuba


def sdnn_neuron(layer: dict, where: str) -> dict:
    """An SDNN neuron's threshold mantissa, payload bits and whether it is a sigma readout."""
    neuron = neuron_fields(layer, where)
    activation = str(neuron.get("activation", "relu"))
    if activation != "relu":
        raise IRError(f"{where}: sigma-delta activation {activation!r} is not supported (lava-dl's runner "
                      f"runs ReLU whatever the file says)")
    return {"v_th_mant": int(neuron["vThMant"]), "bits": int(neuron.get("messageBits", MESSAGE_BITS)),
            "readout": bool(neuron.get("sigma_output", False))}


def netx_delay(layer: dict, shape: tuple[int, ...], fan_in: int, where: str) -> np.ndarray | None:
    """Per neuron, the steps its synaptic input arrives late, as lava-dl's runner reads a dense
    layer's `delay` (slayer's per-neuron delays; one for all; it sets the neuron's on every synapse
    into it). None when all are zero."""
    if "delay" not in layer:
        return None
    n = int(np.prod(shape))
    d = np.asarray(layer["delay"], dtype=np.float64).ravel()
    if d.size == 1:
        d = np.full(n, d[0])
    if d.size != n:
        per_input = " (one per input, which lava-dl reads where it is not one per neuron, is not supported)"
        raise IRError(f"{where}: {d.size} delays for {n} neurons{per_input if d.size == fan_in else ''}; export "
                      f"one per neuron, as slayer does")
    bad = d[~np.isfinite(d) | (d != np.round(d)) | (d < 0)]
    if bad.size:
        raise IRError(f"{where}: its 'delay' holds {bad[0]:g}: delays are whole steps of 0 or more")
    if d.max() > MAX_DELAY:  # as lava-dl's reader does (Intel's N-DNS baseline trains up to 64)
        print(f"note: {where}: delays up to {d.max():g} steps clamped to {MAX_DELAY}, the longest a Loihi synapse "
              f"holds, as lava-dl's netx reader clamps them", file=sys.stderr)
        d = np.minimum(d, MAX_DELAY)
    d = d.astype(np.int64)
    return d.reshape(shape) if d.any() else None


def netx_bias(layer: dict, shape: tuple[int, ...], where: str) -> np.ndarray:
    """The bias mantissas per neuron (netx truncates them to integers), per channel for a map."""
    if "bias" not in layer:
        return np.zeros(shape)
    b = np.trunc(np.asarray(layer["bias"], dtype=np.float64)).ravel()
    if b.size == 1 or b.size == int(np.prod(shape)):
        return np.broadcast_to(b.reshape(shape) if b.size > 1 else b, shape).astype(np.float64)
    if len(shape) == 3 and b.size == shape[0]:
        return np.broadcast_to(b[:, None, None], shape).astype(np.float64)
    raise IRError(f"{where}: {b.size} biases for neurons of shape {shape}")
