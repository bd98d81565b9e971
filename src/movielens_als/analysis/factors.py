"""What the fitted movie factors say: factor norms, rating variance and a 2-D map.

The notebook's analyses, over the movie factor vectors ``v_n`` and the training ratings:

- the movies with the largest and smallest ``‖v_n‖`` and with the highest rating variance
  (rating histograms for the first few), and how many of the most-rated movies are among the
  largest-norm ones;
- rating variance against factor norm: Pearson and Spearman correlations and a least-squares
  line ``variance ≈ slope · ‖v‖ + intercept``, over all movies and within rating-count tiers;
- the distribution of factor norms;
- a 2-D principal-component map of the factors of a chosen set of movies.

Every statistic except the norm distribution and the most-rated list is taken over the
*eligible* movies: those with at least ``min_ratings`` training ratings (notebook: 20), so
that variances rest on enough ratings. Ties in every ranking are broken by movie index.
``factor_analysis`` computes a ``FactorAnalysis``; ``factor_summary`` turns it into the
JSON-able dict; ``analyse_factors`` does both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from movielens_als.analysis.eda import item_variances_from_ratings
from movielens_als.analysis.genre import project_2d
from movielens_als.errors import ConfigError, DataError
from movielens_als.sparse import CSR

DEFAULT_TIER_EDGES: tuple[int, ...] = (500, 5_000, 20_000)
HALF_STARS: tuple[float, float, float] = (0.5, 5.0, 0.5)
DEFAULT_PCA_MOVIES = 20  # without an explicit list, the PCA map shows the most-rated movies


@dataclass(frozen=True)
class Correlation:
    """Variance-vs-norm relation over ``n`` movies; NaN where undefined (n < 3, constant input)."""

    n: int
    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float
    slope: float  # least squares: variance ≈ slope · norm + intercept
    intercept: float


@dataclass(frozen=True)
class Tier:
    """Eligible movies with ``lower ≤ training ratings < upper`` (``upper`` None = no bound)."""

    label: str
    lower: int
    upper: int | None
    movies: np.ndarray  # movie indices, ascending; empty for an empty tier
    correlation: Correlation | None  # None for an empty tier


@dataclass(frozen=True)
class FactorAnalysis:
    """Per-movie arrays (length n_items) and the rankings, tables and map built from them."""

    titles: tuple[str, ...]
    movie_ids: np.ndarray
    item_bias: np.ndarray
    norms: np.ndarray  # ‖v_n‖
    n_ratings: np.ndarray  # training ratings per movie
    mean_rating: np.ndarray  # NaN for movies without training ratings
    variance: np.ndarray  # rating variance (ddof=1), NaN for movies with < 2 ratings
    min_ratings: int
    eligible: np.ndarray  # bool: n_ratings ≥ min_ratings (and a variance exists)
    largest_norm: np.ndarray  # movie indices, largest first (eligible movies)
    smallest_norm: np.ndarray  # smallest first (eligible movies)
    top_variance: np.ndarray  # highest variance first (eligible movies)
    most_rated: np.ndarray  # most training ratings first (all movies)
    rating_values: np.ndarray  # the rating scale's values, ascending
    histograms: np.ndarray  # (len(histogram_movies), len(rating_values)) rating counts
    histogram_movies: np.ndarray  # the first top-variance movies
    overall: Correlation
    tiers: tuple[Tier, ...]
    pca_movies: np.ndarray  # movie indices shown on the map
    pca_coords: np.ndarray  # (len(pca_movies), 2): PC scores, or the raw factors when K = 2
    pca_explained: np.ndarray | None  # share of variance of each PC; None = raw factors


def rating_stats(train_by_item: CSR) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-movie training rating count, mean and sample variance (ddof=1, like pandas).

    Means are NaN without ratings, variances NaN below 2 ratings.
    """
    counts = train_by_item.row_counts().astype(np.int64)
    item = np.repeat(np.arange(train_by_item.n_rows), counts)
    rating = train_by_item.data.astype(np.float64)
    sums = np.bincount(item, weights=rating, minlength=train_by_item.n_rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan)
    has_variance = counts >= 2
    variance = item_variances_from_ratings(item, rating, counts, means, has_variance, 1)
    return counts, means, variance


def correlate(norms: np.ndarray, variances: np.ndarray) -> Correlation:
    """Pearson and Spearman correlations (with p-values) and the least-squares line."""
    x = np.asarray(norms, dtype=np.float64)
    y = np.asarray(variances, dtype=np.float64)
    n = len(x)
    nan = float("nan")
    if n < 3 or np.ptp(x) == 0.0 or np.ptp(y) == 0.0:
        slope = intercept = nan
        if n >= 2 and np.ptp(x) > 0.0:
            slope, intercept = (float(c) for c in np.polyfit(x, y, 1))
        return Correlation(n, nan, nan, nan, nan, slope, intercept)
    pearson = stats.pearsonr(x, y)
    spearman = stats.spearmanr(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    return Correlation(
        n,
        float(pearson.statistic),
        float(pearson.pvalue),
        float(spearman.statistic),
        float(spearman.pvalue),
        float(slope),
        float(intercept),
    )


def count_label(value: int) -> str:
    """``500`` → ``"500"``, ``5000`` → ``"5k"``, ``1_500_000`` → ``"1.5M"``."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if value >= size:
            return f"{value / size:g}{unit}"
    return str(value)


def tier_bounds(edges: Sequence[int]) -> list[tuple[str, int, int | None]]:
    """``(label, lower, upper)`` of the tiers cut at ``edges``: [0, e₁), [e₁, e₂), …, [e_k, ∞)."""
    cuts = [0, *edges]
    bounds: list[tuple[str, int, int | None]] = []
    for i, lower in enumerate(cuts):
        upper = cuts[i + 1] if i + 1 < len(cuts) else None
        if upper is None:
            label = f"≥ {count_label(lower)}"
        elif lower == 0:
            label = f"< {count_label(upper)}"
        else:
            label = f"{count_label(lower)}–{count_label(upper)}"
        bounds.append((label, lower, upper))
    return bounds


def _ranked(indices: np.ndarray, key: np.ndarray, n: int, *, descending: bool) -> np.ndarray:
    """The first ``n`` of ``indices`` ordered by ``key`` (ties: lower index first)."""
    signed = -key[indices] if descending else key[indices]
    return indices[np.lexsort((indices, signed))][:n]


def _validate(
    item_factors: np.ndarray,
    item_bias: np.ndarray,
    train_by_item: CSR,
    titles: Sequence[str],
    movie_ids: np.ndarray,
    min_ratings: int,
    top_n: int,
    tier_edges: Sequence[int],
    n_histograms: int,
) -> None:
    if item_factors.ndim != 2 or item_factors.shape[1] < 1:
        raise DataError(
            "factor analysis needs movie factors (n_items × K with K ≥ 1); a bias-only model "
            f"has none — got shape {item_factors.shape}"
        )
    n_items = item_factors.shape[0]
    sizes = {
        "item_bias": len(item_bias),
        "train_by_item rows": train_by_item.n_rows,
        "titles": len(titles),
        "movie_ids": len(movie_ids),
    }
    wrong = {name: size for name, size in sizes.items() if size != n_items}
    if wrong:
        raise DataError(f"factor analysis: {n_items} movie factor rows but {wrong}")
    if not np.all(np.isfinite(item_factors)):
        row = int(np.flatnonzero(~np.all(np.isfinite(item_factors), axis=1))[0])
        raise DataError(f"factor analysis: movie factor row {row} holds non-finite values")
    if min_ratings < 2:
        raise ConfigError(f"min_ratings: a variance needs ≥ 2 ratings, got {min_ratings}")
    if top_n < 1 or n_histograms < 0:
        raise ConfigError(f"top_n must be ≥ 1 and n_histograms ≥ 0, got {top_n}, {n_histograms}")
    edges = list(tier_edges)
    if any(e <= 0 for e in edges) or edges != sorted(set(edges)):
        raise ConfigError(f"tier_edges: must be positive and strictly increasing, got {edges}")


def factor_analysis(
    item_factors: np.ndarray,
    item_bias: np.ndarray,
    train_by_item: CSR,
    titles: Sequence[str],
    movie_ids: np.ndarray,
    *,
    min_ratings: int = 20,
    top_n: int = 10,
    tier_edges: Sequence[int] = DEFAULT_TIER_EDGES,
    n_histograms: int = 3,
    rating_scale: tuple[float, float, float] = HALF_STARS,
    pca_movie_ids: Sequence[int] | None = None,
) -> FactorAnalysis:
    """Compute every factor analysis (see the module docstring).

    Args:
        item_factors, item_bias: the model's movie factors (n_items × K, K ≥ 1) and biases.
        train_by_item: training ratings, rows = movies (``split.train.by_item``).
        titles, movie_ids: title and raw MovieLens id per movie index.
        min_ratings: eligibility threshold (training ratings) for the norm/variance tables.
        top_n: length of each top list.
        tier_edges: rating-count boundaries of the tiers, lower bound inclusive: the default
            gives < 500, 500–5k, 5k–20k, ≥ 20k. Empty tiers are kept, marked empty.
        n_histograms: how many of the top-variance movies get a rating histogram.
        rating_scale: ``(min, max, step)``; the histogram bins are its values.
        pca_movie_ids: raw movie ids to place on the 2-D map; ``None`` = the
            ``DEFAULT_PCA_MOVIES`` most-rated movies. The principal components are fitted on
            these movies' factors (centred over them), so the map shows how they differ from
            each other.
    """
    item_factors = np.asarray(item_factors)
    item_bias = np.asarray(item_bias, dtype=np.float64)
    movie_ids = np.asarray(movie_ids)
    _validate(
        item_factors,
        item_bias,
        train_by_item,
        titles,
        movie_ids,
        min_ratings,
        top_n,
        tier_edges,
        n_histograms,
    )
    norms = np.linalg.norm(item_factors.astype(np.float64), axis=1)
    n_ratings, mean_rating, variance = rating_stats(train_by_item)
    eligible = (n_ratings >= min_ratings) & np.isfinite(variance)
    candidates = np.flatnonzero(eligible)
    all_movies = np.arange(len(norms))

    top_variance = _ranked(candidates, variance, top_n, descending=True)
    histogram_movies = top_variance[:n_histograms]
    rating_values, histograms = _rating_histograms(train_by_item, histogram_movies, rating_scale)

    tiers = []
    counts = n_ratings[candidates]
    for label, lower, upper in tier_bounds(tier_edges):
        movies = candidates[(counts >= lower) & ((counts < upper) if upper else True)]
        correlation = correlate(norms[movies], variance[movies]) if movies.size else None
        tiers.append(Tier(label, max(lower, min_ratings), upper, movies, correlation))

    pca_movies = _pca_movies(pca_movie_ids, movie_ids, n_ratings)
    pca_coords, pca_explained = np.zeros((pca_movies.size, 2)), None
    if item_factors.shape[1] == 1:  # nothing to project: the factor, on a line
        pca_coords[:, 0] = item_factors[pca_movies, 0]
    elif pca_movies.size:
        pca_coords, pca_explained = project_2d(item_factors[pca_movies])

    return FactorAnalysis(
        titles=tuple(str(t) for t in titles),
        movie_ids=movie_ids,
        item_bias=item_bias,
        norms=norms,
        n_ratings=n_ratings,
        mean_rating=mean_rating,
        variance=variance,
        min_ratings=int(min_ratings),
        eligible=eligible,
        largest_norm=_ranked(candidates, norms, top_n, descending=True),
        smallest_norm=_ranked(candidates, norms, top_n, descending=False),
        top_variance=top_variance,
        most_rated=_ranked(all_movies, n_ratings, top_n, descending=True),
        rating_values=rating_values,
        histograms=histograms,
        histogram_movies=histogram_movies,
        overall=correlate(norms[candidates], variance[candidates]),
        tiers=tuple(tiers),
        pca_movies=pca_movies,
        pca_coords=pca_coords,
        pca_explained=pca_explained,
    )


def _rating_histograms(
    train_by_item: CSR, movies: np.ndarray, rating_scale: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    low, high, step = rating_scale
    n_values = round((high - low) / step) + 1
    values = low + step * np.arange(n_values)
    histograms = np.zeros((len(movies), n_values), dtype=np.int64)
    for row, movie in enumerate(movies):
        ratings = train_by_item.row(int(movie))[1].astype(np.float64)
        position = np.rint((ratings - low) / step).astype(np.int64)
        off = (
            (position < 0)
            | (position >= n_values)
            | (np.abs(low + step * position - ratings) > 1e-6)
        )
        if off.any():
            raise DataError(
                f"movie index {movie} has rating {ratings[off][0]:g}, off the rating scale "
                f"{low:g}–{high:g} in steps of {step:g}"
            )
        histograms[row] = np.bincount(position, minlength=n_values)
    return values, histograms


def _pca_movies(
    pca_movie_ids: Sequence[int] | None, movie_ids: np.ndarray, n_ratings: np.ndarray
) -> np.ndarray:
    if pca_movie_ids is None:
        return _ranked(np.arange(len(n_ratings)), n_ratings, DEFAULT_PCA_MOVIES, descending=True)
    wanted = np.asarray(list(pca_movie_ids), dtype=np.int64)
    order = np.argsort(movie_ids, kind="stable")
    at = np.searchsorted(movie_ids, wanted, sorter=order).clip(0, max(len(order) - 1, 0))
    found = order[at] if len(order) else np.zeros(0, np.int64)
    missing = [int(w) for w, f in zip(wanted, found, strict=True) if movie_ids[f] != w]
    if missing:
        raise ConfigError(
            f"pca_movie_ids: movie id(s) {missing} are not in the index (unknown, or without "
            "ratings)"
        )
    _, first = np.unique(found, return_index=True)  # a repeated id is shown once
    return found[np.sort(first)]


def _number(value: float) -> float | None:
    """JSON has no NaN: undefined statistics are reported as null."""
    value = float(value)
    return value if math.isfinite(value) else None


def _correlation_dict(correlation: Correlation) -> dict[str, Any]:
    return {
        "n_movies": correlation.n,
        "pearson_r": _number(correlation.pearson_r),
        "pearson_p": _number(correlation.pearson_p),
        "spearman_rho": _number(correlation.spearman_rho),
        "spearman_p": _number(correlation.spearman_p),
        "slope": _number(correlation.slope),
        "intercept": _number(correlation.intercept),
    }


def _movie_rows(analysis: FactorAnalysis, movies: np.ndarray) -> list[dict[str, Any]]:
    return [
        {
            "movie_id": int(analysis.movie_ids[m]),
            "title": analysis.titles[m],
            "norm": float(analysis.norms[m]),
            "variance": _number(analysis.variance[m]),
            "mean_rating": _number(analysis.mean_rating[m]),
            "n_ratings": int(analysis.n_ratings[m]),
            "bias": float(analysis.item_bias[m]),
        }
        for m in movies
    ]


def factor_summary(analysis: FactorAnalysis) -> dict[str, Any]:
    """The JSON-able report of a ``FactorAnalysis`` (undefined numbers are null)."""
    overlap = [m for m in analysis.most_rated if m in set(analysis.largest_norm.tolist())]
    rated_norms = analysis.norms[analysis.n_ratings > 0]
    quantiles = np.quantile(rated_norms, [0.05, 0.5, 0.95]) if rated_norms.size else [math.nan] * 3
    explained = analysis.pca_explained
    return {
        "min_ratings": analysis.min_ratings,
        "n_movies": len(analysis.norms),
        "n_movies_eligible": int(analysis.eligible.sum()),
        "largest_norm": _movie_rows(analysis, analysis.largest_norm),
        "smallest_norm": _movie_rows(analysis, analysis.smallest_norm),
        "top_variance": _movie_rows(analysis, analysis.top_variance),
        "top_variance_histograms": [
            {
                "movie_id": int(analysis.movie_ids[m]),
                "title": analysis.titles[m],
                "rating_values": analysis.rating_values.tolist(),
                "counts": counts.tolist(),
            }
            for m, counts in zip(analysis.histogram_movies, analysis.histograms, strict=True)
        ],
        "most_rated": _movie_rows(analysis, analysis.most_rated),
        "most_rated_among_largest_norm": {
            "n_overlap": len(overlap),
            "of": len(analysis.most_rated),
            "movies": [
                {"movie_id": int(analysis.movie_ids[m]), "title": analysis.titles[m]}
                for m in overlap
            ],
        },
        "variance_vs_norm": _correlation_dict(analysis.overall),
        "variance_vs_norm_by_tier": [
            {
                "tier": tier.label,
                "min_ratings": tier.lower,
                "max_ratings_exclusive": tier.upper,
                "empty": tier.correlation is None,
                **(
                    _correlation_dict(tier.correlation)
                    if tier.correlation is not None
                    else {"n_movies": 0}
                ),
            }
            for tier in analysis.tiers
        ],
        "norm_distribution": {
            "n_movies": int(rated_norms.size),  # movies with ≥ 1 training rating
            "mean": _number(rated_norms.mean()) if rated_norms.size else None,
            "p05": _number(quantiles[0]),
            "median": _number(quantiles[1]),
            "p95": _number(quantiles[2]),
            "max": _number(rated_norms.max()) if rated_norms.size else None,
            "n_zero": int(np.count_nonzero(rated_norms == 0.0)),
        },
        "pca": {
            "projection": "raw_factors" if explained is None else "pca_of_selected_movies",
            "explained_variance_ratio": None
            if explained is None
            else [_number(r) for r in explained],
            "colour": "movie bias c_n",
            "movies": [
                {
                    "movie_id": int(analysis.movie_ids[m]),
                    "title": analysis.titles[m],
                    "bias": float(analysis.item_bias[m]),
                    "x": float(x),
                    "y": float(y),
                }
                for m, (x, y) in zip(analysis.pca_movies, analysis.pca_coords, strict=True)
            ],
        },
    }


def analyse_factors(
    item_factors: np.ndarray,
    item_bias: np.ndarray,
    train_by_item: CSR,
    titles: Sequence[str],
    movie_ids: np.ndarray,
    **options: Any,
) -> dict[str, Any]:
    """``factor_summary(factor_analysis(...))``: the JSON-able factor report in one call."""
    return factor_summary(
        factor_analysis(item_factors, item_bias, train_by_item, titles, movie_ids, **options)
    )
