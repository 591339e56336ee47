"""Training loop, evaluation and reproducibility helpers.

Introduced in chapter 2, "Batch normalization from scratch"
(``notebooks/02_batch_norm_from_scratch.ipynb``), where it plays the role of d2l's ``train_ch6``
(same Xavier initialization, SGD, cross-entropy and per-epoch metrics) and adds
what the book needs on top: a progress bar that works in a terminal and in Jupyter, live
curves that redraw in place, test accuracy every ``eval_every`` steps (Ioffe & Szegedy 2015,
Fig. 1(a)), a per-step ``callback`` for probes, and a clear error when the loss diverges.

Nothing here touches global state unless you call :func:`seed_everything` (or pass ``seed=``).
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Iterable
from numbers import Real
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from ._validate import check_choice, check_positive_int
from .plots import plot_history

__all__ = ["History", "seed_everything", "select_device", "evaluate_accuracy", "train"]

DeviceLike = Union[None, str, torch.device]
OptimizerArg = Union[str, Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]]


@dataclasses.dataclass
class History:
    """What :func:`train` measured; one entry per epoch unless stated otherwise.

    Attributes
    ----------
    train_loss : list of float
        Mean cross-entropy over the epoch's training examples (training mode, before each
        update, as in d2l).
    train_acc, test_acc : list of float
        Training accuracy of the same forward passes; test accuracy in eval mode after the epoch.
    examples_per_sec : list of float
        Training examples per second of the epoch, excluding evaluation and live plotting.
    epoch_time : list of float
        Wall-clock seconds of the whole epoch, including evaluation.
    steps : list of (int, float)
        ``(step, test_acc)`` pairs recorded every ``eval_every`` optimizer steps (and at step 0,
        before training); empty when ``eval_every`` is None.
    num_steps : int
        Optimizer steps taken.
    device : str
        Device the network was trained on.
    """

    train_loss: list[float] = dataclasses.field(default_factory=list)
    train_acc: list[float] = dataclasses.field(default_factory=list)
    test_acc: list[float] = dataclasses.field(default_factory=list)
    examples_per_sec: list[float] = dataclasses.field(default_factory=list)
    epoch_time: list[float] = dataclasses.field(default_factory=list)
    steps: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    num_steps: int = 0
    device: str = "cpu"

    @property
    def num_epochs(self) -> int:
        """Number of completed epochs."""
        return len(self.train_loss)

    def summary(self) -> str:
        """One line with the last epoch's metrics, in d2l's format.

        Examples
        --------
        >>> History([0.2734], [0.8991], [0.8072], [12345.61], [1.0]).summary()
        'loss 0.273, train acc 0.899, test acc 0.807, 12345.6 examples/sec on cpu'
        """
        if not self.train_loss:
            return "no completed epochs"
        return (
            f"loss {self.train_loss[-1]:.3f}, train acc {self.train_acc[-1]:.3f}, "
            f"test acc {self.test_acc[-1]:.3f}, "
            f"{self.examples_per_sec[-1]:.1f} examples/sec on {self.device}"
        )

    def as_dict(self) -> dict:
        """Plain ``dict`` of lists and numbers (JSON-serializable)."""
        d = dataclasses.asdict(self)
        d["steps"] = [list(s) for s in self.steps]
        return d


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and PyTorch (CPU and all GPUs).

    Call it explicitly; importing ``bnbook`` never seeds anything. Seeding the global torch
    generator also fixes the shuffling order of DataLoaders created without a ``generator``.
    """
    seed = check_positive_int("seed", seed, minimum=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def select_device(prefer: DeviceLike = None) -> torch.device:
    """The device to train on: CUDA if available, else Apple MPS, else CPU.

    Parameters
    ----------
    prefer : None, str or torch.device
        ``None`` picks automatically; ``"cpu"`` forces the CPU; ``"cuda"``, ``"cuda:1"`` or
        ``"mps"`` request that device and raise ``ValueError`` if it is not available.
    """
    if prefer is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    return _as_device(prefer, "prefer")


def _as_device(value, name: str) -> torch.device:
    """``value`` as an available torch.device; errors name the argument ``name``."""
    if not isinstance(value, (str, torch.device)):
        raise TypeError(f"{name} must be None, a str or a torch.device, got {type(value).__name__}")
    try:
        device = torch.device(value)
    except RuntimeError as e:
        raise ValueError(f"{name}={value!r} is not a device; expected e.g. 'cpu', 'cuda', 'mps'") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={value!r} but CUDA is not available (use None or 'cpu')")
    if device.type == "mps" and not _mps_available():
        raise ValueError(f"{name}={value!r} but MPS is not available (use None or 'cpu')")
    return device


def _net_device(net: nn.Module) -> torch.device:
    for t in net.parameters():
        return t.device
    for t in net.buffers():
        return t.device
    return torch.device("cpu")


def _check_loader(name: str, data_iter) -> Optional[int]:
    """Number of batches of ``data_iter`` (None if it has no ``len``); rejects empty loaders."""
    try:
        n = len(data_iter)
    except TypeError:
        return None
    if n == 0:
        raise ValueError(f"{name} is empty (0 batches); check the dataset and batch_size")
    return n


def _synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so that wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def evaluate_accuracy(net: nn.Module, data_iter: Iterable, device: DeviceLike = None) -> float:
    """Fraction of correctly classified examples of ``data_iter``, computed in eval mode.

    The network is put in ``eval()`` mode (BN uses its running statistics) under
    ``torch.no_grad()``; afterwards every submodule gets back its previous ``training`` flag,
    so calling this in the middle of training changes nothing.

    Parameters
    ----------
    net : nn.Module
        Maps ``(N, ...)`` inputs to ``(N, num_classes)`` logits.
    data_iter : iterable of (X, y)
        E.g. a DataLoader; ``y`` holds int64 class indices ``(N,)``.
    device : None, str or torch.device
        Where to evaluate; ``None`` uses the device of the network's parameters.
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be an nn.Module, got {type(net).__name__}")
    _check_loader("data_iter", data_iter)
    device = _net_device(net) if device is None else _as_device(device, "device")
    modes = {m: m.training for m in net.modules()}
    net.eval()
    correct, total = 0, 0
    try:
        with torch.no_grad():
            for X, y in data_iter:
                X, y = X.to(device), y.to(device)
                y_hat = net(X)  # (N, num_classes)
                correct += int((y_hat.argmax(dim=1) == y).sum())
                total += y.numel()
    finally:
        for m, training in modes.items():
            m.training = training
    if total == 0:
        raise ValueError("data_iter yielded no examples")
    return correct / total


def _init_xavier(m: nn.Module) -> None:
    """d2l's ``init_weights``: Xavier-uniform weights for linear and conv layers, biases untouched."""
    if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        if isinstance(m.weight, nn.parameter.UninitializedParameter):
            raise ValueError(
                f"{type(m).__name__} has uninitialized (lazy) weights; run one forward pass "
                "before train(..., init='xavier') or pass init=None"
            )
        nn.init.xavier_uniform_(m.weight)


def _make_optimizer(optimizer: OptimizerArg, params, lr: float) -> torch.optim.Optimizer:
    if isinstance(optimizer, str):
        check_choice("optimizer", optimizer, ("sgd", "adam"))
        cls = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
        return cls(params, lr=lr)
    if callable(optimizer):
        opt = optimizer(params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"optimizer callable must return a torch.optim.Optimizer, got {type(opt).__name__}")
        return opt
    raise TypeError(
        "optimizer must be 'sgd', 'adam' or a callable(params) -> torch.optim.Optimizer, "
        f"got {type(optimizer).__name__}"
    )


class _LivePlot:
    """Redraws the training curves in one Jupyter output area; does nothing elsewhere."""

    def __init__(self):
        self.handle = None
        self.enabled = _in_jupyter()

    def update(self, history: History) -> None:
        if not self.enabled:
            return
        import io

        from IPython.display import Image, display

        fig = plot_history(history)
        buf = io.BytesIO()
        # A PNG is shown the same way in JupyterLab, VS Code and a static book build.
        fig.savefig(buf, format="png", dpi=80)
        image = Image(data=buf.getvalue(), format="png")
        if self.handle is None:
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)


def _in_jupyter() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython or a plain interpreter)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the book
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def train(
    net: nn.Module,
    train_iter: Iterable,
    test_iter: Iterable,
    num_epochs: int,
    lr: float,
    *,
    optimizer: OptimizerArg = "sgd",
    device: DeviceLike = None,
    seed: Optional[int] = None,
    init: Optional[str] = "xavier",
    progress: bool = True,
    live_plot: bool = False,
    eval_every: Optional[int] = None,
    callback: Optional[Callable[[int, nn.Module, float], None]] = None,
) -> History:
    """Train a classifier with cross-entropy and return its :class:`History`.

    Parameters
    ----------
    net : nn.Module
        Maps ``(N, ...)`` inputs to ``(N, num_classes)`` logits; moved to ``device``.
    train_iter, test_iter : iterable of (X, y)
        Non-empty DataLoaders; ``y`` holds int64 class indices ``(N,)``.
    num_epochs : int
        Passes over ``train_iter`` (>= 1).
    lr : float
        Learning rate (finite, > 0). Ignored if ``optimizer`` is a callable.
    optimizer : {"sgd", "adam"} or callable
        Plain SGD (as in d2l), Adam, or ``optimizer(params) -> torch.optim.Optimizer``.
    device : None, str or torch.device
        ``None`` uses :func:`select_device`.
    seed : int, optional
        If given, :func:`seed_everything` is called first, fixing the initialization and the
        DataLoader shuffling order. For bit-identical runs also build the net after seeding.
    init : {"xavier", None}
        ``"xavier"``: Xavier-uniform weights for linear and conv layers (d2l's ``train_ch6``);
        ``None`` keeps the weights as they are.
    progress : bool
        Show a ``tqdm.auto`` progress bar (a widget in Jupyter, text in a terminal).
    live_plot : bool
        In Jupyter, redraw loss and accuracy curves in place once per epoch; no-op elsewhere.
    eval_every : int, optional
        Also record ``(step, test_acc)`` in ``History.steps`` at step 0 and every
        ``eval_every`` optimizer steps (Ioffe & Szegedy 2015, Fig. 1(a)).
    callback : callable, optional
        ``callback(step, net, loss)`` after every optimizer step; ``step`` counts from 1 and
        ``loss`` is the batch's mean loss as a float. Its time counts as training time.

    Returns
    -------
    History

    Raises
    ------
    FloatingPointError
        If a batch loss is NaN or infinite (training diverged); lower ``lr``.
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be an nn.Module, got {type(net).__name__}")
    num_batches = _check_loader("train_iter", train_iter)
    _check_loader("test_iter", test_iter)
    num_epochs = check_positive_int("num_epochs", num_epochs)
    if isinstance(lr, bool) or not isinstance(lr, Real):
        raise TypeError(f"lr must be a float > 0, got {type(lr).__name__} ({lr!r})")
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite float > 0, got {lr}")
    if init is not None:
        check_choice("init", init, ("xavier",))
    if eval_every is not None:
        eval_every = check_positive_int("eval_every", eval_every)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable(step, net, loss), got {type(callback).__name__}")

    if seed is not None:
        seed_everything(seed)
    device = select_device() if device is None else _as_device(device, "device")
    if init == "xavier":
        net.apply(_init_xavier)
    net.to(device)
    opt = _make_optimizer(optimizer, net.parameters(), lr)
    loss_fn = nn.CrossEntropyLoss()  # mean over the batch
    history = History(device=str(device))
    live = _LivePlot() if live_plot else None

    from tqdm.auto import tqdm

    total = None if num_batches is None else num_epochs * num_batches
    bar = tqdm(total=total, disable=not progress, unit="batch", leave=True)
    step = 0
    try:
        if eval_every is not None:
            history.steps.append((0, evaluate_accuracy(net, test_iter, device)))
        for epoch in range(1, num_epochs + 1):
            bar.set_description(f"epoch {epoch}/{num_epochs}")
            net.train()
            loss_sum, correct, n = 0.0, 0, 0
            epoch_start = time.perf_counter()
            train_time = 0.0
            tic = time.perf_counter()
            for X, y in train_iter:
                X, y = X.to(device), y.to(device)
                y_hat = net(X)  # (N, num_classes)
                loss = loss_fn(y_hat, y)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise FloatingPointError(
                        f"loss is {loss_value} at epoch {epoch}, step {step + 1}: training "
                        f"diverged; try a lower learning rate (lr={lr})"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                batch = y.numel()
                loss_sum += loss_value * batch
                correct += int((y_hat.detach().argmax(dim=1) == y).sum())
                n += batch
                if callback is not None:
                    callback(step, net, loss_value)
                if eval_every is not None and step % eval_every == 0:
                    _synchronize(device)
                    train_time += time.perf_counter() - tic
                    history.steps.append((step, evaluate_accuracy(net, test_iter, device)))
                    tic = time.perf_counter()
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / n:.3f}", refresh=False)
            _synchronize(device)
            train_time += time.perf_counter() - tic
            if n == 0:
                raise ValueError("train_iter yielded no examples")
            test_acc = evaluate_accuracy(net, test_iter, device)
            history.train_loss.append(loss_sum / n)
            history.train_acc.append(correct / n)
            history.test_acc.append(test_acc)
            history.examples_per_sec.append(n / train_time if train_time > 0 else float("inf"))
            history.num_steps = step
            history.epoch_time.append(time.perf_counter() - epoch_start)
            bar.set_postfix(
                loss=f"{history.train_loss[-1]:.3f}",
                train_acc=f"{history.train_acc[-1]:.3f}",
                test_acc=f"{test_acc:.3f}",
            )
            if live is not None:
                live.update(history)
    finally:
        bar.close()
    history.num_steps = step
    return history
