"""bnbook.preface: the standardization demo against torch's layer_norm, and its panel."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from bnbook.chapters.preface import EPSILONS, SCALES, SHIFTS, make_panel, standardize


@pytest.mark.parametrize("eps", [1e-5, 1e-1, 3.0])
def test_standardize_equals_layer_norm_over_the_whole_vector(eps):
    x = torch.randn(257, dtype=torch.float64) * 3 + 2
    torch.testing.assert_close(standardize(x, eps=eps), F.layer_norm(x, x.shape, eps=eps))


def test_standardize_is_invariant_to_shift_and_scale_until_scale_meets_eps():
    z = torch.rand(1000, dtype=torch.float64)
    ref = standardize(z, eps=1e-12)
    torch.testing.assert_close(standardize(50 * z - 7, eps=1e-12), ref)
    shrunk = standardize(1e-4 * z, eps=1e-5)  # Var(x) ~ 1e-9 << eps: output nearly vanishes
    assert shrunk.std(unbiased=False) < 0.02


@pytest.mark.parametrize(
    "x, eps, error",
    [
        (torch.ones(2, 2), 1e-5, "1-D"),
        (torch.ones(1), 1e-5, "at least 2"),
        (torch.ones(3), 0.0, "eps"),
        (torch.ones(3), float("nan"), "eps"),
    ],
)
def test_standardize_rejects_bad_input(x, eps, error):
    with pytest.raises(ValueError, match=error):
        standardize(x, eps=eps)


def test_panel_draws_every_slider_position():
    panel = make_panel(num_samples=512)
    seen = set()
    for shift, scale, eps in itertools.product(SHIFTS, SCALES, EPSILONS):
        panel.set(shift=shift, scale=scale, eps=eps)
        assert not panel.error, panel.status
        assert "output std" in panel.status
        seen.add(panel.status)
    assert len(seen) > len(SCALES) * len(EPSILONS) // 2  # the status follows the sliders


def test_panel_status_reports_the_shrinkage_caused_by_eps():
    panel = make_panel(num_samples=512)
    panel.set(shift=0.0, scale=100.0, eps=1e-5)
    assert "output std 1.000" in panel.status
    panel.set(shift=0.0, scale=1e-3, eps=1e-1)
    std = float(panel.status.split("output std ")[1].split(";")[0])
    assert std < 0.01


def _bars(panel, key):
    return list(panel._state["bars"][key].get_data().values)


def test_panel_axes_show_shift_and_scale_and_note_what_is_off_axis():
    """Fixed x-axes: a shift moves the input histogram, a rescaling widens it; mass off an axis is noted."""
    from bnbook.chapters.preface import X_LIM

    panel = make_panel(num_samples=512)
    panel.set(shift=0.0, scale=1.0, eps=1e-5)
    base = _bars(panel, "in")
    panel.set(shift=10.0)
    assert _bars(panel, "in") != base and panel._state["axes"]["in"].get_xlim() == X_LIM
    panel.set(shift=0.0, scale=10.0)
    wide = _bars(panel, "in")
    assert sum(h > 0 for h in wide) > 3 * sum(h > 0 for h in base)
    panel.set(scale=100.0)
    assert "beyond the axis" in panel._state["notes"]["in"].get_text()
    panel.set(scale=1.0)
    assert panel._state["notes"]["in"].get_text() == ""


def test_panel_output_axis_follows_the_spike_of_a_collapsed_output():
    panel = make_panel(num_samples=512)
    panel.set(shift=0.0, scale=1.0, eps=1e-5)
    ax = panel._state["axes"]["out"]
    peak = max(_bars(panel, "out"))
    assert peak <= ax.get_ylim()[1] < 1.5 * peak  # no empty two thirds at the default
    panel.set(scale=1e-3, eps=1e-1)
    spike = max(_bars(panel, "out"))
    assert spike > 0.5 and spike <= ax.get_ylim()[1]  # the collapsed output stays on the axis


def test_panel_is_reproducible_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = make_panel(num_samples=256), make_panel(num_samples=256)
    assert torch.equal(state, torch.random.get_rng_state())
    assert a.render_png(scale=10.0) == b.render_png(scale=10.0)
    assert "1e-01" in (a.set(eps=1e-1) and a._state["axes"]["out"].get_title())
