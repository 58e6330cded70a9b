"""python -m ddla_neuro.deploy --profile loihi2

Deploys a trained model (default: the one shipped in `models/`) to the Lava delta-spike network,
runs the test split in dense, delta and DDLA mode (and a DDLA keep-ratio sweep), checks the
runs against each other, costs them on a hardware profile and writes report.json, report.md
and plots. Prints the per-layer table and the totals.
"""
from __future__ import annotations

import argparse
import os
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
from ..devices import DEVICES, select_device
from ..errors import UserError
from ..snn.encoders import encode
from . import shard
from .cost import cheaper_plan, cost_run, literature_energy, mix_counts, sender_costs
from .ir import NIR_SOURCES, checkpoint_to_spec, input_frames, nir_to_spec, read_nir
from .netx import load_netx_layers, netx_to_spec
from .lava_run import LAVA_BATCH, LAVA_GRAPHS, check_lava_mappable, estimate_lava_seconds, lava_processes, run_lava
from .profiles import list_profiles, load_profile
from .quant import quantize, quantize_input
from .report import SCHEMA_VERSION, layer_table, totals_table, write_report
from .run import MODES, Counts
from .sanafe_net import check_exportable, cross_check, require_sanafe
from .sim import simulate
from .spec import NetSpec

# models/ at the top of the repository, shipped in the wheel as package data
DEFAULT_CHECKPOINT = Path(str(files("ddla_neuro.models"))) / "digits-convnet-ddla" / "model.pt"
SWEEP_KEEPS = (1.0, 0.7, 0.5, 0.3)  # added to the checkpoint's own keep ratio when --keep is not given


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ddla_neuro.deploy", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", required=True,
                    help=f"hardware profile: a shipped name ({', '.join(list_profiles())}) or a .toml path")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="model.pt from ddla_neuro.train (default: the shipped models/digits-convnet-ddla)")
    src.add_argument("--nir", help="a NIR graph file (direct input encoding; needs --dataset)")
    src.add_argument("--netx", help="a lava-dl netx file (.net: input, conv, pool, flatten and dense layers of CUBA "
                                    "neurons; needs --dataset and --timesteps)")
    ap.add_argument("--netx-encoding", choices=("events", "if-rate"), default="events",
                    help="what a netx network receives: events (the dataset's event frames, default) or if-rate "
                         "(images in [0, 1] rate-coded by an integrate-and-fire neuron, threshold 1, as lava-dl's "
                         "MNIST netx tutorial trained it; the file does not store its encoding)")
    ap.add_argument("--timesteps", type=int, help="timesteps of a NIR graph whose metadata lacks them")
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
                         "ddla mode's (default: the checkpoint's k, swept with 1,0.7,0.5,0.3)")
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


def _floats(text: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{what} must be numbers separated by commas, got {text!r}") from None
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise UserError(f"{what} must lie in [0, 1], got {text!r}")
    return list(dict.fromkeys(values))


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


def load_model(args: argparse.Namespace) -> tuple[NetSpec, np.ndarray, np.ndarray, dict]:
    """The spec (float, but a netx file's in fixed point), the test frames (N, T, ...), the labels
    and the model's description."""
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
        x = data.x_test.numpy()
        if len(spec.input_shape) == 1 and x[0].size == spec.input_shape[0]:
            x = x.reshape(len(x), -1)  # a graph with flat input (an MLP) reads the images flattened, C order
        elif data.input_shape != spec.input_shape:
            raise UserError(f"{args.dataset} inputs have shape {data.input_shape}, the NIR graph takes "
                            f"{spec.input_shape}; pick a matching dataset")
        frames = np.repeat(x[:, None], spec.timesteps, axis=1)
        model = {"source": str(args.nir), "arch": "nir", "dataset": args.dataset, "method": None, "trained_keep": None,
                 "nir_source": args.nir_source, "nir_dt": spec.meta["nir_dt"]}
    else:
        path = args.checkpoint or DEFAULT_CHECKPOINT
        ckpt = load_checkpoint(path)
        name, data = checkpoint_dataset(ckpt, args.dataset, args.data_dir)
        spec = checkpoint_to_spec(ckpt)
        frames = input_frames(ckpt.net, data.x_test, torch.Generator().manual_seed(args.seed))
        model = {"source": str(path), "arch": ckpt.meta["arch"]["name"], "dataset": name,
                 "method": ckpt.meta.get("method"), "trained_keep": ckpt.meta.get("keep")}
    model.update(timesteps=spec.timesteps, encoding=spec.encoding, precision="fixed" if args.fixed else "float")
    return spec, frames, data.y_test.numpy(), model


def _load_netx(args: argparse.Namespace) -> tuple[NetSpec, np.ndarray, np.ndarray, dict]:
    """A netx network on spike frames (an event dataset's, or images rate-coded by `if-rate`): its
    spec (fixed point: the file's integers as they are; `--float`: scaled to a threshold of 1),
    the frames (N, T, ...) in the network's input shape, labels and description."""
    if not args.dataset or not args.timesteps:
        raise UserError("--netx needs --dataset and --timesteps (the file stores neither)")
    layers = load_netx_layers(args.netx)
    data = load_dataset(args.dataset, args.data_dir, args.timesteps)
    rate = args.netx_encoding == "if-rate"
    if data.is_events == rate:
        raise UserError(f"{args.dataset} holds {'event frames' if data.is_events else 'images'}: use "
                        f"--netx-encoding {'events' if data.is_events else 'if-rate'} (a netx network takes spikes)")
    x = data.x_test
    frames = (encode(x, "if-rate", args.timesteps).transpose(0, 1) if rate else x).numpy()
    spec = netx_to_spec(layers, args.timesteps, args.fixed, frames.shape[2:], str(args.netx))
    if int(np.prod(frames.shape[2:])) != int(np.prod(spec.input_shape)):
        raise UserError(f"{args.dataset} frames have {int(np.prod(frames.shape[2:]))} values a step, the netx "
                        f"network takes {int(np.prod(spec.input_shape))}")
    model = {"source": str(args.netx), "arch": "netx", "dataset": args.dataset, "method": None, "trained_keep": None,
             "timesteps": spec.timesteps, "encoding": args.netx_encoding,
             "precision": "fixed" if args.fixed else "float"}
    return spec, frames.reshape(len(frames), frames.shape[1], *spec.input_shape), data.y_test.numpy(), model


def pick_runs(args: argparse.Namespace, spec: NetSpec, model: dict) -> tuple[list[str], list[float]]:
    has_scores = all(p.name in spec.scores for p in spec.spiking)
    if args.mode:
        modes = [m.strip() for m in args.mode.split(",") if m.strip()]
        bad = [m for m in modes if m not in MODES]
        if bad or not modes:
            raise UserError(f"--mode takes modes from {','.join(MODES)}, got {args.mode!r}")
    else:
        modes = [m for m in MODES if m != "ddla" or has_scores]
    trained = model.get("trained_keep") or 0.3
    keeps = _floats(args.keep, "--keep") if args.keep else list(dict.fromkeys([trained, *SWEEP_KEEPS]))
    return modes, keeps


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
        sim = simulate(self.spec, mine, mode, keep, neurobench=mode == "dense", device=self.device,
                       on_batch=(lambda n: self.bar.update(n * self.part.world)) if fast else None)
        sim = shard.gather(sim, self.part)
        if mode == "dense":
            self.neurobench = sim.counts
        if fast:
            return sim
        start = self.bar.n
        result = run_lava(self.spec, self.frames, mode, keep, timeout=self.args.timeout, graph=self.args.lava_graph,
                          batch=self.args.lava_batch,
                          on_progress=lambda done, total: self.bar.update(start + done - self.bar.n))
        self.lava_matches_sim &= bool(np.array_equal(result.logits, sim.logits)
                                      and result.counts.to_dict() == sim.counts.to_dict())
        return result


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"


def _plan(spec: NetSpec, mode: str) -> dict[str, str]:
    """The transmission plan of a mode: every sender dense, or every sender delta (DDLA sends deltas)."""
    transmits = "dense" if mode == "dense" else "delta"
    return {"input": transmits, **{p.name: transmits for p in spec.senders}}


def deploy(args: argparse.Namespace, part: shard.Shard = shard.Shard()) -> dict:
    profile = load_profile(args.profile)  # first: a bad profile or output path fails before any work
    check_writable(Path(args.out))
    if args.samples is not None and args.samples < 1:
        raise UserError(f"--samples must be at least 1, got {args.samples}")
    if args.lava_batch < 1:
        raise UserError(f"--lava-batch must be at least 1, got {args.lava_batch}")
    spec, frames, labels, model = load_model(args)
    if args.backend == "lava":
        check_lava_mappable(spec)
    modes, keeps = pick_runs(args, spec, model)
    frames, labels = frames[: args.samples], labels[: args.samples]
    if args.fixed:
        spec = quantize(spec)
        frames = quantize_input(frames, spec)
    if args.cross_check:
        _check_cross_check(args, profile, spec)
    ddla_keeps = [k for k in keeps if "ddla" in modes and not (k == 1.0 and "delta" in modes)]
    runner = Runner(args, spec, frames, len([m for m in modes if m != "ddla"]) + len(ddla_keeps), part)
    results, sweep_results = {}, {}
    for mode in modes:
        if mode != "ddla":
            results[mode] = runner(mode, 1.0)
    for k in ddla_keeps:
        sweep_results[k] = runner("ddla", k)
    if "ddla" in modes:
        if "delta" in results:
            sweep_results.setdefault(1.0, results["delta"])  # DDLA with k = 1 is delta (tested)
        results["ddla"] = sweep_results[keeps[0]]
    runner.bar.close()
    accuracy = {m: float(np.mean(r.predictions == labels)) for m, r in results.items()}
    report_modes = {}
    for mode, r in results.items():
        report_modes[mode] = {"keep": keeps[0] if mode == "ddla" else 1.0,
                              **cost_run(spec, r.counts, profile, _plan(spec, mode))}
        report_modes[mode]["totals"]["accuracy"] = accuracy[mode]
    costed = {id(results[m]): report_modes[m]["totals"] for m in results}  # a run shared by two uses: once
    report = {"schema_version": SCHEMA_VERSION, "tool": f"ddla-neuro {__version__}", "profile": profile.to_dict(),
              "model": model, "run": {"backend": args.backend, "device": runner.device.type,
                                      "samples": int(len(frames)), "seed": args.seed,
                                      "keeps": keeps if "ddla" in modes else []},
              "checks": _checks(spec, results, runner), "modes": report_modes}
    if "dense" in results and "delta" in results:
        _add_mixed(report, spec, results, profile, accuracy["dense"])
    if "ddla" in modes:
        report["sweep"] = [_sweep_point(spec, profile, k, r, costed.get(id(r)), labels)
                           for k, r in sorted(sweep_results.items(), reverse=True)]
    if runner.neurobench is not None:
        _add_compat(report, spec, runner.neurobench)
    if args.cross_check:
        report["cross_check"] = cross_check(spec, frames[: args.cross_check_samples], profile,
                                            tuple(m for m in MODES if m in results), keeps[0])
    return report


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
        checks["Lava == fast simulator (logits and counters, every run)"] = runner.lava_matches_sim
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


def _sweep_point(spec: NetSpec, profile, keep: float, result, totals: dict | None, labels: np.ndarray) -> dict:
    """One point of the keep sweep; `totals` where the run was already costed (delta and ddla encode alike)."""
    totals = totals or cost_run(spec, result.counts, profile, _plan(spec, "ddla"))["totals"]
    return {"keep": keep, "accuracy": float(np.mean(result.predictions == labels)),
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
