"""Real NeuroBench 2.3.0 (installed by `make setup`) on the shipped model through our adapter
(`ddla_neuro.neurobench_model`): its harness gives the figures `deploy --float --mode dense`
reports (SynapticOperations, ActivationSparsity, MembraneUpdates, accuracy). The default
(fixed-point) report counts the quantized model, and says so."""
import json
import sys
from pathlib import Path

import pytest
import torch

from ddla_neuro.checkpoint import load_checkpoint
from ddla_neuro.deploy.cli import main
from ddla_neuro.deploy.loading import DEFAULT_CHECKPOINT
from ddla_neuro.errors import run_cli
from ddla_neuro.neurobench_model import BatchMajorNetwork

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from neurobench_check import agree, neurobench_figures, our_figures  # noqa: E402

SAMPLES = 64


def test_neurobench_harness_on_the_adapter_equals_the_float_deploy_report(tmp_path):
    theirs = neurobench_figures(DEFAULT_CHECKPOINT, SAMPLES, batch_size=32)
    ours = our_figures(DEFAULT_CHECKPOINT, SAMPLES, tmp_path / "float")
    assert set(theirs) == set(ours)
    assert all(agree(name, theirs[name], ours[name]) for name in theirs), (theirs, ours)
    # the probes are what NeuroBench sees: without them both read 0
    assert theirs["MembraneUpdates"] > 0 and 0 < theirs["ActivationSparsity"] < 1 and theirs["Effective_MACs"] > 0


def test_reports_say_which_model_their_neurobench_figures_count(tmp_path):
    def report(name, *args):
        out = tmp_path / name
        assert run_cli(main, ["--profile", "loihi2", "--backend", "fast", "--mode", "dense", "--samples",
                              str(SAMPLES), "--out", str(out), *args]) == 0
        return json.loads((out / "report.json").read_text()), (out / "report.md").read_text()

    float_report, float_md = report("float", "--float")
    fixed_report, fixed_md = report("fixed")
    # quantization zeroes weights
    assert fixed_report["neurobench"]["effective_macs"] != float_report["neurobench"]["effective_macs"]
    assert "NeuroBench SynapticOperations on the float model" in float_md
    assert "NeuroBench SynapticOperations on the fixed-point model" in fixed_md


def test_adapter_refuses_time_major_batches():
    """Fed (T, B, ...) the network would run on the wrong axis without an error (34% accuracy)."""
    net = load_checkpoint(DEFAULT_CHECKPOINT).net
    frames = torch.zeros(net.timesteps + 2, net.timesteps + 1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"\(B, T, \.\.\.\) with T = 6"):
        BatchMajorNetwork(net)(frames)
