"""The speed benchmarks refuse bad arguments in one line before any run (issue 29): a batch of
0, a batch the simulator's memory estimate says will not fit, an unknown network, CUDA where
there is none."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

CASES = [
    ("sim_scale.py", ["--batch", "0"], "must be at least 1"),
    ("sim_scale.py", ["--batch", "8,x"], "whole numbers"),
    ("sim_scale.py", ["--networks", "resnet19", "--batch", "100000000"], "use a smaller --batch"),
    ("sim_scale.py", ["--networks", "nope"], "unknown network 'nope'"),
    ("sim_profile.py", ["--batch", "0"], "must be at least 1"),
    ("lava_speed.py", ["--batch", "0"], "--batch must be at least 1"),
    ("lava_speed.py", ["--samples", "100000000", "--batch", "100000000"], "use a smaller --batch"),
    ("ddla_overhead.py", ["--batch-size", "0"], "--batch-size must be at least 1"),
    ("ddla_overhead.py", ["--models", "convnet,nope"], "unknown model 'nope'"),
    ("heap_reuse.py", ["--networks", "nope"], "networks come from"),
]
if not torch.cuda.is_available():
    CASES += [(script, ["--device", "cuda"], "CUDA is not available")
              for script in ("sim_scale.py", "ddla_overhead.py")]


@pytest.mark.parametrize("script,args,message", CASES)
def test_bad_argument_is_one_line_before_any_run(script, args, message):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode != 0
    assert r.stdout == ""  # nothing measured or printed before the refusal
    lines = [line for line in r.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
