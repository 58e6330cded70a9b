"""The loihi2 profile against Intel's Loihi 2 chip: the compiler's mapping (`tiling.py`) gives
Intel's per-layer core counts for PilotNet LIF and SDNN and follows its rules on hand-counted
layers; every energy and latency carries the band its profile states (`cost_run`); and the
profile's fitted values are the fit `benchmarks/loihi2_silicon.py` computes today."""
import contextlib
import io
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lava.lib.dl.netx.utils import optimize_weight_bits

from ddla_neuro.deploy.cost import cost_run
from ddla_neuro.deploy.ir.netx import read_netx
from ddla_neuro.deploy.profiles import load_profile
from ddla_neuro.deploy.sim import simulate
from ddla_neuro.deploy.spec import NetSpec, Op, Population, Projection, SPIKES, Sends, assign_depths, window_op
from ddla_neuro.deploy.tiling import Limits, map_tile, map_tiled, tile_population, weight_bits

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import loihi2_silicon  # noqa: E402
from pilotnet_frames import LIF, SDNN  # noqa: E402

LIMITS = Limits(neurons=4095, words=12000, word_bits=64, header_bits=16, index_bits=12, weight_bits=8)


def test_pilotnets_take_the_cores_intels_compiler_gave_them():
    """Intel's compiler's table (pilotnet_{snn,sdnn}/benchmark.ipynb): 74 cores for LIF, input first;
    the SDNN with its input layer on the host: the same without the input's 13 (61)."""
    tiles, _ = map_tiled(read_netx(LIF, 16, encoding="bias"), LIMITS)
    assert [t.cores for t in tiles.values()] == [13, 25, 13, 3, 3, 2, 12, 1, 1, 1, 0]  # the host reads the last
    assert [t.tile for t in tiles.values()][:6] == [(3, 66, 16), (24, 32, 4), (36, 15, 4), (48, 7, 8), (64, 4, 8),
                                                   (64, 2, 16)]  # the notebook's Conv(w, h, c) tags
    sdnn, _ = map_tiled(read_netx(SDNN, 16, encoding="graded-host"), LIMITS)
    assert sum(t.cores for t in sdnn.values()) == 61
    on_chip, _ = map_tiled(read_netx(SDNN, 16, encoding="graded"), LIMITS)  # the host's frames into its input layer:
    assert [t.cores for t in on_chip.values()][0] == 13  # one axon and one synapse a neuron, tiled as LIF's input


def flat(n_in: int, n_out: int) -> Population:
    """A dense layer of weights -6 and 6: 3 bits a weight, as PilotNet LIF's 2,560-input layer."""
    w = np.where(np.arange(n_out * n_in).reshape(n_out, n_in) % 2, 6.0, -6.0)
    return Population("dense", (n_out,), "cuba", np.zeros(n_out),
                      [Projection("input", [Op("linear", (n_in,), (n_out,), w)])], sends=SPIKES)


def test_the_pilotnets_dense_layers_take_the_words_the_compilers_log():
    """On one core (before a split), per input axon a 16-bit header and per synapse 12 index bits
    and the layer's weight bits (lava-dl's: LIF 3, 4, 5, 6; SDNN 4 first): LIF 61,440, 1,300, 150
    and 10 words (pilotnet_snn/benchmark.ipynb's log), the SDNN's first 66,560 (its notebook)."""
    one_core = replace(LIMITS, words=10**9)
    lif = [p for p in read_netx(LIF, 16, encoding="bias").populations if len(p.shape) == 1 and not p.host]
    assert [tile_population(p, one_core).words for p in lif] == [61440, 1300, 150, 10]
    sdnn = [p for p in read_netx(SDNN, 16, encoding="graded-host").populations if len(p.shape) == 1]
    assert tile_population(sdnn[0], one_core).words == 66560


@given(st.integers(1, 6).flatmap(lambda n: st.lists(st.integers(-300, 300), min_size=n, max_size=n)),
       st.integers(0, 7))
@settings(max_examples=300, deadline=None)
def test_weight_bits_are_lava_dls(values, shift):
    """Our weight bits equal lava-dl's `optimize_weight_bits` on integer weights (shared trailing
    zeros included; out of its range too, where it clips mixed signs and scales the rest)."""
    w = (np.asarray(values, dtype=np.float64) * 2 ** shift).reshape(1, -1)
    if not w.any():
        return
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(divide="ignore"):  # its 127 / 0 is inf
        lava_bits = int(optimize_weight_bits(w.copy())[1])
    assert weight_bits(w, 8) == min(max(lava_bits, 1), 8)


def test_a_dense_layer_splits_as_the_compiler_iterates():
    """2,560 inputs -> 100 neurons of 3-bit weights: 2,560 x ceil((16 + 15 x 100) / 64) = 61,440 words, 5.12 times the
    12,000 a core holds: x6 cores (17 neurons, 5 words an axon: 12,800, still over), x2: 12 cores of
    9 (11 of them full), 7,680 words each; a fan-in of 100 fits one core. Neurons overflow too:
    10,000 on a small fan-in need ceil(10,000 / 4,095) = 3."""
    big = tile_population(flat(2560, 100), LIMITS)
    assert (big.cores, big.words, big.share) == (12, 2560 * (3 * 11 + 1), 0.09)
    assert tile_population(flat(100, 50), LIMITS).cores == 1
    assert tile_population(flat(4, 10000), LIMITS).cores == 3


def test_a_map_tiles_in_power_of_two_columns_then_rows_then_channels():
    """The tile keeps every channel and row while a column fits: padded widths; a 20-column map of
    2 x 64 cannot take 32 columns (4,096 slots > 4,095), so 16 (two cores, one holding 4 real
    columns); a map too tall for one column halves its rows, then its channels."""
    assert map_tile((64, 2, 20), 4095) == (64, 2, 16)
    assert map_tile((3, 66, 200), 4095) == (3, 66, 16)
    assert map_tile((1, 8192, 1), 4095) == (1, 2048, 1)
    assert map_tile((8192, 1, 1), 4095) == (2048, 1, 1)


def conv_chain() -> NetSpec:
    """Input 1 x 8 x 32 -> conv 3x3 (pad 1) 4 x 8 x 32, tiled at 128 slots: 4 columns (4 x 8 x 4) a core."""
    w = np.ones((4, 1, 3, 3))
    conv = Op("conv2d", (1, 8, 32), (4, 8, 32), w, (1, 1), (1, 1), (3, 3))
    pops = [Population("conv", (4, 8, 32), "cuba", np.zeros((4, 8, 32)), [Projection("input", [conv])], sends=SPIKES),
            Population("out", (1,), "readout", np.zeros(1),
                       [Projection("conv", [Op("flatten", (4, 8, 32), (1024,)),
                                            Op("linear", (1024,), (1,), np.ones((1, 1024)))])],
                       sends=Sends(graded=True, bits=24))]
    assign_depths(pops)
    return NetSpec((1, 8, 32), 2, "events", pops, fixed=True, input_sends=SPIKES)


def test_an_event_reaches_the_conv_cores_its_receptive_field_overlaps():
    """A 4-column tile of a 3x3 padded conv reads 6 input columns (its 4 and one each side): of 32
    input columns, the 14 beside the 7 edges between 8 tiles reach two cores, the rest one: 46 / 32
    on average (the explicit mapping sends every event to every core); a dense target's every core
    is reached."""
    lim = replace(LIMITS, neurons=128)
    tiles, reach = map_tiled(conv_chain(), lim)
    assert tiles["conv"].cores == 8 and tiles["conv"].tile == (4, 8, 4)
    assert reach["input>conv"] == pytest.approx(46 / 32)
    assert reach["conv>out"] == tiles["out"].cores == 1


def test_every_energy_and_latency_carries_the_band_its_profile_states():
    """The band is the run costed at every figure's low and high end: here loihi's SANA-FE figures
    (12% energy, 25% latency) bound the value, and the low end equals the cost on a profile whose
    values are the lows; generic-45nm states no uncertainty: null."""
    spec = read_netx(LIF, 4, encoding="bias")
    frames = np.zeros((1, 4, 3, 66, 200)) + 20
    counts = simulate(spec, frames, "dense").counts
    plan = {"input": "dense", **{p.name: "dense" for p in spec.senders}}
    loihi = load_profile("loihi")
    totals = cost_run(spec, counts, loihi, plan)["totals"]
    for key in ("energy_j", "dynamic_energy_j", "latency_s"):
        low, high = totals["band"][key]
        assert low < totals[key] < high, key
    assert totals["band"]["energy_j"][0] == cost_run(spec, counts, loihi.bound("low"), plan)["totals"]["energy_j"]
    assert cost_run(spec, counts, load_profile("generic-45nm"), plan)["totals"]["band"] is None


def test_the_loihi2_profile_holds_the_fit_to_intels_run():
    """Every fitted loihi2 energy is its prior times the one energy factor the three runs give (its
    band: their lowest and highest), every fitted time likewise, the static power the published
    runs' mean: recomputed from the simulator and the mapping as they are now, so a change to
    either that moves the fit fails here until the profile is fitted again."""
    profile = load_profile("loihi2")
    spec, counts = loihi2_silicon.pilotnet_run()
    before = loihi2_silicon.ours(spec, counts, profile.bound("prior"))
    assert loihi2_silicon.holds(profile, loihi2_silicon.fit(before, profile))
    after = loihi2_silicon.ours(spec, counts, profile)
    assert after["cores"]["per_layer"] == list(loihi2_silicon.COMPILER_CORES)
    # the runs' spread, by the fit
    assert after["band"]["dynamic_energy_j"] == pytest.approx([0.562e-3, 1.094e-3], rel=1e-4)


def test_yolo_kp_takes_the_cores_intels_compiler_gave_it():
    """lava-dl's YOLO-KP (yolo_kp/run.ipynb, its compiler's per-core table, 574 cores): ten 3 x 3 and
    1 x 1 sigma-delta convs from 224 x 224 x 16 to 14 x 14 x 48, input on the host. Where a layer's
    whole kernels overflow a core's synapse memory (256 inputs x 9 x 256 outputs), its channels
    are split first, so the layers of 256 and 512 channels take 16, 32, 14 and 32 cores, as the
    compiler's, not 14 and 28 as full-channel columns would."""
    layers = [(16, 3, 2), (32, 3, 2), (64, 3, 2), (128, 3, 2), (256, 3, 1), (256, 3, 2), (512, 3, 1), (256, 1, 1),
              (512, 3, 1), (48, 1, 1)]
    shape, source, pops = (3, 448, 448), "input", []
    for i, (channels, kernel, stride) in enumerate(layers):
        op = window_op("conv2d", shape, channels, kernel, stride, kernel // 2,
                       np.ones((channels, shape[0], kernel, kernel)))
        pops.append(Population(f"conv{i + 1}", op.out_shape, "sdnn", np.zeros(op.out_shape),
                               [Projection(source, [op])], sends=Sends(graded=True, bits=16)))
        shape, source = op.out_shape, f"conv{i + 1}"
    assert [pops[i].shape for i in (0, 4, 9)] == [(16, 224, 224), (256, 28, 28), (48, 14, 14)]
    assign_depths(pops)
    tiles = [tile_population(p, LIMITS) for p in pops]
    assert [t.cores for t in tiles] == [224, 112, 56, 28, 56, 16, 32, 14, 32, 4]  # the compiler's, per layer
    assert sum(t.cores for t in tiles) == 574
    assert [t.binds for t in tiles][4:9] == ["synapse memory"] * 5
