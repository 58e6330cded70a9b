"""The deploy run as a library: `DeployOptions` (every option and its default, once; the names
and meanings of `python -m ddla_neuro.deploy`'s flags, which `cli.py` parses into it),
`loading.prepare(options)` -> the `Deployment` (the spec in the precision it runs, the test frames,
the labels, the model's description, the calibration split), `deploy(options)` -> the report (runs
in each mode on the chosen backend, the DDLA keep sweep and the energy-aware choice, the checks,
the costs on the profile). Bad options are a `UserError` with one line naming the flag.

    from ddla_neuro.deploy.pipeline import DeployOptions, deploy
    report = deploy(DeployOptions(profile="loihi2", backend="fast", samples=100))
"""
from __future__ import annotations

import io
import os
import sys
import tempfile
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import __version__
from ..ddla.keep import Keep, KeepError, keep_label, mean_keep, parse_keep, per_layer
from ..ddla.selection import DEFAULT_RULE, RULES, Selection
from ..devices import select_device
from ..errors import UserError
from ..fileio import publish
from . import shard
from .cost import cheaper_plan, check_delays, cost_run, literature_energy, mix_counts, mode_plan, sender_costs
from .keep_choice import choose_keep, measure_on, validation_split
from .lava_run import LAVA_BATCH, check_lava_mappable, estimate_lava_seconds, lava_processes, run_lava
from .loading import prepare
from .profiles import load_profile
from .report import SCHEMA_VERSION
from .run import MODES, Counts
from .sanafe_net import check_exportable, cross_check, require_sanafe
from .sim import simulate
from .spec import NEURON_KINDS, NetSpec
from .thresholds import selection_report

SWEEP_KEEPS = (1.0, 0.7, 0.5, 0.3)  # swept after the model's own k when `keep` is not given
UNTRAINED_KEEP = 0.3  # the ddla mode's k for a model that names none (calibrated, imported)
LITERATURE_PROFILE = "generic-45nm"  # the papers' E_MAC and E_AC (45 nm) for `literature`, whatever the target


@dataclass(frozen=True)
class DeployOptions:
    """What a deploy run does; each field is the flag of the same name (`--lava-batch` is
    `lava_batch`; `fixed=False` is `--float`), its help text in `python -m ddla_neuro.deploy -h`."""

    profile: str                         # a shipped profile's name or a .toml path
    checkpoint: str | None = None        # default: the shipped models/digits-convnet-ddla
    nir: str | None = None
    netx: str | None = None
    netx_encoding: str = "events"
    netx_layers: int | None = None       # read a netx file's first N layers only (lava-dl's num_layers)
    frames: str | None = None
    reset_interval: int | None = None
    reset_offset: int | None = None
    timesteps: int | None = None
    nir_source: str = "generic"
    nir_dt: float | None = None
    dataset: str | None = None
    data_dir: str | None = None
    samples: int | None = None
    mode: str | None = None              # comma-separated, from dense,delta,ddla (default: all the model supports)
    keep: str | None = None              # "0.5", a sweep "1,0.7,0.5", a per-layer k "0.7:0.3"
    selection: str | None = None         # DDLA's rule (default: the one the model was trained with, else DEFAULT_RULE)
    calibration_samples: int | None = None  # training samples a neuron-local rule's thresholds are set on
                                            # (default: loading.DEFAULT_CALIBRATION, or the split if smaller)
    ddla_calibrate: int | None = None
    accuracy_floor: float | None = None
    energy_target: float | None = None
    validation_samples: int | None = None
    backend: str = "lava"
    lava_graph: str = "fused"
    lava_batch: int = LAVA_BATCH
    fixed: bool = True
    out: str = "runs/deploy"
    save_activity: str | None = None
    seed: int = 0
    timeout: float | None = None
    cross_check: str | None = None
    cross_check_samples: int = 2
    device: str = "cpu"


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


def pick_runs(options: DeployOptions, spec: NetSpec, model: dict) -> tuple[list[str], list[float]]:
    has_scores = bool(spec.spiking) and all(p.name in spec.scores for p in spec.spiking)
    if options.mode:
        modes = [m.strip() for m in options.mode.split(",") if m.strip()]
        bad = [m for m in modes if m not in MODES]
        if bad or not modes:
            raise UserError(f"--mode takes modes from {','.join(MODES)}, got {options.mode!r}")
    else:
        modes = [m for m in MODES if m != "ddla" or has_scores]
    trained = model.get("trained_keep") or UNTRAINED_KEEP
    given = [v for v in options.keep.split(",") if v.strip()] if options.keep else [trained, *SWEEP_KEEPS]
    if not given:
        raise UserError(f"--keep takes ratios separated by commas, got {options.keep!r}")
    return modes, _keeps(given, spec)


def pick_rule(options: DeployOptions, model: dict) -> str:
    """DDLA's rule: --selection, else the one the model was trained with, else the default. A
    rule other than the trained one is allowed (its thresholds are set on the calibration split)
    and said in one line."""
    trained = model.get("trained_selection")
    rule = options.selection or trained or DEFAULT_RULE
    if rule not in RULES:
        raise UserError(f"--selection: unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    if trained and rule != trained:
        print(f"note: {model['source']} was trained with the {trained} selection and runs with {rule} here "
              f"(its thresholds set on {model.get('calibration_samples')} training samples)", file=sys.stderr)
    return rule


class Runner:
    """Runs one mode on the chosen backend, with a progress bar, and cross-checks Lava against
    the bit-exact simulator. The simulator's dense run also counts NeuroBench's operations."""

    def __init__(self, options, spec: NetSpec, frames: np.ndarray, total_runs: int, part: shard.Shard):
        self.options, self.spec, self.frames, self.part = options, spec, frames, part
        self.device = select_device(options.device)
        if options.backend == "lava":
            each = estimate_lava_seconds(spec, len(frames), options.lava_graph, options.lava_batch)
            print(f"Lava: about {_duration(total_runs * each)} for {total_runs} run(s) of {len(frames)} samples x "
                  f"{spec.timesteps} steps ({lava_processes(spec, options.lava_graph)} processes); "
                  f"--backend fast gives the same figures", file=sys.stderr, flush=True)
        self.bar = tqdm(total=total_runs * len(frames), unit="sample", desc=f"deploy ({options.backend})",
                        file=sys.stderr, disable=True if part.rank else None)
        self.lava_matches_sim = True
        self.neurobench: Counts | None = None  # the dense simulator run's counts

    def __call__(self, mode: str, selection: Selection | None = None):
        mine = self.frames[self.part.of(len(self.frames))]
        fast = self.options.backend == "fast"  # the bar follows the simulator's batches (on Lava: Lava's samples)
        record = bool(self.options.save_activity)
        sim = simulate(self.spec, mine, mode, selection, neurobench=mode == "dense", device=self.device, record=record,
                       on_batch=(lambda n: self.bar.update(n * self.part.world)) if fast else None)
        sim = shard.gather(sim, self.part)
        if mode == "dense":
            self.neurobench = sim.counts
        if fast:
            return sim
        start = self.bar.n
        result = run_lava(self.spec, self.frames, mode, selection, timeout=self.options.timeout,
                          graph=self.options.lava_graph,
                          batch=self.options.lava_batch, record=record,
                          on_progress=lambda done, total: self.bar.update(start + done - self.bar.n))
        self.lava_matches_sim &= bool(np.array_equal(result.logits, sim.logits)
                                      and result.counts.to_dict() == sim.counts.to_dict()
                                      and all(np.array_equal(result.activity[k], v) for k, v in sim.activity.items()))
        return result


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"


def deploy(options: DeployOptions, part: shard.Shard = shard.WHOLE) -> dict:
    """The report of the run the options describe (`report.py`: write it with `write_report`);
    `part`: this process's share of the samples under torchrun (`shard.start`)."""
    profile = load_profile(options.profile)  # first: a bad profile or output path fails before any work
    check_writable(Path(options.out))
    if options.samples is not None and options.samples < 1:
        raise UserError(f"--samples must be at least 1, got {options.samples}")
    if options.lava_batch < 1:
        raise UserError(f"--lava-batch must be at least 1, got {options.lava_batch}")
    _check_stream_options(options)
    if options.accuracy_floor is not None and not 0.0 < options.accuracy_floor <= 1.0:
        raise UserError(f"--accuracy-floor is a fraction in (0, 1] (0.97 for 97%), got {options.accuracy_floor}")
    if options.energy_target is not None and not 0.0 < options.energy_target < float("inf"):
        raise UserError(f"--energy-target is joules per inference, > 0 (3e-5 for 30 uJ), got {options.energy_target}")
    deployment = prepare(options)
    spec, frames, labels, model = deployment.spec, deployment.frames, deployment.labels, deployment.model
    labels = None if spec.silent_readout else labels  # its logits carry no class: no accuracy
    check_delays(spec, profile)
    if options.backend == "lava":
        check_lava_mappable(spec)
    modes, keeps = pick_runs(options, spec, model)
    rule = pick_rule(options, model) if "ddla" in modes else None

    def select(keep: Keep) -> Selection:
        return deployment.selection(rule, keep, options.device)
    choice, validation = None, len(frames)
    if options.accuracy_floor is not None or options.energy_target is not None:
        choice, frames, labels = _choose_keep(options, spec, frames, labels, profile, modes, select)
        validation -= len(frames)  # the samples the choice was measured on
        keeps = _keeps([choice.best.keep] + ([choice.best_uniform.keep] if choice.best_uniform else []) + keeps, spec)
    frames, labels = frames[: options.samples], None if labels is None else labels[: options.samples]
    if options.cross_check:
        _check_cross_check(options, profile, spec)
    ddla_keeps = [k for k in keeps if "ddla" in modes and not (k == 1.0 and "delta" in modes)]
    runner = Runner(options, spec, frames, len([m for m in modes if m != "ddla"]) + len(ddla_keeps), part)
    results, sweep_results = {}, {}  # the sweep's selections and runs by their keep label
    for mode in modes:
        if mode != "ddla":
            results[mode] = runner(mode)
    for k in ddla_keeps:
        selection = select(k)
        sweep_results[keep_label(k)] = (selection, runner("ddla", selection))
    if "ddla" in modes:
        if "delta" in results:  # DDLA with k = 1 is delta (tested)
            sweep_results.setdefault("1", (Selection(rule, 1.0), results["delta"]))
        results["ddla"] = sweep_results[keep_label(keeps[0])][1]
    runner.bar.close()
    accuracy = {m: _accuracy(r, labels) for m, r in results.items()}
    report_modes = {}
    for mode, r in results.items():
        report_modes[mode] = {"keep": keeps[0] if mode == "ddla" else 1.0,
                              **cost_run(spec, r.counts, profile, mode_plan(spec, mode))}
        report_modes[mode]["totals"]["accuracy"] = accuracy[mode]
    if "ddla" in modes:
        report_modes["ddla"]["selection"] = selection_report(spec, sweep_results[keep_label(keeps[0])][0])
    costed = {id(results[m]): report_modes[m]["totals"] for m in results}  # a run shared by two uses: once
    report = {"schema_version": SCHEMA_VERSION, "tool": f"ddla-neuro {__version__}", "profile": profile.to_dict(),
              "model": model, "run": {"backend": options.backend, "device": runner.device.type,
                                      "samples": int(len(frames)), "seed": options.seed,
                                      "keeps": keeps if "ddla" in modes else [],
                                      "reset": {"interval": options.reset_interval, "offset": options.reset_offset or 0}
                                      if options.reset_interval else None},
              "checks": _checks(spec, results, runner), "modes": report_modes}
    if "dense" in results and "delta" in results:
        _add_mixed(report, spec, results, profile, accuracy["dense"])
    if "ddla" in modes:
        report["sweep"] = [_sweep_point(spec, profile, sel, r, costed.get(id(r)), labels)
                           for sel, r in sorted(sweep_results.values(), key=lambda sr: -mean_keep(sr[0].keep))]
    if choice is not None:
        report["keep_choice"] = {"accuracy_floor": options.accuracy_floor, "energy_target_j": options.energy_target,
                                 "validation_samples": validation,
                                 "chosen": choice.best.as_dict(), "best_uniform": choice.best_uniform and
                                 choice.best_uniform.as_dict(), "points": [p.as_dict() for p in choice.points]}
    if runner.neurobench is not None:
        _add_compat(report, spec, runner.neurobench)
    if options.cross_check:
        report["cross_check"] = cross_check(spec, frames[: options.cross_check_samples], profile,
                                            tuple(m for m in MODES if m in results),
                                            sweep_results[keep_label(keeps[0])][0] if "ddla" in modes else None)
    if options.save_activity and part.rank == 0:
        save_activity(Path(options.save_activity), spec, results)
    return report


def _choose_keep(options: DeployOptions, spec: NetSpec, frames: np.ndarray, labels: np.ndarray | None,
                 profile, modes: list[str], select: Callable[[Keep], Selection]):
    """--accuracy-floor, --energy-target: the energy-aware k chosen on a validation split drawn
    from the test split (`keep_choice.validation_split`), and the samples left to report on."""
    what = "--accuracy-floor" if options.accuracy_floor is not None else "--energy-target"
    if "ddla" not in modes or not spec.scores:
        raise UserError(f"{what} chooses DDLA's k: it needs the ddla mode and a model with DDLA statistics "
                        "(a checkpoint trained with --method ddla)")
    if spec.silent_readout:
        raise UserError(f"{what} measures accuracy, and the network's last layer never fires (lava-dl's host reads "
                        f"its voltage): it has none to measure")
    if labels is None:
        raise UserError(f"{what} measures accuracy: it needs labelled data (--dataset), not --frames")
    n = len(frames)
    validation = options.validation_samples if options.validation_samples is not None else min(n // 2, 2000)
    if not 1 <= validation < n:
        raise UserError(f"--validation-samples must be at least 1 and leave test samples to report on "
                        f"({n} in the split), got {validation}")
    chosen = validation_split(n, validation, options.seed)
    try:
        choice = choose_keep(measure_on(spec, frames[chosen], labels[chosen], profile, select),
                             [p.name for p in spec.spiking], options.accuracy_floor, options.energy_target)
    except KeepError as e:
        raise UserError(f"{what}: {e}") from None
    return choice, frames[~chosen], labels[~chosen]


def _check_stream_options(options: DeployOptions) -> None:
    """One line, before any work, for a stream option that cannot hold."""
    if options.timesteps is not None and options.timesteps < 1:
        raise UserError(f"--timesteps must be at least 1, got {options.timesteps}")
    if options.netx_layers is not None and (options.netx_layers < 1 or not options.netx):
        raise UserError(f"--netx-layers reads a --netx file's first N >= 1 layers, got {options.netx_layers}"
                        f"{'' if options.netx else ' without --netx'}")
    if options.reset_interval is not None and options.reset_interval < 1:
        raise UserError(f"--reset-interval must be at least 1 (steps per inference), got {options.reset_interval}")
    if options.reset_offset is not None and (options.reset_offset < 0 or options.reset_interval is None):
        raise UserError(f"--reset-offset takes a step of 0 or more, with --reset-interval; got {options.reset_offset}")
    if options.save_activity:
        check_writable(Path(options.save_activity))


def _accuracy(result, labels: np.ndarray | None) -> float | None:
    """Top-1 accuracy of the time-averaged logits; None without labels (frames given as they are,
    or a readout of a layer that never fires: `NetSpec.silent_readout`)."""
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


def _check_cross_check(options: DeployOptions, profile, spec: NetSpec) -> None:
    """One line, before any work, for a cross-check that cannot run."""
    if profile.name != "loihi":
        raise UserError(f"--cross-check sanafe compares with SANA-FE's Loihi model, the first-generation chip only "
                        f"(there is no Loihi 2 model upstream): use --profile loihi, not {profile.name}")
    if not options.fixed:
        raise UserError("--cross-check sanafe runs the fixed-point network: drop --float")
    if options.cross_check_samples < 1:
        raise UserError(f"--cross-check-samples must be at least 1, got {options.cross_check_samples}")
    require_sanafe()
    check_exportable(spec)


def _checks(spec: NetSpec, results: dict, runner: Runner) -> dict[str, bool]:
    checks = {}
    if "dense" in results and "delta" in results:
        same = np.array_equal if spec.fixed else np.allclose
        checks["delta logits == dense logits" + (" (bit-exact)" if spec.fixed else "")] = bool(
            same(results["delta"].logits, results["dense"].logits))
    if runner.options.backend == "lava":
        what = "logits, counters and every layer's activity" if runner.options.save_activity else "logits and counters"
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


def _sweep_point(spec: NetSpec, profile, selection: Selection, result, totals: dict | None,
                 labels: np.ndarray | None) -> dict:
    """One point of the keep sweep; `totals` where the run was already costed (delta and ddla encode alike)."""
    totals = totals or cost_run(spec, result.counts, profile, mode_plan(spec, "ddla"))["totals"]
    return {"keep": selection.keep, "thresholds": selection.thresholds if selection.neuron_local else None,
            "accuracy": _accuracy(result, labels),
            **{k: totals[k] for k in ("synaptic_ops", "events", "energy_j")}}


def _add_compat(report: dict, spec: NetSpec, dense: Counts) -> None:
    """NeuroBench's workload metrics as NeuroBench 2.3 counts them on the same network (its
    activations: every spiking population's output at every step)."""
    report["neurobench"] = {k: float(dense.neurobench.get(k, np.zeros(1)).sum()) / dense.samples
                            for k in ("effective_acs", "effective_macs", "dense", "membrane_updates")}
    outputs = sum(p.size for p in spec.spiking) * spec.timesteps * dense.samples
    report["neurobench"]["activation_sparsity"] = 1.0 - dense.total("spikes") / outputs if outputs else 0.0
    generic = load_profile(LITERATURE_PROFILE)
    e_mac, e_ac = (float(generic.quantity("energy", k).value) for k in ("e_mac", "e_ac"))
    report["literature"] = literature_energy(spec, dense, e_mac, e_ac)
