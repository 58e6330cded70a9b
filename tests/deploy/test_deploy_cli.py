"""python -m ddla_neuro.deploy: end to end on the shipped model, report schema, determinism,
and one clear line (no traceback, no files) for every kind of bad input."""
from __future__ import annotations

import json
import os
from dataclasses import fields
import subprocess
import sys

import matplotlib.image
import nir
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conftest import ROOT, run_module
from deploy_nets import flat_nir_graph
from ddla_neuro.deploy import loading, pipeline
from ddla_neuro.deploy.cli import build_parser, main, parse_options
from ddla_neuro.deploy.pipeline import DeployOptions
from ddla_neuro.deploy.loading import DEFAULT_CHECKPOINT
from ddla_neuro.deploy.profiles import PROFILE_DIR
from ddla_neuro.deploy.report import SCHEMA_VERSION, si
from ddla_neuro.errors import run_cli

TOTALS = ("accuracy", "synaptic_ops", "events", "energy_j", "cores", "latency_s", "energy_parts_j", "unknown_terms")
PLOTS = ("sops_per_layer.png", "events_per_timestep.png", "energy_breakdown.png", "keep_frontier.png")


def deploy(tmp_path, *args: str, name: str = "out") -> dict:
    out = tmp_path / name
    assert run_cli(main, ["--profile", "loihi2", "--out", str(out), *args]) == 0
    return json.loads((out / "report.json").read_text())


def test_fast_backend_end_to_end_with_a_keep_sweep(tmp_path):
    report = deploy(tmp_path, "--backend", "fast", "--samples", "60", "--keep", "0.3,0.5,1")
    assert report["schema_version"] == SCHEMA_VERSION and report["profile"]["name"] == "loihi2"
    assert set(report["modes"]) == {"dense", "delta", "ddla", "mixed"}
    for mode in report["modes"].values():
        assert all(k in mode["totals"] for k in TOTALS) and 0.0 <= mode["totals"]["accuracy"] <= 1.0
        assert [r["layer"] for r in mode["layers"]] == ["input", "2", "6", "output"]
    dense, delta, ddla = (report["modes"][m]["totals"] for m in ("dense", "delta", "ddla"))
    assert dense["accuracy"] == delta["accuracy"] and all(report["checks"].values())
    assert ddla["synaptic_ops"] < delta["synaptic_ops"] < dense["synaptic_ops"]
    assert [s["keep"] for s in report["sweep"]] == [1.0, 0.5, 0.3]
    assert report["sweep"][0]["synaptic_ops"] == delta["synaptic_ops"]  # k = 1 is delta
    assert report["modes"]["ddla"]["keep"] == 0.3
    assert report["neurobench"]["dense"] > 0 and report["literature"]["energy_j"] > 0
    out = tmp_path / "out"
    for plot in PLOTS:  # real images with something drawn on them, not empty files
        pixels = matplotlib.image.imread(out / plot)
        assert pixels.ndim == 3 and min(pixels.shape[:2]) > 200 and len(np.unique(pixels.reshape(-1, pixels.shape[2]),
                                                                                axis=0)) > 10, plot
    md = (out / "report.md").read_text()  # the Markdown tables show the JSON's figures
    assert "| per inference | dense | delta | ddla | mixed |" in md
    sops = " | ".join(f"{report['modes'][m]['totals']['synaptic_ops']:,.1f}"
                      for m in ("dense", "delta", "ddla", "mixed"))
    assert f"| synaptic ops | {sops} |" in md
    for s in report["sweep"]:
        assert f"| {s['keep']:g} | {100 * s['accuracy']:.2f}% | {s['synaptic_ops']:,.0f} |" in md
    for key in ("energy_j", "dynamic_energy_j", "latency_s"):  # loihi2's fitted figures carry their bands
        low, high = dense["band"][key]
        assert low < dense[key] < high, key
    assert all(r["energy_total_band_j"][0] <= r["energy_total_j"] <= r["energy_total_band_j"][1]
               for r in report["modes"]["dense"]["layers"])
    dynamic = [si(v, "J") for v in (dense["dynamic_energy_j"], *dense["band"]["dynamic_energy_j"])]
    assert f"{dynamic[0]} ({dynamic[1].split()[0]}-{dynamic[2]})" in md and "Energy and latency bands" in md


@pytest.mark.slow
def test_lava_backend_gives_the_report_of_the_fast_simulator(tmp_path, capsys):
    args = ("--samples", "12", "--keep", "0.3")
    lava = deploy(tmp_path, *args, name="lava")
    first = capsys.readouterr().err.splitlines()[0]  # the wall-time estimate, before any run: dense, delta, ddla
    # injector, the first population (with the encoder), the second (with the readout), extractor
    assert first.startswith("Lava: about ") and "for 3 run(s) of 12 samples x 6 steps (4 processes)" in first
    fast = deploy(tmp_path, "--backend", "fast", *args, name="fast")
    assert lava["checks"]["Lava == fast simulator (logits and counters, every run)"]
    assert lava["modes"] == fast["modes"] and lava["sweep"] == fast["sweep"]


def test_the_same_seed_gives_the_same_report(tmp_path):
    a = deploy(tmp_path, "--backend", "fast", "--samples", "30", "--profile", "loihi", name="a")
    b = deploy(tmp_path, "--backend", "fast", "--samples", "30", "--profile", "loihi", name="b")
    assert a == b
    assert (tmp_path / "a" / "report.md").read_text() == (tmp_path / "b" / "report.md").read_text()


def test_the_library_api_gives_the_command_lines_report(tmp_path):
    """`pipeline.deploy(DeployOptions(...))` is what `python -m ddla_neuro.deploy` runs: every
    flag is an option of the same name and default, and the two reports are equal."""
    assert {a.dest for a in build_parser()._actions if a.dest != "help"} == {f.name for f in fields(DeployOptions)}
    assert parse_options(["--profile", "loihi2"]) == DeployOptions(profile="loihi2")
    cli = deploy(tmp_path, "--backend", "fast", "--samples", "40", "--keep", "0.5,1", name="cli")
    api = pipeline.deploy(DeployOptions(profile="loihi2", backend="fast", samples=40, keep="0.5,1",
                                        out=str(tmp_path / "api")))
    assert json.loads(json.dumps(api)) == cli
    prepared = loading.prepare(DeployOptions(profile="loihi2"))  # the shipped model, quantized with its frames
    assert prepared.spec.fixed and len(prepared.frames) == len(prepared.labels) == 360
    assert np.array_equal(prepared.frames, np.round(prepared.frames)) and prepared.model["arch"] == "convnet"


def test_float_precision_and_a_single_mode(tmp_path):
    report = deploy(tmp_path, "--backend", "fast", "--samples", "20", "--float", "--mode", "dense")
    assert set(report["modes"]) == {"dense"} and report["model"]["precision"] == "float"


@pytest.mark.slow
def test_command_line_error_is_one_line_without_traceback(tmp_path):
    r = run_module("ddla_neuro.deploy", "--profile", "loihi9", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "unknown profile 'loihi9'" in r.stderr
    assert not (tmp_path / "o").exists()


def _nan_checkpoint(tmp_path):
    payload = torch.load(DEFAULT_CHECKPOINT, weights_only=True)
    key = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][key] = payload["state_dict"][key].clone().fill_(float("nan"))
    torch.save(payload, tmp_path / "nan.pt")
    return ["--checkpoint", str(tmp_path / "nan.pt")]


def _unsupported_nir(tmp_path):
    graph = nir.NIRGraph(nodes={"input": nir.Input({"input": np.array([64])}),
                                "cell": nir.CubaLIF(tau_mem=np.ones(64), tau_syn=np.ones(64), r=np.ones(64),
                                                    v_leak=np.zeros(64), v_threshold=np.ones(64)),
                                "output": nir.Output({"output": np.array([64])})},
                         edges=[("input", "cell"), ("cell", "output")], metadata={"timesteps": 2}, type_check=False)
    nir.write(tmp_path / "g.nir", graph)
    return ["--nir", str(tmp_path / "g.nir"), "--dataset", "digits"]


def _wrong_shape(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "small.npz", images=rng.integers(0, 255, (20, 4, 4)), labels=np.arange(20) % 2)
    return ["--dataset", "npz", "--data-dir", str(tmp_path / "small.npz")]


def _edited_profile(tmp_path, old: str, new: str) -> list[str]:
    text = (PROFILE_DIR / "loihi2.toml").read_text()
    assert old in text, old
    (tmp_path / "edited.toml").write_text(text.replace(old, new, 1))
    return ["--profile", str(tmp_path / "edited.toml")]


def _incomplete_nmnist(tmp_path) -> list[str]:
    """NMNIST/ is there, its Train/ split is not (the data is loaded before the model meets it)."""
    folder = tmp_path / "events" / "NMNIST" / "Test" / "0"
    folder.mkdir(parents=True)
    (folder / "00000.bin").write_bytes(b"")
    return ["--dataset", "nmnist", "--data-dir", str(tmp_path / "events")]


BAD = {
    "unknown profile": (lambda p: ["--profile", "loihi9"], "unknown profile"),
    "malformed TOML": (lambda p: (p / "bad.toml").write_text("[profile\nname = 1\n") and
                       ["--profile", str(p / "bad.toml")], "bad.toml"),
    "missing checkpoint": (lambda p: ["--checkpoint", str(p / "none.pt")], "does not exist"),
    "corrupt checkpoint": (lambda p: (p / "c.pt").write_bytes(b"\x00garbage" * 10) and
                           ["--checkpoint", str(p / "c.pt")], "not a readable ddla-neuro checkpoint"),
    "NaN weights": (_nan_checkpoint, "NaN"),
    "unsupported NIR node": (_unsupported_nir, "CubaLIF"),
    "wrong input shape": (_wrong_shape, "shape"),
    "missing data dir": (lambda p: ["--dataset", "mnist", "--data-dir", str(p / "nowhere")], "mnist"),
    "bad keep": (lambda p: ["--keep", "0.3,2"], "--keep"),
    "bad mode": (lambda p: ["--mode", "sparse"], "--mode"),
    "bad Lava batch": (lambda p: ["--lava-batch", "0"], "--lava-batch must be at least 1"),
    "no calibration samples": (lambda p: ["--calibration-samples", "0"], "--calibration-samples takes 1 to 1437"),
    "calibration past the split": (lambda p: ["--calibration-samples", "5000"], "--calibration-samples takes 1 to"),
    "negative energy": (lambda p: _edited_profile(p, "value = 1.55081e-11", "value = -1.55081e-11"), "is negative"),
    "NaN energy": (lambda p: _edited_profile(p, "value = 1.55081e-11", "value = nan"), "not a finite"),
    "unknown unit": (lambda p: _edited_profile(p, 'unit = "J", kind = "fitted"', 'unit = "kcal", kind = "fitted"'),
                     "unit 'kcal'"),
    "out below a file": (lambda p: (p / "afile").write_text("x") and ["--out", str(p / "afile" / "report")],
                         "Not a directory"),
    "incomplete event dataset": (_incomplete_nmnist, "NMNIST/Train is missing or empty"),
    "non-positive NIR dt": (lambda p: _unsupported_nir(p) + ["--nir-dt", "0"], "time step must be positive"),
    "corrupt netx file": (lambda p: (p / "bad.net").write_bytes(b"\x00not hdf5" * 10) and
                          ["--netx", str(p / "bad.net"), "--dataset", "npz", "--timesteps", "4"],
                          "not a readable lava-dl netx file"),
}
if not torch.cuda.is_available():
    BAD["CUDA missing"] = (lambda p: ["--device", "cuda"], "CUDA is not available")


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_clear_line_and_writes_nothing(case, tmp_path, capsys):
    make_args, needle = BAD[case]
    args = make_args(tmp_path)
    out = tmp_path / "out"
    argv = ["--profile", "loihi2", "--backend", "fast", "--samples", "5", "--out", str(out), *args]
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and needle in err, err
    assert not out.exists() and not any(p.name.startswith(".") for p in tmp_path.rglob("*"))  # no temporaries


def test_default_checkpoint_is_shipped():
    assert DEFAULT_CHECKPOINT.is_file() and DEFAULT_CHECKPOINT.is_relative_to(ROOT / "models")


def test_ddla_alone_without_k_one_runs(tmp_path):
    report = deploy(tmp_path, "--backend", "fast", "--samples", "10", "--mode", "ddla", "--keep", "0.5")
    assert set(report["modes"]) == {"ddla"} and [s["keep"] for s in report["sweep"]] == [0.5]


def test_out_naming_a_file_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "taken").write_text("mine")
    argv = ["--profile", "loihi2", "--backend", "fast", "--samples", "5", "--out", str(tmp_path / "taken")]
    assert run_cli(main, argv) == 2
    assert "is a file" in capsys.readouterr().err and (tmp_path / "taken").read_text() == "mine"


def _sdt_checkpoint(tmp_path) -> str:
    """An untrained Spike-driven Transformer for digits (1x8x8: 2x2 tokens after the max pools),
    with weights large enough that every layer spikes."""
    from deploy_nets import dyadic_
    from ddla_neuro.checkpoint import save_checkpoint
    from ddla_neuro.zoo import build_model
    torch.manual_seed(0)
    net = dyadic_(build_model("sdt", num_classes=10, input_shape=(1, 8, 8), timesteps=2, dim=16, depth=1), 0, 3.0)
    save_checkpoint(tmp_path / "sdt.pt", net, {"dataset": "digits"})
    return str(tmp_path / "sdt.pt")


def test_sdt_deploys_on_the_fast_simulator_and_lava_refuses_it_in_one_line(tmp_path, capsys):
    ckpt = _sdt_checkpoint(tmp_path)
    report = deploy(tmp_path, "--checkpoint", ckpt, "--backend", "fast", "--samples", "8")
    rows = {r["layer"]: r for r in report["modes"]["delta"]["layers"]}
    assert {r["kind"] for r in rows.values()} >= {"maxpool", "product"}
    assert all(r["events_out"] > 0 for r in rows.values() if r["kind"] in ("maxpool", "product"))
    assert all(report["checks"].values())
    problems = report["modes"]["delta"]["totals"]["mapping_problems"]
    assert sum("no Loihi synapse or neuron model" in p for p in problems) == 4  # two max pools, two products
    out = tmp_path / "lava"
    argv = ["--profile", "loihi2", "--checkpoint", ckpt, "--samples", "8", "--out", str(out)]
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "not mapped to Lava" in err and "--backend fast" in err and "\n" not in err
    assert not out.exists()


def test_a_nir_graph_with_flat_input_reads_images_flattened(tmp_path):
    """An MLP exported with a flat (64,) input, deployed on 8x8 digits: the images are flattened
    (C order), as the exporting library fed them, instead of being refused."""
    from ddla_neuro.data import load_dataset
    from ddla_neuro.deploy.ir import nir_to_spec, read_nir
    from ddla_neuro.deploy.quant import quantize, quantize_input
    from ddla_neuro.deploy.sim import simulate
    nir.write(tmp_path / "flat.nir", flat_nir_graph())
    report = deploy(tmp_path, "--nir", str(tmp_path / "flat.nir"), "--dataset", "digits", "--backend", "fast",
                    "--mode", "dense")
    spec = quantize(nir_to_spec(read_nir(tmp_path / "flat.nir")))
    data = load_dataset("digits")
    frames = np.repeat(data.x_test.numpy().reshape(len(data.x_test), 1, 64), 4, axis=1)
    expected = simulate(spec, quantize_input(frames, spec), "dense")
    assert report["modes"]["dense"]["totals"]["accuracy"] == float(np.mean(expected.predictions == data.y_test.numpy()))
    assert report["modes"]["dense"]["totals"]["events"] > 0


def test_too_little_memory_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    from ddla_neuro.deploy import sim
    monkeypatch.setattr(sim, "available_memory", lambda: 1 << 16)  # 64 KiB free: less than one sample needs
    out = tmp_path / "out"
    assert run_cli(main, ["--profile", "loihi2", "--backend", "fast", "--samples", "5", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the fast simulator needs about") and "GiB is free" in err and "\n" not in err
    assert not out.exists()


@pytest.mark.slow
def test_event_frames_from_an_npz_train_and_deploy(tmp_path):
    """Event frames (N, T, C, H, W) in an npz: trained with the events encoding, deployed with
    spike input, delta == dense bit for bit."""
    rng = np.random.default_rng(0)
    labels = np.arange(120) % 3
    frames = (rng.random((120, 8, 2, 8, 8)) < 0.05 + 0.1 * labels[:, None, None, None, None]).astype(np.uint8)
    np.savez(tmp_path / "ev.npz", images=frames, labels=labels)
    r = run_module("ddla_neuro.train", "--model", "mlp", "--dataset", "npz", "--data-dir", str(tmp_path / "ev.npz"),
                   "--timesteps", "4", "--epochs", "2", "--out", str(tmp_path / "m"))
    assert r.returncode == 0, r.stderr
    report = deploy(tmp_path, "--checkpoint", str(tmp_path / "m" / "model.pt"), "--data-dir", str(tmp_path / "ev.npz"),
                    "--backend", "fast", "--mode", "dense,delta")
    assert report["model"]["encoding"] == "events" and all(report["checks"].values())
    assert report["modes"]["dense"]["totals"]["accuracy"] > 0.5


@given(n=st.integers(0, 1000), world=st.integers(1, 16))
def test_shards_cover_every_sample_once_in_order(n, world):
    from ddla_neuro.deploy.shard import Shard
    parts = [range(n)[Shard(r, world).of(n)] for r in range(world)]
    assert [i for p in parts for i in p] == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_a_sharded_deploy_needs_the_fast_simulator(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert run_cli(main, ["--profile", "loihi2", "--samples", "4", "--out", str(tmp_path / "o")]) == 2
    assert "add --backend fast" in capsys.readouterr().err and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_a_deploy_sharded_over_two_processes_writes_the_single_process_report(tmp_path):
    """torchrun, two CPU processes (gloo), 61 samples split 31 + 30: every file of the report,
    plots included, and of the saved activity is byte-identical to the one-process run's."""
    args = ["--profile", "loihi2", "--backend", "fast", "--samples", "61"]
    assert run_cli(main, [*args, "--out", str(tmp_path / "one"), "--save-activity", str(tmp_path / "a1")]) == 0
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                        "29523", "-m", "ddla_neuro.deploy", *args, "--out", str(tmp_path / "two"), "--save-activity",
                        str(tmp_path / "a2")], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    one = {p.name: p.read_bytes() for p in (tmp_path / "one").iterdir()}
    assert {p.name: p.read_bytes() for p in (tmp_path / "two").iterdir()} == one and len(one) == 6
    files = {str(p.relative_to(tmp_path / "a1")): p.read_bytes() for p in (tmp_path / "a1").rglob("*.npy")}
    assert {str(p.relative_to(tmp_path / "a2")): p.read_bytes() for p in (tmp_path / "a2").rglob("*.npy")} == files
    assert len(files) == 3 * 3 and np.load(tmp_path / "a1" / "dense" / "output.npy").shape == (61, 6, 10)


FMNIST_MODEL = ROOT / "models" / "fmnist-convnet-ddla" / "model.pt"


def test_the_shipped_28x28_model_deploys(tmp_path):
    """The Fashion-MNIST convnet (28x28, T = 6) on 28x28 images of an npz (the dataset itself
    need not be installed): all checks hold and DDLA sends fewer synaptic ops than delta, delta
    fewer than dense."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "fm.npz", images=rng.integers(0, 256, (100, 28, 28)), labels=np.arange(100) % 10)
    report = deploy(tmp_path, "--checkpoint", str(FMNIST_MODEL), "--dataset", "npz", "--data-dir",
                    str(tmp_path / "fm.npz"), "--backend", "fast", "--samples", "16")
    assert report["model"]["timesteps"] == 6 and all(report["checks"].values())
    sops = [report["modes"][m]["totals"]["synaptic_ops"] for m in ("ddla", "delta", "dense")]
    assert sops == sorted(sops) and sops[0] < sops[1] < sops[2]


def test_the_ddla_selection_is_reported_with_what_it_costs(tmp_path, capsys):
    """A rule other than the trained one runs with its thresholds set on the calibration split
    (said in one line), and the report names the rule, its thresholds and starvation bound and
    prices its work; top-k is reported as not neuron-local, its sort left out."""
    report = deploy(tmp_path, "--backend", "fast", "--samples", "40", "--keep", "0.5", "--selection", "integral",
                    "--calibration-samples", "64", name="integral")
    note = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and "runs with integral here (its thresholds set on 64 training samples)" in note[0]
    ddla = report["modes"]["ddla"]
    chosen = ddla["selection"]
    assert chosen["rule"] == "integral" and chosen["neuron_local"] and set(chosen["thresholds"]) == {"2", "6"}
    assert all(b >= 1 for b in chosen["wait_bound"].values()) and chosen["state_bits_per_neuron"]["credit"] == 17
    e_active = report["profile"]["energy"]["e_neuron_active"]["value"]
    assert ddla["totals"]["selection_updates"] > 0
    priced = ddla["totals"]["selection_updates"] * e_active
    assert ddla["totals"]["energy_parts_j"]["selection"] == pytest.approx(priced)
    assert report["modes"]["delta"]["totals"]["energy_parts_j"]["selection"] == 0
    assert "DDLA selection: integral, k = 0.5, neuron-local" in (tmp_path / "integral" / "report.md").read_text()
    topk = deploy(tmp_path, "--backend", "fast", "--samples", "40", "--keep", "0.5", "--selection", "topk", name="topk")
    assert topk["modes"]["ddla"]["selection"]["neuron_local"] is False
    assert topk["modes"]["ddla"]["totals"]["selection_updates"] == 0
    md = (tmp_path / "topk" / "report.md").read_text()
    assert "not neuron-local: the figures leave out the layer-wide sort" in md
