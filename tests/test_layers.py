"""One contract, run against every layer of bnbook.layers and its torch.nn twin.

The table ``CASES`` lists (bnbook class, torch class, constructor kwargs, input shapes); every
test below runs on every row.  The mutation tests at the end build deliberately wrong layers
(biased running variance, momentum convention flipped, wrong reduction axes, ...) and check
that the same oracle comparison catches each of them, so a green run means something.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.testing import assert_close

from bnbook import layers as L
from bnbook._validate import ShapeError

# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    ours: type
    theirs: type
    args: dict  # required constructor arguments
    shapes: tuple  # batched input shapes; dim 0 (the batch) is varied during training
    config: dict = field(default_factory=dict)  # optional constructor arguments under test
    unbatched: tuple = ()  # accepted shapes without a batch axis

    def make(self, **extra):
        kwargs = {**self.args, **self.config, **extra}
        return self.ours(**kwargs), self.theirs(**kwargs)

    @property
    def id(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in {**self.args, **self.config}.items())
        return f"{self.ours.__name__}({args})"


BN_CONFIGS = [
    {}, {"affine": False}, {"bias": False}, {"momentum": None}, {"momentum": 0.0},
    {"momentum": 1.0}, {"track_running_stats": False}, {"eps": 1e-3, "momentum": 0.5},
    {"affine": False, "track_running_stats": False},
]  # fmt: skip
IN_CONFIGS = [
    {}, {"affine": True}, {"affine": True, "bias": False}, {"track_running_stats": True},
    {"track_running_stats": True, "affine": True, "momentum": None},
    {"track_running_stats": True, "momentum": 1.0},
]  # fmt: skip
LN_CONFIGS = [{}, {"elementwise_affine": False}, {"bias": False}, {"eps": 1e-3}]
GN_CONFIGS = [{}, {"affine": False}, {"bias": False}]
RMS_CONFIGS = [{}, {"elementwise_affine": False}, {"eps": 1e-3}, {"eps": 0.5, "elementwise_affine": False}]

FAMILIES = [
    # (ours, theirs, required args, batched shapes, unbatched shapes, configs)
    (L.BatchNorm1d, nn.BatchNorm1d, {"num_features": 3}, [(8, 3), (6, 3, 5)], [], BN_CONFIGS),
    (L.BatchNorm2d, nn.BatchNorm2d, {"num_features": 3}, [(4, 3, 5, 4)], [], BN_CONFIGS),
    (L.BatchNorm3d, nn.BatchNorm3d, {"num_features": 3}, [(3, 3, 2, 3, 4)], [], BN_CONFIGS),
    (L.InstanceNorm1d, nn.InstanceNorm1d, {"num_features": 3}, [(4, 3, 6)], [(3, 6)], IN_CONFIGS),
    (L.InstanceNorm2d, nn.InstanceNorm2d, {"num_features": 3}, [(3, 3, 4, 5)], [(3, 4, 5)],
     IN_CONFIGS),
    (L.InstanceNorm3d, nn.InstanceNorm3d, {"num_features": 3}, [(2, 3, 2, 3, 4)],
     [(3, 2, 3, 4)], IN_CONFIGS),
    (L.LayerNorm, nn.LayerNorm, {"normalized_shape": (3, 4)}, [(5, 3, 4), (2, 6, 3, 4)], [],
     LN_CONFIGS),
    (L.LayerNorm, nn.LayerNorm, {"normalized_shape": 4}, [(5, 4), (3, 2, 4)], [], LN_CONFIGS),
    (L.GroupNorm, nn.GroupNorm, {"num_groups": 2, "num_channels": 6},
     [(5, 6), (4, 6, 5), (3, 6, 3, 3), (2, 6, 2, 2, 3)], [], GN_CONFIGS),
    (L.GroupNorm, nn.GroupNorm, {"num_groups": 1, "num_channels": 4}, [(4, 4, 6)], [], [{}]),
    (L.GroupNorm, nn.GroupNorm, {"num_groups": 4, "num_channels": 4}, [(3, 4, 3, 3)], [], [{}]),
    (L.RMSNorm, nn.RMSNorm, {"normalized_shape": (3, 4)}, [(5, 3, 4), (2, 6, 3, 4)], [], RMS_CONFIGS),
    (L.RMSNorm, nn.RMSNorm, {"normalized_shape": 4}, [(5, 4), (3, 2, 4)], [], RMS_CONFIGS),
    # Without a process group both SyncBatchNorms are BatchNorm over any (N, C, *) input (torch's runs
    # on CPU then too); the multi-process equivalence is tests/test_syncbatchnorm.py's.
    (L.SyncBatchNorm, nn.SyncBatchNorm, {"num_features": 3}, [(8, 3), (4, 3, 5, 4), (3, 3, 2, 3, 4)], [],
     BN_CONFIGS),
]  # fmt: skip
CASES = [
    Case(ours, theirs, args, tuple(shapes), config, tuple(unbatched))
    for ours, theirs, args, shapes, unbatched, configs in FAMILIES
    for config in configs
]
BATCH_NORMS = [c for c in CASES if issubclass(c.ours, L._BatchNorm)]
INSTANCE_NORMS = [c for c in CASES if issubclass(c.ours, L._InstanceNorm)]
WITH_RUNNING_STATS = [c for c in CASES if c.config.get("track_running_stats", c in BATCH_NORMS)]


def cases(selection=None):
    selection = CASES if selection is None else selection
    return pytest.mark.parametrize("case", selection, ids=[c.id for c in selection])


# What bnbook.layers exports besides layer classes (the registry); anything else must be a layer.
NON_LAYER_EXPORTS = {"NORM_KINDS", "make_norm", "norm_prefix"}


def test_table_covers_every_public_layer():
    exported = {name: getattr(L, name) for name in L.__all__}
    classes = {name for name, obj in exported.items() if isinstance(obj, type) and issubclass(obj, nn.Module)}
    assert set(exported) - classes == NON_LAYER_EXPORTS  # a new export is a layer, or is listed
    assert {c.ours.__name__ for c in CASES} == classes
    for c in CASES:
        assert c.ours.__name__ == c.theirs.__name__


# --------------------------------------------------------------------------------------------
# The oracle: run both side by side and compare everything
# --------------------------------------------------------------------------------------------

BATCH_SIZES = [2, 5, 3, 8, 4, 6, 7]  # varied, and including the smallest legal batch
TOL = {"rtol": 1e-4, "atol": 1e-5}  # float32, outputs of order 1


def make_input(shape, g, dtype=torch.float32):
    """Non-zero mean and a different mean and scale at every position (wrong axes show up)."""
    loc = 3 * torch.randn(shape[1:], generator=g, dtype=dtype) + 2
    scale = 2 * torch.rand(shape[1:], generator=g, dtype=dtype) + 0.5
    return torch.randn(shape, generator=g, dtype=dtype) * scale + loc


def sync_pair(ours, theirs, seed=0):
    """Give both the same random (non-trivial) parameters, copied name by name."""
    g = torch.Generator().manual_seed(seed)
    theirs_params = dict(theirs.named_parameters())
    assert set(dict(ours.named_parameters())) == set(theirs_params)
    with torch.no_grad():
        for name, p in ours.named_parameters():
            p.copy_(1 + 0.5 * torch.randn(p.shape, generator=g) if name == "weight"
                    else torch.randn(p.shape, generator=g))  # fmt: skip
            theirs_params[name].copy_(p)
    return ours, theirs


def assert_same_state(ours, theirs, where=""):
    sd_ours, sd_theirs = ours.state_dict(), theirs.state_dict()
    assert list(sd_ours) == list(sd_theirs), where
    for key in sd_theirs:
        assert sd_ours[key].dtype == sd_theirs[key].dtype, f"{key} {where}"
        assert_close(sd_ours[key], sd_theirs[key], rtol=1e-5, atol=1e-6, msg=f"{key} {where}")


def assert_same_trajectory(ours, theirs, shapes, steps=28, seed=0):
    """Train both side by side with varying batch sizes (21 training steps, 7 in eval mode).

    At every step: outputs, input gradients, parameter gradients and all buffers (running
    statistics, batch counter) must agree with PyTorch.
    """
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        base = shapes[step % len(shapes)]
        shape = (BATCH_SIZES[step % len(BATCH_SIZES)], *base[1:])
        training = step % 4 != 3
        ours.train(training)
        theirs.train(training)
        x = make_input(shape, g)
        x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
        y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
        where = f"at step {step} ({'train' if training else 'eval'}, input {list(shape)})"
        assert_close(y_ours, y_theirs, **TOL, msg=f"output {where}")
        dy = torch.randn(y_theirs.shape, generator=g)
        y_ours.backward(dy)
        y_theirs.backward(dy)
        assert_close(x_ours.grad, x_theirs.grad, **TOL, msg=f"input grad {where}")
        theirs_params = dict(theirs.named_parameters())
        for name, p in ours.named_parameters():
            assert_close(p.grad, theirs_params[name].grad, **TOL, msg=f"{name}.grad {where}")
            p.grad = theirs_params[name].grad = None
        assert_same_state(ours, theirs, where)


# --------------------------------------------------------------------------------------------
# The contract
# --------------------------------------------------------------------------------------------


@cases()
def test_training_and_eval_trajectory_matches_torch(case):
    ours, theirs = sync_pair(*case.make())
    assert_same_trajectory(ours, theirs, case.shapes)


@cases()
def test_parameters_and_buffers_have_torch_names_shapes_and_dtypes(case):
    for factory in [{}, {"dtype": torch.float64}, {"device": "cpu", "dtype": torch.float32}]:
        ours, theirs = case.make(**factory)
        for kind in ["named_parameters", "named_buffers"]:
            got = [(n, t.shape, t.dtype, t.requires_grad) for n, t in getattr(ours, kind)()]
            want = [(n, t.shape, t.dtype, t.requires_grad) for n, t in getattr(theirs, kind)()]
            assert got == want, kind
        for name in ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]:
            assert hasattr(ours, name) == hasattr(theirs, name), name
            assert (getattr(ours, name, None) is None) == (getattr(theirs, name, None) is None)
        assert_same_state(ours, theirs)  # initial values: weight 1, bias 0, mean 0, var 1, 0
        assert ours.state_dict()._metadata[""] == theirs.state_dict()._metadata[""]
        for attr in [
            "num_features",
            "eps",
            "momentum",
            "affine",
            "track_running_stats",
            "normalized_shape",
            "elementwise_affine",
            "num_groups",
            "num_channels",
        ]:
            assert getattr(ours, attr, "absent") == getattr(theirs, attr, "absent"), attr


@cases()
def test_repr_matches_torch(case):
    ours, theirs = case.make()
    assert repr(ours) == repr(theirs)


@cases()
def test_state_dicts_load_in_both_directions(case):
    for source, target in [case.make()[::-1], case.make()]:  # torch -> bnbook, bnbook -> torch
        sync_pair(source, target, seed=7)
        g = torch.Generator().manual_seed(1)
        for batch in [4, 6, 3]:  # move the running statistics away from their initial values
            source(make_input((batch, *case.shapes[0][1:]), g))
        with torch.no_grad():
            for p in source.parameters():
                p.mul_(1.5).add_(0.25)
        target.load_state_dict(source.state_dict(), strict=True)
        assert_same_state(target, source)
        x = make_input(case.shapes[0], g)
        for training in [False, True]:
            source.train(training)
            target.train(training)
            assert_close(target(x), source(x), **TOL)


@cases(WITH_RUNNING_STATS)
def test_old_checkpoints_without_num_batches_tracked_load(case):
    """PyTorch's compatibility rule: no version metadata and no counter -> counter kept."""
    ours, theirs = case.make()
    for target in (ours, theirs):
        sd = {k: v for k, v in theirs.state_dict().items() if k != "num_batches_tracked"}
        target.num_batches_tracked.fill_(3)
        target.load_state_dict(sd, strict=True)  # a plain dict: no _metadata
        assert target.num_batches_tracked.item() == 3


@cases()
def test_gradcheck_float64(case):
    """Finite differences against autograd, for the input and every parameter, train and eval."""
    ours, _ = case.make(dtype=torch.float64)
    names = [n for n, _ in ours.named_parameters()]
    g = torch.Generator().manual_seed(0)
    base = case.shapes[0]
    # A small input: batch 2 and at most 2 positions per spatial axis (LayerNorm and RMSNorm
    # need their normalized_shape as it is).
    keep = case.ours in (L.LayerNorm, L.RMSNorm) or len(base) == 2
    shape = (2, *(base[1:] if keep else (base[1], *[min(s, 2) for s in base[2:]])))
    x = make_input(shape, g, torch.float64).requires_grad_()
    params = [(1 + torch.rand(p.shape, generator=g, dtype=torch.float64)).requires_grad_()
              for _, p in ours.named_parameters()]  # fmt: skip

    def f(x, *params):
        return functional_call(ours, dict(zip(names, params)), (x,))

    modes = [True, False] if getattr(ours, "running_mean", None) is not None else [True]
    for training in modes:
        ours.train(training)
        assert torch.autograd.gradcheck(f, (x, *params))


@cases()
def test_reset_matches_torch(case):
    ours, theirs = sync_pair(*case.make())
    g = torch.Generator().manual_seed(0)
    x = make_input(case.shapes[0], g)
    ours(x)
    theirs(x)
    if hasattr(theirs, "reset_running_stats"):
        ours.reset_running_stats()
        theirs.reset_running_stats()
        assert_same_state(ours, theirs)
    ours.reset_parameters()
    theirs.reset_parameters()
    assert_same_state(ours, theirs)


@cases()
def test_double_and_float64_forward(case):
    ours, theirs = sync_pair(*case.make())
    ours, theirs = ours.double(), theirs.double()
    x = make_input(case.shapes[0], torch.Generator().manual_seed(0), torch.float64)
    assert_close(ours(x), theirs(x))
    assert_same_state(ours, theirs)


@cases([c for c in CASES if c.unbatched])
def test_unbatched_input(case):
    ours, theirs = sync_pair(*case.make())
    g = torch.Generator().manual_seed(0)
    for training in [True, False, True]:
        ours.train(training)
        theirs.train(training)
        x = make_input((1, *case.unbatched[0]), g)[0]
        assert_close(ours(x), theirs(x), **TOL)
        assert_same_state(ours, theirs)


# --------------------------------------------------------------------------------------------
# Semantics spelled out (independent of PyTorch)
# --------------------------------------------------------------------------------------------


def test_momentum_none_is_the_plain_average_of_batch_statistics():
    bn = L.BatchNorm1d(3, momentum=None)
    g = torch.Generator().manual_seed(0)
    means, variances = [], []
    for batch in [4, 7, 2, 9]:
        x = make_input((batch, 3), g)
        bn(x)
        means.append(x.mean(0))
        variances.append(x.var(0, correction=1))  # unbiased
    assert_close(bn.running_mean, torch.stack(means).mean(0))
    assert_close(bn.running_var, torch.stack(variances).mean(0))
    assert bn.num_batches_tracked.dtype == torch.int64 and bn.num_batches_tracked.item() == 4


def test_eval_without_running_stats_uses_batch_statistics():
    bn = L.BatchNorm2d(3, track_running_stats=False).eval()
    y = bn(make_input((4, 3, 5, 5), torch.Generator().manual_seed(0)))
    assert_close(y.mean((0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    assert bn.running_mean is None and bn.num_batches_tracked is None


def test_eval_uses_running_statistics_and_updates_nothing():
    bn = L.BatchNorm2d(3)
    g = torch.Generator().manual_seed(0)
    bn(make_input((8, 3, 4, 4), g))
    state = {k: v.clone() for k, v in bn.state_dict().items()}
    bn.eval()
    x = make_input((2, 3, 4, 4), g)
    expected = (x - bn.running_mean.view(1, 3, 1, 1)) / torch.sqrt(bn.running_var.view(1, 3, 1, 1) + bn.eps)
    assert_close(bn(x), expected)  # weight 1, bias 0
    for k, v in bn.state_dict().items():
        assert torch.equal(v, state[k]), k


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

WRONG_DIMS = {
    "BatchNorm1d": [(2, 3, 4, 5), (3,)], "BatchNorm2d": [(2, 3, 4), (2, 3, 4, 5, 6)],
    "BatchNorm3d": [(2, 3, 4, 5)], "InstanceNorm1d": [(2, 3, 4, 5), (3,)],
    "InstanceNorm2d": [(3, 4), (2, 3, 4, 5, 6)], "InstanceNorm3d": [(3, 4, 5)],
    "LayerNorm": [(4, 5)], "GroupNorm": [(4,)], "RMSNorm": [(4, 5), (3,)], "SyncBatchNorm": [(3,)],
}  # fmt: skip


@cases()
def test_wrong_number_of_dimensions_raises_like_torch(case):
    ours, theirs = case.make()
    for shape in WRONG_DIMS[case.ours.__name__]:
        x = torch.randn(shape)
        with pytest.raises(Exception) as e_theirs:
            theirs(x)
        with pytest.raises(Exception) as e_ours:
            ours(x)
        assert isinstance(e_ours.value, type(e_theirs.value))
        assert str(e_ours.value) == str(e_theirs.value)


@cases([c for c in CASES if c.ours not in (L.LayerNorm, L.RMSNorm)])
def test_channel_count_mismatch(case):
    ours, theirs = case.make()
    shape = list(case.shapes[-1])
    shape[1] *= 2  # still divisible by num_groups: PyTorch's GroupNorm(affine=False) accepts it
    x = make_input(tuple(shape), torch.Generator().manual_seed(0))
    expected = case.args.get("num_features", case.args.get("num_channels"))
    silent_in_torch = case in INSTANCE_NORMS and not (
        case.config.get("affine") or case.config.get("track_running_stats")
    )
    if silent_in_torch:  # num_features is unused there: PyTorch warns and so do we
        with pytest.warns(UserWarning, match="does not match num_features"):
            y_ours = ours(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert_close(y_ours, theirs(x))
        return
    with pytest.raises(ShapeError, match=rf"expected input with C={expected} channels"):
        ours(x)
    try:  # where PyTorch raises too, ours is an instance of its exception type
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyTorch's InstanceNorm warns before it fails
            theirs(x)
    except Exception as e_theirs:  # noqa: BLE001
        with pytest.raises(type(e_theirs)):
            ours(x)


@cases(BATCH_NORMS)
def test_batch_of_one_in_training_raises_torch_error(case):
    ours, theirs = case.make()
    x = torch.randn(1, 3, *[1] * (len(case.shapes[0]) - 2))
    with pytest.raises(ValueError) as e_theirs:
        theirs(x)
    with pytest.raises(ValueError) as e_ours:
        ours(x)
    assert str(e_ours.value) == str(e_theirs.value)
    assert "Expected more than 1 value per channel when training" in str(e_ours.value)
    assert_same_state(ours, theirs)  # including PyTorch's count of the rejected batch
    ours.eval()
    theirs.eval()
    if case.config.get("track_running_stats", True):  # eval: running statistics, any batch
        assert_close(ours(x), theirs(x))


@cases([c for c in INSTANCE_NORMS if c.config == {}])
def test_single_spatial_position_raises_torch_error(case):
    ours, theirs = case.make()
    x = torch.randn(2, 3, *[1] * (len(case.shapes[0]) - 2))
    with pytest.raises(ValueError) as e_theirs:
        theirs(x)
    with pytest.raises(ValueError) as e_ours:
        ours(x)
    assert str(e_ours.value) == str(e_theirs.value)


NORM_BASE_CLASSES = [L.BatchNorm1d, L.BatchNorm2d, L.BatchNorm3d, L.InstanceNorm1d,
                     L.InstanceNorm2d, L.InstanceNorm3d]  # fmt: skip


@pytest.mark.parametrize("cls", NORM_BASE_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"momentum": -0.1}, ValueError, "momentum must be in"),
        ({"momentum": 1.5}, ValueError, "momentum must be in"),
        ({"momentum": math.nan}, ValueError, "momentum must be in"),
        ({"momentum": "0.1"}, TypeError, "momentum"),
        ({"eps": 0.0}, ValueError, "eps must be a finite float > 0"),
        ({"eps": -1e-5}, ValueError, "eps"),
        ({"eps": math.inf}, ValueError, "eps"),
        ({"eps": None}, TypeError, "eps"),
        ({"num_features": 0}, ValueError, "num_features must be >= 1"),
        ({"num_features": -2}, ValueError, "num_features"),
        ({"num_features": 2.5}, TypeError, "num_features must be an int"),
        ({"num_features": True}, TypeError, "num_features"),
    ],
)
def test_bad_constructor_arguments(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(**{"num_features": 3, **kwargs})


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: L.LayerNorm(4, eps=0.0), ValueError, "eps"),
        (lambda: L.LayerNorm((3, 0)), ValueError, "normalized_shape"),
        (lambda: L.LayerNorm((3, 2.5)), TypeError, "normalized_shape"),
        (lambda: L.GroupNorm(2, 4, eps=-1.0), ValueError, "eps"),
        (lambda: L.GroupNorm(0, 4), ValueError, "num_groups"),
        (lambda: L.GroupNorm(2, 0), ValueError, "num_channels"),
        (lambda: L.GroupNorm(2.0, 4), TypeError, "num_groups"),
        (lambda: L.RMSNorm(4, eps=0.0), ValueError, "eps must be a finite float > 0"),
        (lambda: L.RMSNorm(4, eps=-1e-5), ValueError, "eps"),
        (lambda: L.RMSNorm(4, eps=math.nan), ValueError, "eps"),
        (lambda: L.RMSNorm(4, eps="1e-5"), TypeError, "eps"),
        (lambda: L.RMSNorm((3, 0)), ValueError, "normalized_shape"),
        (lambda: L.RMSNorm((3, 2.5)), TypeError, "normalized_shape"),
    ],
)
def test_bad_constructor_arguments_layer_and_group_norm(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_groups_not_dividing_channels_raises_torch_error():
    with pytest.raises(ValueError) as e_theirs:
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError) as e_ours:
        L.GroupNorm(4, 6)
    assert str(e_ours.value) == str(e_theirs.value)
    assert str(e_ours.value) == "num_channels (6) must be divisible by num_groups (4)"


@pytest.mark.parametrize("name", ["LayerNorm", "RMSNorm"])
def test_layer_norm_shape_mismatch_raises_torch_error(name):
    x = torch.randn(2, 3, 5)
    with pytest.raises(RuntimeError) as e_theirs:
        getattr(nn, name)((3, 4))(x)
    with pytest.raises(RuntimeError) as e_ours:
        getattr(L, name)((3, 4))(x)
    assert str(e_ours.value) == str(e_theirs.value)
    assert isinstance(e_ours.value, ValueError) and "normalized_shape=[3, 4]" in str(e_ours.value)


def test_rms_norm_wrong_dtype_raises_clearly():
    with pytest.raises(TypeError, match="mixed dtype: weight has dtype torch.float32"):
        L.RMSNorm(4)(torch.randn(3, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating-point"):
        L.RMSNorm(4)(torch.ones(3, 4, dtype=torch.long))


# --------------------------------------------------------------------------------------------
# Mutation tests: subtly wrong layers that the oracle above must catch
# --------------------------------------------------------------------------------------------


class NaiveBatchNorm2d(L.BatchNorm2d):
    """Batch norm written out the obvious way, with one optional deliberate ``bug``."""

    def __init__(self, num_features, bug=None, **kwargs):
        super().__init__(num_features, **kwargs)
        self.bug = bug

    def forward(self, x):
        dims = (2, 3) if self.bug == "axes: batch axis forgotten" else (0, 2, 3)
        use_batch = self.training or self.bug == "eval uses batch statistics"
        if use_batch:
            mean = x.mean(dims, keepdim=True)
            unbiased_norm = self.bug == "normalizes with unbiased variance"
            var = x.var(dims, keepdim=True, correction=1 if unbiased_norm else 0)
        else:
            mean = self.running_mean.view(1, -1, 1, 1)
            var = self.running_var.view(1, -1, 1, 1)
        if self.training:
            self.num_batches_tracked += 1
            m = self.momentum
            if m is None:
                ignored = self.bug == "momentum None ignored"
                m = 0.1 if ignored else 1 / self.num_batches_tracked.item()
            if self.bug == "momentum convention 1 - m":
                m = 1 - m
            n = x.numel() // x.shape[1]
            correction = 1.0 if self.bug == "biased running variance" else n / (n - 1)
            with torch.no_grad():  # .mean(0): per-channel even for the wrong axes
                self.running_mean.mul_(1 - m).add_(m * mean.mean(0).flatten())
                self.running_var.mul_(1 - m).add_(m * correction * var.mean(0).flatten())
        y = (x - mean) / torch.sqrt(var + self.eps)
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class LastAxisLayerNorm(L.LayerNorm):
    """Wrong axes: normalizes over the last axis only, whatever normalized_shape says."""

    def forward(self, x):
        mean, var = x.mean(-1, keepdim=True), x.var(-1, keepdim=True, correction=0)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class InterleavedGroupNorm(L.GroupNorm):
    """Wrong grouping: channel c goes to group c % G instead of c // (C // G)."""

    def forward(self, x):
        n, c = x.shape[:2]
        xg = x.reshape(n, c // self.num_groups, self.num_groups, -1)
        mean = xg.mean((1, 3), keepdim=True)
        var = xg.var((1, 3), keepdim=True, correction=0)
        y = ((xg - mean) / torch.sqrt(var + self.eps)).reshape(x.shape)
        shape = (1, c) + (1,) * (x.dim() - 2)
        return y * self.weight.view(shape) + self.bias.view(shape)


class BiasedRunningVarInstanceNorm1d(L.InstanceNorm1d):
    """Stores the biased per-instance variance in running_var."""

    def forward(self, x):
        y = super().forward(x)
        if self.training:
            n = x.shape[-1]
            with torch.no_grad():  # undo the n / (n - 1) of the correct update
                unbiased = x.var(-1, correction=1).mean(0)
                self.running_var.sub_(self.momentum * unbiased * (1 - (n - 1) / n))
        return y


class MeanSubtractingRMSNorm(L.RMSNorm):
    """A LayerNorm without bias in RMSNorm's clothes: subtracts the mean before rescaling."""

    def forward(self, x):
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        centered = x - x.mean((-2, -1), keepdim=True)
        return centered * torch.rsqrt(centered.pow(2).mean((-2, -1), keepdim=True) + eps) * self.weight


class EpsOutsideSqrtRMSNorm(L.RMSNorm):
    """x / (sqrt(mean(x^2)) + eps) instead of x / sqrt(mean(x^2) + eps)."""

    def forward(self, x):
        return x / (x.pow(2).mean((-2, -1), keepdim=True).sqrt() + self.eps) * self.weight


class LastAxisRMSNorm(L.RMSNorm):
    """Wrong axes: the mean square of the last axis only, whatever normalized_shape says."""

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + torch.finfo(x.dtype).eps) * self.weight


BN2D_SHAPES = ((4, 3, 5, 4),)
MUTANTS = [
    (lambda bug: NaiveBatchNorm2d(3, bug=bug), nn.BatchNorm2d(3), BN2D_SHAPES, bug)
    for bug in [
        "biased running variance",
        "momentum convention 1 - m",
        "axes: batch axis forgotten",
        "normalizes with unbiased variance",
        "eval uses batch statistics",
    ]
] + [
    (lambda bug: NaiveBatchNorm2d(3, bug=bug, momentum=None), nn.BatchNorm2d(3, momentum=None),
     BN2D_SHAPES, "momentum None ignored"),
    (lambda bug: LastAxisLayerNorm((3, 4)), nn.LayerNorm((3, 4)), ((5, 3, 4),), "LayerNorm axes"),
    (lambda bug: InterleavedGroupNorm(2, 4), nn.GroupNorm(2, 4), ((4, 4, 6),), "GroupNorm groups"),
    (lambda bug: BiasedRunningVarInstanceNorm1d(3, track_running_stats=True),
     nn.InstanceNorm1d(3, track_running_stats=True), ((4, 3, 6),), "InstanceNorm running var"),
    (lambda bug: MeanSubtractingRMSNorm((3, 4)), nn.RMSNorm((3, 4)), ((5, 3, 4),), "RMSNorm subtracts the mean"),
    (lambda bug: EpsOutsideSqrtRMSNorm((3, 4), eps=0.1), nn.RMSNorm((3, 4), eps=0.1), ((5, 3, 4),),
     "RMSNorm eps outside the sqrt"),
    (lambda bug: LastAxisRMSNorm((3, 4)), nn.RMSNorm((3, 4)), ((5, 3, 4),), "RMSNorm axes"),
]  # fmt: skip


@pytest.mark.parametrize("make_ours,theirs,shapes,bug", MUTANTS, ids=[m[3] for m in MUTANTS])
def test_oracle_catches_mutant(make_ours, theirs, shapes, bug):
    ours = make_ours(bug)
    sync_pair(ours, theirs)
    with pytest.raises(AssertionError):
        assert_same_trajectory(ours, theirs, shapes)


class NaiveRMSNorm(L.RMSNorm):
    """The control for the RMSNorm mutants: the same plain code, without a bug."""

    def forward(self, x):
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return x / torch.sqrt(x.pow(2).mean((-2, -1), keepdim=True) + eps) * self.weight


@pytest.mark.parametrize("eps", [None, 0.1])
def test_naive_rms_norm_without_bug_passes_the_oracle(eps):
    assert_same_trajectory(*sync_pair(NaiveRMSNorm((3, 4), eps=eps), nn.RMSNorm((3, 4), eps=eps)), ((5, 3, 4),))


@pytest.mark.parametrize("momentum", [0.1, None])
def test_naive_reference_without_bug_passes_the_oracle(momentum):
    """Control for the mutation tests: the same naive code minus the bug is accepted."""
    ours = NaiveBatchNorm2d(3, bug=None, momentum=momentum)
    theirs = nn.BatchNorm2d(3, momentum=momentum)
    assert_same_trajectory(*sync_pair(ours, theirs), BN2D_SHAPES)
