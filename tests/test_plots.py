"""Tests for bnbook.plots: pure functions returning labelled Figures."""

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from bnbook import plots
from bnbook.train import History


def history(with_steps: bool) -> History:
    h = History(
        train_loss=[1.2, 0.7, 0.5],
        train_acc=[0.6, 0.8, 0.85],
        test_acc=[0.65, 0.78, 0.83],
        examples_per_sec=[1000.0] * 3,
        epoch_time=[1.0] * 3,
        device="cpu",
    )
    if with_steps:
        h.steps = [(0, 0.1), (10, 0.5), (20, 0.8)]
    return h


def labels(ax):
    return ax.get_title(), ax.get_xlabel(), ax.get_ylabel()


@pytest.mark.parametrize("with_steps", [False, True])
def test_plot_history(with_steps):
    rc_before = dict(matplotlib.rcParams)
    fig = plots.plot_history(history(with_steps))
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == (3 if with_steps else 2)
    assert labels(axes[0]) == ("Training loss", "epoch", "cross-entropy (nats)")
    assert axes[1].get_title() == "Accuracy"
    np.testing.assert_allclose(axes[1].lines[1].get_ydata(), [0.65, 0.78, 0.83])
    assert "3 epochs on cpu" in fig._suptitle.get_text()
    if with_steps:
        assert labels(axes[2])[1] == "training step"
        np.testing.assert_allclose(axes[2].lines[0].get_xdata(), [0, 10, 20])
    assert dict(matplotlib.rcParams) == rc_before


def test_plot_history_accepts_dict_and_empty_history():
    fig = plots.plot_history(history(True).as_dict())
    assert len(fig.axes) == 3
    assert len(plots.plot_history(History()).axes) == 2
    with pytest.raises(TypeError, match="History"):
        plots.plot_history([1, 2, 3])


def test_figures_are_not_registered_with_pyplot():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.plot_percentiles([0, 1], [[1, 2, 3], [2, 3, 4]])
    assert plt.get_fignums() == before


def test_plot_percentiles():
    steps = np.arange(5)
    values = np.stack([steps * 0.1, steps * 0.2, steps * 0.3], axis=1)  # (T, P)
    fig = plots.plot_percentiles(steps, values, ["15th", "50th", "85th"], ylabel="sigmoid input")
    ax = fig.axes[0]
    assert labels(ax) == ("Percentiles over training", "training step", "sigmoid input")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["15th", "50th", "85th"]
    np.testing.assert_allclose(ax.lines[2].get_ydata(), values[:, 2])
    # drawing into a given axes returns that axes' figure
    outer = Figure()
    target = outer.add_subplot()
    assert plots.plot_percentiles(steps, values[:, 0], ax=target, title="median") is outer
    assert target.get_title() == "median" and target.get_legend() is None
    with pytest.raises(ValueError, match="len\\(steps\\) = 5"):
        plots.plot_percentiles(steps, values[:3])
    with pytest.raises(ValueError, match="labels"):
        plots.plot_percentiles(steps, values, ["a"])
    with pytest.raises(ValueError, match="1-D"):
        plots.plot_percentiles(np.zeros((5, 2)), values)
    with pytest.raises(TypeError, match="Axes"):
        plots.plot_percentiles(steps, values, ax="axes")


def test_plot_histograms():
    edges = np.linspace(-1, 1, 5)
    counts = np.array([[1, 2, 3, 4], [4, 3, 2, 1], [2, 2, 2, 2]])
    fig = plots.plot_histograms(edges, counts, steps=[0, 50, 100], ylabel="density")
    ax = fig.axes[0]
    assert labels(ax) == ("Distribution over training", "value", "density")
    assert len(ax.patches) == 3  # one stairs artist per histogram
    assert fig.axes[1].get_ylabel() == "training step"  # the colour bar
    colours = [p.get_edgecolor() for p in ax.patches]
    assert colours[0] != colours[-1]
    single = plots.plot_histograms(edges, counts[0])
    assert len(single.axes) == 1 and len(single.axes[0].patches) == 1
    with pytest.raises(ValueError, match="B = len\\(edges\\) - 1 = 4"):
        plots.plot_histograms(edges, counts[:, :3])
    with pytest.raises(ValueError, match="increasing"):
        plots.plot_histograms([0, 0], [1])
    with pytest.raises(ValueError, match="steps has 2 entries"):
        plots.plot_histograms(edges, counts, steps=[0, 1])


def test_plot_running_stats():
    steps = np.arange(20)
    batch = np.random.default_rng(0).normal(size=(20, 2))
    running = np.cumsum(batch, axis=0) / (steps[:, None] + 1)
    fig = plots.plot_running_stats(steps, running, batch, labels=["ch 0", "ch 1"], ylabel="mean")
    ax = fig.axes[0]
    assert labels(ax) == ("Running estimate vs. per-batch statistic", "training step", "mean")
    assert len(ax.lines) == 4
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "ch 0 running",
        "ch 0 batch",
        "ch 1 running",
        "ch 1 batch",
    ]
    assert ax.lines[0].get_color() == ax.lines[1].get_color()
    only = plots.plot_running_stats(steps, running[:, 0])
    assert len(only.axes[0].lines) == 1
    with pytest.raises(ValueError, match="columns"):
        plots.plot_running_stats(steps, running, batch[:, :1])


def test_new_figures_show_as_png_in_jupyter():
    # Jupyter uses _repr_png_ when pyplot (and its inline formatter) was never imported
    fig = plots.plot_percentiles([0, 1], [[0.0], [1.0]])
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
