"""python -m ddla_neuro.deploy --profile loihi2

Deploys a trained model (default: the one shipped in `models/`) to the Lava delta-spike network,
runs the test split in dense, delta and DDLA mode (and a DDLA keep-ratio sweep), checks the
runs against each other, costs them on a hardware profile and writes report.json, report.md
and plots. Prints the per-layer table and the totals.
"""
from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from ..ddla.selection import DEFAULT_RULE, RULES
from ..devices import DEVICES
from . import shard
from .ir import NIR_SOURCES
from .ir.netx import NETX_ENCODINGS
from .lava_run import LAVA_GRAPHS
from .loading import DEFAULT_CALIBRATION
from .pipeline import SWEEP_KEEPS, DeployOptions, deploy
from .profiles import list_profiles
from .report import keep_choice_line, layer_table, selection_line, totals_table, uncertainty_line, write_report

DEFAULTS = {f.name: f.default for f in fields(DeployOptions)}  # the parser's defaults are the API's
SWEEP = ",".join(f"{k:g}" for k in SWEEP_KEEPS)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ddla_neuro.deploy", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", required=True,
                    help=f"hardware profile: a shipped name ({', '.join(list_profiles())}) or a .toml path")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--checkpoint",
                     help="model.pt from ddla_neuro.train (default: the shipped models/digits-convnet-ddla)")
    src.add_argument("--nir", help="a NIR graph file (direct input encoding; needs --dataset)")
    src.add_argument("--netx", help="a lava-dl netx file (.net: input, conv, pool, flatten and dense layers of CUBA, "
                                    "LOIHI or SDNN neurons; needs --dataset or --frames)")
    ap.add_argument("--netx-encoding", choices=NETX_ENCODINGS, default=DEFAULTS["netx_encoding"],
                    help="what a netx network receives: events (the dataset's event frames, default); if-rate "
                         "(images in [0, 1] rate-coded by an integrate-and-fire neuron, threshold 1, as lava-dl's "
                         "MNIST netx tutorial trained it); bias (a frame per sample written into the input layer's "
                         "bias, held every step: lava-dl's PilotNet LIF); graded (integers into the input layer's "
                         "sigma-delta neurons every step); graded-host (the same stream delta-encoded on the host, "
                         "lava-dl's skip_layers=1: the input layer takes no place on the chip). bias and graded* "
                         "take --frames (integers as they are) or --dataset (images in [0, 1] through the input "
                         "layer's transform 2 w x - w + b, as lava-dl's PilotNet dataset class does)")
    ap.add_argument("--netx-layers", type=int, metavar="N",
                    help="read only the netx file's first N layers, as lava-dl's netx.hdf5.Network(num_layers=N) "
                         "does (lava-dl's NTIDIGITS network ends in an average layer its runner cannot build)")
    ap.add_argument("--frames", metavar="FILE",
                    help="a .npy (or .npz with one array) of integer input for --netx-encoding bias (one frame per "
                         "sample, (N, C, H, W), or one frame; lava-dl's (W, H, C) too, as its image.npy) or graded "
                         "(streams (N, T, C, H, W), or one stream); no labels: no accuracy is reported")
    ap.add_argument("--reset-interval", type=int, metavar="N",
                    help="a stream of inferences: every neuron's state returns to zero every N steps (lava-dl's "
                         "netx.hdf5.Network(reset_interval=N)); the report adds figures per inference")
    ap.add_argument("--reset-offset", type=int, metavar="K",
                    help="the resets' phase, lava-dl's reset_offset: netx layer k resets at time steps t with "
                         "t %% N == K + 1 + k; for other models, the first reset comes before step K (0-based)")
    ap.add_argument("--timesteps", type=int,
                    help="timesteps of a NIR graph whose metadata lacks them, or of a netx file (default: its stored "
                         "tSample, or the length of --frames streams)")
    ap.add_argument("--nir-source", default=DEFAULTS["nir_source"], choices=sorted(NIR_SOURCES),
                    help="the library that wrote the NIR graph: its time step and reset conventions "
                         "(default generic: the graph's metadata)")
    ap.add_argument("--nir-dt", type=float, help="the NIR exporter's time step, overriding --nir-source's")
    ap.add_argument("--dataset", help="dataset to run (default: the checkpoint's)")
    ap.add_argument("--data-dir", help="directory of a dataset that is not bundled")
    ap.add_argument("--samples", type=int, help="run the first N test samples (default: all)")
    ap.add_argument("--mode",
                    help="comma-separated modes from dense,delta,ddla (default: all the model supports)")
    ap.add_argument("--keep",
                    help="DDLA keep ratio k, or a comma-separated sweep such as 1,0.7,0.5,0.3; the first is the "
                         f"ddla mode's (default: the checkpoint's k, swept with {SWEEP}). A per-layer k gives "
                         "one ratio per spiking layer joined by ':' (0.7:0.5:0.3), from the stored statistics")
    ap.add_argument("--selection", choices=tuple(RULES),
                    help="DDLA's rule: which pending changes a layer sends. " + "; ".join(
                        f"{r.name}: {r.summary}{'' if r.neuron_local else ' (not neuron-local: no Loihi core runs it)'}"
                        for r in RULES.values()) + " (default: the rule the model was trained with, else "
                        f"{DEFAULT_RULE}). A neuron-local rule's thresholds come from the checkpoint at its own k, "
                        "else are set on --calibration-samples training samples to send the share k of each layer's "
                        "pending changes")
    ap.add_argument("--calibration-samples", type=int, default=DEFAULTS["calibration_samples"], metavar="N",
                    help="training samples a neuron-local rule's thresholds are set on (default "
                         f"{DEFAULT_CALIBRATION}, or the whole training split where it is smaller)")
    ap.add_argument("--ddla-calibrate", type=int, metavar="N",
                    help="DDLA for a model trained without it (a NIR graph, a netx network of CUBA neurons, a baseline "
                         "checkpoint): measure its "
                         "sensitivity statistics on the first N samples of the dataset's training split through "
                         "a torch twin of the network (surrogate gradients; nothing is trained)")
    goal = ap.add_mutually_exclusive_group()
    goal.add_argument("--accuracy-floor", type=float, metavar="A",
                      help="energy-aware DDLA: choose the per-layer k of least energy on --profile whose accuracy on "
                           "a validation split (--validation-samples test samples drawn with --seed, then left out "
                           "of the report) is at least A (a fraction: 0.97); the chosen k leads the sweep, the best "
                           "uniform k follows")
    goal.add_argument("--energy-target", type=float, metavar="J",
                      help="energy-aware DDLA the other way round: the most accurate per-layer k on the validation "
                           "split whose energy per inference on --profile is at most J joules (3e-5 for 30 uJ)")
    ap.add_argument("--validation-samples", type=int, metavar="V",
                    help="samples --accuracy-floor or --energy-target chooses k on (default: half the test split, "
                         "at most 2000)")
    ap.add_argument("--backend", choices=("lava", "fast"), default=DEFAULTS["backend"],
                    help="lava: Lava's CPU simulator; fast: the bit-exact batched simulator, for full test sets")
    ap.add_argument("--lava-graph", choices=LAVA_GRAPHS, default=DEFAULTS["lava_graph"],
                    help="fused (default, faster): one Lava process per population with one projection; split: a "
                         "synapse process per projection and a neuron process per population; the same figures")
    ap.add_argument("--lava-batch", type=int, default=DEFAULTS["lava_batch"], metavar="B",
                    help="samples Lava runs in lockstep (every process state carries a batch dimension); the same "
                         f"figures, faster per sample (default: {DEFAULTS['lava_batch']}; 1: one sample at a time)")
    prec = ap.add_mutually_exclusive_group()
    prec.add_argument("--fixed", dest="fixed", action="store_true", default=DEFAULTS["fixed"],
                      help="Loihi fixed point (default)")
    prec.add_argument("--float", dest="fixed", action="store_false", help="floating point")
    ap.add_argument("--out", default=DEFAULTS["out"], help=f"output directory (default: {DEFAULTS['out']})")
    ap.add_argument("--save-activity", metavar="DIR",
                    help="write every layer's output per step, for each mode run: DIR/MODE/LAYER.npy of shape "
                         "(samples, steps, *layer shape); spikes as 0/1, graded outputs (sigma-delta messages, the "
                         "readout) as their integers")
    ap.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of the input encoding (Poisson)")
    ap.add_argument("--timeout", type=float, help="seconds before a Lava run is killed (default: generous)")
    ap.add_argument("--cross-check", choices=("sanafe",),
                    help="sanafe: cost the first --cross-check-samples samples with SANA-FE's silicon-fitted Loihi "
                         "model too, next to ours, in every mode run (--profile loihi, fixed point; needs sanafe)")
    ap.add_argument("--cross-check-samples", type=int, default=DEFAULTS["cross_check_samples"],
                    help=f"samples SANA-FE simulates for --cross-check (default "
                         f"{DEFAULTS['cross_check_samples']}: it takes seconds per sample)")
    ap.add_argument("--device", default=DEFAULTS["device"], choices=DEVICES,
                    help="where the fast simulator runs (and Lava's cross-check run of it): cpu (default), cuda "
                         "(under torchrun, each rank's GPU) or auto; the fixed-point figures are the same on both")
    return ap


def print_report(report: dict, paths: list[Path]) -> None:
    m = report["model"]
    print(f"{m['source']}: {m['arch']} on {m['dataset']} ({report['run']['samples']} test samples, T={m['timesteps']}, "
          f"{m['precision']} point) on {report['profile']['name']}, {report['run']['backend']} backend\n")
    for mode in report["modes"]:
        print(f"{mode}:")
        print("\n".join(layer_table(report, mode)) + "\n")
    print("\n".join(totals_table(report)) + "\n")
    print(uncertainty_line(report))
    if "keep_choice" in report:
        print(keep_choice_line(report["keep_choice"]))
    if "ddla" in report["modes"]:
        print(selection_line(report["modes"]["ddla"]["selection"]))
    unknown = sorted({t for md in report["modes"].values() for t in md["totals"]["unknown_terms"]})
    if unknown:
        print(f"unknown in this profile (left out of energy/latency): {', '.join(unknown)}")
    for name, ok in report["checks"].items():
        print(f"check: {name}: {'yes' if ok else 'NO'}")
    if "cross_check" in report:
        c = report["cross_check"]
        ratios = "; ".join(f"{mode} energy {m['energy_j']['ratio']:.2f}, latency {m['latency_s']['ratio']:.2f}"
                           for mode, m in c["modes"].items())
        print(f"cross-check {c['tool']} ({c['samples']} samples), ours / SANA-FE: {ratios} (report.md: by term)")
    print(f"wrote {', '.join(str(p) for p in paths)}")


def parse_options(argv: list[str] | None = None) -> DeployOptions:
    """The command line as `DeployOptions` (every flag's destination is a field of the same name)."""
    return DeployOptions(**vars(build_parser().parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    part = shard.start(options.backend)  # under torchrun: this process's share of the samples
    try:
        report = deploy(options, part)
        if part.rank == 0:
            print_report(report, write_report(report, options.out))
    finally:
        shard.stop(part)
    return 0 if all(report["checks"].values()) else 1
