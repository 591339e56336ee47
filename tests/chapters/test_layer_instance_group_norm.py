"""Tests for bnbook.chapters.layer_instance_group_norm, with torch.nn as the oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from bnbook.chapters import layer_instance_group_norm as ch

F = nn.functional


def _x(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=dtype) * 2 + 1).to(dtype)


# ----------------------------------------------------------------------------- pooling
def test_reduction_axes_and_table():
    assert ch.reduction_axes("batch", 2) == (0,)
    assert ch.reduction_axes("batch", 3) == (0, 2)
    assert ch.reduction_axes("layer", 4) == (1, 2, 3)
    assert ch.reduction_axes("rms", 3) == (1, 2)
    assert ch.reduction_axes("instance", 4) == (2, 3)
    assert ch.reduction_axes("group", 3) == (2, 3)
    with pytest.raises(ValueError, match="instance"):
        ch.reduction_axes("instance", 2)
    with pytest.raises(ValueError, match="kind"):
        ch.reduction_axes("weight", 4)
    with pytest.raises(ValueError, match="ndim"):
        ch.reduction_axes("batch", 1)
    rows = {r["norm"]: r for r in ch.axes_table()}
    assert rows["BN"]["(N, C, H, W)"] == "N, H, W"
    assert rows["LN"]["(N, C)"] == "C"
    assert rows["IN"]["(N, C)"].startswith("-")
    assert rows["GN"]["(N, C, L)"] == "C/G, L"


@pytest.mark.parametrize("shape", [(4, 6), (3, 6, 5), (2, 6, 3, 4)])
@pytest.mark.parametrize("kind", ch.KINDS)
def test_normalize_matches_torch(kind, shape):
    x = _x(*shape)
    if kind == "instance" and len(shape) == 2:
        with pytest.raises(ValueError, match="spatial"):
            ch.normalize(kind, x)
        return
    ref = {
        "batch": lambda: F.batch_norm(x, None, None, training=True),
        "layer": lambda: F.group_norm(x, 1),
        "instance": lambda: F.instance_norm(x),
        "group": lambda: F.group_norm(x, 3),
        "rms": lambda: F.rms_norm(x, x.shape[1:], eps=1e-5),
    }[kind]()
    torch.testing.assert_close(ch.normalize(kind, x, 3), ref)


@pytest.mark.parametrize("kind", ch.KINDS)
def test_pooled_sets_are_the_sets_torch_normalizes(kind):
    x = _x(3, 6, 2, 2)
    y = ch.normalize(kind, x, 2)
    ids = ch.pooled_sets(kind, x.shape, 2)
    assert ids.shape == x.shape and ids.dtype == torch.int64
    mean, std = ch.set_statistics(kind, x, 2)
    for i in range(int(ids.max()) + 1):
        vals = x[ids == i]
        if kind == "rms":
            torch.testing.assert_close(std[i], vals.pow(2).mean().sqrt())
            torch.testing.assert_close(y[ids == i], vals / vals.pow(2).mean().add(1e-5).sqrt())
        else:
            torch.testing.assert_close(mean[i], vals.mean())
            torch.testing.assert_close(std[i], vals.std(correction=0))
            torch.testing.assert_close(y[ids == i], (vals - vals.mean()) / (vals.var(correction=0) + 1e-5).sqrt())
    counts = {"batch": 6, "layer": 3, "instance": 18, "group": 6, "rms": 3}
    assert int(ids.max()) + 1 == counts[kind]


def test_pooling_bad_input():
    with pytest.raises(ValueError, match="num_groups"):
        ch.pooled_sets("group", (2, 6, 3), 4)
    with pytest.raises(ValueError, match="num_groups"):
        ch.normalize("group", _x(2, 6, 3), None)
    with pytest.raises(ValueError, match="eps"):
        ch.normalize("layer", _x(2, 6, 3), eps=0.0)
    with pytest.raises(ValueError, match="x must have shape"):
        ch.normalize("layer", _x(6))
    with pytest.raises(ValueError, match="shape"):
        ch.pooled_sets("batch", (3,))
    with pytest.raises(ValueError, match="more than 1 value"):
        ch.normalize("batch", _x(1, 3))
    with pytest.raises(TypeError, match="floating"):
        ch.normalize("batch", torch.ones(2, 3, dtype=torch.long))


# ----------------------------------------------------------------------------- cube
@pytest.mark.parametrize("kind", ch.KINDS)
def test_cube_highlights_the_set_of_element_0(kind):
    polys, elems = ch.cube_cells(4, 8, 3)
    assert len(polys) == len(elems) == 4 * 3 + 4 * 8 + 8 * 3
    colors = ch.cube_colors(kind, elems, (4, 8, 3), 2)
    ids = ch.pooled_sets(kind, (4, 8, 3), 2).numpy()
    blue = [tuple(e) for e, c in zip(elems, colors) if c == ch.cube.HIGHLIGHT]
    assert blue and all(ids[e] == ids[0, 0, 0] for e in blue)
    others = [tuple(e) for e, c in zip(elems, colors) if c != ch.cube.HIGHLIGHT]
    assert all(ids[e] != ids[0, 0, 0] for e in others)


def test_draw_and_update_cube():
    fig = Figure()
    ax = fig.add_subplot()
    coll = ch.draw_cube(ax, "group", n=2, c=8, s=2, num_groups=4)
    assert ax.get_title() == "GN, G = 4"
    ch.update_cube(coll, "batch", 6, 8, 2)
    assert len(coll.get_paths()) == 6 * 2 + 6 * 8 + 8 * 2
    with pytest.raises(ValueError, match="num_groups"):
        ch.update_cube(coll, "group", 2, 8, 2, 3)
    with pytest.raises(ValueError, match="n must be"):
        ch.cube_cells(0, 2, 2)


# ----------------------------------------------------------------------------- channel LayerNorm
def test_channel_layer_norm_equals_permuted_layer_norm():
    x = _x(2, 5, 3, 4).requires_grad_()
    ln = ch.ChannelLayerNorm(5).double()
    with torch.no_grad():
        ln.weight.copy_(torch.linspace(0.5, 2, 5))
        ln.bias.copy_(torch.linspace(-1, 1, 5))
    ref_ln = nn.LayerNorm(5, eps=1e-6).double()
    ref_ln.load_state_dict(ln.state_dict())
    y = ln(x)
    ref = ref_ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(y, ref)
    (gx,) = torch.autograd.grad((y * y.detach().cos()).sum(), x)
    (rx,) = torch.autograd.grad((ref * ref.detach().cos()).sum(), x)
    torch.testing.assert_close(gx, rx)
    assert torch.autograd.gradcheck(lambda t: ch.channel_layer_norm(t, eps=1e-3), (_x(2, 3, 2).requires_grad_(),))
    assert "5, eps=1e-06" in repr(ln)
    plain = ch.ChannelLayerNorm(5, elementwise_affine=False)
    assert plain.weight is None and list(plain.parameters()) == []


def test_channel_layer_norm_bad_input():
    with pytest.raises(ValueError, match="num_channels"):
        ch.ChannelLayerNorm(4)(torch.randn(2, 5, 3, 3))
    with pytest.raises(ValueError, match="eps"):
        ch.ChannelLayerNorm(4, eps=-1.0)
    with pytest.raises(ValueError, match="num_channels"):
        ch.ChannelLayerNorm(0)
    with pytest.raises(ValueError, match="weight"):
        ch.channel_layer_norm(torch.randn(2, 3, 4), torch.ones(4))
    with pytest.raises(ValueError, match="x must have shape"):
        ch.channel_layer_norm(torch.randn(3))


# ----------------------------------------------------------------------------- CNN and sweeps
@pytest.mark.parametrize("kind", ch.CNN_NORMS)
@pytest.mark.parametrize("impl", ["torch", "bnbook"])
def test_small_cnn_every_norm(kind, impl):
    net = ch.small_cnn(kind, num_groups=4, impl=impl, seed=3)
    # every block, the last included, has >= 3x3 positions, so every norm (IN too) has statistics
    assert net(torch.zeros(3, 1, 14, 14)).shape == (3, 10)
    assert net.norm1(net.conv1(torch.zeros(3, 1, 14, 14))).shape == (3, 16, 14, 14)
    assert net[:-2](torch.zeros(3, 1, 14, 14)).shape == (3, 16, 3, 3)
    names = [n for n, _ in net.named_children()]
    assert names[:4] == ["conv1", "norm1", "act1", "pool1"] and names[-1] == "fc"
    state = torch.get_rng_state()
    again = ch.small_cnn(kind, num_groups=4, impl=impl, seed=3)
    assert torch.equal(state, torch.get_rng_state())  # private seeding
    assert torch.equal(net.conv1.weight, again.conv1.weight)


def test_norm_layer_choices_and_errors():
    assert isinstance(ch.norm_layer("layer", 8), nn.GroupNorm) and ch.norm_layer("layer", 8).num_groups == 1
    inorm = ch.norm_layer("instance", 8)
    assert isinstance(inorm, nn.InstanceNorm2d) and inorm.affine
    with pytest.raises(ValueError, match="num_groups"):
        ch.norm_layer("group", 8, num_groups=3)
    with pytest.raises(ValueError, match="num_groups"):
        ch.norm_layer("group", 8)
    with pytest.raises(ValueError, match="kind"):
        ch.norm_layer("rms", 8)
    with pytest.raises(ValueError, match="width"):
        ch.small_cnn("batch", width=0)


def _toy(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    X = torch.randn(n, 1, 12, 12, generator=g) * 0.3 + y.view(n, 1, 1, 1).float()
    return X, y


def test_train_cnn_learns_and_is_reproducible():
    X, y = _toy()
    net = ch.small_cnn("batch", width=4, image_size=12, num_classes=2)
    before = ch.test_error(net, X, y)
    losses = ch.train_cnn(net, X, y, batch_size=16, examples=800, base_lr=0.2)
    assert len(losses) == 50
    assert ch.test_error(net, X, y) < min(before, 0.2)
    net2 = ch.small_cnn("batch", width=4, image_size=12, num_classes=2)
    assert ch.train_cnn(net2, X, y, batch_size=16, examples=800, base_lr=0.2) == losses
    with pytest.raises(ValueError, match="labels"):
        ch.train_cnn(net, X, y[:3], batch_size=8, examples=10)
    with pytest.raises(ValueError, match="base_lr"):
        ch.train_cnn(net, X, y, batch_size=8, examples=10, base_lr=0.0)
    with pytest.raises(FloatingPointError):
        ch.train_cnn(net, X * float("nan"), y, batch_size=8, examples=10)


def test_sweeps_shapes_and_statistics():
    X, y = _toy(32)
    s = ch.batch_size_sweep(X, y, X, y, norms=("batch", "none"), batch_sizes=(4, 8), seeds=(0, 1), examples=16,
                            width=4)  # fmt: skip
    assert s.errors.shape == (2, 2, 2) and s.rows == ("batch", "none")
    assert np.all((s.errors >= 0) & (s.errors <= 1))
    np.testing.assert_allclose(s.std(), s.errors.std(-1, ddof=1))
    assert "±" in s.cell("batch", 4) and s.best("none") in (4, 8)
    gs = ch.groups_sweep(X, y, X, y, seeds=(0,), examples=16, width=4)
    assert gs.columns == (1, 2, 4) and np.isnan(gs.std()).all()
    assert ch.mean_std([0.1]) == "10.0 (1 seed)" and ch.mean_std([0.1, 0.3]) == "20.0 ± 14.1"
    assert ch.divisors(12) == (1, 2, 3, 4, 6, 12)
    with pytest.raises(ValueError, match="divide"):
        ch.groups_sweep(X, y, X, y, groups=(3,), width=4, examples=8)
    with pytest.raises(ValueError, match="norms entry"):
        ch.batch_size_sweep(X, y, X, y, norms=("weird",), examples=8)
    with pytest.raises(ValueError, match="seeds"):
        ch.batch_size_sweep(X, y, X, y, seeds=(), examples=8)
    with pytest.raises(ValueError, match="values"):
        ch.mean_std([])


# ----------------------------------------------------------------------------- sequences
def test_sequences_and_padding():
    seqs, labels = ch.make_sequences(50, max_len=10, seed=1)
    assert len(seqs) == 50 and labels.shape == (50,)
    assert all(4 <= len(s) <= 10 and s.min() >= 1 for s in seqs)
    assert labels.tolist() == [int((s == 1).sum() > (s == 2).sum()) for s in seqs]
    tokens, pad = ch.pad_batch(seqs[:5])
    assert tokens.shape[1] == max(len(s) for s in seqs[:5])
    assert torch.equal(pad, tokens == ch.PAD)
    with pytest.raises(ValueError, match="max_len"):
        ch.make_sequences(3, min_len=5, max_len=4)
    with pytest.raises(ValueError, match="seqs"):
        ch.pad_batch([])
    with pytest.raises(ValueError, match=r"seqs\[1\]"):
        ch.pad_batch([torch.tensor([1]), torch.tensor([[1]])])


@pytest.mark.parametrize("norm", ch.SEQ_NORMS)
def test_tiny_transformer_padding_invariance(norm):
    """LN and RMSNorm outputs of a sequence do not depend on the padding; BN's (train mode) do."""
    model = ch.TinyTransformer(norm, max_len=12, seed=0).train()
    seqs, _ = ch.make_sequences(8, max_len=12, seed=2)
    short = [s[:4] for s in seqs]
    tokens, pad = ch.pad_batch(short)
    long_tokens, long_pad = ch.pad_batch(short[:-1] + [seqs[-1]])  # one long sequence: more padding
    with torch.no_grad():
        a = model(tokens, pad)[:-1]
        b = model(long_tokens, long_pad)[:-1]
    if norm == "batch":
        assert (a - b).abs().max() > 1e-3
    else:
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_train_sequence_model_and_accuracy():
    seqs, labels = ch.make_sequences(200, max_len=12, seed=0)
    model = ch.TinyTransformer("rms", max_len=12, d=16)
    losses = ch.train_sequence_model(model, seqs, labels, steps=60, batch_size=16)
    assert len(losses) == 60 and np.mean(losses[-10:]) < np.mean(losses[:10])
    acc = ch.sequence_accuracy(model, seqs, labels)
    assert 0.5 < acc <= 1 and model.training  # mode restored
    with pytest.raises(ValueError, match="same length"):
        ch.train_sequence_model(model, seqs, labels[:3], steps=1)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.ones(1, 20, dtype=torch.long), torch.zeros(1, 20, dtype=torch.bool))
    with pytest.raises(ValueError, match="heads"):
        ch.TinyTransformer("layer", d=10, heads=3)
    with pytest.raises(ValueError, match="kind"):
        ch.SeqNorm("group", 8)
    with pytest.raises(ValueError, match=r"\(N, L, D\)"):
        ch.SeqNorm("layer", 8)(torch.randn(2, 8))


def test_padding_statistics():
    x = torch.zeros(2, 3, 1)
    x[0, :2] = 4.0
    x[1, :1] = 4.0
    pad = torch.tensor([[False, False, True], [False, True, True]])
    s = ch.padding_statistics(x, pad)
    assert s["real_mean"].item() == 4.0 and s["real_var"].item() == 0.0
    assert s["all_mean"].item() == pytest.approx(2.0) and s["pad_fraction"].item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="pad"):
        ch.padding_statistics(x, pad[:, :2])


# ----------------------------------------------------------------------------- speed
def test_scratch_norms_match_torch_and_timing():
    x = _x(5, 7)
    w, b = torch.rand(7, dtype=torch.float64), torch.rand(7, dtype=torch.float64)
    torch.testing.assert_close(ch.layer_norm_scratch(x, w, b), F.layer_norm(x, (7,), w, b))
    torch.testing.assert_close(ch.rms_norm_scratch(x, w), F.rms_norm(x, (7,), w, eps=1e-6))
    times = ch.time_norms((64, 16), rounds=2, steps=2)
    assert {"scratch LN", "scratch RMS", "torch LN", "torch RMS"} <= set(times)
    assert all(len(v) == 2 and min(v) > 0 for v in times.values())
    with pytest.raises(ValueError, match="shape"):
        ch.time_norms((16,))


# ----------------------------------------------------------------------------- panel
def test_panel_every_position_draws():
    acts = _x(32, 8, 4, 4, dtype=torch.float32)
    panel = ch.make_panel(activations=acts, source="test")
    positions = [(n, g, 1) for n in ch.KINDS for g in ch.divisors(8)]
    positions += [(n, 2, b) for n in ch.KINDS for b in ch.PANEL_BATCH_SIZES]
    for norm, g, b in positions:  # every norm x groups, every norm x batch size
        panel.set(norm=norm, num_groups=g, batch_size=b)
        assert not panel.error, panel.status
    panel.set(norm="group", num_groups=2, batch_size=4)
    assert panel.status.startswith("GN: 8 pooled sets of 64 values")
    panel.set(norm="batch")
    assert "GN only" in panel.status
    with pytest.raises(ValueError, match="activations"):
        ch.make_panel(activations=acts[:8])
