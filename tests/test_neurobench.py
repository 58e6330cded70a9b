"""Real NeuroBench 2.3.0 (installed by `make setup`) on the shipped model: its SynapticOperations
on the float torch model equal the figure `deploy --float --mode dense` reports. The default
(fixed-point) report counts the quantized model, and says so."""
import json

import torch
from neurobench.benchmarks import Benchmark
from neurobench.metrics.workload import SynapticOperations
from neurobench.models import TorchModel
from torch.utils.data import DataLoader, TensorDataset

from ddla_neuro.checkpoint import checkpoint_dataset, load_checkpoint
from ddla_neuro.deploy.cli import DEFAULT_CHECKPOINT, main
from ddla_neuro.errors import run_cli

SAMPLES = 64


class TimeMajor(torch.nn.Module):
    """NeuroBench feeds (B, T, ...) batches; the network takes (T, B, ...) and predicts by the mean logit."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x.transpose(0, 1)).mean(0)


def neurobench_synops() -> dict:
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    _, data = checkpoint_dataset(ckpt)
    net = ckpt.net.eval()
    frames = net.encode(data.x_test[:SAMPLES]).transpose(0, 1)
    loader = DataLoader(TensorDataset(frames, data.y_test[:SAMPLES]), batch_size=32)
    bench = Benchmark(TorchModel(TimeMajor(net)), loader, [], [lambda p: p.argmax(-1)], [[], [SynapticOperations]])
    return bench.run()["SynapticOperations"]


def report(tmp_path, name, *args) -> tuple[dict, str]:
    out = tmp_path / name
    assert run_cli(main, ["--profile", "loihi2", "--backend", "fast", "--mode", "dense", "--samples", str(SAMPLES),
                          "--out", str(out), *args]) == 0
    return json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


def test_float_deploy_reproduces_real_neurobench_and_reports_say_which_model(tmp_path):
    real = neurobench_synops()
    float_report, float_md = report(tmp_path, "float", "--float")
    ours = float_report["neurobench"]
    assert (ours["effective_macs"], ours["effective_acs"], ours["dense"]) == (
        real["Effective_MACs"], real["Effective_ACs"], real["Dense"])
    assert real["Effective_MACs"] > 0
    fixed_report, fixed_md = report(tmp_path, "fixed")
    assert fixed_report["neurobench"]["effective_macs"] != real["Effective_MACs"]  # quantization zeroes weights
    assert "NeuroBench SynapticOperations on the float model" in float_md
    assert "NeuroBench SynapticOperations on the fixed-point model" in fixed_md
