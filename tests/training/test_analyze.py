"""python -m ddla_neuro.analyze on a small DDLA-trained checkpoint."""
import json

import pytest

from conftest import run_module

pytestmark = pytest.mark.slow  # trains a network in a subprocess


@pytest.fixture(scope="module")
def ddla_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddla")
    r = run_module("ddla_neuro.train", "--method", "ddla", "--keep", "0.5", "--timesteps", "3", "--epochs", "2",
                   "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_analysis_outputs(ddla_checkpoint, tmp_path):
    r = run_module("ddla_neuro.analyze", str(ddla_checkpoint / "model.pt"), "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    a = json.loads((tmp_path / "analysis.json").read_text())
    assert (tmp_path / "events_per_timestep.png").stat().st_size > 1000
    assert (tmp_path / "feature_maps.png").stat().st_size > 1000
    assert a["samples"] == 360 and a["feature_map_layer"] in a["layers"]
    for layer in a["layers"].values():
        assert len(layer["spikes_per_timestep"]) == 3 and len(layer["overlap_ratio"]) == 2
        assert all(0.0 <= v <= 1.0 for v in layer["overlap_ratio"] + layer["static_share"])
        # the first step's delta is the whole output
        assert layer["deltas_per_timestep"][0] == layer["spikes_per_timestep"][0]
    curves = a["events_per_timestep"]
    dense, delta, ddla = curves["dense (spikes)"], curves["delta (TDD)"], curves["DDLA (k=0.5)"]
    # the dense curve is the sum of the layers' spikes; step 1 is sent whole by every scheme
    assert sum(dense) == pytest.approx(sum(sum(layer["spikes_per_timestep"]) for layer in a["layers"].values()))
    assert dense[0] == delta[0] == ddla[0]
    summary = json.loads((ddla_checkpoint / "summary.json").read_text())
    assert sum(ddla) == pytest.approx(summary["events_per_sample"])


def test_missing_checkpoint_is_one_line(tmp_path):
    r = run_module("ddla_neuro.analyze", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
