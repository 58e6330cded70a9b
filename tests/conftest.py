import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# the tests' shared builders (helpers/) and reference implementations (anchors/), importable by name
sys.path[:0] = [str(Path(__file__).parent / "helpers"), str(Path(__file__).parent / "anchors")]
torch.set_num_threads(1)
STAT_PPID, STAT_PGID = 1, 2  # fields of /proc/PID/stat after the command name


def processes_where(field: int, value: int) -> list[int]:
    """Live (not zombie) processes whose /proc stat `field` (STAT_PPID or STAT_PGID) is `value`."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split() if d.name.isdigit() else None
        except OSError:
            continue
        if stat and stat[0] not in ("Z", "X") and int(stat[field]) == value:
            found.append(int(d.name))
    return sorted(found)


def run_module(module: str, *args: str, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `python -m module args` in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def trained_digits(tmp_path_factory) -> Path:
    """A tiny MLP trained for 2 epochs on digits; its output directory."""
    out = tmp_path_factory.mktemp("train")
    r = run_module("ddla_neuro.train", "--model", "mlp", "--timesteps", "2", "--epochs", "2", "--seed", "3",
                   "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out
