import gzip

import numpy as np
import pytest

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
