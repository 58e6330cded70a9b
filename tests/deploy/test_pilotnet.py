"""lava-dl's two PilotNets (`tests/data/lava-dl-pilotnet`, Intel's published files), deployed from
the command line as Intel ran them and checked against lava-dl 0.6's own netx runner
(`lava_netx_anchor.py`: `netx.hdf5.Network` in Lava's bit-accurate fixed point on lava-nc 0.10)
layer by layer and step by step, through the activity the deploy saves:

- PilotNet LIF on `image.npy` written into its input layer's bias, inferences of 16 steps with
  resets at offset 3 (the benchmark notebook's `reset_interval=16, reset_offset=3`);
- PilotNet SDNN on a short graded stream (`benchmarks/pilotnet_frames.py`: the frame's image
  panned one column a step), fed to its input layer and through the host's delta encoder.

The deploys run on our Lava processes, which the deploy checks against the simulator (logits,
counters and activity)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from ddla_neuro.deploy.cli import main
from ddla_neuro.errors import run_cli

pytest.importorskip("lava.lib.dl.netx")  # lava-dl, installed by `make setup`
from netx_nets import lava_dl_blocks  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from pilotnet_frames import IMAGE, LIF, SDNN, pilotnet_stream  # noqa: E402  (the README's input)


def deploy(tmp_path: Path, net: Path, *args: str) -> tuple[dict, Path]:
    out, activity = tmp_path / "report", tmp_path / "activity"
    argv = ["--profile", "loihi2", "--netx", str(net), "--out", str(out), "--save-activity", str(activity), *args]
    assert run_cli(main, argv) == 0
    return json.loads((out / "report.json").read_text()), activity


def assert_as_lava_dl(activity: Path, mode: str, reference: list[np.ndarray], names: list[str]) -> None:
    """Every layer's saved outputs (sample 0) equal lava-dl's, every step."""
    for name, ref in zip(names, reference):
        ours = np.load(activity / mode / f"{name}.npy")[0]
        np.testing.assert_array_equal(ours.reshape(ref.shape), ref, err_msg=f"{mode} {name}")


@pytest.mark.slow
def test_pilotnet_lif_on_image_npy_as_lava_dl_runs_it(tmp_path):
    steps = 24  # a partial first inference (3 steps), one whole, and the start of the next
    report, activity = deploy(tmp_path, LIF, "--netx-encoding", "bias", "--frames", str(IMAGE), "--timesteps",
                              str(steps), "--reset-interval", "16", "--reset-offset", "3")
    reference = lava_dl_blocks(LIF, tmp_path, bias=np.load(IMAGE).transpose(2, 1, 0), steps=steps, reset=[16, 3])
    names = [f"layer{i}" for i in (0, 1, 2, 3, 4, 5, 7, 8, 9, 10)]
    assert [r.shape[1:] for r in reference] == [np.load(activity / "dense" / f"{n}.npy").shape[2:] for n in names]
    for mode in ("dense", "delta"):
        assert_as_lava_dl(activity, mode, reference, names)
    assert all(r.sum() > 0 for r in reference[:-1]) and reference[-1].sum() == 0  # the last layer is read, never fires
    for r in reference:  # one frame, reset every 16 steps from step 3: each inference repeats the one before
        np.testing.assert_array_equal(r[19:24], r[3:8])
    assert all(report["checks"].values()) and len(report["checks"]) == 2  # delta == dense, Lava == simulator
    dense = report["modes"]["dense"]["totals"]
    assert dense["accuracy"] is None and report["run"]["reset"] == {"interval": 16, "offset": 3}
    assert dense["per_inference"]["steps"] == 16
    assert dense["per_inference"]["synaptic_ops"] == pytest.approx(dense["synaptic_ops"] * 16 / steps)
    row = report["modes"]["dense"]["layers"][0]  # the frame is written into bias registers: no events, no SOPs
    assert (row["layer"], row["events_out"], row["bias_writes"]) == ("input", 0, 39600 * steps)
    assert report["modes"]["dense"]["layers"][1]["synaptic_ops"] == 0  # the input layer has no synapses


@pytest.mark.slow
@pytest.mark.parametrize("encoding", ["graded", "graded-host"])
def test_pilotnet_sdnn_on_a_graded_stream_as_lava_dl_runs_it(encoding, tmp_path):
    stream = pilotnet_stream(6)
    np.save(tmp_path / "stream.npy", stream)
    report, activity = deploy(tmp_path, SDNN, "--netx-encoding", encoding, "--frames", str(tmp_path / "stream.npy"))
    job = {"graded": stream} if encoding == "graded" else {"host": stream, "v_th": 6}
    reference = lava_dl_blocks(SDNN, tmp_path, **job)
    names = [f"layer{i}" for i in (0, 1, 2, 3, 4, 5, 7, 8, 9, 10)][encoding == "graded-host":]
    for mode in ("dense", "delta"):
        assert_as_lava_dl(activity, mode, reference, names)
    assert all(np.abs(r).sum() > 0 for r in reference)
    assert all(report["checks"].values()) and len(report["checks"]) == 2
    assert report["model"]["timesteps"] == 6  # from the stream
    delta, dense = (report["modes"][m]["totals"] for m in ("delta", "dense"))
    assert delta["events"] < dense["events"] and delta["synaptic_ops"] < dense["synaptic_ops"]
    assert dense["energy_parts_j"]["synaptic"] > 0 and delta["message_bits"] > 0
