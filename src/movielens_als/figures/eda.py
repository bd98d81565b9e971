"""Exploratory-analysis figures, one function per PDF, all drawn from an ``EdaData``.

Scatter clouds are rasterized (``rasterized=True``) so that a PDF of 84k movies stays a
few hundred kilobytes; axes, text and trend lines stay vector.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter

from movielens_als.analysis.eda import EdaData
from movielens_als.figures._layout import new_figure, percent, scatter_alpha

EDA_FIGURE_NAMES: tuple[str, ...] = (
    "rating_distribution.pdf",
    "average_ratings_per_user.pdf",
    "frequency_vs_degree.pdf",
    "sparsity_visualization.pdf",
    "variance_vs_count.pdf",
    "mean_vs_count.pdf",
    "variance_vs_mean_rating.pdf",
)

_SCATTER_COLOUR = "tab:blue"
_TREND_COLOUR = "tab:red"
_MEDIAN_COLOUR = "darkorange"


def _rho_text(rho: float) -> str:
    return "undefined" if not np.isfinite(rho) else f"{rho:+.3f}"


def rating_distribution_figure(eda: EdaData, *, fractions: bool = False) -> Figure:
    """Bars centred on each rating value, labelled with their share of all ratings.

    ``fractions=True`` puts the fraction of ratings on the y axis instead of the count.
    """
    values = eda.rating_values
    heights = eda.rating_counts / eda.n_ratings if fractions else eda.rating_counts
    spacing = float(np.min(np.diff(values))) if len(values) > 1 else 1.0
    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot()
    bars = ax.bar(
        values,
        heights,
        width=0.8 * spacing,
        color=_SCATTER_COLOUR,
        edgecolor="black",
        linewidth=0.5,
    )
    shares = eda.rating_counts / eda.n_ratings
    ax.bar_label(bars, labels=[percent(s, 1) for s in shares], padding=2, fontsize=8)
    ax.set_ylim(0, float(np.max(heights)) * 1.12)
    if len(values) <= 12:
        ax.set_xticks(values)
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel("Rating (stars)")
    ax.set_ylabel("Fraction of ratings" if fractions else "Number of ratings")
    if not fractions:
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4), useMathText=True)
    ax.set_title(
        f"Rating distribution ({eda.n_ratings:,} ratings, mean {eda.mean_rating:.3f} stars)"
    )
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return fig


def average_ratings_per_user_figure(eda: EdaData, *, bin_width: float = 0.1) -> Figure:
    """Histogram of each user's average rating (users with at least one rating).

    Bins of ``bin_width`` stars are centred on multiples of ``bin_width`` so that the many
    users whose average is exactly a half-star value fall mid-bin.
    """
    user_means = eda.user_means[eda.user_counts > 0]
    lo, hi = float(eda.rating_values[0]), float(eda.rating_values[-1])
    edges = np.arange(lo - bin_width / 2, hi + bin_width, bin_width)
    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot()
    ax.hist(
        user_means,
        bins=edges,
        color=_SCATTER_COLOUR,
        edgecolor="white",
        linewidth=0.4,
        label=f"users ({len(user_means):,})",
    )
    mean_of_means = float(np.mean(user_means))
    ax.axvline(
        mean_of_means,
        color="black",
        linestyle="--",
        linewidth=1.2,
        label=f"mean of user averages ({mean_of_means:.3f})",
    )
    ax.axvline(
        eda.mean_rating,
        color=_TREND_COLOUR,
        linestyle=":",
        linewidth=1.5,
        label=f"mean of all ratings ({eda.mean_rating:.3f})",
    )
    ax.set_xlabel(f"Average rating of a user (stars; bins of {bin_width:g})")
    ax.set_ylabel("Number of users")
    ax.set_title("Distribution of users' average rating")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return fig


def frequency_vs_degree_figure(eda: EdaData) -> Figure:
    """Log–log frequency of each degree: how many users (left) / movies (right) have d ratings."""
    fig = new_figure(10.0, 4.2)
    panels = fig.subplots(1, 2)
    series = (
        ("Users", "users", eda.user_degree_values, eda.user_degree_frequency, eda.user_counts),
        ("Movies", "movies", eda.item_degree_values, eda.item_degree_frequency, eda.item_counts),
    )
    for ax, (title, noun, degrees, frequency, counts) in zip(panels, series, strict=True):
        rated = counts[counts > 0]
        ax.scatter(
            degrees,
            frequency,
            s=10,
            color=_SCATTER_COLOUR,
            alpha=0.7,
            edgecolors="none",
            rasterized=len(degrees) > 2000,
            label=f"{len(rated):,} {noun}, median degree {np.median(rated):g}",
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("Degree d (number of ratings, log scale)")
        ax.set_ylabel(f"Number of {noun} with d ratings (log scale)")
        ax.set_title(title)
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3, which="major")
    fig.suptitle("Frequency vs degree")
    return fig


def sparsity_figure(eda: EdaData) -> Figure:
    """The sample block of the rating matrix, rated cells black; full-matrix sparsity in the title."""
    observed = ~np.isnan(eda.block_ratings)
    n_rows, n_cols = observed.shape
    how = {
        "random": f"random (seed {eda.block_seed})",
        "most_active": "most active",
        "first": "first",
    }.get(eda.block_selection, eda.block_selection)
    fig = new_figure(6.0, 6.4)
    ax = fig.add_subplot()
    ax.imshow(observed, cmap="Greys", vmin=0, vmax=1, interpolation="nearest", aspect="equal")
    ax.set_xlabel(f"Movie ({n_cols} {how} movies, by index)")
    ax.set_ylabel(f"User ({n_rows} {how} users, by index)")
    ax.set_title(
        f"Rating matrix sparsity: {percent(eda.sparsity)} "
        f"({eda.n_ratings:,} of {eda.n_users:,} × {eda.n_items:,} cells rated)\n"
        f"{n_rows} × {n_cols} sample block shown: {int(observed.sum()):,} ratings, "
        f"density {percent(eda.block_density)}",
        fontsize=10,
    )
    return fig


def _count_scatter(ax, counts: np.ndarray, values: np.ndarray, label: str) -> None:
    ax.scatter(
        counts,
        values,
        s=5,
        color=_SCATTER_COLOUR,
        alpha=scatter_alpha(len(counts)),
        edgecolors="none",
        rasterized=True,
        label=label,
    )
    ax.set_xscale("log")


def _trend_lines(ax, trend, what: str) -> None:
    filled = trend.n_points > 0
    ax.plot(
        trend.x_mean[filled],
        trend.mean[filled],
        color=_TREND_COLOUR,
        marker="o",
        markersize=4,
        linewidth=1.8,
        label=f"{what}: mean per log-count bin",
    )
    ax.plot(
        trend.x_mean[filled],
        trend.median[filled],
        color=_MEDIAN_COLOUR,
        marker="s",
        markersize=3.5,
        linewidth=1.4,
        linestyle="--",
        label=f"{what}: median per log-count bin",
    )


def _legend(ax, loc: str) -> None:
    """Legend whose scatter swatches are opaque and large enough to see."""
    legend = ax.legend(loc=loc, fontsize=8, markerscale=1.0)
    for handle in legend.legend_handles:
        if handle is not None and hasattr(handle, "set_sizes"):
            handle.set_alpha(1.0)
            handle.set_sizes([20.0])


def variance_vs_count_figure(eda: EdaData) -> Figure:
    """Per-movie rating variance against its number of ratings (log x), Spearman ρ in the legend."""
    mask = eda.variance_mask
    fig = new_figure(6.8, 4.6)
    ax = fig.add_subplot()
    _count_scatter(
        ax,
        eda.item_counts[mask],
        eda.item_variances[mask],
        f"movies with ≥ {eda.min_count} ratings ({int(mask.sum()):,})",
    )
    _trend_lines(ax, eda.variance_vs_count_trend, "variance")
    ax.plot([], [], " ", label=f"Spearman ρ = {_rho_text(eda.spearman_variance_vs_count)}")
    ax.set_xlabel("Number of ratings of the movie (log scale)")
    ax.set_ylabel("Variance of the movie's ratings (stars²)")
    ax.set_title(
        "Per-movie rating variance vs number of ratings "
        f"(Spearman ρ = {_rho_text(eda.spearman_variance_vs_count)})",
        fontsize=10,
    )
    _legend(ax, "upper right")
    ax.grid(alpha=0.3)
    return fig


def mean_vs_count_figure(eda: EdaData) -> Figure:
    """Per-movie mean rating against its number of ratings (log x)."""
    rated = eda.item_counts > 0
    fig = new_figure(6.8, 4.6)
    ax = fig.add_subplot()
    _count_scatter(
        ax, eda.item_counts[rated], eda.item_means[rated], f"movies ({int(rated.sum()):,})"
    )
    _trend_lines(ax, eda.mean_vs_count_trend, "mean rating")
    ax.axhline(
        eda.mean_rating,
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"mean of all ratings ({eda.mean_rating:.3f})",
    )
    ax.plot([], [], " ", label=f"Spearman ρ = {_rho_text(eda.spearman_mean_vs_count)}")
    ax.set_xlabel("Number of ratings of the movie (log scale)")
    ax.set_ylabel("Mean rating of the movie (stars)")
    ax.set_title("Per-movie mean rating vs number of ratings", fontsize=10)
    _legend(ax, "lower right")
    ax.grid(alpha=0.3)
    return fig


def variance_vs_mean_rating_figure(eda: EdaData) -> Figure:
    """Per-movie variance against mean rating, the smoothed binned trend and its peak.

    Dotted vertical lines mark the mean-rating region boundaries used in ``eda.json``.
    """
    mask = eda.variance_mask
    trend = eda.variance_vs_mean_trend
    fig = new_figure(6.8, 4.6)
    ax = fig.add_subplot()
    ax.scatter(
        eda.item_means[mask],
        eda.item_variances[mask],
        s=5,
        color=_SCATTER_COLOUR,
        alpha=scatter_alpha(int(mask.sum())),
        edgecolors="none",
        rasterized=True,
        label=f"movies with ≥ {eda.min_count} ratings ({int(mask.sum()):,})",
    )
    width = float(trend.edges[1] - trend.edges[0])
    smoothing = f", {trend.window}-bin smoothing" if trend.window > 1 else ""
    ax.plot(
        trend.centers,
        trend.smoothed,
        color=_TREND_COLOUR,
        linewidth=2,
        label=f"binned mean variance (bins of {width:g}{smoothing})",
    )
    if eda.peak_bin >= 0:
        ax.plot(
            [eda.peak_mean_rating],
            [eda.peak_variance],
            marker="*",
            markersize=13,
            color="black",
            linestyle="none",
            label=f"peak: smoothed variance {eda.peak_variance:.3f} in bin "
            f"[{trend.edges[eda.peak_bin]:g}, {trend.edges[eda.peak_bin + 1]:g})",
        )
    for edge in eda.region_edges:
        ax.axvline(edge, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("Mean rating of the movie (stars); dotted lines: region boundaries")
    ax.set_ylabel("Variance of the movie's ratings (stars²)")
    ax.set_title("Per-movie rating variance vs mean rating", fontsize=10)
    _legend(ax, "upper left")
    ax.grid(alpha=0.3)
    return fig


def eda_figures(eda: EdaData) -> dict[str, Figure]:
    """Every EDA figure, keyed by the PDF file name the stage saves it under."""
    figures = {
        "rating_distribution.pdf": rating_distribution_figure(eda),
        "average_ratings_per_user.pdf": average_ratings_per_user_figure(eda),
        "frequency_vs_degree.pdf": frequency_vs_degree_figure(eda),
        "sparsity_visualization.pdf": sparsity_figure(eda),
        "variance_vs_count.pdf": variance_vs_count_figure(eda),
        "mean_vs_count.pdf": mean_vs_count_figure(eda),
        "variance_vs_mean_rating.pdf": variance_vs_mean_rating_figure(eda),
    }
    return figures


__all__ = [
    "EDA_FIGURE_NAMES",
    "average_ratings_per_user_figure",
    "eda_figures",
    "frequency_vs_degree_figure",
    "mean_vs_count_figure",
    "rating_distribution_figure",
    "sparsity_figure",
    "variance_vs_count_figure",
    "variance_vs_mean_rating_figure",
]
