"""The deploy report: `report.json` (schema below), `report.md` and PNG plots, written
atomically, plus the text table printed on the terminal.

report.json, schema_version 1:

    schema_version, tool, profile (the profile with every quantity's value/unit/kind/source),
    model {source, arch, dataset (a netx run's --frames: the file's name), timesteps, encoding, precision,
           method, trained_keep, nir_source, nir_dt (NIR graphs only: the exporter's conventions and time step),
           ddla_calibration (training samples the DDLA statistics were measured on, --ddla-calibrate; else null)},
    run {backend, device (where the simulator ran: cpu or cuda), samples, seed, keeps,
         reset {interval, offset} (lava-dl's, a stream of inferences) or null},
    checks {name: bool}                      # delta == dense, Lava == simulator, ...
    modes {dense|delta|ddla|mixed: {
        keep, plan (mixed only: sender -> dense|delta),
        selection (ddla only: {rule, neuron_local, keep, thresholds {population: theta} (neuron-local) or null,
                   wait_bound {population: steps} and state_bits_per_neuron {credit, weight, held} (neuron-local),
                   left_out (top-k: what its figures do not price)}),
        totals {accuracy (0-1, null without labels), synaptic_ops, events, spikes, messages, message_bits,
                neuron_updates, active_updates, selection_updates (a neuron-local DDLA rule's), synapses,
                syn_mem_bytes, cores, chips, latency_s, step_latency_s, energy_j, dynamic_energy_j,
                energy_parts_j {synaptic, neuron, selection, routing, static}, unknown_terms,
                mapping_problems, band {energy_j, dynamic_energy_j, latency_s: [low, high]} or null (the profile
                states no uncertainty),                              # all per sample (one inference, but:)
                per_inference {steps, inferences_per_sample, synaptic_ops, events, energy_j, dynamic_energy_j,
                               latency_s, band}},                    # a stream (run.reset) only
        layers [{layer, kind, neurons, encoding, events_in, events_out, synaptic_ops, spikes,
                 neuron_updates, active_updates, idle_updates, selection_updates, synapses, syn_mem_bytes, cores,
                 binds (what set its core count: one core, neurons, synapse memory or overflow; null off chip),
                 messages, message_bits, energy_j {parts}, energy_total_j, energy_total_band_j ([low, high] or
                 null), synaptic_j_by_source,
                 events_out_per_step, sops_per_step,
                 bias_writes (the input row, when the input is written into bias registers: its
                              values the host writes; not events, not priced)}],
        per_timestep {events, synaptic_ops}}},
    cheaper [{layer, dense_j, delta_j, cheaper}]                     # per sender
    sweep [{keep, thresholds, accuracy, synaptic_ops, events, energy_j}]  # DDLA k (k, or {layer: k}; thresholds
                                                                          # of a neuron-local rule, else null)
    keep_choice {accuracy_floor, energy_target_j (one of the two is null), validation_samples, chosen,
                 best_uniform, points: [{keep, accuracy, energy_j}]}  # --accuracy-floor / --energy-target only
    neurobench {effective_acs, effective_macs, dense,                # SynapticOperations, per sample
                membrane_updates, activation_sparsity}               # MembraneUpdates (per sample), ActivationSparsity
    literature {first_layer_flops, synaptic_ops, e_mac_j, e_ac_j, energy_j}
    cross_check {tool, architecture, samples, steps, sanafe_steps,       # --cross-check sanafe only
                 modes {dense|delta|ddla: {energy_j {ours, sanafe, ratio, sanafe_as_run},
                        energy_per_step_j {ours, sanafe}, step_latency_s {ours [T], sanafe [T + depth]},
                        latency_s {ours, sanafe, ratio}, wall_s {ours, sanafe, sanafe_sim},   # per sample
                        terms_j {ours {synaptic, neuron, routing}, sanafe {synapse, dendrite, soma, network}},
                        stand_in_j {synapse, dendrite, soma, network},   # taken out of SANA-FE's (stand-ins, fill)
                        input_synaptic_j}}}   # ours: the input's synaptic ops (SANA-FE: a bias for analog input)

Energies in joules, times in seconds, counts per inference; null where the profile lacks a term.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

from ..ddla.keep import keep_label
from ..errors import UserError
from ..fileio import publish

SCHEMA_VERSION = 1
MODE_ORDER = ("dense", "delta", "ddla", "mixed")
_PRECISION = {"fixed": "fixed-point", "float": "float"}  # what the counts of a report were taken on


def _fmt(v, unit: str = "") -> str:
    if v is None:
        return "unknown"
    if isinstance(v, float) and unit in ("J", "s"):
        return si(v, unit)
    if isinstance(v, float):
        return f"{v:,.1f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def si(v: float, unit: str) -> str:
    """A value with an SI prefix, 3 significant digits: si(2.3e-6, 'J') == '2.3 uJ'."""
    for scale, prefix in ((1, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")):
        if abs(v) >= scale or scale == 1e-12:
            return f"{v / scale:.3g} {prefix}{unit}"
    return f"{v} {unit}"


def _modes(report: dict) -> list[str]:
    return [m for m in MODE_ORDER if m in report["modes"]]


def totals_table(report: dict) -> list[str]:
    """The totals of each mode: per inference, which is a sample, or in a stream of inferences
    (a reset interval) per sample of T steps followed by the per-inference figures."""
    modes = _modes(report)
    stream = report["modes"][modes[0]]["totals"].get("per_inference")
    unit = "inference" if stream is None else "sample"
    rows = [("accuracy", "accuracy", "%"), ("synaptic ops", "synaptic_ops", ""), ("events", "events", ""),
            ("active neuron updates", "active_updates", ""), (f"energy / {unit}", "energy_j", "J"),
            ("  dynamic (no static)", "dynamic_energy_j", "J"),
            ("cores", "cores", ""), (f"latency / {unit}", "latency_s", "s")]
    if stream is not None:
        per = f"per inference ({stream['steps']} steps)"
        rows += [(f"{per}: synaptic ops", "per_inference.synaptic_ops", ""),
                 (f"{per}: energy", "per_inference.energy_j", "J"),
                 (f"{per}: dynamic", "per_inference.dynamic_energy_j", "J"),
                 (f"{per}: latency", "per_inference.latency_s", "s")]
    head = "per inference" if stream is None else f"per sample ({report['model']['timesteps']} steps)"
    lines = [f"| {head} | " + " | ".join(modes) + " |", "|---|" + "---:|" * len(modes)]
    for label, key, kind in rows:
        cells = []
        for m in modes:
            v = _total(report, m, key)
            cells.append("-" if v is None and key == "accuracy" else
                         f"{100 * v:.2f}%" if kind == "%" else banded_total(report, m, key, kind))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _total(report: dict, mode: str, key: str):
    """A total of a mode by its dotted key ("per_inference.energy_j"); None where absent."""
    v = report["modes"][mode]["totals"]
    for part in key.split("."):
        v = v.get(part) if v is not None else None
    return v


def banded_total(report: dict, mode: str, key: str, unit: str) -> str:
    """A total with its band where it has one: '2.1 mJ (1.3-2.5 mJ)'."""
    head, _, last = key.rpartition(".")
    band = _total(report, mode, f"{head}.band.{last}" if head else f"band.{last}")
    text = _fmt(_total(report, mode, key), unit)
    if band is None or None in band:
        return text
    low, high = _fmt(band[0], unit), _fmt(band[1], unit)
    same = low.split()[-1] == high.split()[-1] and len(low.split()) == 2
    return f"{text} ({low.split()[0] if same else low}-{high})"


def uncertainty_line(report: dict) -> str:
    """What the bands are, or that the profile states none."""
    first = report["modes"][_modes(report)[0]]["totals"]
    if first.get("band") is None:
        return (f"Profile {report['profile']['name']} states no uncertainty for its energies and times: the figures "
                f"carry no band.")
    return (f"Energy and latency bands (low-high): every figure of profile {report['profile']['name']} at the low and "
            f"the high end its source states (a measured spread, a fit's residual, a model's accuracy; `[energy]` and "
            f"`[time]` in report.json's profile).")


def keep_choice_line(choice: dict) -> str:
    """The energy-aware k (report["keep_choice"]) against the best uniform k, on the validation split."""
    c, u = choice["chosen"], choice["best_uniform"]
    goal = (f"accuracy >= {100 * choice['accuracy_floor']:.2f}%" if choice.get("accuracy_floor") is not None
            else f"energy <= {si(choice['energy_target_j'], 'J')}")
    line = (f"Energy-aware k ({goal} on {choice['validation_samples']} test samples drawn at random, left out of "
            f"the figures above; {len(choice['points'])} k measured): {keep_label(c['keep'])} at "
            f"{100 * c['accuracy']:.2f}%, {si(c['energy_j'], 'J')}")
    if u is not None and keep_label(u["keep"]) != keep_label(c["keep"]):
        line += f"; the best uniform k, {keep_label(u['keep'])}: {100 * u['accuracy']:.2f}%, {si(u['energy_j'], 'J')}"
    elif u is not None:
        line += " (a uniform k: no per-layer k measured does better)"
    return line + "."


def selection_line(selection: dict) -> str:
    """What DDLA's selection was (report["modes"]["ddla"]["selection"]), and for top-k what its
    figures leave out."""
    head = f"DDLA selection: {selection['rule']}, k = {keep_label(selection['keep'])}"
    if not selection["neuron_local"]:
        return f"{head}, not neuron-local: the figures leave out {selection['left_out']}."
    thresholds = ", ".join(f"{name} {t}" for name, t in selection["thresholds"].items()) or "none (k = 1)"
    bound = max(selection["wait_bound"].values(), default=0)
    return (f"{head}, neuron-local (thresholds: {thresholds}); no pending change waits more than {bound} steps; "
            f"its state ({sum(selection['state_bits_per_neuron'].values())} bits a neuron) and its work (one more "
            f"neuron update per pending change, `selection` energy) are priced.")


def layer_table(report: dict, mode: str) -> list[str]:
    cols = ("layer", "neurons", "encoding", "events_out", "synaptic_ops", "active_updates", "cores", "binds",
            "energy_total_j")
    lines = ["| " + " | ".join(cols) + " |", "|---|" + "---:|" * (len(cols) - 1)]
    for r in report["modes"][mode]["layers"]:
        lines.append("| " + " | ".join(_layer_cell(r, c) for c in cols) + " |")
    return lines


def _layer_cell(row: dict, col: str) -> str:
    if col == "binds" and row[col] is None:  # the input and a layer the host reads take no core
        return "-"
    return _fmt(row[col], "J" if col.endswith("_j") else "")


def markdown(report: dict) -> str:
    m, p = report["model"], report["profile"]
    nir = f" (NIR graph from {m['nir_source']}, dt = {m['nir_dt']:g})" if m.get("nir_source") else ""
    out = [f"# Deploy report: {m['source']} on {p['name']}", "",
           f"{m['arch']}{nir} on {m['dataset']}, T = {m['timesteps']}, {m['encoding']} input, {m['precision']} "
           f"precision; {report['run']['samples']} samples on the {report['run']['backend']} backend "
           f"(simulator on {report['run']['device']}), "
           f"seed {report['run']['seed']}. Profile: {p['description']} (scope {p['scope']}).", "",
           "## Totals", "", *totals_table(report), "", uncertainty_line(report), "",
           *([keep_choice_line(report["keep_choice"]), ""] if "keep_choice" in report else []),
           *([selection_line(report["modes"]["ddla"]["selection"]), ""] if "ddla" in report["modes"] else [])]
    unknown = sorted({t for mode in report["modes"].values() for t in mode["totals"]["unknown_terms"]})
    if unknown:
        out += [f"Unknown in this profile, left out of the energy and latency: {', '.join(unknown)}.", ""]
    problems = sorted({t for mode in report["modes"].values() for t in mode["totals"]["mapping_problems"]})
    out += [f"Mapping problem: {p}." for p in problems] + ([""] if problems else [])
    out += ["## Checks", ""] + [f"- {k}: {'yes' if v else 'NO'}" for k, v in report["checks"].items()] + [""]
    for mode in _modes(report):
        out += [f"## Layers, {mode}", "", *layer_table(report, mode), ""]
    if report.get("cheaper"):
        out += ["## Dense or delta, per sender (routing + the synaptic ops its events cause)", "",
                "| sender | dense | delta | cheaper |", "|---|---:|---:|---|"]
        out += [f"| {c['layer']} | {si(c['dense_j'], 'J')} | {si(c['delta_j'], 'J')} | {c['cheaper']} |"
                for c in report["cheaper"]] + [""]
    if report.get("sweep"):
        out += ["## DDLA keep ratio sweep", "", "| keep | accuracy | synaptic ops | events | energy |",
                "|---:|---:|---:|---:|---:|"]
        out += [f"| {keep_label(s['keep'])} | {100 * s['accuracy']:.2f}% | {s['synaptic_ops']:,.0f} | "
                f"{s['events']:,.1f} | "
                f"{_fmt(s['energy_j'], 'J')} |" for s in report["sweep"]] + [""]
    nb, lit = report.get("neurobench"), report.get("literature")
    if nb and lit:
        out += ["## Compatibility modes (dense run, per sample)", "",
                f"- NeuroBench SynapticOperations on the {_PRECISION[report['model']['precision']]} model: "
                f"Effective_ACs {nb['effective_acs']:,.0f}, Effective_MACs {nb['effective_macs']:,.0f}, "
                f"Dense {nb['dense']:,.0f}; MembraneUpdates {nb['membrane_updates']:,.0f}, ActivationSparsity "
                f"{nb['activation_sparsity']:.4f}" + ("" if report["model"]["precision"] == "float" else
                                               " (NeuroBench itself counts the float model: `--float --mode dense`)"),
                f"- Literature estimate E = E_MAC x FLOPs(first layer) + E_AC x SOPs: {lit['first_layer_flops']:,.0f} "
                f"FLOPs, {lit['synaptic_ops']:,.0f} SOPs, {si(lit['energy_j'], 'J')} "
                f"(E_MAC {si(lit['e_mac_j'], 'J')}, E_AC {si(lit['e_ac_j'], 'J')})", ""]
    out += _cross_check_md(report)
    return "\n".join(out)


def _cross_check_md(report: dict) -> list[str]:
    c = report.get("cross_check")
    if c is None:
        return [] if report["profile"]["name"] != "loihi2" else [
            "SANA-FE's silicon-fitted model (`--cross-check sanafe`) covers the first-generation Loihi only: "
            "there is no Loihi 2 model to check this profile against.", ""]
    out = [f"## Cross-check: {c['tool']} ({c['architecture']}), per sample of {c['samples']}", "",
           "| mode | energy ours | SANA-FE | ratio | latency ours | SANA-FE | ratio | wall ours | SANA-FE |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, m in c["modes"].items():
        e, t, w = m["energy_j"], m["latency_s"], m["wall_s"]
        out.append(f"| {mode} | {si(e['ours'], 'J')} | {si(e['sanafe'], 'J')} | {e['ratio']:.2f} | "
                   f"{si(t['ours'], 's')} | {si(t['sanafe'], 's')} | {t['ratio']:.2f} | {w['ours']:.3g} s | "
                   f"{w['sanafe']:.3g} s |")
    out.append("")
    for mode, m in c["modes"].items():
        terms = {side: ", ".join(f"{k} {si(v, 'J')}" for k, v in m["terms_j"][side].items()) for side in m["terms_j"]}
        out.append(f"- {mode}: ours {terms['ours']}; SANA-FE {terms['sanafe']} (without its stand-in units: "
                   f"{si(sum(m['stand_in_j'].values()), 'J')}; {si(m['energy_j']['sanafe_as_run'], 'J')} as run)")
    return out + ["", f"Ours excludes static power, which SANA-FE does not model. SANA-FE ran {c['sanafe_steps']} "
                      f"steps for {c['steps']} (its pipeline).", ""]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def plots(report: dict) -> dict[str, bytes]:
    """PNG files by name: SOPs per layer, events per timestep, energy breakdown, keep frontier."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = _modes(report)
    figs = {}
    layers = [r["layer"] for r in report["modes"][modes[0]]["layers"] if r["kind"] != "input"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(modes)
    for i, m in enumerate(modes):
        sops = [r["synaptic_ops"] for r in report["modes"][m]["layers"] if r["kind"] != "input"]
        ax.bar([j + i * width for j in range(len(layers))], sops, width, label=m)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(layers))], layers)
    ax.set(xlabel="layer", ylabel="synaptic ops / inference", title="Synaptic ops per layer")
    ax.legend()
    figs["sops_per_layer.png"] = fig
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for m in modes:
        ev = report["modes"][m]["per_timestep"]["events"]
        ax.plot(range(1, len(ev) + 1), ev, marker="o", label=m)
    ax.set(xlabel="timestep", ylabel="events / inference", title="Events per timestep (all senders)")
    ax.legend()
    figs["events_per_timestep.png"] = fig
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bottom = [0.0] * len(modes)
    for part in ("synaptic", "neuron", "selection", "routing", "static"):
        vals = [report["modes"][m]["totals"]["energy_parts_j"][part] * 1e9 for m in modes]
        ax.bar(modes, vals, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set(ylabel="nJ / inference", title=f"Energy breakdown on {report['profile']['name']}")
    ax.legend()
    figs["energy_breakdown.png"] = fig
    sweep = report.get("sweep") or []
    if len(sweep) >= 2:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot([s["energy_j"] * 1e9 for s in sweep], [100 * s["accuracy"] for s in sweep], marker="o")
        for s in sweep:
            ax.annotate(f"k={keep_label(s['keep'])}", (s["energy_j"] * 1e9, 100 * s["accuracy"]), fontsize=8)
        ax.set(xlabel="nJ / inference", ylabel="accuracy (%)", title="DDLA: accuracy vs energy")
        figs["keep_frontier.png"] = fig
    out = {name: _png(f) for name, f in figs.items()}
    for f in figs.values():
        plt.close(f)
    return out


PLOT_FILES = ("sops_per_layer.png", "events_per_timestep.png", "energy_breakdown.png", "keep_frontier.png")


def write_report(report: dict, out_dir: str | Path) -> list[Path]:
    """Renders everything first, then publishes report.md, the plots and report.json (last) as
    one set (`fileio.publish`): a concurrent deploy into the same directory never mixes its
    files with ours, a plot of an earlier run that this report lacks (no sweep: no frontier) is
    removed, and a full or read-only disk leaves nothing behind."""
    out_dir = Path(out_dir)
    files = {"report.md": markdown(report).encode(), **plots(report),
             "report.json": (json.dumps(report, indent=2) + "\n").encode()}
    try:
        paths = publish(out_dir, files, stale=PLOT_FILES)
    except OSError as e:
        raise UserError(f"cannot write the report to {out_dir}: {e.strerror or e}; free space there or pick "
                        f"another --out") from None
    return [paths[-1], *paths[:-1]]
