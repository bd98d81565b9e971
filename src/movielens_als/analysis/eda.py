"""Exploratory statistics of a rating set: the numbers behind the EDA figures and ``eda.json``.

Everything is computed with ``np.bincount`` / sorting over the COO arrays, so a 32M-rating
set takes seconds and memory of a few arrays of length ``n_ratings``; no Python loop runs
over ratings, users or movies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.stats import rankdata

from movielens_als.errors import ConfigError, DataError
from movielens_als.sparse import Ratings

DEFAULT_REGION_EDGES: tuple[float, ...] = (1.5, 2.5, 3.5, 4.5)
BlockSelection = Literal["random", "most_active", "first"]
BLOCK_SELECTIONS: tuple[str, ...] = ("random", "most_active", "first")


@dataclass(frozen=True)
class BinnedTrend:
    """Mean and median of ``y`` within bins of ``x``, and the smoothed mean.

    Bin ``b`` is ``edges[b] <= x < edges[b+1]`` (the last bin also holds ``x == edges[-1]``).
    ``smoothed[b]`` is the mean of ``y`` over all points in bins ``b - h .. b + h``
    (``window = 2h + 1``), i.e. a moving average weighted by bin counts, so sparse bins
    do not swing the curve; it is NaN where that window holds fewer than ``min_points``.
    """

    edges: np.ndarray  # (B + 1,)
    centers: np.ndarray  # (B,) midpoints of the bins
    x_mean: np.ndarray  # (B,) mean x of the points in each bin, NaN if empty
    n_points: np.ndarray  # (B,) int64
    mean: np.ndarray  # (B,) mean y per bin, NaN if empty
    median: np.ndarray  # (B,) median y per bin, NaN if empty
    smoothed: np.ndarray  # (B,)
    window: int
    min_points: int


@dataclass(frozen=True)
class EdaData:
    """Every array the EDA figures and ``eda.json`` need (indices as in the ``Ratings``).

    Per-user/per-movie arrays have one entry per index; means are NaN for users/movies
    without ratings and ``item_variances`` is NaN for movies with fewer than ``min_count``
    ratings (variance with ``ddof`` degrees of freedom).
    """

    n_users: int
    n_items: int
    n_ratings: int
    mean_rating: float
    rating_values: np.ndarray  # (V,) distinct rating values, ascending
    rating_counts: np.ndarray  # (V,) int64
    user_counts: np.ndarray  # (n_users,) int64
    user_means: np.ndarray  # (n_users,) float64
    item_counts: np.ndarray  # (n_items,) int64
    item_means: np.ndarray  # (n_items,) float64
    item_variances: np.ndarray  # (n_items,) float64
    min_count: int
    ddof: int
    user_degree_values: np.ndarray  # degrees d >= 1 that occur, ascending
    user_degree_frequency: np.ndarray  # number of users with exactly d ratings
    item_degree_values: np.ndarray
    item_degree_frequency: np.ndarray
    spearman_variance_vs_count: float  # over movies with >= min_count ratings
    spearman_mean_vs_count: float  # over movies with >= 1 rating
    variance_vs_mean_trend: BinnedTrend  # variance binned by mean rating
    variance_vs_count_trend: BinnedTrend  # variance binned by log count
    mean_vs_count_trend: BinnedTrend  # mean binned by log count
    peak_bin: int  # index into variance_vs_mean_trend bins; -1 if no bin qualifies
    region_edges: tuple[float, ...]
    block_selection: str
    block_seed: int
    block_users: np.ndarray  # (b_users,) user indices of the sample block rows
    block_items: np.ndarray  # (b_items,) movie indices of the sample block columns
    block_ratings: np.ndarray  # (b_users, b_items) float32, NaN where unrated

    @property
    def density(self) -> float:
        """Fraction of the ``n_users × n_items`` cells that hold a rating."""
        return self.n_ratings / (self.n_users * self.n_items)

    @property
    def sparsity(self) -> float:
        """Fraction of empty cells, ``1 - density``."""
        return 1.0 - self.density

    @property
    def variance_mask(self) -> np.ndarray:
        """Movies whose variance is defined (``>= min_count`` ratings)."""
        return self.item_counts >= self.min_count

    @property
    def block_density(self) -> float:
        """Fraction of the sample block's cells that hold a rating."""
        size = self.block_ratings.size
        return float(np.count_nonzero(~np.isnan(self.block_ratings)) / size) if size else 0.0

    @property
    def peak_mean_rating(self) -> float:
        """Centre of the mean-rating bin where the smoothed variance peaks (NaN if none)."""
        if self.peak_bin < 0:
            return float("nan")
        return float(self.variance_vs_mean_trend.centers[self.peak_bin])

    @property
    def peak_variance(self) -> float:
        """Smoothed variance at the peak bin (NaN if none)."""
        if self.peak_bin < 0:
            return float("nan")
        return float(self.variance_vs_mean_trend.smoothed[self.peak_bin])


def spearman_rho(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation: Pearson correlation of average ranks (ties share a rank).

    Pairs where either value is non-finite are dropped; NaN if fewer than 3 pairs remain or
    either variable is constant.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"spearman_rho: x has shape {x.shape} but y has shape {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    if np.count_nonzero(keep) < 3:
        return float("nan")
    rank_x = rankdata(x[keep])
    rank_y = rankdata(y[keep])
    rank_x -= rank_x.mean()
    rank_y -= rank_y.mean()
    denom = np.sqrt(np.dot(rank_x, rank_x) * np.dot(rank_y, rank_y))
    if denom == 0.0:
        return float("nan")
    return float(np.dot(rank_x, rank_y) / denom)


def _window_sums(values: np.ndarray, window: int) -> np.ndarray:
    """``out[b] = values[b - h] + … + values[b + h]`` (``window = 2h + 1``; zeros beyond the ends)."""
    half = window // 2
    padded = np.concatenate([np.zeros(half), values, np.zeros(half)])
    return sum(padded[offset : offset + len(values)] for offset in range(window))


def binned_trend(
    x: np.ndarray,
    y: np.ndarray,
    edges: np.ndarray,
    *,
    window: int = 1,
    min_points: int = 1,
) -> BinnedTrend:
    """Bin ``y`` by ``x`` on ``edges`` (see ``BinnedTrend``); points outside the edges are dropped."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(
            "binned_trend: edges must be a strictly increasing 1-D array of ≥ 2 values"
        )
    if window < 1 or window % 2 == 0:
        raise ValueError(f"binned_trend: window must be a positive odd number, got {window}")
    n_bins = len(edges) - 1
    keep = np.isfinite(x) & np.isfinite(y) & (x >= edges[0]) & (x <= edges[-1])
    x, y = x[keep], y[keep]
    bin_of = np.minimum(np.searchsorted(edges, x, side="right") - 1, n_bins - 1)
    n_points = np.bincount(bin_of, minlength=n_bins).astype(np.int64)
    y_sum = np.bincount(bin_of, weights=y, minlength=n_bins)
    x_sum = np.bincount(bin_of, weights=x, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_points > 0, y_sum / n_points, np.nan)
        x_mean = np.where(n_points > 0, x_sum / n_points, np.nan)
        window_sum = _window_sums(y_sum, window)
        window_count = _window_sums(n_points.astype(np.float64), window)
        smoothed = np.where((window_count >= max(min_points, 1)), window_sum / window_count, np.nan)
    # Medians without a loop over bins: sort by (bin, y); each bin is then a contiguous run.
    sorted_y = y[np.lexsort((y, bin_of))]
    starts = np.concatenate(([0], np.cumsum(n_points)[:-1]))
    filled = n_points > 0
    lower_mid = starts[filled] + (n_points[filled] - 1) // 2
    upper_mid = starts[filled] + n_points[filled] // 2
    median = np.full(n_bins, np.nan)
    median[filled] = 0.5 * (sorted_y[lower_mid] + sorted_y[upper_mid])
    return BinnedTrend(
        edges=edges,
        centers=0.5 * (edges[:-1] + edges[1:]),
        x_mean=x_mean,
        n_points=n_points,
        mean=mean,
        median=median,
        smoothed=smoothed,
        window=window,
        min_points=min_points,
    )


def _log_count_edges(counts: np.ndarray, n_bins: int) -> np.ndarray:
    """Integer edges spaced evenly in log between the smallest and largest count."""
    lo = max(int(counts.min()), 1) if len(counts) else 1
    hi = int(counts.max()) + 1 if len(counts) else 2
    edges = np.unique(np.floor(np.geomspace(lo, hi, n_bins + 1)))
    if edges[-1] < hi:
        edges = np.append(edges, hi)
    if len(edges) < 2:
        edges = np.array([lo, lo + 1], dtype=np.float64)
    return edges


def _mean_rating_edges(lo: float, hi: float, bin_width: float) -> np.ndarray:
    if hi - lo < bin_width:
        centre = 0.5 * (lo + hi)
        return np.array([centre - bin_width / 2, centre + bin_width / 2])
    n_bins = max(1, round((hi - lo) / bin_width))
    return np.linspace(lo, hi, n_bins + 1)


def item_variances_from_ratings(
    item: np.ndarray,
    rating: np.ndarray,
    counts: np.ndarray,
    means: np.ndarray,
    has_variance: np.ndarray,
    ddof: int,
) -> np.ndarray:
    """Per-movie variance with ``ddof``, NaN where ``has_variance`` is false.

    Half-star ratings take the exact path: with ``t = 2r`` integer, ``n Σt² − (Σt)²`` and
    ``4 n (n − ddof)`` are integers that float64 holds exactly, so each variance is one
    correctly rounded division and equal variances compare equal. That matters for the
    Spearman ρ, whose ranks depend on ties (thousands of movies share variances such as
    0 or 0.5); rounding noise from other formulas breaks them arbitrarily and moves ρ in
    the fourth decimal. Other ratings use the two-pass formula ``Σ(r − mean)² / (n − ddof)``.
    """
    n_items = len(counts)
    variances = np.full(n_items, np.nan)
    doubled = rating.astype(np.float64) * 2.0
    if np.array_equal(doubled, np.rint(doubled)):
        sum_t = np.bincount(item, weights=doubled, minlength=n_items)
        np.square(doubled, out=doubled)
        sum_t2 = np.bincount(item, weights=doubled, minlength=n_items)
        del doubled
        if float(np.max(counts * sum_t2)) < 2.0**53:
            n = counts[has_variance].astype(np.float64)
            numerator = n * sum_t2[has_variance] - sum_t[has_variance] ** 2
            variances[has_variance] = numerator / (4.0 * n * (n - ddof))
            return variances
    else:
        del doubled
    deviation = rating - means[item]
    np.square(deviation, out=deviation)
    sq_dev = np.bincount(item, weights=deviation, minlength=n_items)
    variances[has_variance] = sq_dev[has_variance] / (counts[has_variance] - ddof)
    return variances


def _validate(
    ratings: Ratings,
    n_users: int,
    n_items: int,
    min_count: int,
    ddof: int,
    sample_block: int,
    block_selection: str,
    trend_bin_width: float,
    trend_window: int,
    region_edges: Sequence[float],
) -> None:
    if n_users < 1 or n_items < 1:
        raise DataError(f"compute_eda: n_users={n_users} and n_items={n_items} must both be ≥ 1")
    if len(ratings) == 0:
        raise DataError("compute_eda: the rating set is empty; nothing to analyse")
    for name, index, bound in (("user", ratings.user, n_users), ("item", ratings.item, n_items)):
        lo, hi = int(index.min()), int(index.max())
        if lo < 0 or hi >= bound:
            raise DataError(
                f"compute_eda: {name} indices span [{lo}, {hi}] but must lie in "
                f"[0, {bound - 1}] (n_{name}s={bound}); were the ids mapped to contiguous indices?"
            )
    if not np.all(np.isfinite(ratings.rating)):
        bad = int(np.flatnonzero(~np.isfinite(ratings.rating))[0])
        raise DataError(f"compute_eda: rating #{bad} is not finite ({ratings.rating[bad]})")
    if ddof < 0:
        raise ConfigError(f"eda.ddof must be ≥ 0, got {ddof}")
    if min_count < max(1, ddof + 1):
        raise ConfigError(
            f"eda.min_count must be ≥ {max(1, ddof + 1)} (a variance with ddof={ddof} needs "
            f"more than {ddof} ratings), got {min_count}"
        )
    if sample_block < 1:
        raise ConfigError(f"eda.sample_block must be ≥ 1, got {sample_block}")
    if block_selection not in BLOCK_SELECTIONS:
        raise ConfigError(
            f"eda.block_selection must be one of {list(BLOCK_SELECTIONS)}, got {block_selection!r}"
        )
    if not trend_bin_width > 0:
        raise ConfigError(f"eda.trend_bin_width must be > 0, got {trend_bin_width}")
    if trend_window < 1 or trend_window % 2 == 0:
        raise ConfigError(f"eda.trend_window must be a positive odd number, got {trend_window}")
    edges = np.asarray(region_edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) == 0 or np.any(np.diff(edges) <= 0):
        raise ConfigError(
            f"eda.region_edges must be a non-empty strictly increasing list, got {list(region_edges)}"
        )


def _sample_block(
    ratings: Ratings,
    n_users: int,
    n_items: int,
    user_counts: np.ndarray,
    item_counts: np.ndarray,
    size: int,
    selection: str,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_rows, n_cols = min(size, n_users), min(size, n_items)
    if selection == "random":
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(n_users, size=n_rows, replace=False))
        cols = np.sort(rng.choice(n_items, size=n_cols, replace=False))
    elif selection == "most_active":
        rows = np.argsort(-user_counts, kind="stable")[:n_rows]
        cols = np.argsort(-item_counts, kind="stable")[:n_cols]
    else:  # "first"
        rows = np.arange(n_rows)
        cols = np.arange(n_cols)
    row_of_user = np.full(n_users, -1, dtype=np.int32)
    row_of_user[rows] = np.arange(n_rows, dtype=np.int32)
    col_of_item = np.full(n_items, -1, dtype=np.int32)
    col_of_item[cols] = np.arange(n_cols, dtype=np.int32)
    # Filter by row first so the column lookup only touches the block's users' ratings.
    in_rows = np.flatnonzero(row_of_user[ratings.user] >= 0)
    block_col = col_of_item[ratings.item[in_rows]]
    in_block = in_rows[block_col >= 0]
    block = np.full((n_rows, n_cols), np.nan, dtype=np.float32)
    block[row_of_user[ratings.user[in_block]], col_of_item[ratings.item[in_block]]] = (
        ratings.rating[in_block]
    )
    return rows.astype(np.int64), cols.astype(np.int64), block


def compute_eda(
    ratings: Ratings,
    n_users: int,
    n_items: int,
    *,
    min_count: int = 2,
    sample_block: int = 200,
    seed: int = 0,
    block_selection: BlockSelection = "random",
    ddof: int = 1,
    trend_bin_width: float = 0.25,
    trend_window: int = 3,
    trend_min_movies: int = 5,
    count_trend_bins: int = 20,
    region_edges: Sequence[float] = DEFAULT_REGION_EDGES,
) -> EdaData:
    """Compute the exploratory statistics of ``ratings`` over an ``n_users × n_items`` matrix.

    - ``min_count``: movies with fewer ratings get no variance (NaN) and are left out of
      every variance statistic; must exceed ``ddof`` (default 1: sample variance, like
      pandas' ``var``).
    - ``sample_block``/``block_selection``/``seed``: the sparsity picture shows
      ``sample_block`` users × ``sample_block`` movies chosen uniformly at random with
      ``np.random.default_rng(seed)`` (``"random"``; shown in index order), the most active
      ones (``"most_active"``; by decreasing count), or the first indices (``"first"``).
    - ``trend_bin_width``/``trend_window``/``trend_min_movies``: the variance-vs-mean trend
      bins movie means on the rating scale with that width and smooths over ``trend_window``
      bins (see ``BinnedTrend``); the peak is the bin with the largest smoothed variance
      among windows holding at least ``trend_min_movies`` movies.
    - ``count_trend_bins``: number of log-spaced bins for the trends against rating counts.
    - ``region_edges``: mean-rating boundaries of the variance regions in ``eda_summary``.
    """
    _validate(
        ratings,
        n_users,
        n_items,
        min_count,
        ddof,
        sample_block,
        block_selection,
        trend_bin_width,
        trend_window,
        region_edges,
    )
    user, item, rating = ratings.user, ratings.item, ratings.rating
    n_ratings = len(rating)

    rating_values, rating_counts = np.unique(rating, return_counts=True)
    mean_rating = float(np.sum(rating, dtype=np.float64) / n_ratings)

    user_counts = np.bincount(user, minlength=n_users).astype(np.int64)
    user_sums = np.bincount(user, weights=rating, minlength=n_users)
    item_counts = np.bincount(item, minlength=n_items).astype(np.int64)
    item_sums = np.bincount(item, weights=rating, minlength=n_items)
    with np.errstate(invalid="ignore", divide="ignore"):
        user_means = np.where(user_counts > 0, user_sums / user_counts, np.nan)
        item_means = np.where(item_counts > 0, item_sums / item_counts, np.nan)

    has_variance = item_counts >= min_count
    item_variances = item_variances_from_ratings(
        item, rating, item_counts, item_means, has_variance, ddof
    )

    user_degree_values, user_degree_frequency = np.unique(
        user_counts[user_counts > 0], return_counts=True
    )
    item_degree_values, item_degree_frequency = np.unique(
        item_counts[item_counts > 0], return_counts=True
    )

    rated = item_counts > 0
    spearman_variance = spearman_rho(item_counts[has_variance], item_variances[has_variance])
    spearman_mean = spearman_rho(item_counts[rated], item_means[rated])

    variance_vs_mean = binned_trend(
        item_means[has_variance],
        item_variances[has_variance],
        _mean_rating_edges(float(rating_values[0]), float(rating_values[-1]), trend_bin_width),
        window=trend_window,
        min_points=trend_min_movies,
    )
    finite_peak = np.isfinite(variance_vs_mean.smoothed)
    peak_bin = int(np.nanargmax(variance_vs_mean.smoothed)) if finite_peak.any() else -1
    variance_vs_count = binned_trend(
        item_counts[has_variance],
        item_variances[has_variance],
        _log_count_edges(item_counts[has_variance], count_trend_bins),
    )
    mean_vs_count = binned_trend(
        item_counts[rated],
        item_means[rated],
        _log_count_edges(item_counts[rated], count_trend_bins),
    )

    block_users, block_items, block_ratings = _sample_block(
        ratings, n_users, n_items, user_counts, item_counts, sample_block, block_selection, seed
    )

    return EdaData(
        n_users=int(n_users),
        n_items=int(n_items),
        n_ratings=int(n_ratings),
        mean_rating=mean_rating,
        rating_values=rating_values.astype(np.float64),
        rating_counts=rating_counts.astype(np.int64),
        user_counts=user_counts,
        user_means=user_means,
        item_counts=item_counts,
        item_means=item_means,
        item_variances=item_variances,
        min_count=int(min_count),
        ddof=int(ddof),
        user_degree_values=user_degree_values.astype(np.int64),
        user_degree_frequency=user_degree_frequency.astype(np.int64),
        item_degree_values=item_degree_values.astype(np.int64),
        item_degree_frequency=item_degree_frequency.astype(np.int64),
        spearman_variance_vs_count=spearman_variance,
        spearman_mean_vs_count=spearman_mean,
        variance_vs_mean_trend=variance_vs_mean,
        variance_vs_count_trend=variance_vs_count,
        mean_vs_count_trend=mean_vs_count,
        peak_bin=peak_bin,
        region_edges=tuple(float(e) for e in region_edges),
        block_selection=str(block_selection),
        block_seed=int(seed),
        block_users=block_users,
        block_items=block_items,
        block_ratings=block_ratings,
    )


def _json_number(value: float) -> float | None:
    """JSON has no NaN: undefined statistics are reported as null."""
    value = float(value)
    return value if np.isfinite(value) else None


def region_label(lower: float | None, upper: float | None) -> str:
    """Human-readable ``lower <= mean < upper`` label of a mean-rating region."""
    if lower is None:
        return f"mean < {upper:g}"
    if upper is None:
        return f"mean >= {lower:g}"
    return f"{lower:g} <= mean < {upper:g}"


def region_statistics(
    means: np.ndarray, variances: np.ndarray, edges: Sequence[float]
) -> list[dict[str, Any]]:
    """Per mean-rating region (``lower <= mean < upper``): movie count, mean and median variance.

    ``means``/``variances`` are per-movie values of the movies that have a variance; empty
    regions report ``n_movies = 0`` and null statistics.
    """
    means = np.asarray(means, dtype=np.float64)
    variances = np.asarray(variances, dtype=np.float64)
    bounds: list[float | None] = [None, *[float(e) for e in edges], None]
    region_of = np.searchsorted(np.asarray(edges, dtype=np.float64), means, side="right")
    regions = []
    for r in range(len(bounds) - 1):
        in_region = variances[region_of == r]
        regions.append(
            {
                "region": region_label(bounds[r], bounds[r + 1]),
                "lower": bounds[r],
                "upper": bounds[r + 1],
                "n_movies": len(in_region),
                "mean_variance": _json_number(in_region.mean()) if len(in_region) else None,
                "median_variance": _json_number(np.median(in_region)) if len(in_region) else None,
            }
        )
    return regions


def _degree_summary(counts: np.ndarray) -> dict[str, Any]:
    positive = counts[counts > 0]
    return {
        "n_with_ratings": len(positive),
        "min": int(positive.min()),
        "median": float(np.median(positive)),
        "mean": float(positive.mean()),
        "max": int(positive.max()),
    }


def eda_summary(eda: EdaData) -> dict[str, Any]:
    """The JSON-ready statistics dict (``eda.json``); undefined numbers are ``None``."""
    trend = eda.variance_vs_mean_trend
    mask = eda.variance_mask
    if eda.peak_bin >= 0:
        peak = {
            "mean_rating_bin": [
                float(trend.edges[eda.peak_bin]),
                float(trend.edges[eda.peak_bin + 1]),
            ],
            "mean_rating": eda.peak_mean_rating,
            "variance": eda.peak_variance,
        }
    else:
        peak = {"mean_rating_bin": None, "mean_rating": None, "variance": None}
    return {
        "n_ratings": eda.n_ratings,
        "n_users": eda.n_users,
        "n_movies": eda.n_items,
        "density": eda.density,
        "sparsity": eda.sparsity,
        "mean_rating": eda.mean_rating,
        "rating_distribution": [
            {"rating": float(v), "count": int(c), "fraction": float(c) / eda.n_ratings}
            for v, c in zip(eda.rating_values, eda.rating_counts, strict=True)
        ],
        "user_degree": _degree_summary(eda.user_counts),
        "movie_degree": _degree_summary(eda.item_counts),
        "min_count": eda.min_count,
        "variance_ddof": eda.ddof,
        "n_movies_with_variance": int(np.count_nonzero(mask)),
        "spearman_variance_vs_count": _json_number(eda.spearman_variance_vs_count),
        "spearman_mean_vs_count": _json_number(eda.spearman_mean_vs_count),
        "variance_vs_mean_rating": {
            "regions": region_statistics(
                eda.item_means[mask], eda.item_variances[mask], eda.region_edges
            ),
            "trend": {
                "bin_width": float(trend.edges[1] - trend.edges[0]),
                "window_bins": trend.window,
                "min_movies": trend.min_points,
            },
            "peak": peak,
        },
        "sample_block": {
            "selection": eda.block_selection,
            "seed": eda.block_seed,
            "n_users": len(eda.block_users),
            "n_movies": len(eda.block_items),
            "density": eda.block_density,
        },
    }
