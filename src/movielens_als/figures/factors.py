"""Movie-factor figures: rating variance against factor norm (overall and by rating-count
tier), the distribution of factor norms, rating histograms of the highest-variance movies and
a 2-D map of chosen movies' factors. The numbers come from ``analysis.factors``."""

from __future__ import annotations

from collections.abc import Sequence
from textwrap import shorten

import numpy as np
from matplotlib.colors import CenteredNorm, LogNorm
from matplotlib.figure import Figure

from movielens_als.analysis.factors import Correlation, FactorAnalysis, Tier
from movielens_als.figures._layout import new_figure, scatter_alpha

FACTOR_FIGURE_NAMES: tuple[str, ...] = (
    "variance_vs_norm.pdf",
    "variance_vs_norm_by_tier.pdf",
    "factor_norm_distribution.pdf",
    "top_variance_histograms.pdf",
    "movie_factors_pca.pdf",
)
PEARSON_LABEL = "Pearson r"
SPEARMAN_LABEL = "Spearman ρ"


def _coefficient(value: float) -> str:
    return f"{value:+.3f}" if np.isfinite(value) else "undefined"


def _scatter_with_fit(
    ax, norms: np.ndarray, variances: np.ndarray, correlation: Correlation, **scatter
) -> object:
    points = ax.scatter(norms, variances, s=6, linewidths=0, **scatter)
    if np.isfinite(correlation.slope) and len(norms):
        x = np.array([norms.min(), norms.max()])
        ax.plot(
            x,
            correlation.slope * x + correlation.intercept,
            color="black",
            linewidth=1.2,
            label=f"fit: {correlation.slope:.3f}·‖v‖ + {correlation.intercept:.3f}",
        )
    ax.set_xlabel("Factor norm ‖v_n‖")
    ax.set_ylabel("Rating variance (stars²)")
    ax.set_title(
        f"{PEARSON_LABEL} = {_coefficient(correlation.pearson_r)}, "
        f"{SPEARMAN_LABEL} = {_coefficient(correlation.spearman_rho)} "
        f"({correlation.n} movies)",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    return points


def variance_vs_norm_figure(
    norms: np.ndarray, variances: np.ndarray, correlation: Correlation, *, min_ratings: int
) -> Figure:
    """Per-movie rating variance against factor norm, with the least-squares line."""
    fig = new_figure()
    ax = fig.add_subplot()
    _scatter_with_fit(
        ax, norms, variances, correlation, color="tab:blue", alpha=scatter_alpha(len(norms))
    )
    if np.isfinite(correlation.slope):
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"Rating variance vs factor norm (movies with ≥ {min_ratings} ratings)")
    return fig


def variance_vs_norm_summary_figure(
    norms: np.ndarray,
    variances: np.ndarray,
    n_ratings: np.ndarray,
    correlation: Correlation,
    tiers: Sequence[Tier],
    *,
    min_ratings: int,
) -> Figure:
    """Three panels: the overall scatter with its fit; the same coloured by rating count
    (log colour scale); per-tier Pearson and Spearman coefficients as bars (an empty tier, or
    one whose coefficients are undefined, gets no bar and says so)."""
    fig = new_figure(15.0, 4.6)
    overall, coloured, bars = fig.subplots(1, 3)
    _scatter_with_fit(
        overall, norms, variances, correlation, color="tab:blue", alpha=scatter_alpha(len(norms))
    )
    overall.set_title("All movies\n" + overall.get_title(), fontsize=9)

    counts = np.asarray(n_ratings, dtype=np.float64)
    points = _scatter_with_fit(
        coloured,
        norms,
        variances,
        correlation,
        c=counts,
        cmap="viridis",
        norm=LogNorm() if len(counts) and counts.min() > 0 else None,
    )
    coloured.set_title("Coloured by number of ratings", fontsize=9)
    fig.colorbar(points, ax=coloured, label="Training ratings (log scale)")

    positions = np.arange(len(tiers))
    width = 0.38
    pearson = [t.correlation.pearson_r if t.correlation else np.nan for t in tiers]
    spearman = [t.correlation.spearman_rho if t.correlation else np.nan for t in tiers]
    bars.bar(positions - width / 2, pearson, width, label=PEARSON_LABEL, color="tab:blue")
    bars.bar(positions + width / 2, spearman, width, label=SPEARMAN_LABEL, color="tab:orange")
    bars.axhline(0.0, color="grey", linewidth=0.8)
    for x, tier, r, rho in zip(positions, tiers, pearson, spearman, strict=True):
        n = 0 if tier.correlation is None else tier.correlation.n
        note = (
            "empty"
            if n == 0
            else (f"n = {n}" if np.isfinite(r) and np.isfinite(rho) else f"n = {n}\nundefined")
        )
        bars.annotate(
            note, (x, 0.0), xytext=(0, 4), textcoords="offset points", ha="center", fontsize=8
        )
    bars.set_xticks(positions, [t.label for t in tiers])
    bars.set_xlabel("Training ratings per movie")
    bars.set_ylabel("Correlation of variance with ‖v_n‖")
    finite = [v for v in (*pearson, *spearman) if np.isfinite(v)]
    low = min([0.0, *finite]) - 0.1
    high = max([0.0, *finite]) + 0.15
    bars.set_ylim(max(low, -1.05), min(high, 1.05))
    bars.set_title("By rating-count tier", fontsize=9)
    bars.set_xlim(-0.6, len(tiers) - 0.4)
    bars.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)
    bars.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Rating variance vs factor norm (movies with ≥ {min_ratings} ratings)")
    return fig


def factor_norm_distribution_figure(norms: np.ndarray) -> Figure:
    """Histogram of factor norms on a linear axis and, for the positive ones, a log axis."""
    norms = np.asarray(norms, dtype=np.float64)
    fig = new_figure(11.0, 4.2)
    linear, logarithmic = fig.subplots(1, 2)
    linear.hist(norms, bins=50, color="tab:blue")
    linear.set_xlabel("Factor norm ‖v_n‖")
    linear.set_ylabel("Movies")
    linear.set_title("Linear scale", fontsize=9)
    positive = norms[norms > 0]
    if positive.size and positive.max() > positive.min():
        logarithmic.hist(
            positive, bins=np.geomspace(positive.min(), positive.max(), 51), color="tab:blue"
        )
        logarithmic.set_xscale("log")
    elif positive.size:
        logarithmic.hist(positive, bins=1, color="tab:blue")
    n_zero = norms.size - positive.size
    logarithmic.set_xlabel("Factor norm ‖v_n‖ (log scale)")
    logarithmic.set_ylabel("Movies")
    logarithmic.set_title(
        "Log scale" + (f" ({n_zero} zero norms left out)" if n_zero else ""), fontsize=9
    )
    for ax in (linear, logarithmic):
        ax.grid(alpha=0.3)
    fig.suptitle(f"Distribution of movie factor norms ({norms.size} movies)")
    return fig


def rating_histograms_figure(
    rating_values: np.ndarray, histograms: np.ndarray, labels: Sequence[str]
) -> Figure:
    """One bar chart of rating counts per movie (``histograms[i]`` over ``rating_values``)."""
    n = max(len(labels), 1)
    fig = new_figure(4.2 * n, 3.8)
    axes = np.atleast_1d(fig.subplots(1, n, sharey=True))
    values = np.asarray(rating_values, dtype=np.float64)
    width = 0.8 * (values[1] - values[0]) if values.size > 1 else 0.8
    for ax, counts, label in zip(axes, histograms, labels, strict=False):
        ax.bar(values, counts, width=width, color="tab:purple")
        ax.set_xticks(values[:: max(1, values.size // 10)])
        ax.set_xlabel("Rating (stars)")
        ax.set_title(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("Training ratings")
    if not len(labels):
        axes[0].text(
            0.5, 0.5, "no eligible movie", ha="center", va="center", transform=axes[0].transAxes
        )
    fig.suptitle("Rating histograms of the highest-variance movies")
    return fig


def movie_factors_pca_figure(
    coords: np.ndarray,
    bias: np.ndarray,
    titles: Sequence[str],
    explained_variance_ratio: np.ndarray | None,
) -> Figure:
    """Chosen movies on their first two principal components (or raw factors when K ≤ 2).

    Colour shows the movie bias ``c_n`` on a diverging scale centred at 0: the bias is
    signed, which a point size could not show.
    """
    coords = np.asarray(coords, dtype=np.float64)
    bias = np.asarray(bias, dtype=np.float64)
    fig = new_figure(8.0, 6.4)
    ax = fig.add_subplot()
    ax.axhline(0.0, color="grey", linewidth=0.6, zorder=1)
    ax.axvline(0.0, color="grey", linewidth=0.6, zorder=1)
    half_range = float(np.abs(bias).max()) if bias.size and np.any(bias) else 1.0
    points = ax.scatter(
        coords[:, 0],
        coords[:, 1],
        c=bias,
        cmap="RdBu",
        norm=CenteredNorm(0.0, half_range),
        s=40,
        edgecolors="black",
        linewidths=0.4,
        zorder=3,
    )
    for (x, y), title in zip(coords, titles, strict=True):
        ax.annotate(
            shorten(title, 32, placeholder="…"),
            (x, y),
            xytext=(4, 3),
            textcoords="offset points",
            fontsize=7,
            zorder=4,
        )
    fig.colorbar(points, ax=ax, label="Movie bias c_n (stars)")
    if explained_variance_ratio is None:
        ax.set_xlabel("Factor 1")
        ax.set_ylabel(
            "Factor 2" if coords.shape[0] and np.any(coords[:, 1]) else "(K = 1: no second factor)"
        )
        how = "raw factors"
    else:
        share = [
            f"{100 * r:.1f} %" if np.isfinite(r) else "no variance"
            for r in explained_variance_ratio
        ]
        ax.set_xlabel(f"PC1 ({share[0]} of variance)")
        ax.set_ylabel(f"PC2 ({share[1]} of variance)")
        how = "PCA of these movies' factors"
    ax.margins(0.12)
    ax.grid(alpha=0.3)
    ax.set_title(f"Movie factors, {len(titles)} movies ({how}); colour = bias")
    return fig


def factor_figures(analysis: FactorAnalysis) -> dict[str, Figure]:
    """Every movie-factor figure, keyed by the PDF file name the stage saves it under."""
    eligible = analysis.eligible
    norms, variances = analysis.norms[eligible], analysis.variance[eligible]
    labels = [
        f"{shorten(analysis.titles[m], 40, placeholder='…')}\n"
        f"variance {analysis.variance[m]:.2f}, {int(analysis.n_ratings[m])} ratings"
        for m in analysis.histogram_movies
    ]
    return {
        "variance_vs_norm.pdf": variance_vs_norm_figure(
            norms, variances, analysis.overall, min_ratings=analysis.min_ratings
        ),
        "variance_vs_norm_by_tier.pdf": variance_vs_norm_summary_figure(
            norms,
            variances,
            analysis.n_ratings[eligible],
            analysis.overall,
            analysis.tiers,
            min_ratings=analysis.min_ratings,
        ),
        "factor_norm_distribution.pdf": factor_norm_distribution_figure(
            analysis.norms[analysis.n_ratings > 0]
        ),
        "top_variance_histograms.pdf": rating_histograms_figure(
            analysis.rating_values, analysis.histograms, labels
        ),
        "movie_factors_pca.pdf": movie_factors_pca_figure(
            analysis.pca_coords,
            analysis.item_bias[analysis.pca_movies],
            [analysis.titles[m] for m in analysis.pca_movies],
            analysis.pca_explained,
        ),
    }
