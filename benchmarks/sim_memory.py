"""Peak memory against the estimates the backends check before any work: the fast simulator's
(`sim.estimate_peak_bytes`, which `simulate` uses to shrink the batch or refuse) and, with
`--lava`, the Lava run's (`lava_run.estimate_lava_bytes`: all processes of the run, shared
pages counted once (PSS), sampled every 0.2 s).

    python benchmarks/sim_memory.py [--lava]

Each case runs in a fresh process: the spec and frames are built, the peak resident set is
reset (/proc/self/clear_refs), one `simulate` call runs with the batch forced, and the peak
above the resident set before the call is read back (VmHWM). Fixed point, delta mode,
random weights (memory does not depend on them).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = [  # (model, input shape, T, batch)
    ("convnet", (1, 8, 8), 6, 256),
    ("convnet", (1, 28, 28), 4, 8),  # sim_scale.py's convnet28, at its batches
    ("convnet", (1, 28, 28), 4, 64),
    ("vgg", (3, 32, 32), 4, 16),
    ("resnet19", (3, 32, 32), 4, 4),
    ("resnet19", (3, 32, 32), 4, 16),
    ("sdt", (3, 32, 32), 4, 8),
]

CHILD = r"""
import json, sys, numpy as np, torch
sys.path.insert(0, {root!r})
from ddla_neuro.zoo import build_model
from ddla_neuro.deploy.ir import input_frames, network_to_nir, nir_to_spec
from ddla_neuro.deploy.quant import quantize_run
from ddla_neuro.deploy.sim import estimate_peak_bytes, simulate
model, shape, t, batch = {case!r}
torch.manual_seed(0)
net = build_model(model, num_classes=10, input_shape=tuple(shape), timesteps=t).eval()
spec, frames = quantize_run(nir_to_spec(network_to_nir(net)), input_frames(net, torch.rand(batch, *shape)))
def status(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))
open("/proc/self/clear_refs", "w").write("5")
before = status("VmRSS:")
simulate(spec, frames, "delta", batch_size=batch, memory_budget=1 << 50)
print(json.dumps({{"measured": status("VmHWM:") - before, "estimate": estimate_peak_bytes(spec, batch)}}))
"""


LAVA_CASES = [(model, kw, batch) for model, kw in (("mlp", dict(hidden=(512, 512))), ("convnet", {}))
              for batch in (1, 32)]  # 1x28x28, T = 6, 64 samples, `batch` of them in lockstep

LAVA_CHILD = r"""
import json, os, sys, threading, time, torch
from pathlib import Path
sys.path.insert(0, {root!r}); sys.path.insert(0, {root!r} + "/tests/helpers")
from deploy_nets import dyadic_
from ddla_neuro.zoo import build_model
from ddla_neuro.deploy.ir import input_frames, network_to_nir, nir_to_spec
from ddla_neuro.deploy.quant import quantize_run
from ddla_neuro.deploy.lava_run import estimate_lava_bytes, run_lava
model, kw, batch = {case!r}
def stat(pid):
    try:
        return Path(f"/proc/{{pid}}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
def members(field, value):
    return [int(p) for p in filter(str.isdigit, os.listdir("/proc")) if (s := stat(p)) and int(s[field]) == value]
def pss(pid):
    try:
        return next(int(l.split()[1]) * 1024 for l in open(f"/proc/{{pid}}/smaps_rollup") if l.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0
torch.manual_seed(0)
net = dyadic_(build_model(model, num_classes=10, input_shape=(1, 28, 28), timesteps=6, **kw), 0, 3.0).eval()
spec, frames = quantize_run(nir_to_spec(network_to_nir(net)), input_frames(net, torch.rand(64, 1, 28, 28)))
peak, done = [0], threading.Event()
def watch():
    while not done.is_set():
        for worker in members(1, os.getpid()):
            peak[0] = max(peak[0], sum(pss(p) for p in members(2, worker)))
        time.sleep(0.2)
threading.Thread(target=watch, daemon=True).start()
run_lava(spec, frames, "delta", batch=batch)
done.set()
print(json.dumps({{"measured": peak[0], "estimate": estimate_lava_bytes(spec, batch)}}))
"""


def _child(code: str) -> dict:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    return json.loads(r.stdout.strip().splitlines()[-1])


def _row(cells: list[str], m: dict) -> str:
    return (f"| {' | '.join(cells)} | {m['measured'] / 2**20:,.0f} MiB | {m['estimate'] / 2**20:,.0f} MiB | "
            f"{m['estimate'] / m['measured']:.2f} |")


def main() -> None:
    if "--lava" in sys.argv[1:]:
        print("| network (1x28x28, T = 6) | batch | measured peak (PSS) | estimate | estimate / measured |")
        print("|---|---:|---:|---:|---:|")
        for case in LAVA_CASES:
            print(_row([case[0], str(case[2])], _child(LAVA_CHILD.format(root=str(ROOT), case=case))))
        return
    print("| network | input | T | batch | measured peak | estimate | estimate / measured |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for model, shape, t, batch in CASES:
        m = _child(CHILD.format(root=str(ROOT), case=(model, shape, t, batch)))
        print(_row([model, "x".join(map(str, shape)), str(t), str(batch)], m))


if __name__ == "__main__":
    main()
