"""python -m ddla_neuro.deploy --profile loihi2

Deploys a trained model (default: the one shipped in `models/`) to the Lava delta-spike network,
runs the test split in dense, delta and DDLA mode (and a DDLA keep-ratio sweep), checks the
runs against each other, costs them on a hardware profile and writes report.json, report.md
and plots. Prints the per-layer table and the totals.
"""
from __future__ import annotations

import argparse
import io
import os
from dataclasses import replace
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import __version__
from ..checkpoint import checkpoint_dataset, load_checkpoint
from ..data import load_dataset
from ..ddla.keep import Keep, KeepError, keep_label, mean_keep, parse_keep, per_layer
from ..devices import DEVICES, select_device
from ..errors import UserError
from ..fileio import publish
from ..snn.encoders import encode
from . import shard
from .calibrate import CalibrationError, calibrate
from .cost import cheaper_plan, cost_run, literature_energy, mix_counts, mode_plan, sender_costs
from .ir import NIR_SOURCES, checkpoint_to_spec, input_frames, nir_to_spec, read_nir
from .ir.netx import FRAME_ENCODINGS, NETX_ENCODINGS, load_netx_layers, netx_to_spec, stored_timesteps
from .ir.netx_input import frames_layout, input_transform, netx_frames, transform_images
from .keep_choice import choose_keep, measure_on, validation_split
from .lava_run import LAVA_BATCH, LAVA_GRAPHS, check_lava_mappable, estimate_lava_seconds, lava_processes, run_lava
from .profiles import list_profiles, load_profile
from .quant import quantize, quantize_input
from .report import SCHEMA_VERSION, keep_choice_line, layer_table, totals_table, uncertainty_line, write_report
from .run import MODES, Counts
from .sanafe_net import check_exportable, cross_check, require_sanafe
from .sim import simulate
from .spec import NEURON_KINDS, SIGMA_DELTA_KINDS, NetSpec

# models/ at the top of the repository, shipped in the wheel as package data
DEFAULT_CHECKPOINT = Path(str(files("ddla_neuro.models"))) / "digits-convnet-ddla" / "model.pt"
SWEEP_KEEPS = (1.0, 0.7, 0.5, 0.3)  # added to the checkpoint's own keep ratio when --keep is not given


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
    ap.add_argument("--netx-encoding", choices=NETX_ENCODINGS, default="events",
                    help="what a netx network receives: events (the dataset's event frames, default); if-rate "
                         "(images in [0, 1] rate-coded by an integrate-and-fire neuron, threshold 1, as lava-dl's "
                         "MNIST netx tutorial trained it); bias (a frame per sample written into the input layer's "
                         "bias, held every step: lava-dl's PilotNet LIF); graded (integers into the input layer's "
                         "sigma-delta neurons every step); graded-host (the same stream delta-encoded on the host, "
                         "lava-dl's skip_layers=1: the input layer takes no place on the chip). bias and graded* "
                         "take --frames (integers as they are) or --dataset (images in [0, 1] through the input "
                         "layer's transform 2 w x - w + b, as lava-dl's PilotNet dataset class does)")
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
    ap.add_argument("--nir-source", default="generic", choices=sorted(NIR_SOURCES),
                    help="the library that wrote the NIR graph: its time step and reset conventions "
                         "(default generic: the graph's metadata)")
    ap.add_argument("--nir-dt", type=float, help="the NIR exporter's time step, overriding --nir-source's")
    ap.add_argument("--dataset", help="dataset to run (default: the checkpoint's)")
    ap.add_argument("--data-dir", help="directory of a dataset that is not bundled")
    ap.add_argument("--samples", type=int, help="run the first N test samples (default: all)")
    ap.add_argument("--mode", default=None,
                    help="comma-separated modes from dense,delta,ddla (default: all the model supports)")
    ap.add_argument("--keep", default=None,
                    help="DDLA keep ratio k, or a comma-separated sweep such as 1,0.7,0.5,0.3; the first is the "
                         "ddla mode's (default: the checkpoint's k, swept with 1,0.7,0.5,0.3). A per-layer k gives "
                         "one ratio per spiking layer joined by ':' (0.7:0.5:0.3), from the stored statistics")
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
    ap.add_argument("--backend", choices=("lava", "fast"), default="lava",
                    help="lava: Lava's CPU simulator; fast: the bit-exact batched simulator, for full test sets")
    ap.add_argument("--lava-graph", choices=LAVA_GRAPHS, default="fused",
                    help="fused (default, faster): one Lava process per population with one projection; split: a "
                         "synapse process per projection and a neuron process per population; the same figures")
    ap.add_argument("--lava-batch", type=int, default=LAVA_BATCH, metavar="B",
                    help="samples Lava runs in lockstep (every process state carries a batch dimension); the same "
                         f"figures, faster per sample (default: {LAVA_BATCH}; 1: one sample at a time)")
    prec = ap.add_mutually_exclusive_group()
    prec.add_argument("--fixed", dest="fixed", action="store_true", default=True, help="Loihi fixed point (default)")
    prec.add_argument("--float", dest="fixed", action="store_false", help="floating point")
    ap.add_argument("--out", default="runs/deploy", help="output directory (default: runs/deploy)")
    ap.add_argument("--save-activity", metavar="DIR",
                    help="write every layer's output per step, for each mode run: DIR/MODE/LAYER.npy of shape "
                         "(samples, steps, *layer shape); spikes as 0/1, graded outputs (sigma-delta messages, the "
                         "readout) as their integers")
    ap.add_argument("--seed", type=int, default=0, help="seed of the input encoding (Poisson)")
    ap.add_argument("--timeout", type=float, help="seconds before a Lava run is killed (default: generous)")
    ap.add_argument("--cross-check", choices=("sanafe",),
                    help="sanafe: cost the first --cross-check-samples samples with SANA-FE's silicon-fitted Loihi "
                         "model too, next to ours, in every mode run (--profile loihi, fixed point; needs sanafe)")
    ap.add_argument("--cross-check-samples", type=int, default=2,
                    help="samples SANA-FE simulates for --cross-check (default 2: it takes seconds per sample)")
    ap.add_argument("--device", default="cpu", choices=DEVICES,
                    help="where the fast simulator runs (and Lava's cross-check run of it): cpu (default), cuda "
                         "(under torchrun, each rank's GPU) or auto; the fixed-point figures are the same on both")
    return ap


def _keeps(values: list, spec: NetSpec) -> list[Keep]:
    """Keep ratios (text, floats or a checkpoint's per-layer dicts) for `spec`, duplicates dropped."""
    layers = [p.name for p in spec.spiking]
    try:
        keeps = [per_layer(parse_keep(v) if isinstance(v, str) else v, layers) for v in values]
    except KeepError as e:
        raise UserError(f"--keep: {e}") from None
    return list({keep_label(k): k for k in keeps}.values())


def check_writable(out: Path) -> None:
    """Fails before any work when the report could not be written: --out names a file, or the
    directory that would hold it is read-only or full (a probe of one page is written and removed)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; name a directory for the report")
    existing = next(p for p in (out, *out.parents) if p.exists())
    try:
        with tempfile.TemporaryFile(dir=existing) as probe:
            probe.write(bytes(4096))
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as e:
        raise UserError(f"cannot write the report to {out}: {existing} is not writable ({e.strerror or e}); "
                        f"pick another --out") from None


def load_model(args: argparse.Namespace) -> tuple[NetSpec, np.ndarray, np.ndarray | None, dict]:
    """The spec (float, but a netx file's in fixed point), the test frames (N, T, ...), the labels
    (None for unlabelled frames) and the model's description."""
    if args.netx:
        return _load_netx(args)
    if args.nir:
        if not args.dataset:
            raise UserError("--nir needs --dataset (and --data-dir if it is not bundled): the graph names no data")
        spec = nir_to_spec(read_nir(args.nir), timesteps=args.timesteps, source=args.nir_source, dt=args.nir_dt)
        if spec.encoding != "direct":
            raise UserError(f"--nir graphs with {spec.encoding!r} input encoding are not supported; "
                            f"deploy a checkpoint instead, which carries its encoder")
        data = load_dataset(args.dataset, args.data_dir, spec.timesteps)
        if len(spec.input_shape) != 1 or data.x_test[0].numel() != spec.input_shape[0]:
            if data.input_shape != spec.input_shape:
                raise UserError(f"{args.dataset} inputs have shape {data.input_shape}, the NIR graph takes "
                                f"{spec.input_shape}; pick a matching dataset")

        def frames_of(x: torch.Tensor) -> np.ndarray:  # a flat input (an MLP) reads the images flattened, C order
            return np.repeat(x.numpy().reshape(len(x), *spec.input_shape)[:, None], spec.timesteps, axis=1)
        frames = frames_of(data.x_test)
        spec = _calibrated(args, spec, data, frames_of)
        model = {"source": str(args.nir), "arch": "nir", "dataset": args.dataset, "method": None, "trained_keep": None,
                 "nir_source": args.nir_source, "nir_dt": spec.meta["nir_dt"]}
    else:
        path = args.checkpoint or DEFAULT_CHECKPOINT
        ckpt = load_checkpoint(path)
        name, data = checkpoint_dataset(ckpt, args.dataset, args.data_dir)
        spec = checkpoint_to_spec(ckpt)
        frames = input_frames(ckpt.net, data.x_test, torch.Generator().manual_seed(args.seed))
        spec = _calibrated(args, spec, data,
                           lambda x: input_frames(ckpt.net, x, torch.Generator().manual_seed(args.seed + 1)))
        model = {"source": str(path), "arch": ckpt.meta["arch"]["name"], "dataset": name,
                 "method": ckpt.meta.get("method"), "trained_keep": ckpt.meta.get("keep")}
    if args.reset_interval:  # the spec's aligned steps: the first reset before step --reset-offset
        spec = replace(spec, reset_interval=args.reset_interval, reset_offset=args.reset_offset or 0)
    model.update(timesteps=spec.timesteps, encoding=spec.encoding, precision="fixed" if args.fixed else "float",
                 ddla_calibration=args.ddla_calibrate)
    return spec, frames, data.y_test.numpy(), model


def _calibrated(args: argparse.Namespace, spec: NetSpec, data, frames_of, twin: NetSpec | None = None) -> NetSpec:
    """--ddla-calibrate N: the spec with DDLA statistics measured on the first N training samples
    (`calibrate.py`), replacing any it had; `frames_of` encodes raw inputs as the network takes
    them; `twin`: the float network to calibrate where `spec` is in fixed point (netx)."""
    n = args.ddla_calibrate
    if n is None:
        return spec
    if not 1 <= n <= len(data.x_train):
        raise UserError(f"--ddla-calibrate takes 1 to {len(data.x_train)} samples (the training split of "
                        f"{data.name}), got {n}")
    try:
        scores = calibrate(twin or spec, frames_of(data.x_train[:n]), data.y_train[:n].numpy())
    except CalibrationError as e:
        raise UserError(f"--ddla-calibrate: {e}") from None
    return replace(spec, scores=scores)


def _load_netx(args: argparse.Namespace) -> tuple[NetSpec, np.ndarray, np.ndarray | None, dict]:
    """A netx network and its input: spikes (an event dataset's frames, or images rate-coded by
    `if-rate`) or, for an input layer of neurons, integer frames (`--frames`, or a dataset's
    images through the layer's transform). Its spec (fixed point: the file's integers as they
    are; `--float`: scaled to a threshold of 1), the frames (N, T, ...) in the network's input
    shape, labels (None for `--frames`) and description."""
    encoding = args.netx_encoding
    if args.ddla_calibrate is not None and args.frames:
        raise UserError("--ddla-calibrate measures on a dataset's training split: give --dataset instead of --frames")
    if args.frames and encoding not in FRAME_ENCODINGS:
        raise UserError(f"--frames feeds --netx-encoding {', '.join(FRAME_ENCODINGS)} (integers written into the "
                        f"input layer's neurons); {encoding} input comes from a --dataset")
    if not args.frames and not args.dataset:
        raise UserError("--netx needs --dataset (or --frames with --netx-encoding bias, graded or graded-host): the "
                        "file names no data")
    layers = load_netx_layers(args.netx)
    timesteps = args.timesteps or stored_timesteps(args.netx)
    reset = {"reset_interval": args.reset_interval or 0, "reset_offset": args.reset_offset or 0}
    if encoding in FRAME_ENCODINGS:
        spec, frames, labels, name, calibration = _netx_frame_input(args, layers, timesteps, reset)
    else:
        if not timesteps:
            raise UserError(f"{args.netx} stores no steps per sample (simulation/tSample): give --timesteps")
        spec, frames, labels, calibration = _netx_spike_input(args, layers, timesteps, reset)
        name = args.dataset
    graded = [p.name for p in spec.populations if p.kind in SIGMA_DELTA_KINDS]
    if calibration is not None and graded:
        raise UserError(f"--ddla-calibrate: {', '.join(graded)} are sigma-delta neurons, whose graded messages DDLA's "
                        f"selection does not rank; deploy the network in dense or delta mode")
    if calibration is not None:  # the file's float network (scaled to a threshold of 1) takes the same frames
        twin = replace(netx_to_spec(layers, spec.timesteps, False, spec.input_shape, str(args.netx), encoding, **reset),
                       timesteps=spec.timesteps)
        spec = _calibrated(args, spec, *calibration, twin=twin)
    model = {"source": str(args.netx), "arch": "netx", "dataset": name, "method": None, "trained_keep": None,
             "timesteps": spec.timesteps, "encoding": encoding, "precision": "fixed" if args.fixed else "float",
             "ddla_calibration": args.ddla_calibrate}
    return spec, frames, labels, model


def _netx_spike_input(args: argparse.Namespace, layers: list, timesteps: int, reset: dict
                      ) -> tuple[NetSpec, np.ndarray, np.ndarray, tuple | None]:
    """(spec, frames, labels, with --ddla-calibrate the dataset and its encoder of raw inputs)."""
    data = load_dataset(args.dataset, args.data_dir, timesteps)
    rate = args.netx_encoding == "if-rate"
    if data.is_events == rate:
        raise UserError(f"{args.dataset} holds {'event frames' if data.is_events else 'images'}: use "
                        f"--netx-encoding {'events' if data.is_events else 'if-rate'} (a netx network takes spikes)")
    def spikes_of(x: torch.Tensor) -> np.ndarray:
        return (encode(x, "if-rate", timesteps).transpose(0, 1) if rate else x).numpy()
    spikes = spikes_of(data.x_test)
    spec = netx_to_spec(layers, timesteps, args.fixed, spikes.shape[2:], str(args.netx), args.netx_encoding, **reset)
    if int(np.prod(spikes.shape[2:])) != int(np.prod(spec.input_shape)):
        raise UserError(f"{args.dataset} frames have {int(np.prod(spikes.shape[2:]))} values a step, the netx "
                        f"network takes {int(np.prod(spec.input_shape))}")

    def shaped(f: np.ndarray) -> np.ndarray:
        return f.reshape(len(f), f.shape[1], *spec.input_shape)
    calibration = None if args.ddla_calibrate is None else (data, lambda x: shaped(spikes_of(x)))
    return spec, shaped(spikes), data.y_test.numpy(), calibration


def _netx_frame_input(args: argparse.Namespace, layers: list, timesteps: int | None, reset: dict
                      ) -> tuple[NetSpec, np.ndarray, np.ndarray | None, str, tuple | None]:
    """Integer frames for an input layer of neurons: `--frames` as they are (a stream sets T), or
    a dataset's images in [0, 1] through the layer's transform (held T steps unless they are
    event frames). (spec, frames, labels, name, with --ddla-calibrate the dataset and its
    encoder of raw inputs)."""
    encoding = args.netx_encoding
    stream = encoding != "bias"
    spec = netx_to_spec(layers, timesteps or 1, args.fixed, None, str(args.netx), encoding, **reset)
    data = None
    if args.frames:
        x, labels, name = (frames_layout(read_frames(args.frames), spec.input_shape, stream), None,
                           Path(args.frames).name)
    else:
        data = load_dataset(args.dataset, args.data_dir, timesteps or 1)
        if not data.is_events and not timesteps:
            raise UserError(f"{args.netx} stores no steps per sample (simulation/tSample): give --timesteps")

        def layout(raw: torch.Tensor) -> np.ndarray:
            x = frames_layout(transform_images(raw.numpy(), input_transform(spec)), spec.input_shape,
                              stream and data.is_events)
            return np.repeat(x[:, None], timesteps, axis=1) if stream and not data.is_events else x
        x = layout(data.x_test)
        labels, name = data.y_test.numpy(), args.dataset
    if stream:
        if args.timesteps and args.timesteps != x.shape[1]:
            raise UserError(f"--timesteps {args.timesteps} but the graded streams have {x.shape[1]} steps; drop it")
        spec = replace(spec, timesteps=x.shape[1])
    elif not timesteps:
        raise UserError(f"{args.netx} stores no steps per sample (simulation/tSample): give --timesteps")
    calibration = None if args.ddla_calibrate is None else (data, lambda raw: netx_frames(spec, layout(raw)))
    return spec, netx_frames(spec, x), labels, name, calibration


def read_frames(path: str) -> np.ndarray:
    """The array of a .npy file, or of an .npz holding one array (or `frames`), without pickles."""
    if not Path(path).is_file():
        raise UserError(f"--frames {path} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            return data
        with data:
            names = data.files
            if "frames" not in names and len(names) != 1:
                raise ValueError(f"it holds {sorted(names)}: keep one array, or name it 'frames'")
            return data["frames" if "frames" in names else names[0]]
    except (OSError, ValueError, EOFError) as e:
        raise UserError(f"--frames {path} is not a readable .npy/.npz array ({e})") from None


def pick_runs(args: argparse.Namespace, spec: NetSpec, model: dict) -> tuple[list[str], list[float]]:
    has_scores = bool(spec.spiking) and all(p.name in spec.scores for p in spec.spiking)
    if args.mode:
        modes = [m.strip() for m in args.mode.split(",") if m.strip()]
        bad = [m for m in modes if m not in MODES]
        if bad or not modes:
            raise UserError(f"--mode takes modes from {','.join(MODES)}, got {args.mode!r}")
    else:
        modes = [m for m in MODES if m != "ddla" or has_scores]
    trained = model.get("trained_keep") or 0.3
    given = [v for v in args.keep.split(",") if v.strip()] if args.keep else [trained, *SWEEP_KEEPS]
    if not given:
        raise UserError(f"--keep takes ratios separated by commas, got {args.keep!r}")
    return modes, _keeps(given, spec)


class Runner:
    """Runs one mode on the chosen backend, with a progress bar, and cross-checks Lava against
    the bit-exact simulator. The simulator's dense run also counts NeuroBench's operations."""

    def __init__(self, args, spec: NetSpec, frames: np.ndarray, total_runs: int, part: shard.Shard):
        self.args, self.spec, self.frames, self.part = args, spec, frames, part
        self.device = select_device(args.device)
        if args.backend == "lava":
            each = estimate_lava_seconds(spec, len(frames), args.lava_graph, args.lava_batch)
            print(f"Lava: about {_duration(total_runs * each)} for {total_runs} run(s) of {len(frames)} samples x "
                  f"{spec.timesteps} steps ({lava_processes(spec, args.lava_graph)} processes); "
                  f"--backend fast gives the same figures", file=sys.stderr, flush=True)
        self.bar = tqdm(total=total_runs * len(frames), unit="sample", desc=f"deploy ({args.backend})",
                        file=sys.stderr, disable=True if part.rank else None)
        self.lava_matches_sim = True
        self.neurobench: Counts | None = None  # the dense simulator run's counts

    def __call__(self, mode: str, keep: float):
        mine = self.frames[self.part.of(len(self.frames))]
        fast = self.args.backend == "fast"  # the bar follows the simulator's batches (on Lava: Lava's samples)
        record = bool(self.args.save_activity)
        sim = simulate(self.spec, mine, mode, keep, neurobench=mode == "dense", device=self.device, record=record,
                       on_batch=(lambda n: self.bar.update(n * self.part.world)) if fast else None)
        sim = shard.gather(sim, self.part)
        if mode == "dense":
            self.neurobench = sim.counts
        if fast:
            return sim
        start = self.bar.n
        result = run_lava(self.spec, self.frames, mode, keep, timeout=self.args.timeout, graph=self.args.lava_graph,
                          batch=self.args.lava_batch, record=record,
                          on_progress=lambda done, total: self.bar.update(start + done - self.bar.n))
        self.lava_matches_sim &= bool(np.array_equal(result.logits, sim.logits)
                                      and result.counts.to_dict() == sim.counts.to_dict()
                                      and all(np.array_equal(result.activity[k], v) for k, v in sim.activity.items()))
        return result


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"


def deploy(args: argparse.Namespace, part: shard.Shard = shard.WHOLE) -> dict:
    profile = load_profile(args.profile)  # first: a bad profile or output path fails before any work
    check_writable(Path(args.out))
    if args.samples is not None and args.samples < 1:
        raise UserError(f"--samples must be at least 1, got {args.samples}")
    if args.lava_batch < 1:
        raise UserError(f"--lava-batch must be at least 1, got {args.lava_batch}")
    _check_stream_options(args)
    if args.accuracy_floor is not None and not 0.0 < args.accuracy_floor <= 1.0:
        raise UserError(f"--accuracy-floor is a fraction in (0, 1] (0.97 for 97%), got {args.accuracy_floor}")
    if args.energy_target is not None and not 0.0 < args.energy_target < float("inf"):
        raise UserError(f"--energy-target is joules per inference, > 0 (3e-5 for 30 uJ), got {args.energy_target}")
    spec, frames, labels, model = load_model(args)
    if args.backend == "lava":
        check_lava_mappable(spec)
    modes, keeps = pick_runs(args, spec, model)
    if args.fixed:
        spec = quantize(spec)
        frames = quantize_input(frames, spec)
    choice, validation = None, len(frames)
    if args.accuracy_floor is not None or args.energy_target is not None:
        choice, frames, labels = _choose_keep(args, spec, frames, labels, profile, modes)
        validation -= len(frames)  # the samples the choice was measured on
        keeps = _keeps([choice.best.keep] + ([choice.best_uniform.keep] if choice.best_uniform else []) + keeps, spec)
    frames, labels = frames[: args.samples], None if labels is None else labels[: args.samples]
    if args.cross_check:
        _check_cross_check(args, profile, spec)
    ddla_keeps = [k for k in keeps if "ddla" in modes and not (k == 1.0 and "delta" in modes)]
    runner = Runner(args, spec, frames, len([m for m in modes if m != "ddla"]) + len(ddla_keeps), part)
    results, sweep_results = {}, {}  # the sweep's runs by their keep label
    for mode in modes:
        if mode != "ddla":
            results[mode] = runner(mode, 1.0)
    for k in ddla_keeps:
        sweep_results[keep_label(k)] = (k, runner("ddla", k))
    if "ddla" in modes:
        if "delta" in results:
            sweep_results.setdefault("1", (1.0, results["delta"]))  # DDLA with k = 1 is delta (tested)
        results["ddla"] = sweep_results[keep_label(keeps[0])][1]
    runner.bar.close()
    accuracy = {m: _accuracy(r, labels) for m, r in results.items()}
    report_modes = {}
    for mode, r in results.items():
        report_modes[mode] = {"keep": keeps[0] if mode == "ddla" else 1.0,
                              **cost_run(spec, r.counts, profile, mode_plan(spec, mode))}
        report_modes[mode]["totals"]["accuracy"] = accuracy[mode]
    costed = {id(results[m]): report_modes[m]["totals"] for m in results}  # a run shared by two uses: once
    report = {"schema_version": SCHEMA_VERSION, "tool": f"ddla-neuro {__version__}", "profile": profile.to_dict(),
              "model": model, "run": {"backend": args.backend, "device": runner.device.type,
                                      "samples": int(len(frames)), "seed": args.seed,
                                      "keeps": keeps if "ddla" in modes else [],
                                      "reset": {"interval": args.reset_interval, "offset": args.reset_offset or 0}
                                      if args.reset_interval else None},
              "checks": _checks(spec, results, runner), "modes": report_modes}
    if "dense" in results and "delta" in results:
        _add_mixed(report, spec, results, profile, accuracy["dense"])
    if "ddla" in modes:
        report["sweep"] = [_sweep_point(spec, profile, k, r, costed.get(id(r)), labels)
                           for k, r in sorted(sweep_results.values(), key=lambda kr: -mean_keep(kr[0]))]
    if choice is not None:
        report["keep_choice"] = {"accuracy_floor": args.accuracy_floor, "energy_target_j": args.energy_target,
                                 "validation_samples": validation,
                                 "chosen": choice.best.as_dict(), "best_uniform": choice.best_uniform and
                                 choice.best_uniform.as_dict(), "points": [p.as_dict() for p in choice.points]}
    if runner.neurobench is not None:
        _add_compat(report, spec, runner.neurobench)
    if args.cross_check:
        report["cross_check"] = cross_check(spec, frames[: args.cross_check_samples], profile,
                                            tuple(m for m in MODES if m in results), keeps[0])
    if args.save_activity and part.rank == 0:
        save_activity(Path(args.save_activity), spec, results)
    return report


def _choose_keep(args: argparse.Namespace, spec: NetSpec, frames: np.ndarray, labels: np.ndarray | None,
                 profile, modes: list[str]):
    """--accuracy-floor, --energy-target: the energy-aware k chosen on a validation split drawn
    from the test split (`keep_choice.validation_split`), and the samples left to report on."""
    what = "--accuracy-floor" if args.accuracy_floor is not None else "--energy-target"
    if "ddla" not in modes or not spec.scores:
        raise UserError(f"{what} chooses DDLA's k: it needs the ddla mode and a model with DDLA statistics "
                        "(a checkpoint trained with --method ddla)")
    if labels is None:
        raise UserError(f"{what} measures accuracy: it needs labelled data (--dataset), not --frames")
    n = len(frames)
    validation = args.validation_samples if args.validation_samples is not None else min(n // 2, 2000)
    if not 1 <= validation < n:
        raise UserError(f"--validation-samples must be at least 1 and leave test samples to report on "
                        f"({n} in the split), got {validation}")
    chosen = validation_split(n, validation, args.seed)
    try:
        choice = choose_keep(measure_on(spec, frames[chosen], labels[chosen], profile),
                             [p.name for p in spec.spiking], args.accuracy_floor, args.energy_target)
    except KeepError as e:
        raise UserError(f"{what}: {e}") from None
    return choice, frames[~chosen], labels[~chosen]


def _check_stream_options(args: argparse.Namespace) -> None:
    """One line, before any work, for a stream option that cannot hold."""
    if args.timesteps is not None and args.timesteps < 1:
        raise UserError(f"--timesteps must be at least 1, got {args.timesteps}")
    if args.reset_interval is not None and args.reset_interval < 1:
        raise UserError(f"--reset-interval must be at least 1 (steps per inference), got {args.reset_interval}")
    if args.reset_offset is not None and (args.reset_offset < 0 or args.reset_interval is None):
        raise UserError(f"--reset-offset takes a step of 0 or more, with --reset-interval; got {args.reset_offset}")
    if args.save_activity:
        check_writable(Path(args.save_activity))


def _accuracy(result, labels: np.ndarray | None) -> float | None:
    """Top-1 accuracy of the time-averaged logits; None without labels (frames given as they are)."""
    return None if labels is None else float(np.mean(result.predictions == labels))


def save_activity(folder: Path, spec: NetSpec, results: dict) -> None:
    """Every population's output per step of each mode run (`RunResult.activity`) as
    FOLDER/MODE/LAYER.npy, (samples, steps, *shape): spikes as uint8 0/1, graded values (messages,
    logits) as int64 in fixed point (float64 otherwise). Each mode's folder is written whole or not at all."""
    for mode, result in results.items():
        files = {}
        for pop in spec.populations:
            values = result.activity[pop.name]
            dtype = np.uint8 if pop.kind in NEURON_KINDS else np.int64 if spec.fixed else np.float64
            buf = io.BytesIO()
            np.save(buf, values.reshape(*values.shape[:2], *pop.shape).astype(dtype))
            files[f"{pop.name}.npy"] = buf.getvalue()
        try:
            publish(folder / mode, files)
        except OSError as e:
            raise UserError(f"cannot write the activity to {folder / mode}: {e.strerror or e}; free space there or "
                            f"pick another --save-activity") from None


def _check_cross_check(args: argparse.Namespace, profile, spec: NetSpec) -> None:
    """One line, before any work, for a cross-check that cannot run."""
    if profile.name != "loihi":
        raise UserError(f"--cross-check sanafe compares with SANA-FE's Loihi model, the first-generation chip only "
                        f"(there is no Loihi 2 model upstream): use --profile loihi, not {profile.name}")
    if not args.fixed:
        raise UserError("--cross-check sanafe runs the fixed-point network: drop --float")
    if args.cross_check_samples < 1:
        raise UserError(f"--cross-check-samples must be at least 1, got {args.cross_check_samples}")
    require_sanafe()
    check_exportable(spec)


def _checks(spec: NetSpec, results: dict, runner: Runner) -> dict[str, bool]:
    checks = {}
    if "dense" in results and "delta" in results:
        same = np.array_equal if spec.fixed else np.allclose
        checks["delta logits == dense logits" + (" (bit-exact)" if spec.fixed else "")] = bool(
            same(results["delta"].logits, results["dense"].logits))
    if runner.args.backend == "lava":
        what = "logits, counters and every layer's activity" if runner.args.save_activity else "logits and counters"
        checks[f"Lava == fast simulator ({what}, every run)"] = runner.lava_matches_sim
    return checks


def _add_mixed(report: dict, spec: NetSpec, results: dict, profile, accuracy: float) -> None:
    dense, delta = report["modes"]["dense"], report["modes"]["delta"]
    plan = cheaper_plan(dense, delta)
    costs_dense, costs_delta = sender_costs(dense), sender_costs(delta)
    report["cheaper"] = [{"layer": s, "dense_j": costs_dense[s], "delta_j": costs_delta[s], "cheaper": plan[s]}
                         for s in plan]
    mixed = mix_counts(results["dense"].counts, results["delta"].counts, plan)
    report["modes"]["mixed"] = {"keep": 1.0, "plan": plan, **cost_run(spec, mixed, profile, plan)}
    report["modes"]["mixed"]["totals"]["accuracy"] = accuracy  # lossless: the dense run's outputs


def _sweep_point(spec: NetSpec, profile, keep: Keep, result, totals: dict | None, labels: np.ndarray | None
                 ) -> dict:
    """One point of the keep sweep; `totals` where the run was already costed (delta and ddla encode alike)."""
    totals = totals or cost_run(spec, result.counts, profile, mode_plan(spec, "ddla"))["totals"]
    return {"keep": keep, "accuracy": _accuracy(result, labels),
            **{k: totals[k] for k in ("synaptic_ops", "events", "energy_j")}}


def _add_compat(report: dict, spec: NetSpec, dense: Counts) -> None:
    """NeuroBench's workload metrics as NeuroBench 2.3 counts them on the same network (its
    activations: every spiking population's output at every step)."""
    report["neurobench"] = {k: float(dense.neurobench.get(k, np.zeros(1)).sum()) / dense.samples
                            for k in ("effective_acs", "effective_macs", "dense", "membrane_updates")}
    outputs = sum(p.size for p in spec.spiking) * spec.timesteps * dense.samples
    report["neurobench"]["activation_sparsity"] = 1.0 - dense.total("spikes") / outputs if outputs else 0.0
    generic = load_profile("generic-45nm")
    e_mac, e_ac = (float(generic.quantity("energy", k).value) for k in ("e_mac", "e_ac"))
    report["literature"] = literature_energy(spec, dense, e_mac, e_ac)


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    part = shard.start(args.backend)  # under torchrun: this process's share of the samples
    try:
        report = deploy(args, part)
        if part.rank == 0:
            print_report(report, write_report(report, args.out))
    finally:
        shard.stop(part)
    return 0 if all(report["checks"].values()) else 1
