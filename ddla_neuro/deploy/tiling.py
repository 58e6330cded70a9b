"""How Loihi 2's compiler puts layers onto cores (a profile's `mapping = "tiled"`), from the
chip's per-core limits: neuron slots and synapse-memory words. The rules are those the compiler's
own output shows (lava-dl's PilotNet LIF and SDNN benchmark notebooks print its per-core table
and its synapse-memory violations; the YOLO-KP notebook its per-core utilisation):

* A map (C, H, W) is cut into tiles of full channels and height and a power-of-two width, the
  width padded to a power of two and halved until the tile's slots (padded width x H x C) fit
  the core's neuron slots; if a one-column tile does not fit, the height is halved too, then
  the channels. Cores: one per tile. Convolution kernels are shared: each core stores its
  input channels x kernel x its output channels' weights once, whatever its tile's size; where
  a layer's whole kernels do not fit a core's synapse memory, its output channels are halved
  first until a core's share does (YOLO-KP's notebook: its 256- and 512-channel layers take 64
  channels a core, and every layer's core count then equals the compiler's).
* A flat layer of n neurons with a fan-in of A input axons stores, per axon and core, a header
  and one synapse to each of its neurons there: ceil((header + bits * n_core) / word) words,
  a synapse's bits its target's index and its weight, at the bits lava-dl's netx gives the
  compiler for the layer's weights (`weight_bits`: PilotNet LIF's 2,560-input layer 3, the
  SDNN's 4, which is why the two notebooks log 61,440 and 66,560 words for one shape).
  It starts on one core; while its synapse words or neurons overflow a core, its core count is
  multiplied by the largest overflow ratio (rounded up, at least 2), as the compiler iterates.
* A population fed one-to-one (the host's graded frames into an input layer's neurons) is tiled
  by its neurons, one input axon and one synapse a neuron.
* A frame written into bias registers has no synapses; a layer the host reads has no core.

An event reaches, of a tiled convolution's cores, those whose tiles its receptive field
overlaps (the mean over the source's positions), of a flat layer's cores all.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .spec import NetSpec, Population, Projection, projection_key

WINDOW_OPS = ("conv2d", "sumpool2d")


@dataclass(frozen=True)
class Limits:
    neurons: int        # neuron slots per core
    words: int          # synapse-memory words per core
    word_bits: int
    header_bits: int    # per input axon and core
    index_bits: int     # per synapse of a flat layer, beside its weight: its target neuron
    weight_bits: int    # per stored conv kernel weight; the most a synapse's weight takes


@dataclass(frozen=True)
class Tiles:
    cores: int
    share: float        # the busiest core's share of the layer's neurons (and work)
    words: int          # synapse-memory words of all its cores
    tile: tuple[int, ...] = ()  # a map's per-core tile (C, H, W)
    overflow: int = 0   # synapse words of its fullest core beyond a core's (0: it fits)
    # what set its core count: "one core" (it fits one), "neurons" (a core's slots), "synapse memory"
    # (a core's words: the fan-in too wide, or the kernels too large), "overflow" (neither holds
    # even at one neuron or one channel a core)
    binds: str = ""


def _pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def map_tile(shape: tuple[int, int, int], slots: int, channels: int | None = None) -> tuple[int, int, int]:
    """The per-core tile (c, h, w) of a (C, H, W) map: power-of-two width (padded), then height,
    then channels halved until c * h * padded w fits `slots`; at most `channels` channels (a
    core's share of shared kernels that would not fit its synapse memory whole)."""
    c, h, w = min(shape[0], channels or shape[0]), shape[1], _pow2(shape[2])
    while c * h * w > slots:
        if w > 1:
            w //= 2
        elif h > 1:
            h = -(-h // 2)
        elif c > 1:
            c = -(-c // 2)
        else:
            break
    return c, h, w


def _window(proj: Projection) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """The composed (kernel, stride, padding) per axis and input channels of a projection of
    window ops (a pool then a conv is one conv with a wider kernel); None for a flat one."""
    windows = [op for op in proj.ops if op.kind in WINDOW_OPS]
    if not windows or any(op.kind == "linear" for op in proj.ops):
        return None
    k, s, p = np.ones(2, int), np.ones(2, int), np.zeros(2, int)
    for op in windows:  # input-side first: each op's window is in the units of the one before
        k = k + (np.asarray(op.kernel) - 1) * s
        p = p + np.asarray(op.padding) * s
        s = s * np.asarray(op.stride)
    return k, s, p, int(windows[0].in_shape[0])


def _kernel_words(proj: Projection, out_channels: int, lim: Limits) -> int:
    """Words of a shared kernel per core: input channels x kernel x its output channels' weights."""
    k, _, _, cin = _window(proj)
    return cin * int(np.prod(k)) * math.ceil(out_channels * lim.weight_bits / lim.word_bits)


def _kernel_channels(fed: list[Projection], channels: int, lim: Limits) -> int:
    """The output channels a core can hold the shared kernels of: all of them, halved (rounding
    up) while their words overflow the core's synapse memory (one channel at the least)."""
    while channels > 1 and sum(_kernel_words(proj, channels, lim) for proj in fed) > lim.words:
        channels = -(-channels // 2)
    return channels


def _flat_words(axons: int, n: int, lim: Limits, bits: int) -> int:
    """Words of `axons` input axons, each with a synapse of `bits` weight bits to `n` neurons."""
    return axons * math.ceil((lim.header_bits + (lim.index_bits + bits) * n) / lim.word_bits)


def weight_bits(weight: np.ndarray | None, most: int) -> int:
    """The bits a flat layer's synapses store its weights in, as lava-dl's netx gives them to
    Loihi 2's compiler (`optimize_weight_bits`, on integer weights): mixed-sign weights clipped to
    -256..254 as it clips them, 8 less the bits of the largest power-of-two scale that keeps the
    weights within 8 bits (a sign bit counted where they have both signs), less the trailing zero
    bits all of them share (one fewer where signed); at least 1 and at most `most`. Other weights
    (a float model's, all zero, or none given) take `most`. Written here rather than called: lava-dl
    is a test dependency only, and its import prints warnings (tests check the two agree)."""
    if weight is None or np.size(weight) == 0:
        return most
    w = np.asarray(weight, dtype=np.float64)
    if not np.array_equal(w, np.rint(w)) or not w.any():
        return most
    if (w.max() > 254 and w.min() < 0) or (w.min() < -256 and w.max() > 0):
        w = np.clip(w, -256, 254)
    hi, lo = float(w.max()), float(w.min())
    signed = int(lo < 0 <= hi)  # lava-dl's mixed sign mode (all negative: inhibitory, none: excitatory)
    scale = min(127 / hi if hi else math.inf, -128 / lo) if signed else (-256 / lo if hi < 0 else 255 / hi)
    shared = next((n for n in range(8, 0, -1) if np.array_equal(w / 2 ** n, np.rint(w / 2 ** n))), 0)
    bits = 8 - (math.floor(math.log2(scale)) + signed) - (shared - signed)
    return min(max(bits, 1), most)


def _layer_bits(fed: list[Projection], lim: Limits) -> int:
    """The weight bits of a flat layer's synapses: its projections' widest."""
    return max(weight_bits(next((op.weight for op in proj.ops if op.weight is not None), None), lim.weight_bits)
               for proj in fed)


def _elementwise(proj: Projection) -> bool:
    """Whether each input reaches one neuron only (a scale: the host's graded frames into an input
    layer's neurons, lava-dl's `a_in`): one input axon and one synapse a neuron."""
    return all(op.kind in ("scale", "flatten") for op in proj.ops) and \
        int(np.prod(proj.ops[0].in_shape)) == int(np.prod(proj.ops[-1].out_shape))


def tile_population(pop: Population, lim: Limits) -> Tiles:
    """The cores of one population (module docstring)."""
    fed = [proj for proj in pop.inputs if not proj.to_bias]
    if fed and all(_elementwise(proj) for proj in fed):
        return _tile_elementwise(pop, len(fed), lim)
    if len(pop.shape) == 3 and all(_window(proj) for proj in fed):
        channels = _kernel_channels(fed, pop.shape[0], lim)
        tile = map_tile(tuple(pop.shape), lim.neurons, channels)
        cores, real = _map_cores(tuple(pop.shape), tile)
        words = sum(_kernel_words(proj, tile[0], lim) for proj in fed)
        binds = ("overflow" if words > lim.words else "synapse memory" if channels < pop.shape[0] and cores > 1
                 else "neurons" if cores > 1 else "one core")
        return Tiles(cores, real / pop.size, words * cores, tile, max(words - lim.words, 0), binds)
    axons = sum(int(np.prod(proj.ops[0].in_shape)) for proj in fed)
    bits = _layer_bits(fed, lim) if fed else lim.weight_bits
    cores = 1
    by_words = _flat_words(axons, pop.size, lim, bits) / lim.words >= pop.size / lim.neurons  # on one core, the larger
    while True:
        n = -(-pop.size // cores)
        ratio = max(_flat_words(axons, n, lim, bits) / lim.words, n / lim.neurons)
        if ratio <= 1 or n == 1:  # fits, or one neuron a core still does not: the fan-in is too wide
            break
        cores = min(cores * max(2, math.ceil(ratio)), pop.size)
    per_core = -(-pop.size // cores)  # the fullest core's neurons; the last core holds the rest
    full, rest = divmod(pop.size, per_core)
    words = full * _flat_words(axons, per_core, lim, bits) + (_flat_words(axons, rest, lim, bits) if rest else 0)
    overflow = max(_flat_words(axons, per_core, lim, bits) - lim.words, 0)
    binds = "overflow" if overflow else "one core" if cores == 1 else "synapse memory" if by_words else "neurons"
    return Tiles(cores, per_core / pop.size, words, (), overflow, binds)


def _map_cores(shape: tuple[int, int, int], tile: tuple[int, int, int]) -> tuple[int, int]:
    """(cores, real neurons of the fullest core) of a map cut into `tile`s (its padded width cut at the map's)."""
    (c, h, w), counts = tile, [-(-n // t) for n, t in zip(shape, tile)]
    return int(np.prod(counts)), c * h * min(w, shape[2])


def _tile_elementwise(pop: Population, inputs: int, lim: Limits) -> Tiles:
    """A population fed one-to-one: tiled by its neurons (a map as `map_tile`), each neuron's input
    axon holding its one synapse."""
    per_neuron = inputs * _flat_words(1, 1, lim, lim.weight_bits)
    if len(pop.shape) == 3:
        tile = map_tile(tuple(pop.shape), min(lim.neurons, lim.words // per_neuron))
        cores, real = _map_cores(tuple(pop.shape), tile)
    else:
        cores = -(-pop.size // min(lim.neurons, lim.words // per_neuron))
        real, tile = -(-pop.size // cores), ()
    return Tiles(cores, real / pop.size, pop.size * per_neuron, tile, 0, "neurons" if cores > 1 else "one core")


def reach(proj: Projection, target: Tiles, target_shape: tuple[int, ...]) -> float:
    """Of the target's cores, how many an event of the projection's source reaches, on average
    over the source's positions: those whose tile its receptive field overlaps (a tiled map), all
    of them (a flat layer)."""
    window = _window(proj) if target.tile else None
    if window is None:
        return float(target.cores)
    k, s, p, _ = window
    per_axis = []
    for axis, (size, tile) in enumerate(zip(target_shape[1:], target.tile[1:])):
        n_in = proj.ops[0].in_shape[1 + axis]
        hits = np.zeros(n_in)
        for lo in range(0, size, tile):  # the output rows (columns) of one tile, and the inputs they read
            first, last = lo * s[axis] - p[axis], (min(lo + tile, size) - 1) * s[axis] - p[axis] + k[axis] - 1
            hits[max(first, 0): min(last, n_in - 1) + 1] += 1
        per_axis.append(hits.mean())
    return float(np.prod(per_axis)) * -(-target_shape[0] // target.tile[0])


def map_tiled(spec: NetSpec, lim: Limits, units: dict[str, int] | None = None
              ) -> tuple[dict[str, Tiles], dict[str, float]]:
    """Per population its tiles (no cores for one the host reads), and per projection key the
    mean target cores an event reaches. `units`: the neuron slots a neuron of a population
    takes where it is not one (a DDLA selection's state)."""
    units = units or {}
    tiles = {pop.name: Tiles(0, 0.0, 0) if pop.host else
             tile_population(pop, replace(lim, neurons=lim.neurons // units.get(pop.name, 1)))
             for pop in spec.populations}
    reached = {projection_key(proj.source, pop.name): reach(proj, tiles[pop.name], tuple(pop.shape))
               for pop in spec.populations for proj in pop.inputs if not proj.to_bias}
    return tiles, reached
