"""Damaged files of every format the deploy command reads, through the deploy command: how many
it refuses in one line, how many it reads, and how many end in a raw Python error (a traceback).

    python benchmarks/malformed_files.py [--formats netx,nir,checkpoint,profile,frames] [--limit N]
                                         [--json PATH]

Each case is one mutation of a real file: lava-dl's own netx files (the bootstrap MNIST MLP and
tiny.net from the lava-dl wheel, ), a NIR export of the
shipped model, the shipped checkpoint, the loihi2 profile and a frames file. A mutation removes a
dataset (an entry, a field), halves it (the first half of an array, half a scalar), sets it to
NaN, negates it or blows it up (x 1e9), or removes a layer (a node). Every case runs
`deploy --backend fast` on two samples; it passes when the command exits 0, or exits 2 with
one line on stderr ending in a newline and writes nothing. The exhaustive list of cases of a
format is `cases(format)`; the tests draw from it (`tests/deploy/test_malformed_files.py`).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import shutil
import sys
import tempfile
import tomli
from dataclasses import dataclass
from importlib.metadata import distribution
from pathlib import Path

import h5py
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddla_neuro.deploy.cli import main  # noqa: E402
from ddla_neuro.errors import run_cli  # noqa: E402

MUTATIONS = ("remove", "halve", "nan", "negate", "blow-up")
SEP = " > "  # between the keys of a checkpoint's nested entries (its layer names hold dots and slashes)
NETX_TESTS = Path(distribution("lava-dl").locate_file("tests/lava/lib/dl/netx"))
MODEL = ROOT / "models" / "digits-convnet-ddla" / "model.pt"


@dataclass(frozen=True)
class Case:
    format: str
    source: str     # which real file
    target: str     # the dataset, entry or field mutated (or the layer removed)
    mutation: str   # one of MUTATIONS, or "remove-layer"

    @property
    def label(self) -> str:
        return f"{self.format}:{self.source}:{self.target}:{self.mutation}"


def mutated_value(value, mutation: str):
    """One array or scalar mutated (None: removed); strings (stored as bytes) are halved or
    replaced by NaN, and kept as they are by the other mutations."""
    if mutation == "remove":
        return None
    if isinstance(value, (str, bytes)):
        return value[: len(value) // 2] if mutation == "halve" else float("nan") if mutation == "nan" else value
    a = np.asarray(value)
    if a.dtype.kind in "SUO":
        if mutation == "halve":  # an array's first half (a one-element array empties), a scalar's text
            return a[: len(a) // 2] if a.ndim else mutated_value(a.item(), mutation)
        return np.full(a.shape, np.nan) if mutation == "nan" else a
    if mutation == "halve":
        return a[: len(a) // 2] if a.ndim else a / 2
    if a.dtype.kind == "b":
        return np.full(a.shape, np.nan) if mutation == "nan" else a
    a = a.astype(np.float64)
    return {"nan": np.full(a.shape, np.nan), "negate": -a, "blow-up": a * 1e9}[mutation]


# --- HDF5: netx and NIR ----------------------------------------------------------------------------

def _h5_datasets(path: Path) -> list[str]:
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
    return sorted(names)


def _h5_layers(path: Path, group: str) -> list[str]:
    with h5py.File(path, "r") as f:
        return sorted(f"{group}/{k}" for k in f[group]) if group in f else []


def mutate_h5(src: Path, dst: Path, case: Case) -> Path:
    shutil.copyfile(src, dst)
    with h5py.File(dst, "a") as f:
        if case.mutation in ("remove", "remove-layer"):
            del f[case.target]
            return dst
        value = mutated_value(f[case.target][()], case.mutation)
        if np.asarray(value).dtype.kind in "UO":  # HDF5 stores text as bytes
            value = np.char.encode(np.asarray(value).astype(str))
        del f[case.target]
        f.create_dataset(case.target, data=value)
    return dst


# --- the sources and how the deploy command reads each ------------------------------------------

def _nir_file(folder: Path) -> Path:
    import nir
    from ddla_neuro.checkpoint import load_checkpoint
    from ddla_neuro.deploy.ir.torch_nir import network_to_nir
    path = folder / "shipped.nir"
    if not path.exists():
        nir.write(path, network_to_nir(load_checkpoint(MODEL).net))
    return path


NETX = {"mnist": NETX_TESTS / "mnist.net", "tiny": NETX_TESTS / "tiny.net"}


def sources(fmt: str, folder: Path) -> dict[str, Path]:
    if fmt == "netx":
        return NETX
    if fmt == "nir":
        return {"shipped": _nir_file(folder)}
    if fmt == "checkpoint":
        return {"shipped": MODEL}
    if fmt == "profile":
        return {"loihi2": ROOT / "hw_profiles" / "loihi2.toml"}
    return {"frames": _frames_file(folder)}


def _frames_file(folder: Path) -> Path:
    path = folder / "frames.npy"
    if not path.exists():
        np.save(path, np.random.default_rng(0).integers(0, 120, (2, 784)))
    return path


@functools.cache
def cases(fmt: str, folder: Path) -> tuple[Case, ...]:
    """Every single mutation of every source of a format (listed once a format and folder)."""
    out = []
    for name, path in sources(fmt, folder).items():
        if fmt in ("netx", "nir"):
            targets = _h5_datasets(path)
            out += [Case(fmt, name, layer, "remove-layer") for layer in _h5_layers(path, "layer" if fmt == "netx"
                                                                                  else "node/nodes")]
        elif fmt == "checkpoint":
            payload = torch.load(path, map_location="cpu", weights_only=True)
            payload.pop("extra", None)  # training state, which deploying does not read
            targets = sorted(_flat(payload))
        elif fmt == "profile":
            targets = sorted(f"{s}.{k}" for s, t in tomli.loads(path.read_text()).items() if s != "profile"
                             for k in t)
        else:
            targets = ["frames"]
        out += [Case(fmt, name, t, m) for t in targets for m in MUTATIONS]
    return tuple(out)


def _flat(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flat(v, key + SEP))
        else:
            out[key] = v
    return out


def _set(d: dict, key: str, value) -> None:
    *parents, last = key.split(SEP)
    for p in parents:
        d = d[p] if p in d else d[int(p)]
    last = last if last in d else int(last)
    if value is None:
        del d[last]
    else:
        d[last] = value


def build(case: Case, folder: Path) -> list[str]:
    """The damaged file written into `folder`, and the deploy arguments that read it (the profile
    loihi2's, or the damaged one)."""
    src = sources(case.format, folder)[case.source]
    bad = folder / f"bad{src.suffix}"
    if case.format == "netx":
        mutate_h5(src, bad, case)
        frames = _frames_file(folder) if case.source == "mnist" else _tiny_frames(folder)
        return ["--netx", str(bad), "--timesteps", "4", "--netx-encoding", "bias", "--frames", str(frames)]
    if case.format == "nir":
        mutate_h5(src, bad, case)
        return ["--nir", str(bad), "--dataset", "digits", "--timesteps", "4"]
    if case.format == "checkpoint":
        state = torch.load(src, map_location="cpu", weights_only=True)
        flat = _flat(state)
        value = flat[case.target]
        new = mutated_value(value.numpy() if torch.is_tensor(value) else value, case.mutation)
        if new is not None and torch.is_tensor(value):
            new = torch.as_tensor(np.asarray(new))
        elif new is not None and not isinstance(value, np.ndarray):
            new = np.asarray(new).tolist()
        _set(state, case.target, new)
        torch.save(state, bad)
        return ["--checkpoint", str(bad), "--dataset", "digits"]
    if case.format == "profile":
        section, field = case.target.split(".", 1)
        text = src.read_text().splitlines()
        bad.write_text("\n".join(_mutate_toml_line(line, field, case.mutation) for line in text) + "\n")
        return ["--profile", str(bad)]  # with the shipped model and its data
    value = mutated_value(np.load(src), case.mutation)
    if value is not None:
        np.save(bad, value)
    return ["--netx", str(NETX["mnist"]), "--netx-encoding", "bias", "--frames", str(bad), "--timesteps", "4"]


def _tiny_frames(folder: Path) -> Path:
    path = folder / "tiny-frames.npy"
    if not path.exists():
        np.save(path, np.load(NETX_TESTS / "gts" / "tinynet" / "input_bias.npy").T.astype(np.int64)[None])
    return path


def _mutate_toml_line(line: str, field: str, mutation: str) -> str:
    """A profile line `field = { value = V, ... }` with V mutated (removed: the line goes)."""
    if not line.startswith(f"{field} = "):
        return line
    if mutation == "remove":
        return ""
    head, sep, rest = line.partition("value = ")
    if not sep:
        return line
    number, comma, tail = rest.partition(",")
    try:
        v = float(number)
    except ValueError:
        return line
    new = {"halve": v / 2, "nan": float("nan"), "negate": -v, "blow-up": v * 1e9}[mutation]
    return f"{head}{sep}{new!r}" + comma + tail


def run_case(case: Case, folder: Path) -> tuple[str, str]:
    """("ok" | "refused" | "raw" | "bad-line", what was printed or raised) of one case."""
    out = folder / "out"
    args = build(case, folder)
    profile = [] if case.format == "profile" else ["--profile", "loihi2"]
    argv = [*profile, *args, "--backend", "fast", "--samples", "2", "--out", str(out)]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = run_cli(main, argv)
    except Exception as e:  # noqa: BLE001  (what is measured: a raw error would be a traceback)
        return "raw", f"{type(e).__name__}: {str(e)[:160]}"
    finally:
        written = out.exists()
        shutil.rmtree(out, ignore_errors=True)
    text = err.getvalue()
    if code == 0:
        return "ok", ""
    one_line = code == 2 and text.startswith("error: ") and text.endswith("\n") and text.count("\n") == 1
    return ("refused" if one_line and not written else "bad-line"), text.strip()[:200]


def main_() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--formats", default="netx,nir,checkpoint,profile,frames")
    p.add_argument("--limit", type=int, default=0, help="at most N cases a format (0: all), evenly spread")
    p.add_argument("--json", help="also write every case's outcome")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for fmt in args.formats.split(","):
            todo = cases(fmt, folder)
            if args.limit and len(todo) > args.limit:
                todo = [todo[i] for i in np.linspace(0, len(todo) - 1, args.limit).astype(int)]
            outcomes = [(c, *run_case(c, folder)) for c in todo]
            counts = {k: sum(o == k for _, o, _ in outcomes) for k in ("refused", "ok", "raw", "bad-line")}
            print(f"{fmt}: {len(todo)} cases: " + ", ".join(f"{v} {k}" for k, v in counts.items()), flush=True)
            for c, o, text in outcomes:
                if o in ("raw", "bad-line"):
                    print(f"  {o:8s} {c.label}: {text}")
                rows.append({"case": c.label, "outcome": o, "message": text})
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main_()
