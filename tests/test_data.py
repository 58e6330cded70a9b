import gzip

import numpy as np
import pytest
import torch

from ddla_neuro.data import DatasetError, load_dataset, read_idx


def test_digits_split_is_fixed_and_stratified():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert len(a.x_train) == 1437 and len(a.x_test) == 360
    assert (a.x_test == b.x_test).all() and (a.y_train == b.y_train).all()
    counts = np.bincount(a.y_test.numpy())
    assert counts.min() >= 35 and counts.max() <= 37
    assert a.x_train.min() >= 0 and a.x_train.max() == 1.0


@pytest.mark.parametrize("name,expected", [
    ("mnist", "train-images-idx3-ubyte"), ("cifar10", "cifar-10-batches-py"),
    ("cifar100", "cifar-100-python"), ("nmnist", "NMNIST"), ("npz", "images"),
])
def test_missing_dataset_names_the_expected_files(tmp_path, name, expected):
    with pytest.raises(DatasetError, match=expected):
        load_dataset(name, str(tmp_path / "absent"))
    assert not (tmp_path / "absent").exists()


def write_idx(path, arr):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_mnist_from_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("t10k", 10)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    d = load_dataset("mnist", str(tmp_path))
    assert d.x_train.shape == (20, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28)
    assert d.x_train.max() <= 1.0 and d.y_test.tolist() == list(range(10))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"broken")
    with pytest.raises(DatasetError):
        load_dataset("mnist", str(tmp_path))


def test_read_idx_rejects_non_idx(tmp_path):
    (tmp_path / "x").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DatasetError):
        read_idx(tmp_path / "x")


def test_npz_loader(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", images=rng.integers(0, 256, (50, 6, 6)), labels=np.arange(50) % 5)
    d = load_dataset("npz", str(tmp_path / "d.npz"))
    assert d.num_classes == 5 and d.input_shape == (1, 6, 6) and len(d.x_train) + len(d.x_test) == 50
    np.savez(tmp_path / "bad.npz", pixels=np.zeros((3, 2, 2)))
    with pytest.raises(DatasetError, match="images"):
        load_dataset("npz", str(tmp_path / "bad.npz"))


def _nmnist_bin(path, label: int) -> None:
    """One N-MNIST recording in its 40-bit format (x, y, polarity bit + 23-bit timestamp): ON
    events at pixel (label, label) at t = 0, 1000, 2000 us."""
    events = [bytes([label, label, 0x80 | (t >> 16), (t >> 8) & 0xFF, t & 0xFF]) for t in (0, 1000, 2000)]
    path.write_bytes(b"".join(events))


@pytest.mark.slow
def test_an_extracted_nmnist_folder_loads_and_an_incomplete_one_is_named(tmp_path):
    """tonic's NMNIST layout (DATA_DIR/NMNIST/{Train,Test}/<digit>/*.bin, archives deleted after
    extraction, as users do), at the 10,000 files per split tonic's check wants."""
    for split in ("Train", "Test"):
        for i in range(10_000):
            folder = tmp_path / "NMNIST" / split / str(i % 10)
            folder.mkdir(parents=True, exist_ok=True)
            _nmnist_bin(folder / f"{i:05d}.bin", i % 10)
    data = load_dataset("nmnist", str(tmp_path), timesteps=3)
    assert data.is_events and tuple(data.x_train.shape) == (10_000, 3, 2, 34, 34) and len(data.x_test) == 10_000
    first = data.x_train[:, 0]  # t = 0 lands in the first bin
    labels = data.y_train
    assert torch.equal(first[torch.arange(10_000), 1, labels, labels], torch.ones(10_000))  # ON at (label, label)
    assert float(first.sum()) == 10_000
    for p in list((tmp_path / "NMNIST" / "Test" / "3").iterdir())[:10]:
        p.unlink()  # a partial extraction
    with pytest.raises(DatasetError, match=r"NMNIST/Test is incomplete \(9990 files"):
        load_dataset("nmnist", str(tmp_path), timesteps=3)
