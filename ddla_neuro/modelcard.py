"""`python -m ddla_neuro.modelcard RUN_DIR`: writes RUN_DIR/MODEL_CARD.md from the run's
checkpoint metadata and summary (what `make models` ships in models/)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .errors import UserError, run_cli
from .fileio import atomic_write_text

FIELDS = ("model", "dataset", "timesteps", "neuron", "encoding", "loss", "init", "epochs", "method", "selection",
          "keep", "thresholds", "lam", "sensitivity", "warmup_epochs", "seed")


def model_card(summary: dict, command: str) -> str:
    rows = "\n".join(f"| {k} | {summary[k]} |" for k in FIELDS if summary.get(k) is not None)
    commands = "\n".join(f"    {line}" for line in command.splitlines())
    return f"""# {summary['model']} on {summary['dataset']}, trained with {summary.get('method', 'baseline')}

Made by `make models`, i.e.

{commands}

| field | value |
|---|---|
{rows}
| test accuracy (torch, float) | {100 * summary['test_accuracy']:.2f}% |
| events per test sample (spiking layers, as trained) | {summary['events_per_sample']:.1f} |
| dense spikes per test sample | {summary['spikes_per_sample']:.1f} |
| training wall time | {summary['wall_s']:.1f} s on {summary['device']} |

Files: `model.pt` (safe checkpoint: tensors + JSON metadata, read with `weights_only=True`),
`model.json` (its metadata), `summary.json` (the full training summary).
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 1:
        raise UserError("usage: python -m ddla_neuro.modelcard RUN_DIR [COMMAND]")
    run = Path(argv[0])
    summary_path = run / "summary.json"
    if not summary_path.is_file():
        raise UserError(f"{summary_path} does not exist; train into {run} first")
    summary = json.loads(summary_path.read_text())
    command = argv[1] if len(argv) > 1 else summary.get("command", "")
    atomic_write_text(run / "MODEL_CARD.md", model_card(summary, command))
    print(f"-> {run / 'MODEL_CARD.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
