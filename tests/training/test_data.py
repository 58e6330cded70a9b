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


def test_an_extracted_nmnist_subset_loads_and_a_missing_split_is_named(tmp_path):
    """tonic's NMNIST layout (DATA_DIR/NMNIST/{Train,Test}/<digit>/*.bin), a subset of 200 + 50
    recordings and no archive, as users keep it; events in N-MNIST's own 40-bit format."""
    for split, n in (("Train", 200), ("Test", 50)):
        for i in range(n):
            folder = tmp_path / "NMNIST" / split / str(i % 10)
            folder.mkdir(parents=True, exist_ok=True)
            _nmnist_bin(folder / f"{i:05d}.bin", i % 10)
    data = load_dataset("nmnist", str(tmp_path), timesteps=3)
    assert data.is_events and tuple(data.x_train.shape) == (200, 3, 2, 34, 34) and len(data.x_test) == 50
    first, labels = data.x_train[:, 0], data.y_train  # t = 0 lands in the first bin
    assert torch.equal(first[torch.arange(200), 1, labels, labels], torch.ones(200))  # ON at (label, label)
    assert float(first.sum()) == 200 and sorted(set(labels.tolist())) == list(range(10))
    for p in (tmp_path / "NMNIST" / "Test").rglob("*.bin"):
        p.unlink()  # the test split was not extracted
    with pytest.raises(DatasetError, match=r"NMNIST/Test is missing or empty, so the dataset is incomplete"):
        load_dataset("nmnist", str(tmp_path), timesteps=3)


def test_npz_event_frames_are_used_as_they_are_or_rebinned(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 3, (40, 6, 2, 5, 5)).astype(np.uint8)  # event counts per bin
    np.savez(tmp_path / "ev.npz", images=frames[:30], labels=np.arange(30) % 4, test_images=frames[30:],
             test_labels=np.arange(10) % 4)
    six = load_dataset("npz", str(tmp_path / "ev.npz"), timesteps=6)
    assert six.is_events and six.input_shape == (2, 5, 5) and six.x_train.shape[1:] == (6, 2, 5, 5)
    np.testing.assert_array_equal(six.x_test.numpy(), np.minimum(frames[30:], 1))  # a bin with events: one spike
    three = load_dataset("npz", str(tmp_path / "ev.npz"), timesteps=3)
    np.testing.assert_array_equal(three.x_test.numpy(), np.minimum(frames[30:].reshape(10, 3, 2, 2, 5, 5).sum(2), 1))
    with pytest.raises(DatasetError, match=r"6 time bins, which cannot be re-binned into --timesteps 4"):
        load_dataset("npz", str(tmp_path / "ev.npz"), timesteps=4)
