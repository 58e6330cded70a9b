"""Datasets. Nothing downloads: `digits` is bundled with scikit-learn, everything else is read
from a local directory, and a missing or malformed one raises `DatasetError` naming what was expected.

Every loader returns a `DataSplit`: in-memory train/test tensors (images in [0, 1] or
normalised; event data as (N, T, 2, H, W) frames) plus the input shape and class count.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError

FASHION_MNIST_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
IMAGE_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "npz")
EVENT_DATASETS = ("nmnist", "dvsgesture", "cifar10dvs")
DATASETS = IMAGE_DATASETS + EVENT_DATASETS
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_STATS = {  # channel mean / std used by the TET and Spike-driven Transformer code
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}


class DatasetError(UserError):
    """A dataset could not be loaded; the message says what is missing and how to fix it."""


@dataclass
class DataSplit:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    is_events: bool = False
    augment: bool = False  # random crop + flip while training (CIFAR)

    @property
    def input_shape(self) -> tuple[int, ...]:
        shape = tuple(self.x_train.shape[1:])
        return shape[1:] if self.is_events else shape


def stratified_split(x: np.ndarray, y: np.ndarray, test_fraction: float = 0.2, seed: int = 0):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)


def load_digits() -> DataSplit:
    """scikit-learn's 1,797 8x8 digits, scaled to [0, 1], with a fixed stratified 80/20 split."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    xtr, xte, ytr, yte = stratified_split(x, d.target)
    return _split("digits", xtr, ytr, xte, yte, 10)


def _split(name, xtr, ytr, xte, yte, num_classes, **kw) -> DataSplit:
    return DataSplit(name, torch.as_tensor(xtr), torch.as_tensor(ytr).long(),
                     torch.as_tensor(xte), torch.as_tensor(yte).long(), num_classes, **kw)


def read_idx(path: Path) -> np.ndarray:
    """Reads an IDX file (the MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype_code, ndim = data[0] * 256 + data[1], data[2], data[3]
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
        return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)
    except (OSError, ValueError, IndexError, EOFError) as e:
        raise DatasetError(f"{path}: cannot read IDX data ({e}); replace the file with the original") from None


def _find_idx(data_dir: Path, stem: str) -> Path | None:
    for folder in (data_dir, data_dir / "raw", data_dir / "MNIST" / "raw", data_dir / "FashionMNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def load_mnist_like(name: str, data_dir: str | None) -> DataSplit:
    """MNIST or Fashion-MNIST from the four canonical IDX files (optionally .gz), flat in the
    directory or in torchvision's `MNIST/raw` / `FashionMNIST/raw` layout."""
    if data_dir is None:
        if name != "fashion-mnist":
            raise DatasetError(f"{name} needs --data-dir DIR holding {', '.join(IDX_FILES)} (.gz allowed)")
        data_dir = FASHION_MNIST_DEFAULT_DIR
    root = Path(data_dir)
    found = {stem: _find_idx(root, stem) for stem in IDX_FILES}
    missing = [s for s, p in found.items() if p is None]
    if missing:
        hint = " (apt-get install dataset-fashion-mnist provides them)" if name == "fashion-mnist" else ""
        raise DatasetError(f"{name}: {root} lacks {', '.join(missing)} (.gz allowed){hint}")
    arrays = [read_idx(found[s]) for s in IDX_FILES]
    xtr, ytr, xte, yte = arrays
    if len(xtr) != len(ytr) or len(xte) != len(yte) or xtr.ndim != 3:
        raise DatasetError(f"{name}: image and label counts in {root} do not match; the files are corrupt")
    scale = lambda a: (a.astype(np.float32) / 255.0)[:, None]  # noqa: E731
    return _split(name, scale(xtr), ytr.astype(np.int64), scale(xte), yte.astype(np.int64), 10)


def load_cifar(name: str, data_dir: str | None) -> DataSplit:
    """CIFAR-10/100 through torchvision (download=False), normalised per channel."""
    from torchvision import datasets

    folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    if data_dir is None:
        raise DatasetError(f"{name} needs --data-dir DIR containing {folder}/ (the python version of the dataset)")
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        train, test = cls(data_dir, train=True, download=False), cls(data_dir, train=False, download=False)
    except RuntimeError:
        raise DatasetError(f"{name}: {data_dir} has no valid {folder}/ (the python version of the dataset)") from None
    mean, std = (torch.tensor(v).reshape(1, 3, 1, 1) for v in CIFAR_STATS[name])
    norm = lambda d: ((torch.as_tensor(d.data).permute(0, 3, 1, 2).float() / 255.0) - mean) / std  # noqa: E731
    return DataSplit(name, norm(train), torch.as_tensor(train.targets), norm(test), torch.as_tensor(test.targets),
                     len(train.classes), augment=True)


def rebin_events(x: np.ndarray, timesteps: int, where: str) -> np.ndarray:
    """Event frames (N, T, C, H, W) as `timesteps` frames of 0/1 spikes: as they are when T is
    `timesteps`, else each group of T / timesteps consecutive bins summed (T a multiple)."""
    n, t = x.shape[:2]
    if t % timesteps:
        raise DatasetError(f"{where}: event frames have {t} time bins, which cannot be re-binned into "
                           f"--timesteps {timesteps} (pick a divisor of {t})")
    x = x.reshape(n, timesteps, t // timesteps, *x.shape[2:]).sum(axis=2)
    return np.minimum(x, 1.0)  # a bin with several events still sends one spike


def load_npz(path: str | None, timesteps: int = 1) -> DataSplit:
    """A generic .npz with integer `labels` and `images`: (N, H, W) or (N, C, H, W) images, or
    event frames (N, T, C, H, W) (re-binned to `timesteps`, `rebin_events`); with
    `test_images`/`test_labels` too, those are the test split, else a stratified 80/20 split."""
    if path is None or not os.path.isfile(path):
        raise DatasetError(f"npz: --data-dir must name an .npz file with arrays 'images' and 'labels' (got {path})")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise DatasetError(f"npz: cannot read {path} ({e})") from None
    if "images" not in arrays or "labels" not in arrays:
        raise DatasetError(f"npz: {path} must hold arrays 'images' and 'labels' (found {sorted(arrays)})")

    is_events = np.ndim(arrays["images"]) == 5

    def prep(x):
        x = np.asarray(x, np.float32)
        if is_events:
            if x.ndim != 5:
                raise DatasetError(f"npz: test_images must be event frames (N, T, C, H, W) like images, "
                                   f"got shape {x.shape}")
            return rebin_events(x, timesteps, f"npz {path}")
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4:
            raise DatasetError(f"npz: images must be (N, H, W), (N, C, H, W) or event frames (N, T, C, H, W), "
                               f"got shape {x.shape}")
        return x / 255.0 if x.max() > 1.0 else x

    x, y = prep(arrays["images"]), arrays["labels"].astype(np.int64)
    if "test_images" in arrays:
        xtr, ytr, xte, yte = x, y, prep(arrays["test_images"]), arrays["test_labels"].astype(np.int64)
    else:
        xtr, xte, ytr, yte = stratified_split(x, y)
    return _split("npz", xtr, ytr, xte, yte, int(max(ytr.max(), yte.max()) + 1), is_events=is_events)


def load_events(name: str, data_dir: str | None, timesteps: int) -> DataSplit:
    """N-MNIST, DVS-Gesture or CIFAR10-DVS through tonic, binned into `timesteps` frames."""
    import tonic

    classes = {"nmnist": (tonic.datasets.NMNIST, 10, 1), "dvsgesture": (tonic.datasets.DVSGesture, 11, 4),
               "cifar10dvs": (tonic.datasets.CIFAR10DVS, 10, 4)}
    cls, num_classes, pool = classes[name]
    if data_dir is None:
        raise DatasetError(f"{name} needs --data-dir DIR holding tonic's {cls.__name__}/ folder (extracted)")

    class Offline(cls):
        """tonic downloads when its check fails; here that is an error saying what is missing.
        An extracted split folder of any size counts, with or without the archive it came from
        (tonic wants the archive and a full-size folder; users keep subsets and delete archives)."""

        def _check_exists(self) -> bool:
            folder = Path(self.location_on_system, self.folder_name)
            return folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))

        def download(self):
            where = Path(self.location_on_system)
            if not where.is_dir():
                raise DatasetError(f"{name}: {data_dir} has no extracted {cls.__name__}/ folder; "
                                   f"place the dataset there (nothing is downloaded)")
            raise DatasetError(f"{name}: {where / self.folder_name} is missing or empty, so the dataset is "
                               f"incomplete: extract {getattr(self, 'filename', 'its archive')} there "
                               f"(nothing is downloaded)")

    Offline.__name__ = Offline.__qualname__ = cls.__name__  # tonic looks in DATA_DIR/<its class name>/
    to_frames = tonic.transforms.ToFrame(sensor_size=cls.sensor_size, n_time_bins=timesteps)

    def load(train: bool):
        kw = {"train": train} if name != "cifar10dvs" else {}
        ds = Offline(data_dir, transform=to_frames, **kw)
        xs, ys = zip(*(ds[i] for i in range(len(ds))))
        x = torch.as_tensor(np.stack(xs)).float().clamp(max=1.0)
        if pool > 1:
            pooled = torch.nn.functional.avg_pool2d(x.flatten(0, 1), pool)
            x = pooled.reshape(*x.shape[:2], *pooled.shape[1:])
        return x, torch.as_tensor(ys).long()

    xtr, ytr = load(True)
    if name == "cifar10dvs":  # a single set: fixed stratified split
        xtr, xte, ytr, yte = (torch.as_tensor(a) for a in stratified_split(xtr.numpy(), ytr.numpy()))
    else:
        xte, yte = load(False)
    return DataSplit(name, xtr, ytr, xte, yte, num_classes, is_events=True)


def load_dataset(name: str, data_dir: str | None = None, timesteps: int = 1) -> DataSplit:
    if name == "digits":
        return load_digits()
    if name in ("mnist", "fashion-mnist"):
        return load_mnist_like(name, data_dir)
    if name in CIFAR_STATS:
        return load_cifar(name, data_dir)
    if name == "npz":
        return load_npz(data_dir, timesteps)
    if name in EVENT_DATASETS:
        return load_events(name, data_dir, timesteps)
    raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop (padding 4) and horizontal flip, as in the TET CIFAR recipe."""
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=gen, device=gen.device) < 0.5
    x = torch.where(flip.view(b, 1, 1, 1).to(x.device), x.flip(-1), x)
    padded = F.pad(x, (4, 4, 4, 4))
    offs = torch.randint(0, 9, (b, 2), generator=gen, device=gen.device).tolist()
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offs)])
