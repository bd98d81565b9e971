"""Convergence figure of one ALS fit: training objective and RMSE per iteration."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from movielens_als.errors import DataError
from movielens_als.figures._layout import new_figure

REQUIRED_COLUMNS: tuple[str, ...] = ("iteration", "nll", "train_rmse")
_SPLIT_ORDER: tuple[str, ...] = ("train", "val", "test")
_SPLIT_LABEL = {"train": "train", "val": "validation", "test": "test"}
_SPLIT_COLOUR = {"train": "tab:blue", "val": "tab:green", "test": "tab:orange"}


def _record_row(record: Any, position: int) -> dict[str, Any]:
    if isinstance(record, Mapping):
        row = dict(record)
    elif dataclasses.is_dataclass(record) and not isinstance(record, type):
        row = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    else:
        raise DataError(
            f"convergence history entry #{position} is a {type(record).__name__}; expected a "
            "mapping or an IterationRecord"
        )
    # IterationRecord keeps held-out RMSEs in ``eval_rmse = {"test": …, "val": …}``.
    nested = row.pop("eval_rmse", None)
    if isinstance(nested, Mapping):
        for split, value in nested.items():
            row[f"{split}_rmse"] = value
    return row


def history_frame(history: pd.DataFrame | Iterable[Any]) -> pd.DataFrame:
    """Normalise a fit history to a DataFrame sorted by iteration.

    Accepts a DataFrame, or a list of per-iteration dicts / ``IterationRecord``s (whose
    ``eval_rmse`` dict is flattened to ``<split>_rmse`` columns). Needs columns
    ``iteration``, ``nll`` and ``train_rmse``; every other ``*_rmse`` column (``test_rmse``,
    ``val_rmse``, …) is a held-out curve and ``seconds`` is the time of each iteration.
    """
    if isinstance(history, pd.DataFrame):
        frame = history.copy()
    else:
        frame = pd.DataFrame([_record_row(r, i) for i, r in enumerate(history)])
    if len(frame) == 0:
        raise DataError("convergence history is empty: the fit recorded no iteration")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"convergence history lacks column(s) {missing}; it has {list(frame.columns)}"
        )
    return frame.sort_values("iteration", kind="stable").reset_index(drop=True)


def _rmse_splits(frame: pd.DataFrame) -> list[str]:
    splits = [c[: -len("_rmse")] for c in frame.columns if c.endswith("_rmse")]
    known = [s for s in _SPLIT_ORDER if s in splits]
    return known + sorted(s for s in splits if s not in _SPLIT_ORDER)


def _use_log_scale(values: np.ndarray) -> bool:
    """Log y helps when a positive curve spans at least a decade (a steep first step)."""
    finite = values[np.isfinite(values)]
    return bool(len(finite) > 1 and finite.min() > 0 and finite.max() / finite.min() >= 10)


def convergence_figure(
    history: pd.DataFrame | Iterable[Any],
    title: str,
    *,
    step: str = "iteration",
    objective: str = "Negative log-likelihood",
) -> Figure:
    """Two panels: the objective per step (log y when it spans a decade) and the RMSE per
    step on train, validation (when present) and test, with final/best values in the legend.

    ``step`` names the x axis' unit ("iteration" for ALS, "sample" for Gibbs sampling) and
    ``objective`` what the left panel shows.
    """
    frame = history_frame(history)
    iterations = frame["iteration"].to_numpy()
    markers = "o" if len(frame) <= 60 else None
    fig = new_figure(11.0, 4.3)
    ax_nll, ax_rmse = fig.subplots(1, 2)

    nll = frame["nll"].to_numpy(dtype=np.float64)
    finite = np.isfinite(nll)
    ax_nll.plot(iterations[finite], nll[finite], color="black", marker=markers, markersize=3)
    if not finite.all():
        ax_nll.text(
            0.98,
            0.95,
            f"{int((~finite).sum())} non-finite value(s) not shown",
            transform=ax_nll.transAxes,
            ha="right",
            va="top",
            color="tab:red",
            fontsize=8,
        )
    if _use_log_scale(nll):
        ax_nll.set_yscale("log")
        ax_nll.set_ylabel(f"{objective} (training objective, log scale)")
    else:
        ax_nll.set_ylabel(f"{objective} (training objective)")
    ax_nll.set_title("Training objective")

    for split in _rmse_splits(frame):
        rmse = frame[f"{split}_rmse"].to_numpy(dtype=np.float64)
        shown = np.isfinite(rmse)
        if not shown.any():
            continue
        label = f"{_SPLIT_LABEL.get(split, split)} (final {rmse[shown][-1]:.4f}"
        if split != "train":
            best = int(np.nanargmin(np.where(shown, rmse, np.nan)))
            label += f", best {rmse[best]:.4f} at {step} {iterations[best]}"
        ax_rmse.plot(
            iterations[shown],
            rmse[shown],
            marker=markers,
            markersize=3,
            color=_SPLIT_COLOUR.get(split),
            label=label + ")",
        )
    ax_rmse.set_ylabel("RMSE (stars)")
    ax_rmse.set_title("Root-mean-square error")
    ax_rmse.legend(loc="upper right", fontsize=8)

    for ax in (ax_nll, ax_rmse):
        ax.set_xlabel(step.capitalize())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if "seconds" in frame.columns and np.isfinite(frame["seconds"].to_numpy(float)).all():
        total = float(frame["seconds"].sum())
        title = f"{title} ({len(frame)} {step}s, {total:.1f} s)"
    fig.suptitle(title)
    return fig
