"""Convergence figure from every history shape the fit and the stages produce."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from movielens_als.errors import DataError
from movielens_als.figures.convergence import convergence_figure, history_frame


def history(n: int = 12, with_val: bool = True) -> list[dict]:
    rows = []
    for it in range(1, n + 1):
        row = {
            "iteration": it,
            "nll": 5e4 + 1e6 / it**2,
            "train_rmse": 0.70 + 0.2 / it,
            "test_rmse": 0.88 + 0.05 / it + 0.001 * it,
            "seconds": 0.25,
        }
        if with_val:
            row["val_rmse"] = 0.87 + 0.05 / it + 0.001 * it
        rows.append(row)
    return rows


def save_pdf(fig: Figure, path: Path) -> None:
    assert isinstance(fig, Figure)
    fig.savefig(path)
    assert path.read_bytes().startswith(b"%PDF")


def rmse_lines(fig: Figure) -> dict[str, np.ndarray]:
    ax = fig.axes[1]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    return {
        label.split(" (")[0]: line.get_ydata()
        for label, line in zip(labels, ax.get_lines(), strict=True)
    }


def test_list_of_dicts_with_validation(tmp_path):
    rows = history()
    fig = convergence_figure(rows, "All latent factors")
    save_pdf(fig, tmp_path / "all_latent_factors_convergence.pdf")
    ax_nll, ax_rmse = fig.axes
    assert fig.get_suptitle() == "All latent factors (12 iterations, 3.0 s)"
    assert ax_nll.get_yscale() == "log"  # the NLL spans more than a decade
    np.testing.assert_allclose(ax_nll.get_lines()[0].get_ydata(), [r["nll"] for r in rows])
    lines = rmse_lines(fig)
    assert list(lines) == ["train", "validation", "test"]
    np.testing.assert_allclose(lines["test"], [r["test_rmse"] for r in rows])
    labels = [t.get_text() for t in ax_rmse.get_legend().get_texts()]
    best = int(np.argmin([r["test_rmse"] for r in rows]))
    assert f"best {rows[best]['test_rmse']:.4f} at iteration {best + 1}" in labels[2]
    assert f"final {rows[-1]['train_rmse']:.4f}" in labels[0]
    assert ax_rmse.get_ylabel() == "RMSE (stars)"
    assert ax_nll.get_xlabel() == ax_rmse.get_xlabel() == "Iteration"


def test_dataframe_without_validation_and_linear_nll(tmp_path):
    frame = pd.DataFrame(history(with_val=False))
    frame["nll"] = 1000.0 - frame["iteration"]  # less than a decade: linear axis
    fig = convergence_figure(frame.iloc[::-1], "Bias only")
    save_pdf(fig, tmp_path / "bias_only_convergence.pdf")
    assert fig.axes[0].get_yscale() == "linear"
    assert list(rmse_lines(fig)) == ["train", "test"]
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_xdata(), np.arange(1, 13))


@dataclass
class Record:
    """Shape of core.fit.IterationRecord: held-out RMSEs nested in ``eval_rmse``."""

    iteration: int
    nll: float
    train_rmse: float
    eval_rmse: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.1


def test_iteration_records_are_flattened(tmp_path):
    records = [Record(i, 10.0 / i, 1.0 / i, {"test": 1.1 / i, "val": 1.05 / i}) for i in (1, 2, 3)]
    frame = history_frame(records)
    assert {"test_rmse", "val_rmse"} <= set(frame.columns)
    assert "eval_rmse" not in frame.columns
    fig = convergence_figure(records, "Genre integration")
    save_pdf(fig, tmp_path / "genre_integration_convergence.pdf")
    np.testing.assert_allclose(rmse_lines(fig)["validation"], [1.05, 0.525, 0.35])
    # Plain dicts carrying a nested eval_rmse work the same way.
    dicts = [{"iteration": 1, "nll": 1.0, "train_rmse": 0.9, "eval_rmse": {"test": 1.0}}]
    assert history_frame(dicts)["test_rmse"].tolist() == [1.0]


def test_single_iteration_and_non_finite_values(tmp_path):
    save_pdf(convergence_figure(history(1), "One step"), tmp_path / "one.pdf")
    rows = history(5)
    rows[0]["nll"] = float("inf")
    rows[2]["test_rmse"] = float("nan")
    fig = convergence_figure(rows, "Diverging start")
    save_pdf(fig, tmp_path / "nan.pdf")
    assert len(fig.axes[0].get_lines()[0].get_ydata()) == 4
    assert any("non-finite" in t.get_text() for t in fig.axes[0].texts)
    assert len(rmse_lines(fig)["test"]) == 4


def test_bad_histories_raise_data_error():
    with pytest.raises(DataError, match="empty"):
        convergence_figure([], "x")
    with pytest.raises(DataError, match=r"lacks column\(s\) \['nll'\]"):
        convergence_figure([{"iteration": 1, "train_rmse": 1.0}], "x")
    with pytest.raises(DataError, match="entry #1 is a str"):
        history_frame([{"iteration": 1, "nll": 1.0, "train_rmse": 1.0}, "oops"])
