"""python -m ddla_neuro.analyze CHECKPOINT: the feature-overlapping phenomenon in a trained network.

Per layer and timestep: spikes, lossless deltas, the XOR overlap ratio between consecutive
steps (Definition 1 of the paper), the share of static features; then the events per
timestep of dense, delta (TDD) and DDLA transmission. Writes a table to stdout,
`OUT/analysis.json`, `OUT/events_per_timestep.png` and `OUT/feature_maps.png`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .checkpoint import checkpoint_dataset, load_checkpoint
from .data import DATASETS
from .ddla.executor import SensitivityStats
from .ddla.keep import DEFAULT_KEEP, Keep, filters, keep_label
from .ddla.selection import RULES
from .ddla.tdd import deltas, xor_changes
from .errors import UserError, run_cli
from .fileio import atomic_write, atomic_write_json
from .snn.layers import Neuron
from .snn.network import SpikingNetwork
from .train import evaluate, resolve_keep
from .train_config import trained_rule


@torch.no_grad()
def layer_statistics(net: SpikingNetwork, x: torch.Tensor, batch_size: int = 256) -> tuple[dict, dict]:
    """Per layer: per-timestep spikes, deltas, XOR changes and persisting spikes, per sample;
    and the spike maps (T, ...) of the first sample, for plotting."""
    totals: dict[str, dict[str, torch.Tensor]] = {}
    first_sample: dict[str, torch.Tensor] = {}
    net.eval()
    for i in range(0, len(x), batch_size):
        steps: dict[str, list[torch.Tensor]] = {n.key: [] for n in net.neurons}

        def record(neuron: Neuron, z: torch.Tensor, steps=steps) -> torch.Tensor:  # the transmission hook: z unchanged
            steps[neuron.key].append(z)
            return z

        net.run(x[i:i + batch_size], single_step=True, transmit=record)
        for key, zs in steps.items():
            seq = torch.stack(zs).flatten(2)  # (T, B, N)
            if i == 0:
                first_sample[key] = torch.stack(zs)[:, 0]
            persisting = (seq[1:] != 0) & (seq[:-1] != 0)
            tot = totals.setdefault(key, {"neurons": torch.tensor(seq.shape[2])})
            for name, per_step in (("spikes", (seq != 0).sum((1, 2))), ("deltas", (deltas(seq) != 0).sum((1, 2))),
                                   ("changes", xor_changes(seq).sum((1, 2))), ("persisting", persisting.sum((1, 2)))):
                tot[name] = tot.get(name, 0) + per_step.double()
    n = len(x)
    stats = {}
    for key, t in totals.items():
        spikes = (t["spikes"] / n).tolist()
        stats[key] = {
            "neurons": int(t["neurons"]),
            "spikes_per_timestep": spikes,
            "deltas_per_timestep": (t["deltas"] / n).tolist(),
            # Definition 1: share of positions where O^t equals O^{t-1}, for t >= 2
            "overlap_ratio": (1 - t["changes"] / (n * t["neurons"])).tolist(),
            # share of the spikes of step t that were already there at t - 1
            "static_share": [p / max(s * n, 1e-12) for p, s in zip(t["persisting"].tolist(), spikes[1:])],
        }
    return stats, first_sample


def print_table(stats: dict) -> None:
    print(f"{'layer':>8s} {'t':>3s} {'spikes':>10s} {'deltas':>10s} {'overlap':>8s} {'static':>7s}")
    for key, s in stats.items():
        for t, (sp, dl) in enumerate(zip(s["spikes_per_timestep"], s["deltas_per_timestep"])):
            ov = f"{s['overlap_ratio'][t - 1]:.3f}" if t else "-"
            st = f"{s['static_share'][t - 1]:.3f}" if t else "-"
            print(f"{key:>8s} {t + 1:3d} {sp:10.1f} {dl:10.1f} {ov:>8s} {st:>7s}")


def plot_events(path: Path, curves: dict[str, list[float]], title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, ys in curves.items():
        ax.plot(range(1, len(ys) + 1), ys, marker="o", label=label)
    ax.set_xlabel("timestep")
    ax.set_ylabel("events per sample")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


def plot_feature_maps(path: Path, maps: dict[str, torch.Tensor]) -> str | None:
    """Spike map of the most active channel of the first convolutional spiking layer at
    t = 1..3 (top) and its deltas (bottom). Returns the layer shown, or None when no layer is 2-D."""
    conv = [k for k, m in maps.items() if m.dim() == 4]
    if not conv:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = conv[0]
    seq = maps[key]  # (T, C, H, W)
    channel = int(seq.sum((0, 2, 3)).argmax())
    s, d = seq[:, channel], deltas(seq[:, channel])
    cols = min(3, seq.shape[0])
    fig, axes = plt.subplots(2, cols, figsize=(2.4 * cols, 5), squeeze=False)
    for t in range(cols):
        axes[0][t].imshow(s[t], cmap="gray_r", vmin=0, vmax=1)
        axes[0][t].set_title(f"spikes t={t + 1}")
        axes[1][t].imshow(d[t], cmap="bwr", vmin=-1, vmax=1)
        axes[1][t].set_title(f"delta t={t + 1} ({int((d[t] != 0).sum())})")
        for ax in (axes[0][t], axes[1][t]):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"layer {key}, channel {channel}")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)
    return key


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ddla_neuro.analyze", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--dataset", choices=DATASETS, help="default: the checkpoint's")
    p.add_argument("--data-dir")
    p.add_argument("--samples", type=int, default=0, help="test samples to analyse (0: all)")
    p.add_argument("--keep", help="DDLA filtering ratio, or one per spiking layer joined by ':' (default: the "
                                  "checkpoint's)")
    p.add_argument("--out", default="runs/analyze")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)
    net, meta = ckpt.net, ckpt.meta
    dataset, data = checkpoint_dataset(ckpt, args.dataset, args.data_dir)
    n = args.samples if args.samples > 0 else len(data.x_test)
    x, y = data.x_test[:n], data.y_test[:n]
    stats, first = layer_statistics(net, x)
    print_table(stats)
    sens = SensitivityStats(values=ckpt.sensitivity)
    seed = meta.get("seed", 0)
    rule = trained_rule(meta) or "topk"  # a model trained without DDLA runs top-k from its statistics
    keep = resolve_keep(args.keep if args.keep is not None else meta.get("keep", DEFAULT_KEEP), net)
    if RULES[rule].neuron_local and keep_label(keep) != keep_label(meta.get("keep", 1.0)):
        raise UserError(f"{args.checkpoint}'s {rule} thresholds were set for k = {keep_label(meta.get('keep', 1.0))}; "
                        f"python -m ddla_neuro.deploy --keep {keep_label(keep)} calibrates them for another k")

    def events(mode: str, keep: Keep) -> list[float]:
        return evaluate(net, x, y, 256, torch.device("cpu"), seed, mode, keep, sens, rule=rule,
                        thresholds=meta.get("thresholds"))["events_per_timestep"]

    curves = {"dense (spikes)": events("dense", 1.0), "delta (TDD)": events("delta", 1.0)}
    if ckpt.sensitivity and filters(keep):
        curves[f"DDLA (k={keep_label(keep)})"] = events("ddla", keep)
    for label, ys in curves.items():
        print(f"{label:>16s}: " + "  ".join(f"{v:8.1f}" for v in ys) + f"   total {sum(ys):.1f}")
    out = Path(args.out)
    plot_events(out / "events_per_timestep.png", curves, f"{meta['arch']['name']} on {dataset}, T={net.timesteps}")
    shown = plot_feature_maps(out / "feature_maps.png", first)
    atomic_write_json(out / "analysis.json", {"checkpoint": str(args.checkpoint), "dataset": dataset,
                                              "samples": len(x), "layers": stats, "events_per_timestep": curves,
                                              "feature_map_layer": shown})
    print(f"-> {out}/analysis.json, events_per_timestep.png" + (", feature_maps.png" if shown else ""))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
