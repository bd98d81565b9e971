"""Figures of a hyper-parameter search."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure


def optimisation_history_figure(
    trial_numbers: np.ndarray, values: np.ndarray, *, title: str
) -> Figure:
    """Validation RMSE of each finished trial and the best value found so far."""
    figure = Figure(figsize=(6.4, 4.0))
    ax = figure.add_subplot()
    order = np.argsort(trial_numbers)
    numbers, scores = np.asarray(trial_numbers)[order], np.asarray(values)[order]
    ax.scatter(numbers, scores, s=14, color="tab:blue", alpha=0.7, label="trial (validation RMSE)")
    if len(scores):
        best = int(np.argmin(scores))
        ax.step(
            numbers,
            np.minimum.accumulate(scores),
            where="post",
            color="tab:red",
            label=f"best so far (final {scores[best]:.4f}, trial {numbers[best]})",
        )
    ax.set_xlabel("trial")
    ax.set_ylabel("validation RMSE")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    return figure


def importance_figure(importances: Mapping[str, float], *, title: str) -> Figure:
    """Horizontal bars of each hyper-parameter's importance (fANOVA share of variance)."""
    names = list(importances)[::-1]
    shares = [importances[name] for name in names]
    figure = Figure(figsize=(6.4, 0.5 * len(names) + 1.6))
    ax = figure.add_subplot()
    bars = ax.barh(names, shares, color="tab:blue")
    ax.bar_label(bars, labels=[f"{share:.2f}" for share in shares], padding=3, fontsize=8)
    ax.set_xlim(0, max(1.0, max(shares, default=0) * 1.15))
    ax.set_xlabel("importance (share of the validation-RMSE variance)")
    ax.set_title(title)
    figure.tight_layout()
    return figure


def rmse_vs_k_figure(
    ks: np.ndarray, train_rmse: np.ndarray, test_rmse: np.ndarray, *, title: str
) -> Figure:
    """Train and test RMSE against the number of latent factors K (log₂ axis)."""
    figure = Figure(figsize=(6.4, 4.0))
    ax = figure.add_subplot()
    order = np.argsort(ks)
    ks, train_rmse, test_rmse = (
        np.asarray(ks)[order],
        np.asarray(train_rmse)[order],
        np.asarray(test_rmse)[order],
    )
    lowest = int(np.argmin(test_rmse))
    ax.plot(ks, train_rmse, marker="o", label="train RMSE")
    ax.plot(
        ks,
        test_rmse,
        marker="s",
        label=f"test RMSE (lowest {test_rmse[lowest]:.4f} at K={int(ks[lowest])})",
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(int(k)) for k in ks])
    ax.set_xlabel("latent factors K (log₂ scale)")
    ax.set_ylabel("RMSE")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure
