"""Figures of the sweep and the K grid."""

from __future__ import annotations

import numpy as np

from movielens_als.figures.tuning import (
    importance_figure,
    optimisation_history_figure,
    rmse_vs_k_figure,
)


def test_history_marks_the_running_best(tmp_path):
    values = np.array([0.9, 0.95, 0.85, 0.88, 0.86])
    figure = optimisation_history_figure(np.arange(5), values, title="Sweep")
    ax = figure.axes[0]
    best_line = ax.get_lines()[0]
    np.testing.assert_allclose(best_line.get_ydata(), [0.9, 0.9, 0.85, 0.85, 0.85])
    assert "0.8500, trial 2" in ax.get_legend().get_texts()[1].get_text()
    figure.savefig(tmp_path / "h.pdf")
    assert (tmp_path / "h.pdf").read_bytes().startswith(b"%PDF")


def test_importances_are_bars_in_order():
    figure = importance_figure({"tau": 0.7, "gamma": 0.2, "lam": 0.1}, title="importance")
    ax = figure.axes[0]
    widths = [patch.get_width() for patch in ax.patches]
    assert widths == [0.1, 0.2, 0.7]  # drawn bottom-up, the most important on top
    assert [t.get_text() for t in ax.get_yticklabels()] == ["lam", "gamma", "tau"]


def test_rmse_vs_k_uses_a_log2_axis_and_names_the_lowest_k():
    figure = rmse_vs_k_figure(
        np.array([8, 2, 4]), np.array([0.6, 0.7, 0.65]), np.array([0.84, 0.86, 0.83]), title="K"
    )
    ax = figure.axes[0]
    assert ax.get_xscale() == "log"
    train, test = ax.get_lines()
    np.testing.assert_array_equal(train.get_xdata(), [2, 4, 8])
    np.testing.assert_allclose(test.get_ydata(), [0.86, 0.83, 0.84])
    assert "lowest 0.8300 at K=4" in test.get_label()
