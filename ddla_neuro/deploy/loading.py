"""The model a deployment runs (`prepare` -> `Deployment`), loaded from what the options name: a
checkpoint of ours (default: the shipped model), a NIR graph or a lava-dl netx file, with the
dataset's test frames and
labels (or `--frames` as they are), the calibration split (the first `--calibration-samples` of
the training split, encoded alike: where a neuron-local DDLA rule's thresholds are set,
`thresholds.py`), and with `--ddla-calibrate` the DDLA statistics measured through the torch twin
(`calibrate.py`). Float specs, but a netx file's in fixed point.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..checkpoint import checkpoint_dataset, load_checkpoint
from ..ddla.keep import Keep, keep_label
from ..ddla.selection import RULES, Selection
from ..train_config import trained_rule
from ..data import load_dataset
from ..errors import UserError
from ..snn.encoders import encode
from .calibrate import CalibrationError, calibrate
from .ir import checkpoint_to_spec, input_frames, nir_to_spec, read_nir
from .ir.netx import FRAME_ENCODINGS, load_netx_layers, netx_to_spec, stored_timesteps
from .ir.netx_input import frames_layout, input_transform, netx_frames, transform_images
from .quant import quantize_input, quantize_run
from .spec import SIGMA_DELTA_KINDS, NetSpec
from .thresholds import calibrate_selection

if TYPE_CHECKING:
    from .pipeline import DeployOptions

# models/ at the top of the repository, shipped in the wheel as package data
DEFAULT_CHECKPOINT = Path(str(files("ddla_neuro.models"))) / "digits-convnet-ddla" / "model.pt"


@dataclass
class Loaded:
    """A model as loaded: its spec (float, but a netx file's in fixed point), the test frames (N,
    T, ...), the labels (None for unlabelled frames), the model's description and the calibration
    frames (None without a training split: `--frames`)."""

    spec: NetSpec
    frames: np.ndarray
    labels: np.ndarray | None
    model: dict
    calibration: np.ndarray | None


DEFAULT_CALIBRATION = 256  # training samples a neuron-local rule's thresholds are set on (fewer in a smaller split)


def _calibration_frames(options: DeployOptions, data, frames_of) -> np.ndarray:
    n = options.calibration_samples
    if n is None:
        n = min(DEFAULT_CALIBRATION, len(data.x_train))
    elif not 1 <= n <= len(data.x_train):
        raise UserError(f"--calibration-samples takes 1 to {len(data.x_train)} samples (the training split of "
                        f"{data.name}), got {n}")
    return frames_of(data.x_train[:n])


def load_model(options: DeployOptions) -> Loaded:
    """The model, its test and calibration frames (`Loaded`)."""
    if options.netx:
        return _load_netx(options)
    if options.nir:
        if not options.dataset:
            raise UserError("--nir needs --dataset (and --data-dir if it is not bundled): the graph names no data")
        spec = nir_to_spec(read_nir(options.nir), timesteps=options.timesteps, source=options.nir_source,
                           dt=options.nir_dt)
        if spec.encoding != "direct":
            raise UserError(f"--nir graphs with {spec.encoding!r} input encoding are not supported; "
                            f"deploy a checkpoint instead, which carries its encoder")
        data = load_dataset(options.dataset, options.data_dir, spec.timesteps)
        if len(spec.input_shape) != 1 or data.x_test[0].numel() != spec.input_shape[0]:
            if data.input_shape != spec.input_shape:
                raise UserError(f"{options.dataset} inputs have shape {data.input_shape}, the NIR graph takes "
                                f"{spec.input_shape}; pick a matching dataset")

        def frames_of(x: torch.Tensor) -> np.ndarray:  # a flat input (an MLP) reads the images flattened, C order
            return np.repeat(x.numpy().reshape(len(x), *spec.input_shape)[:, None], spec.timesteps, axis=1)
        frames = frames_of(data.x_test)
        spec = _calibrated(options, spec, data, frames_of)
        calibration = _calibration_frames(options, data, frames_of)
        model = {"source": str(options.nir), "arch": "nir", "dataset": options.dataset, "method": None,
                 "trained_keep": None, "nir_source": options.nir_source, "nir_dt": spec.meta["nir_dt"]}
    else:
        path = options.checkpoint or DEFAULT_CHECKPOINT
        ckpt = load_checkpoint(path)
        name, data = checkpoint_dataset(ckpt, options.dataset, options.data_dir)
        spec = checkpoint_to_spec(ckpt)
        frames = input_frames(ckpt.net, data.x_test, torch.Generator().manual_seed(options.seed))

        def train_frames(x: torch.Tensor) -> np.ndarray:
            return input_frames(ckpt.net, x, torch.Generator().manual_seed(options.seed + 1))
        spec = _calibrated(options, spec, data, train_frames)
        calibration = _calibration_frames(options, data, train_frames)
        model = {"source": str(path), "arch": ckpt.meta["arch"]["name"], "dataset": name,
                 "method": ckpt.meta.get("method"), "trained_keep": ckpt.meta.get("keep"),
                 "trained_selection": trained_rule(ckpt.meta)}
    if options.reset_interval:  # the spec's aligned steps: the first reset before step --reset-offset
        spec = replace(spec, reset_interval=options.reset_interval, reset_offset=options.reset_offset or 0)
    model.update(timesteps=spec.timesteps, encoding=spec.encoding, precision="fixed" if options.fixed else "float",
                 ddla_calibration=options.ddla_calibrate, calibration_samples=len(calibration))
    return Loaded(spec, frames, data.y_test.numpy(), model, calibration)


def _calibrated(options: DeployOptions, spec: NetSpec, data, frames_of, twin: NetSpec | None = None) -> NetSpec:
    """--ddla-calibrate N: the spec with DDLA statistics measured on the first N training samples
    (`calibrate.py`), replacing any it had; `frames_of` encodes raw inputs as the network takes
    them; `twin`: the float network to calibrate where `spec` is in fixed point (netx)."""
    n = options.ddla_calibrate
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


def _load_netx(options: DeployOptions) -> Loaded:
    """A netx network and its input: spikes (an event dataset's frames, or images rate-coded by
    `if-rate`) or, for an input layer of neurons, integer frames (`--frames`, or a dataset's
    images through the layer's transform). Its spec (fixed point: the file's integers as they
    are; `--float`: scaled to a threshold of 1), the frames (N, T, ...) in the network's input
    shape, labels (None for `--frames`) and description."""
    encoding = options.netx_encoding
    if options.ddla_calibrate is not None and options.frames:
        raise UserError("--ddla-calibrate measures on a dataset's training split: give --dataset instead of --frames")
    if options.frames and encoding not in FRAME_ENCODINGS:
        raise UserError(f"--frames feeds --netx-encoding {', '.join(FRAME_ENCODINGS)} (integers written into the "
                        f"input layer's neurons); {encoding} input comes from a --dataset")
    if not options.frames and not options.dataset:
        raise UserError("--netx needs --dataset (or --frames with --netx-encoding bias, graded or graded-host): the "
                        "file names no data")
    layers = load_netx_layers(options.netx)
    if options.netx_layers is not None:
        if options.netx_layers > len(layers):
            raise UserError(f"--netx-layers {options.netx_layers}, and {options.netx} holds {len(layers)} layers")
        layers = layers[: options.netx_layers]
    timesteps = options.timesteps or stored_timesteps(options.netx)
    reset = {"reset_interval": options.reset_interval or 0, "reset_offset": options.reset_offset or 0}
    if encoding in FRAME_ENCODINGS:
        spec, frames, labels, name, source = _netx_frame_input(options, layers, timesteps, reset)
    else:
        if not timesteps:
            raise UserError(f"{options.netx} stores no steps per sample (simulation/tSample): give --timesteps")
        spec, frames, labels, source = _netx_spike_input(options, layers, timesteps, reset)
        name = options.dataset
    calibration = None if options.ddla_calibrate is None else source
    graded = [p.name for p in spec.populations if p.kind in SIGMA_DELTA_KINDS]
    if calibration is not None and graded:
        raise UserError(f"--ddla-calibrate: {', '.join(graded)} are sigma-delta neurons, whose graded messages DDLA's "
                        f"selection does not rank; deploy the network in dense or delta mode")
    if calibration is not None:  # the file's float network (scaled to a threshold of 1) takes the same frames
        twin = replace(netx_to_spec(layers, spec.timesteps, False, spec.input_shape, str(options.netx), encoding,
                                    **reset),
                       timesteps=spec.timesteps)
        spec = _calibrated(options, spec, *calibration, twin=twin)
    threshold_frames = None if source is None else _calibration_frames(options, *source)
    model = {"source": str(options.netx), "arch": "netx", "dataset": name, "method": None, "trained_keep": None,
             "timesteps": spec.timesteps, "encoding": encoding, "precision": "fixed" if options.fixed else "float",
             "ddla_calibration": options.ddla_calibrate,
             "calibration_samples": None if threshold_frames is None else len(threshold_frames)}
    return Loaded(spec, frames, labels, model, threshold_frames)


def _netx_spike_input(options: DeployOptions, layers: list, timesteps: int, reset: dict
                      ) -> tuple[NetSpec, np.ndarray, np.ndarray, tuple]:
    """(spec, frames, labels, the dataset and its encoder of raw inputs)."""
    data = load_dataset(options.dataset, options.data_dir, timesteps)
    rate = options.netx_encoding == "if-rate"
    if data.is_events == rate:
        raise UserError(f"{options.dataset} holds {'event frames' if data.is_events else 'images'}: use "
                        f"--netx-encoding {'events' if data.is_events else 'if-rate'} (a netx network takes spikes)")
    def spikes_of(x: torch.Tensor) -> np.ndarray:
        return (encode(x, "if-rate", timesteps).transpose(0, 1) if rate else x).numpy()
    spikes = spikes_of(data.x_test)
    spec = netx_to_spec(layers, timesteps, options.fixed, spikes.shape[2:], str(options.netx), options.netx_encoding,
                        **reset)
    if int(np.prod(spikes.shape[2:])) != int(np.prod(spec.input_shape)):
        raise UserError(f"{options.dataset} frames have {int(np.prod(spikes.shape[2:]))} values a step, the netx "
                        f"network takes {int(np.prod(spec.input_shape))}")

    def shaped(f: np.ndarray) -> np.ndarray:
        return f.reshape(len(f), f.shape[1], *spec.input_shape)
    return spec, shaped(spikes), data.y_test.numpy(), (data, lambda x: shaped(spikes_of(x)))


def _netx_frame_input(options: DeployOptions, layers: list, timesteps: int | None, reset: dict
                      ) -> tuple[NetSpec, np.ndarray, np.ndarray | None, str, tuple | None]:
    """Integer frames for an input layer of neurons: `--frames` as they are (a stream sets T), or
    a dataset's images in [0, 1] through the layer's transform (held T steps unless they are
    event frames). (spec, frames, labels, name, the dataset and its encoder of raw inputs: None
    for `--frames`)."""
    encoding = options.netx_encoding
    stream = encoding != "bias"
    spec = netx_to_spec(layers, timesteps or 1, options.fixed, None, str(options.netx), encoding, **reset)
    data = None
    if options.frames:
        x, labels, name = (frames_layout(read_frames(options.frames), spec.input_shape, stream), None,
                           Path(options.frames).name)
    else:
        data = load_dataset(options.dataset, options.data_dir, timesteps or 1)
        if not data.is_events and not timesteps:
            raise UserError(f"{options.netx} stores no steps per sample (simulation/tSample): give --timesteps")

        def layout(raw: torch.Tensor) -> np.ndarray:
            x = frames_layout(transform_images(raw.numpy(), input_transform(spec)), spec.input_shape,
                              stream and data.is_events)
            return np.repeat(x[:, None], timesteps, axis=1) if stream and not data.is_events else x
        x = layout(data.x_test)
        labels, name = data.y_test.numpy(), options.dataset
    if stream:
        if options.timesteps and options.timesteps != x.shape[1]:
            raise UserError(f"--timesteps {options.timesteps} but the graded streams have {x.shape[1]} steps; drop it")
        spec = replace(spec, timesteps=x.shape[1])
    elif not timesteps:
        raise UserError(f"{options.netx} stores no steps per sample (simulation/tSample): give --timesteps")
    source = None if data is None else (data, lambda raw: netx_frames(spec, layout(raw)))
    return spec, netx_frames(spec, x), labels, name, source


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


@dataclass
class Deployment:
    """The model as it runs: its spec (fixed point unless `fixed=False`), the test frames (N, T,
    ...) quantized with it, the labels (None for unlabelled frames), its description, and the
    calibration frames quantized alike (None without a training split)."""

    spec: NetSpec
    frames: np.ndarray
    labels: np.ndarray | None
    model: dict
    calibration: np.ndarray | None = None

    def selection(self, rule: str, keep: Keep, device: str = "cpu") -> Selection:
        """DDLA's selection by `rule` for the share `keep`: the thresholds the model was trained
        with at its own rule and k, else set on the calibration split (`thresholds.py`)."""
        meta = self.spec.meta
        trained = meta.get("thresholds") if (meta.get("selection") == rule and "keep" in meta
                                             and keep_label(meta["keep"]) == keep_label(keep)) else None
        if not RULES[rule].neuron_local:
            return Selection(rule, keep)
        if trained:
            return Selection(rule, keep, {k: int(v) for k, v in trained.items()})
        if self.calibration is None:
            raise UserError(f"the {rule} selection sets its thresholds on a calibration split of training samples: "
                            f"give --dataset (not --frames), or --selection topk")
        return calibrate_selection(self.spec, self.calibration, rule, keep, device)


def prepare(options: DeployOptions) -> Deployment:
    """The model the options name, loaded (`loading.load_model`) and, in fixed point, quantized
    with its frames."""
    loaded = load_model(options)
    spec, frames, calibration = loaded.spec, loaded.frames, loaded.calibration
    if options.fixed:
        spec, frames = quantize_run(spec, frames)
        calibration = None if calibration is None else quantize_input(calibration, spec)
    return Deployment(spec, frames, loaded.labels, loaded.model, calibration)
