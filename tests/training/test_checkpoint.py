import torch

from ddla_neuro.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ddla_neuro.zoo import build_model

import pytest


def small_net():
    torch.manual_seed(0)
    return build_model("convnet", num_classes=10, input_shape=(1, 8, 8), timesteps=2).eval()


def test_round_trip_gives_identical_outputs(tmp_path):
    net = small_net()
    save_checkpoint(tmp_path / "m.pt", net, {"dataset": "digits"})
    ckpt = load_checkpoint(tmp_path / "m.pt")
    loaded, meta = ckpt.net, ckpt.meta
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(loaded.eval().run(x), net.run(x))
    assert meta["dataset"] == "digits" and meta["timesteps"] == 2
    assert (tmp_path / "m.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_rejects_truncated_corrupt_foreign_and_malicious(tmp_path):
    save_checkpoint(tmp_path / "m.pt", small_net(), {})
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.pt").write_bytes(b"\x00garbage" * 100)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")

    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    for name in ("trunc", "noise", "foreign", "evil", "missing"):
        with pytest.raises(CheckpointError):
            load_checkpoint(tmp_path / f"{name}.pt")
    assert not (tmp_path / "pwned").exists()


def test_rejects_nan_weights(tmp_path):
    net = small_net()
    with torch.no_grad():
        next(net.parameters())[0] = float("nan")
    save_checkpoint(tmp_path / "nan.pt", net, {})
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(tmp_path / "nan.pt")
