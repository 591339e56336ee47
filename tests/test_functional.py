"""bnbook.functional against torch.nn.functional: values, running statistics, gradients, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as TF
from torch.testing import assert_close

from bnbook import functional as BF
from bnbook._validate import DTypeError, ShapeError

SHAPES = [(6, 3), (5, 3, 7), (4, 3, 5, 6), (3, 3, 2, 4, 5)]  # 2-D .. 5-D, C = 3
DTYPES = [torch.float32, torch.float64]
AFFINE = ["none", "weight", "bias", "both"]


def make_input(shape, dtype, seed=0):
    """Non-zero mean, a different mean and scale at every position (so wrong axes show up)."""
    g = torch.Generator().manual_seed(seed)
    loc = 3 * torch.randn(shape[1:], generator=g, dtype=dtype) + 2
    scale = torch.rand(shape[1:], generator=g, dtype=dtype) * 3 + 0.5
    return torch.randn(shape, generator=g, dtype=dtype) * scale + loc


def make_affine(kind, shape, dtype, seed=1):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g, dtype=dtype) if kind in ("weight", "both") else None
    b = torch.randn(shape, generator=g, dtype=dtype) if kind in ("bias", "both") else None
    return w, b


def running(c, dtype, seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(c, generator=g, dtype=dtype), torch.rand(c, generator=g, dtype=dtype) + 0.5


def compare_with_grads(ours, theirs, tensors, dtype):
    """Run both on clones of ``tensors``; outputs and the gradients of every tensor must agree."""
    a = [t.clone().requires_grad_() if t is not None else None for t in tensors]
    b = [t.clone().requires_grad_() if t is not None else None for t in tensors]
    y_ours, y_theirs = ours(*a), theirs(*b)
    tol = {} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 2e-5}
    assert_close(y_ours, y_theirs, **tol)
    dy = torch.randn(y_theirs.shape, generator=torch.Generator().manual_seed(3), dtype=dtype)
    y_ours.backward(dy)
    y_theirs.backward(dy)
    for t_ours, t_theirs in zip(a, b):
        if t_ours is not None:
            assert_close(t_ours.grad, t_theirs.grad, **tol)


# --------------------------------------------------------------------------------------------
# batch_norm
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch(shape, dtype, affine, training):
    x = make_input(shape, dtype)
    w, b = make_affine(affine, shape[1], dtype)
    rm_ours, rv_ours = running(shape[1], dtype)
    rm_theirs, rv_theirs = rm_ours.clone(), rv_ours.clone()
    compare_with_grads(
        lambda x, w, b: BF.batch_norm(x, rm_ours, rv_ours, w, b, training, 0.3, 1e-4),
        lambda x, w, b: TF.batch_norm(x, rm_theirs, rv_theirs, w, b, training, 0.3, 1e-4),
        [x, w, b],
        dtype,
    )
    # Running statistics: updated in place in training (unbiased var), untouched in eval.
    assert_close(rm_ours, rm_theirs)
    assert_close(rv_ours, rv_theirs)
    assert not rm_ours.requires_grad and not rv_ours.requires_grad
    if not training:
        assert_close(rm_ours, running(shape[1], dtype)[0], rtol=0, atol=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_running_var_is_unbiased_and_output_uses_biased(shape):
    x = make_input(shape, torch.float64)
    rm, rv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    y = BF.batch_norm(x, rm, rv, training=True, momentum=1.0, eps=1e-12)
    dims = [0, *range(2, x.dim())]
    assert_close(rv, x.var(dims, correction=1))  # momentum 1: the running var IS the batch var
    assert_close(rm, x.mean(dims))
    assert_close(y.var(dims, correction=0), torch.ones(3, dtype=torch.float64))


def test_batch_norm_without_running_stats_in_training():
    x = make_input((8, 3, 4), torch.float32)
    ours = BF.batch_norm(x, None, None, training=True)
    assert_close(ours, TF.batch_norm(x, None, None, training=True))


def test_batch_norm_empty_batch_leaves_running_stats_alone():
    rm, rv = torch.zeros(3), torch.ones(3)
    y = BF.batch_norm(torch.randn(0, 3, 4), rm, rv, training=True)
    assert y.shape == (0, 3, 4)
    assert torch.equal(rm, torch.zeros(3)) and torch.equal(rv, torch.ones(3))


def test_batch_norm_channels_last_and_non_contiguous_input():
    x = make_input((4, 3, 5, 6), torch.float32)
    for variant in [x.to(memory_format=torch.channels_last), x.transpose(2, 3)]:
        assert_close(
            BF.batch_norm(variant, None, None, training=True),
            TF.batch_norm(variant, None, None, training=True),
        )


# --------------------------------------------------------------------------------------------
# layer_norm, instance_norm, group_norm
# --------------------------------------------------------------------------------------------

LAYER_CASES = [(s, k) for s in SHAPES + [(7,)] for k in range(1, len(s) + 1)]  # every trailing k


@pytest.mark.parametrize("shape,k", LAYER_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", ["none", "both"])
def test_layer_norm_matches_torch(shape, k, dtype, affine):
    x = make_input(shape, dtype) if len(shape) > 1 else torch.randn(shape, dtype=dtype) + 4
    normalized = shape[-k:]
    w, b = make_affine(affine, normalized, dtype)
    compare_with_grads(
        lambda x, w, b: BF.layer_norm(x, normalized, w, b, 1e-5),
        lambda x, w, b: TF.layer_norm(x, normalized, w, b, 1e-5),
        [x, w, b],
        dtype,
    )


@pytest.mark.parametrize("shape", SHAPES[1:])  # instance norm needs spatial axes
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("stats", ["none", "update", "use_running"])
def test_instance_norm_matches_torch(shape, dtype, affine, stats):
    x = make_input(shape, dtype)
    w, b = make_affine(affine, shape[1], dtype)
    rm_ours, rv_ours = running(shape[1], dtype) if stats != "none" else (None, None)
    rm_theirs = rm_ours.clone() if rm_ours is not None else None
    rv_theirs = rv_ours.clone() if rv_ours is not None else None
    use_input_stats = stats != "use_running"
    compare_with_grads(
        lambda x, w, b: BF.instance_norm(x, rm_ours, rv_ours, w, b, use_input_stats, 0.2, 1e-5),
        lambda x, w, b: TF.instance_norm(x, rm_theirs, rv_theirs, w, b, use_input_stats, 0.2, 1e-5),
        [x, w, b],
        dtype,
    )
    if rm_ours is not None:
        assert_close(rm_ours, rm_theirs)
        assert_close(rv_ours, rv_theirs)


@pytest.mark.parametrize("shape,k", LAYER_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight", [False, True])
@pytest.mark.parametrize("eps", [None, 1e-5, 0.5])
def test_rms_norm_matches_torch(shape, k, dtype, weight, eps):
    x = make_input(shape, dtype) if len(shape) > 1 else torch.randn(shape, dtype=dtype) + 4
    normalized = shape[-k:]
    w = make_affine("weight", normalized, dtype)[0] if weight else None
    compare_with_grads(
        lambda x, w: BF.rms_norm(x, normalized, w, eps),
        lambda x, w: TF.rms_norm(x, normalized, w, eps),
        [x, w],
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_default_eps_is_the_machine_epsilon(dtype):
    """On tiny inputs eps dominates the mean square, so only the right default matches torch."""
    x = make_input((4, 3, 5), dtype) * 1e-5 if dtype == torch.float32 else make_input((4, 3, 5), dtype) * 1e-9
    expected = TF.rms_norm(x, (5,))
    assert_close(BF.rms_norm(x, (5,)), expected)
    assert_close(BF.rms_norm(x, (5,), eps=torch.finfo(dtype).eps), expected)
    assert not torch.allclose(BF.rms_norm(x, (5,), eps=1e-5 if dtype == torch.float32 else 1e-12), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("weight", [False, True])
def test_rms_norm_half_precision_computes_in_float32_like_torch(dtype, weight):
    x = make_input((4, 3, 8), torch.float32).to(dtype)
    w = (torch.rand(8, generator=torch.Generator().manual_seed(1)) + 0.5).to(dtype) if weight else None
    y = BF.rms_norm(x, (8,), w)
    assert y.dtype == dtype
    assert_close(y, TF.rms_norm(x, (8,), w), rtol=0, atol=0)  # the same float32 computation, then cast


def test_rms_norm_does_not_centre():
    """The difference from layer norm: a constant row keeps its sign; layer norm maps it to 0."""
    x = torch.full((2, 4), -3.0)
    assert_close(BF.rms_norm(x, (4,)), torch.full((2, 4), -1.0))
    assert_close(BF.layer_norm(x, (4,)), torch.zeros(2, 4))


# C = 3: G = 1 (layer-norm-like) and G = C (instance-norm-like), but not G = C on (N, C):
# groups of a single value have var = 0 and their gradients are ill-conditioned noise.
GROUP_CASES = [(s, g) for s in SHAPES for g in (1, 3) if not (len(s) == 2 and g == 3)]


@pytest.mark.parametrize("shape,groups", GROUP_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", AFFINE)
def test_group_norm_matches_torch(shape, groups, dtype, affine):
    x = make_input(shape, dtype)
    w, b = make_affine(affine, shape[1], dtype)
    compare_with_grads(
        lambda x, w, b: BF.group_norm(x, groups, w, b, 1e-5),
        lambda x, w, b: TF.group_norm(x, groups, w, b, 1e-5),
        [x, w, b],
        dtype,
    )


@pytest.mark.parametrize("shape", [(4, 6), (3, 6, 5), (2, 6, 3, 4), (2, 6, 2, 2, 3)])
@pytest.mark.parametrize("groups", [2, 3])  # groups of several channels each
def test_group_norm_with_multichannel_groups(shape, groups):
    x = make_input(shape, torch.float64)
    w, b = make_affine("both", shape[1], torch.float64)
    assert_close(BF.group_norm(x, groups, w, b), TF.group_norm(x, groups, w, b))


# --------------------------------------------------------------------------------------------
# Gradients in float64 against finite differences
# --------------------------------------------------------------------------------------------

GRADCHECK_CASES = {
    "batch_norm_train": lambda x, w, b: BF.batch_norm(x, None, None, w, b, training=True),
    "batch_norm_train_update": lambda x, w, b: BF.batch_norm(
        x, torch.zeros(3, dtype=x.dtype), torch.ones(3, dtype=x.dtype), w, b, training=True
    ),
    "batch_norm_eval": lambda x, w, b: BF.batch_norm(
        x, torch.full((3,), 0.5, dtype=x.dtype), torch.full((3,), 2.0, dtype=x.dtype), w, b
    ),
    "layer_norm": lambda x, w, b: BF.layer_norm(
        x, x.shape[1:], w.view(-1, *[1] * (x.dim() - 2)).expand(x.shape[1:]), None
    ),
    "instance_norm": lambda x, w, b: BF.instance_norm(x, None, None, w, b),
    "rms_norm": lambda x, w, b: BF.rms_norm(x, x.shape[1:], w.view(-1, *[1] * (x.dim() - 2)).expand(x.shape[1:])),
    "rms_norm_eps": lambda x, w, b: BF.rms_norm(x, x.shape[-1:], None, 0.1),
    "group_norm": lambda x, w, b: BF.group_norm(x, 3, w, b),
}


@pytest.mark.parametrize(
    "name,shape",
    [
        (name, shape)
        for name in GRADCHECK_CASES
        for shape in [(4, 3), (3, 3, 4), (2, 3, 2, 3), (2, 3, 2, 1, 2)]
        if not (name == "instance_norm" and len(shape) == 2)  # needs spatial axes
    ],
)
def test_gradcheck_float64(name, shape):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 2 + 1).requires_grad_()
    w = torch.randn(3, generator=g, dtype=torch.float64).requires_grad_()
    b = torch.randn(3, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(GRADCHECK_CASES[name], (x, w, b))


def test_gradients_flow_to_input_only_through_batch_statistics():
    """In training the statistics depend on x: sum over the batch of dL/dx is 0 per channel."""
    x = make_input((8, 3, 4), torch.float64).requires_grad_()
    y = BF.batch_norm(x, None, None, training=True)
    (y * torch.randn_like(y)).sum().backward()
    assert_close(x.grad.sum((0, 2)), torch.zeros(3, dtype=torch.float64))


# --------------------------------------------------------------------------------------------
# Errors: where PyTorch raises, we raise a compatible type with the same key message
# --------------------------------------------------------------------------------------------

x3 = torch.randn(4, 3, 5)
r3 = (torch.zeros(3), torch.ones(3))
ERROR_CASES = [
    # (name, args for both functions, expected exception type, key message)
    ("batch of one", ("batch_norm", (torch.randn(1, 3), None, None), {"training": True}),
     ValueError, "Expected more than 1 value per channel when training"),
    ("batch of one 4-D", ("batch_norm", (torch.randn(1, 3, 1, 1), None, None), {"training": True}),
     ValueError, "Expected more than 1 value per channel when training"),
    ("running_mean size", ("batch_norm", (x3, torch.zeros(4), torch.ones(3)), {"training": True}),
     RuntimeError, "running_mean should contain 3 elements not 4"),
    ("running_var size", ("batch_norm", (x3, torch.zeros(3), torch.ones(4)), {}),
     RuntimeError, "running_var should contain 3 elements not 4"),
    ("weight size", ("batch_norm", (x3, None, None, torch.ones(4)), {"training": True}),
     RuntimeError, "weight should contain 3 elements not 4"),
    ("bias size", ("batch_norm", (x3, None, None, None, torch.ones(2)), {"training": True}),
     RuntimeError, "bias should contain 3 elements not 2"),
    ("eval without stats", ("batch_norm", (x3, None, None), {}),
     RuntimeError, "running_mean must be defined in evaluation mode"),
    ("only running_mean", ("batch_norm", (x3, torch.zeros(3), None), {"training": True}),
     ValueError, "running_mean and running_var must either both be None or neither be None"),
    ("eps 0 training", ("batch_norm", (x3, None, None), {"training": True, "eps": 0.0}),
     ValueError, "batch_norm eps must be positive during training"),
    ("eps < 0 eval", ("batch_norm", (x3, *r3), {"eps": -1.0}),
     ValueError, "batch_norm eps must be non-negative"),
    ("momentum None", ("batch_norm", (x3, *r3), {"training": True, "momentum": None}),
     TypeError, "momentum"),
    ("mixed dtype", ("batch_norm", (x3.double(), *r3), {"training": True}),
     RuntimeError, "mixed dtype"),
    ("1-D input", ("batch_norm", (torch.randn(5), torch.zeros(5), torch.ones(5)), {"training": True}),
     RuntimeError, ""),
    ("1-D input, no stats", ("batch_norm", (torch.randn(5), None, None), {"training": True}),
     None, "at least 2 dimensions"),
    ("layer shape", ("layer_norm", (x3, (4,)), {}),
     RuntimeError, "Given normalized_shape=[4], expected input with shape [*, 4], but got input of size[4, 3, 5]"),
    ("layer too long", ("layer_norm", (x3, (2, 4, 3, 5)), {}),
     RuntimeError, "expected input with shape [*, 2, 4, 3, 5]"),
    ("layer empty shape", ("layer_norm", (x3, ()), {}),
     RuntimeError, "Expected normalized_shape to be at least 1-dimensional"),
    ("layer int shape", ("layer_norm", (x3, 5), {}), TypeError, "normalized_shape"),
    ("layer weight", ("layer_norm", (x3, (5,), torch.ones(4)), {}),
     RuntimeError,
     "Expected weight to be of same shape as normalized_shape, but got weight of shape [4] and normalized_shape = [5]"),
    ("layer bias", ("layer_norm", (x3, (5,), None, torch.ones(4)), {}),
     RuntimeError, "Expected bias to be of same shape as normalized_shape"),
    ("groups not dividing", ("group_norm", (torch.randn(2, 6, 4), 4), {}),
     RuntimeError,
     "Expected number of channels in input to be divisible by num_groups, but got input of shape [2, 6, 4] and "
     "num_groups=4"),
    ("group 1-D", ("group_norm", (torch.randn(6), 3), {}),
     RuntimeError, "Expected at least 2 dimensions for input tensor but received 1"),
    ("group one value", ("group_norm", (torch.randn(1, 6), 6), {}),
     ValueError, "Expected more than 1 value per channel when training, got input size [1, 6]"),
    ("group weight", ("group_norm", (torch.randn(2, 6, 4), 3, torch.ones(3)), {}),
     RuntimeError, "Expected weight to be a vector of size equal to the number of channels in input"),
    ("group bias", ("group_norm", (torch.randn(2, 6, 4), 3, None, torch.ones(3)), {}),
     RuntimeError, "Expected bias to be a vector of size equal to the number of channels"),
    ("group negative", ("group_norm", (torch.randn(2, 6, 4), -3), {}), None, "num_groups"),
    ("instance one position", ("instance_norm", (torch.randn(2, 3, 1),), {}),
     ValueError, "Expected more than 1 spatial element when training"),
    ("instance no stats", ("instance_norm", (x3,), {"use_input_stats": False}),
     RuntimeError, "Expected running_mean and running_var to be defined when use_input_stats is false"),
    ("instance running size", ("instance_norm", (x3, torch.zeros(4), torch.ones(4)), {}), RuntimeError, ""),
    ("rms shape", ("rms_norm", (x3, (4,)), {}),
     RuntimeError, "Given normalized_shape=[4], expected input with shape [*4], but got input of size[4, 3, 5]"),
    ("rms trailing shape", ("rms_norm", (x3, (5, 3)), {}), RuntimeError, "expected input with shape [*5, 3]"),
    ("rms too long", ("rms_norm", (x3, (2, 4, 3, 5)), {}),
     ValueError, "Input tensor must have at least 4 dimensions, but got 3"),
    ("rms empty shape", ("rms_norm", (x3, ()), {}),
     RuntimeError, "Expected normalized_shape to be at least 1-dimensional"),
    ("rms int shape", ("rms_norm", (x3, 5), {}), TypeError, "normalized_shape"),
    ("rms weight", ("rms_norm", (x3, (5,), torch.ones(4)), {}),
     RuntimeError, "Expected weight to be of same shape as normalized_shape, "
                   "but got weight of shape [4] and normalized_shape = [5]"),
    ("rms weight 2-D", ("rms_norm", (x3, (3, 5), torch.ones(5, 3)), {}),
     RuntimeError, "but got weight of shape [5, 3] and normalized_shape = [3, 5]"),
    ("rms integer input", ("rms_norm", (torch.ones(4, 3, dtype=torch.long), (3,)), {}), None, "floating-point"),
]  # fmt: skip


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_errors_match_torch(case):
    _, (fn, args, kwargs), torch_type, key = case
    with pytest.raises(Exception) as theirs:
        getattr(TF, fn)(*args, **kwargs)
    with pytest.raises(Exception) as ours:
        getattr(BF, fn)(*args, **kwargs)
    if torch_type is not None:
        assert isinstance(theirs.value, torch_type), "the table's expectation about torch is stale"
        assert isinstance(ours.value, torch_type)  # `except <torch's type>` still works
        assert key in str(theirs.value)
        assert key in str(ours.value)
    else:  # PyTorch gives an unhelpful error here; ours names the argument
        assert key in str(ours.value)
    # and our errors are always ValueError or TypeError, the convention of this project
    assert isinstance(ours.value, (ValueError, TypeError))


@pytest.mark.parametrize(
    "call",
    [
        lambda: BF.batch_norm(torch.ones(4, 3, dtype=torch.long), None, None, training=True),
        lambda: BF.batch_norm([[1.0, 2.0]], None, None, training=True),
        lambda: BF.layer_norm(torch.ones(4, 3, dtype=torch.int32), (3,)),
        lambda: BF.group_norm(torch.ones(4, 3, dtype=torch.long), 3),
        lambda: BF.instance_norm(torch.ones(4, 3, 2, dtype=torch.long)),
        lambda: BF.batch_norm(x3, *r3, eps="1e-5"),
        lambda: BF.batch_norm(x3, *r3, weight=[1.0, 1.0, 1.0]),
        lambda: BF.group_norm(x3, 1.5),
    ],
)
def test_type_errors(call):
    with pytest.raises(TypeError):
        call()


@pytest.mark.parametrize("momentum", [-0.1, 1.5, float("nan")])
def test_momentum_out_of_range(momentum):
    with pytest.raises(ValueError, match="momentum"):
        BF.batch_norm(x3, *r3, training=True, momentum=momentum)
    with pytest.raises(ValueError, match="momentum"):
        BF.instance_norm(x3, *r3, momentum=momentum)


@pytest.mark.parametrize(
    "eps,error,match",
    [
        (0.0, ValueError, "eps must be a finite float > 0, got 0.0"),
        (-1e-5, ValueError, "eps must be a finite float > 0"),
        (float("nan"), ValueError, "eps must be a finite float > 0, got nan"),
        (float("inf"), ValueError, "eps must be a finite float > 0"),
        ("1e-5", TypeError, "eps must be a float > 0"),
        (True, TypeError, "eps"),
    ],
)
def test_rms_norm_bad_eps(eps, error, match):
    """Ours only: PyTorch accepts eps <= 0 (NaN for an all-zero row, or for a negative eps)."""
    with pytest.raises(error, match=match):
        BF.rms_norm(x3, (5,), eps=eps)


def test_rms_norm_mixed_dtype_is_refused():
    """PyTorch warns and casts; we refuse, like our other ops."""
    with pytest.raises(DTypeError, match="mixed dtype: weight"):
        BF.rms_norm(x3, (5,), torch.ones(5, dtype=torch.float64))


@pytest.mark.parametrize("fn", ["layer_norm", "group_norm", "instance_norm"])
def test_negative_eps_rejected(fn):
    args = {"layer_norm": (x3, (5,)), "group_norm": (x3, 3), "instance_norm": (x3,)}[fn]
    with pytest.raises(ValueError, match="eps must be non-negative"):
        getattr(BF, fn)(*args, eps=-1e-5)
    assert_close(getattr(BF, fn)(*args, eps=0.0), getattr(TF, fn)(*args, eps=0.0))  # 0 is fine


def test_shape_and_dtype_errors_are_both_conventions():
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, RuntimeError)
    assert issubclass(DTypeError, TypeError) and issubclass(DTypeError, RuntimeError)


def test_instance_norm_running_stats_must_come_in_pairs():
    with pytest.raises(ValueError, match="both be None"):
        BF.instance_norm(x3, torch.zeros(3), None)


def test_no_in_place_change_of_input_or_parameters():
    x, (w, b) = make_input((4, 3, 5), torch.float32), make_affine("both", 3, torch.float32)
    copies = [t.clone() for t in (x, w, b)]
    for fn in [
        lambda: BF.batch_norm(x, None, None, w, b, training=True),
        lambda: BF.instance_norm(x, None, None, w, b),
        lambda: BF.group_norm(x, 3, w, b),
        lambda: BF.layer_norm(x, (5,)),
        lambda: BF.rms_norm(x, (3, 5)),
    ]:
        fn()
    for t, c in zip((x, w, b), copies):
        assert torch.equal(t, c)


@pytest.mark.parametrize("affine", AFFINE)
def test_in_place_op_on_output_does_not_break_backward(affine):
    """E.g. BatchNorm2d(affine=False) followed by ReLU(inplace=True)."""
    x = make_input((4, 3, 5), torch.float64)
    w, b = make_affine(affine, 3, torch.float64)
    compare_with_grads(
        lambda x, w, b: BF.batch_norm(x, None, None, w, b, training=True).relu_(),
        lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True).relu_(),
        [x, w, b],
        torch.float64,
    )


def test_second_derivatives_are_refused_clearly():
    x = make_input((4, 3), torch.float64).requires_grad_()
    (g,) = torch.autograd.grad(BF.batch_norm(x, None, None, training=True).pow(3).sum(), x,
                               create_graph=True)  # fmt: skip
    with pytest.raises(RuntimeError, match="differentiate twice"):
        g.sum().backward()


@pytest.mark.parametrize("fn", ["batch_norm", "layer_norm", "group_norm", "instance_norm"])
def test_infinite_eps_rejected(fn):
    """Ours only (PyTorch returns zeros): an infinite eps is a mistake, not a normalization."""
    args = {"batch_norm": (x3, *r3), "layer_norm": (x3, (5,)), "group_norm": (x3, 3), "instance_norm": (x3,)}[fn]
    with pytest.raises(ValueError, match=f"{fn} eps must be finite, but got inf"):
        getattr(BF, fn)(*args, eps=float("inf"))
