"""EDA statistics against slow obvious references (pandas groupby, scipy, explicit loops)."""

from __future__ import annotations

import json
import os
import statistics
import zipfile
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from movielens_als.analysis.eda import (
    binned_trend,
    compute_eda,
    eda_summary,
    region_statistics,
    spearman_rho,
)
from movielens_als.errors import ConfigError, DataError
from movielens_als.sparse import Ratings

HALF_STARS = np.arange(1, 11) / 2.0


def random_ratings(
    seed: int, n_users: int = 40, n_items: int = 60, n_ratings: int = 700
) -> tuple[Ratings, int, int]:
    """Distinct (user, item) pairs with half-star ratings; the last user and the last two
    movies get no rating, and movie 0 gets exactly one, so every edge case is present."""
    rng = np.random.default_rng(seed)
    cells = rng.choice((n_users - 1) * (n_items - 2), size=n_ratings, replace=False)
    user, item = np.divmod(cells, n_items - 2)
    keep = item != 0
    user, item = user[keep], item[keep]
    user = np.append(user, 3)
    item = np.append(item, 0)
    # Popular movies get higher ratings on average so that correlations are non-trivial.
    base = 1.5 + 3.0 * (item / n_items)
    rating = np.clip(np.round(2 * (base + rng.normal(0, 1.0, len(item)))) / 2, 0.5, 5.0)
    order = rng.permutation(len(user))
    return Ratings.from_arrays(user[order], item[order], rating[order]), n_users, n_items


@pytest.fixture(scope="module")
def small():
    ratings, n_users, n_items = random_ratings(0)
    frame = pd.DataFrame(
        {"user": ratings.user, "item": ratings.item, "rating": ratings.rating.astype(np.float64)}
    )
    return ratings, n_users, n_items, frame, compute_eda(ratings, n_users, n_items)


def test_overall_numbers(small):
    _, n_users, n_items, frame, eda = small
    assert eda.n_ratings == len(frame)
    assert eda.n_users == n_users and eda.n_items == n_items
    assert eda.mean_rating == pytest.approx(frame.rating.mean(), rel=1e-12)
    assert eda.density == pytest.approx(len(frame) / (n_users * n_items))
    assert eda.sparsity == pytest.approx(1 - len(frame) / (n_users * n_items))
    counts = frame.rating.value_counts().sort_index()
    np.testing.assert_array_equal(eda.rating_values, counts.index.to_numpy())
    np.testing.assert_array_equal(eda.rating_counts, counts.to_numpy())


def test_per_user_and_per_movie_statistics_match_pandas_groupby(small):
    _, n_users, n_items, frame, eda = small
    by_user = frame.groupby("user").rating.agg(["count", "mean"]).reindex(range(n_users))
    np.testing.assert_array_equal(eda.user_counts, by_user["count"].fillna(0).to_numpy())
    np.testing.assert_allclose(eda.user_means, by_user["mean"].to_numpy(), rtol=1e-12)
    assert eda.user_counts[-1] == 0 and np.isnan(eda.user_means[-1])

    by_item = frame.groupby("item").rating.agg(["count", "mean", "var"]).reindex(range(n_items))
    counts = by_item["count"].fillna(0).to_numpy()
    np.testing.assert_array_equal(eda.item_counts, counts)
    np.testing.assert_allclose(eda.item_means, by_item["mean"].to_numpy(), rtol=1e-12)
    expected_var = np.where(counts >= 2, by_item["var"].to_numpy(), np.nan)
    np.testing.assert_allclose(eda.item_variances, expected_var, rtol=1e-10, atol=1e-12)
    # Movie 0 has exactly one rating: it has a mean but no variance.
    assert eda.item_counts[0] == 1 and np.isfinite(eda.item_means[0])
    assert np.isnan(eda.item_variances[0])
    assert not eda.variance_mask[0]
    assert np.all(np.isnan(eda.item_means[-2:]))


def test_min_count_and_ddof(small):
    ratings, n_users, n_items, frame, _ = small
    eda = compute_eda(ratings, n_users, n_items, min_count=12)
    counts = frame.groupby("item").size().reindex(range(n_items), fill_value=0).to_numpy()
    np.testing.assert_array_equal(np.isfinite(eda.item_variances), counts >= 12)
    assert eda_summary(eda)["n_movies_with_variance"] == int(np.sum(counts >= 12))
    assert eda_summary(eda)["min_count"] == 12

    population = compute_eda(ratings, n_users, n_items, min_count=1, ddof=0)
    expected = frame.groupby("item").rating.var(ddof=0).reindex(range(n_items)).to_numpy()
    np.testing.assert_allclose(population.item_variances, expected, atol=1e-12)
    assert population.item_variances[0] == 0.0

    with pytest.raises(ConfigError, match=r"min_count must be ≥ 2"):
        compute_eda(ratings, n_users, n_items, min_count=1)


def test_degree_frequencies_match_counter(small):
    _, _, _, frame, eda = small
    for column, values, frequency in (
        ("user", eda.user_degree_values, eda.user_degree_frequency),
        ("item", eda.item_degree_values, eda.item_degree_frequency),
    ):
        degrees = Counter(frame.groupby(column).size().to_numpy().tolist())
        assert dict(zip(values.tolist(), frequency.tolist(), strict=True)) == dict(degrees)
        assert np.all(np.diff(values) > 0)


def exact_variances(frame: pd.DataFrame) -> pd.Series:
    """Sample variance per movie in exact rational arithmetic, then rounded once to float."""
    return frame.groupby("item").rating.apply(
        lambda r: float(statistics.variance([Fraction(v) for v in r])) if len(r) >= 2 else np.nan
    )


def test_equal_variances_compare_equal():
    # Mathematically equal variances must be bit-equal, or ranks (hence Spearman) split ties.
    # [1, 1.5, 3] and its shifts all have variance 13/12; the two-pass formula gives
    # 1.0833333333333335 for the first and 1.0833333333333333 for the others.
    groups = [[1.0, 2.0], [3.0, 4.0], [1.0, 1.5, 3.0], [1.5, 2.0, 3.5], [3.0, 3.5, 5.0]]
    item = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    ratings = Ratings.from_arrays(np.arange(len(item)), item, np.concatenate(groups))
    eda = compute_eda(ratings, len(item), len(groups))
    assert eda.item_variances[0] == eda.item_variances[1] == 0.5
    assert eda.item_variances[2] == eda.item_variances[3] == eda.item_variances[4] == 13 / 12


def test_variance_of_non_half_star_ratings_uses_two_pass_formula():
    rng = np.random.default_rng(7)
    item = rng.integers(0, 20, size=400)
    rating = rng.uniform(0.5, 5.0, size=400).astype(np.float32)
    eda = compute_eda(Ratings.from_arrays(np.arange(400), item, rating), 400, 20)
    frame = pd.DataFrame({"item": item, "rating": rating.astype(np.float64)})
    expected = frame.groupby("item").rating.var().reindex(range(20)).to_numpy()
    np.testing.assert_allclose(eda.item_variances, expected, rtol=1e-12)


def test_spearman_matches_scipy(small):
    _, _, _, frame, eda = small
    stats = frame.groupby("item").rating.agg(["count", "mean"])
    stats["var"] = exact_variances(frame)
    np.testing.assert_array_equal(eda.item_variances[stats.index], stats["var"].to_numpy())
    with_var = stats[stats["count"] >= 2]
    expected = spearmanr(with_var["count"], with_var["var"]).statistic
    assert eda.spearman_variance_vs_count == pytest.approx(expected, abs=1e-12)
    expected_mean = spearmanr(stats["count"], stats["mean"]).statistic
    assert eda.spearman_mean_vs_count == pytest.approx(expected_mean, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_spearman_rho_with_ties_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, size=50).astype(float)
    y = x + rng.integers(-3, 4, size=50)
    assert spearman_rho(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)


def test_spearman_rho_degenerate_inputs():
    assert np.isnan(spearman_rho(np.array([1.0, 2.0]), np.array([2.0, 1.0])))
    assert np.isnan(spearman_rho(np.ones(10), np.arange(10.0)))
    x = np.array([1.0, np.nan, 3.0, 4.0, 5.0])
    y = np.array([2.0, 9.0, 1.0, 4.0, np.inf])
    assert spearman_rho(x, y) == pytest.approx(spearmanr([1, 3, 4], [2, 1, 4]).statistic)
    with pytest.raises(ValueError, match="shape"):
        spearman_rho(np.ones(3), np.ones(4))


def reference_trend(x, y, edges, window, min_points):
    n_bins = len(edges) - 1
    members = [[] for _ in range(n_bins)]
    for xi, yi in zip(x, y, strict=True):
        for b in range(n_bins):
            last = b == n_bins - 1
            if edges[b] <= xi < edges[b + 1] or (last and xi == edges[-1]):
                members[b].append((xi, yi))
                break
    half = window // 2
    mean, median, smoothed = [], [], []
    for b in range(n_bins):
        ys = [p[1] for p in members[b]]
        mean.append(np.mean(ys) if ys else np.nan)
        median.append(np.median(ys) if ys else np.nan)
        pooled = [
            p[1] for c in range(max(0, b - half), min(n_bins, b + half + 1)) for p in members[c]
        ]
        smoothed.append(np.mean(pooled) if len(pooled) >= max(min_points, 1) else np.nan)
    counts = [len(m) for m in members]
    return np.array(counts), np.array(mean), np.array(median), np.array(smoothed)


@pytest.mark.parametrize(("window", "min_points"), [(1, 1), (3, 1), (3, 6), (5, 2)])
def test_binned_trend_matches_loops(window, min_points):
    rng = np.random.default_rng(window * 10 + min_points)
    x = np.concatenate([rng.uniform(0.5, 2.0, 30), rng.uniform(3.5, 5.0, 25), [5.0, 0.2, 7.0]])
    y = rng.normal(size=len(x))
    edges = np.linspace(0.5, 5.0, 10)
    trend = binned_trend(x, y, edges, window=window, min_points=min_points)
    counts, mean, median, smoothed = reference_trend(x, y, edges, window, min_points)
    np.testing.assert_array_equal(trend.n_points, counts)
    assert trend.n_points.sum() == len(x) - 2  # 0.2 and 7.0 lie outside the edges
    assert counts[4] == 0  # an empty middle bin
    np.testing.assert_allclose(trend.mean, mean, equal_nan=True)
    np.testing.assert_allclose(trend.median, median, equal_nan=True)
    np.testing.assert_allclose(trend.smoothed, smoothed, equal_nan=True)
    np.testing.assert_allclose(trend.centers, 0.5 * (edges[1:] + edges[:-1]))


def test_binned_trend_window_wider_than_the_bins():
    trend = binned_trend(np.array([4.0, 4.0]), np.array([1.0, 3.0]), np.array([3.9, 4.1]), window=5)
    assert trend.smoothed.shape == (1,)
    assert trend.smoothed[0] == trend.mean[0] == trend.median[0] == 2.0


def test_binned_trend_rejects_bad_arguments():
    with pytest.raises(ValueError, match="window"):
        binned_trend(np.ones(3), np.ones(3), np.array([0.0, 1.0]), window=2)
    with pytest.raises(ValueError, match="edges"):
        binned_trend(np.ones(3), np.ones(3), np.array([1.0, 0.0]))


def test_peak_is_argmax_of_smoothed_variance(small):
    _, _, _, frame, eda = small
    stats = frame.groupby("item").rating.agg(["count", "mean", "var"])
    stats = stats[stats["count"] >= 2]
    trend = eda.variance_vs_mean_trend
    np.testing.assert_allclose(trend.edges, np.arange(0.5, 5.01, 0.25))
    _, _, _, smoothed = reference_trend(
        stats["mean"].to_numpy(), stats["var"].to_numpy(), trend.edges, 3, 5
    )
    np.testing.assert_allclose(trend.smoothed, smoothed, equal_nan=True)
    best = int(np.nanargmax(smoothed))
    assert eda.peak_bin == best
    assert eda.peak_mean_rating == pytest.approx(0.5 * (trend.edges[best] + trend.edges[best + 1]))
    assert eda.peak_variance == pytest.approx(smoothed[best])
    peak = eda_summary(eda)["variance_vs_mean_rating"]["peak"]
    assert peak["mean_rating_bin"] == [trend.edges[best], trend.edges[best + 1]]
    assert peak["variance"] == pytest.approx(smoothed[best])


def test_regions_recomputed(small):
    _, _, _, frame, eda = small
    stats = frame.groupby("item").rating.agg(["count", "mean", "var"])
    stats = stats[stats["count"] >= 2]
    regions = eda_summary(eda)["variance_vs_mean_rating"]["regions"]
    assert [r["region"] for r in regions] == [
        "mean < 1.5",
        "1.5 <= mean < 2.5",
        "2.5 <= mean < 3.5",
        "3.5 <= mean < 4.5",
        "mean >= 4.5",
    ]
    bounds = [(-np.inf, 1.5), (1.5, 2.5), (2.5, 3.5), (3.5, 4.5), (4.5, np.inf)]
    for region, (lo, hi) in zip(regions, bounds, strict=True):
        inside = stats[(stats["mean"] >= lo) & (stats["mean"] < hi)]["var"]
        assert region["n_movies"] == len(inside)
        if len(inside):
            assert region["mean_variance"] == pytest.approx(inside.mean())
            assert region["median_variance"] == pytest.approx(inside.median())
        else:
            assert region["mean_variance"] is None and region["median_variance"] is None
    assert sum(r["n_movies"] for r in regions) == len(stats)


def test_empty_region_reports_zero_and_null():
    # Every movie's mean is 3 or 4: the outer regions are empty.
    regions = region_statistics(
        np.array([3.0, 3.0, 4.0]), np.array([0.5, 1.0, 2.0]), (1.5, 2.5, 3.5, 4.5)
    )
    assert [r["n_movies"] for r in regions] == [0, 0, 2, 1, 0]
    assert regions[0] == {
        "region": "mean < 1.5",
        "lower": None,
        "upper": 1.5,
        "n_movies": 0,
        "mean_variance": None,
        "median_variance": None,
    }
    assert regions[2]["mean_variance"] == pytest.approx(0.75)
    assert regions[3]["median_variance"] == pytest.approx(2.0)
    # A mean on a boundary belongs to the region above it.
    on_edge = region_statistics(np.array([4.5]), np.array([1.0]), (1.5, 2.5, 3.5, 4.5))
    assert [r["n_movies"] for r in on_edge] == [0, 0, 0, 0, 1]


def dense_reference(ratings: Ratings, n_users: int, n_items: int) -> np.ndarray:
    dense = np.full((n_users, n_items), np.nan, dtype=np.float32)
    for u, i, r in zip(ratings.user, ratings.item, ratings.rating, strict=True):
        dense[u, i] = r
    return dense


@pytest.mark.parametrize("selection", ["random", "most_active", "first"])
def test_sample_block_matches_dense_matrix(small, selection):
    ratings, n_users, n_items, frame, _ = small
    eda = compute_eda(ratings, n_users, n_items, sample_block=15, block_selection=selection, seed=3)
    dense = dense_reference(ratings, n_users, n_items)
    assert eda.block_ratings.shape == (15, 15)
    assert len(set(eda.block_users.tolist())) == 15 and len(set(eda.block_items.tolist())) == 15
    np.testing.assert_array_equal(
        eda.block_ratings, dense[np.ix_(eda.block_users, eda.block_items)]
    )
    observed = np.count_nonzero(~np.isnan(eda.block_ratings))
    assert eda.block_density == pytest.approx(observed / 225)
    if selection == "most_active":
        user_counts = frame.groupby("user").size().reindex(range(n_users), fill_value=0)
        threshold = np.sort(user_counts.to_numpy())[::-1][14]
        assert np.all(user_counts.to_numpy()[eda.block_users] >= threshold)
    if selection == "first":
        np.testing.assert_array_equal(eda.block_users, np.arange(15))


def test_random_block_is_seeded(small):
    ratings, n_users, n_items, _, _ = small
    a = compute_eda(ratings, n_users, n_items, sample_block=10, seed=1)
    b = compute_eda(ratings, n_users, n_items, sample_block=10, seed=1)
    c = compute_eda(ratings, n_users, n_items, sample_block=10, seed=2)
    np.testing.assert_array_equal(a.block_users, b.block_users)
    np.testing.assert_array_equal(a.block_items, b.block_items)
    assert not np.array_equal(a.block_users, c.block_users) or not np.array_equal(
        a.block_items, c.block_items
    )
    assert np.all(np.diff(a.block_users) > 0)


def test_block_larger_than_matrix_is_clipped():
    ratings = Ratings.from_arrays([0, 1, 2], [0, 1, 0], [1.0, 2.0, 3.0])
    eda = compute_eda(ratings, 3, 2, sample_block=200)
    assert eda.block_ratings.shape == (3, 2)
    np.testing.assert_array_equal(
        eda.block_ratings, dense_reference(ratings, 3, 2)[np.ix_(eda.block_users, eda.block_items)]
    )


def test_no_movie_with_two_ratings_gives_null_statistics():
    ratings = Ratings.from_arrays([0, 1, 2, 3], [0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0])
    eda = compute_eda(ratings, 4, 4)
    assert not eda.variance_mask.any()
    assert np.isnan(eda.spearman_variance_vs_count)
    assert eda.peak_bin == -1 and np.isnan(eda.peak_mean_rating)
    summary = eda_summary(eda)
    assert summary["spearman_variance_vs_count"] is None
    assert summary["variance_vs_mean_rating"]["peak"] == {
        "mean_rating_bin": None,
        "mean_rating": None,
        "variance": None,
    }
    assert all(r["n_movies"] == 0 for r in summary["variance_vs_mean_rating"]["regions"])
    json.dumps(summary, allow_nan=False)


def test_summary_is_strict_json(small):
    _, n_users, n_items, frame, eda = small
    summary = eda_summary(eda)
    text = json.dumps(summary, allow_nan=False)
    assert json.loads(text) == summary
    assert summary["n_ratings"] == len(frame)
    assert summary["n_users"] == n_users and summary["n_movies"] == n_items
    assert summary["sparsity"] == pytest.approx(1 - len(frame) / (n_users * n_items))
    assert summary["mean_rating"] == pytest.approx(frame.rating.mean())
    assert summary["min_count"] == 2
    assert summary["user_degree"]["n_with_ratings"] == frame.user.nunique()
    assert sum(d["count"] for d in summary["rating_distribution"]) == len(frame)


@pytest.mark.parametrize(
    ("user", "item", "rating", "n_users", "n_items", "match"),
    [
        ([], [], [], 2, 2, "empty"),
        ([0, 5], [0, 1], [1.0, 2.0], 3, 2, r"user indices span \[0, 5\]"),
        ([0, 1], [-1, 1], [1.0, 2.0], 3, 2, r"item indices span \[-1, 1\]"),
        ([0, 1], [0, 1], [1.0, np.nan], 3, 2, "rating #1 is not finite"),
    ],
)
def test_bad_input_raises_data_error(user, item, rating, n_users, n_items, match):
    with pytest.raises(DataError, match=match):
        compute_eda(Ratings.from_arrays(user, item, rating), n_users, n_items)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample_block": 0}, "sample_block"),
        ({"block_selection": "diagonal"}, "block_selection"),
        ({"trend_bin_width": 0.0}, "trend_bin_width"),
        ({"trend_window": 2}, "trend_window"),
        ({"region_edges": (2.5, 1.5)}, "region_edges"),
    ],
)
def test_bad_parameters_raise_config_error(small, kwargs, match):
    ratings, n_users, n_items, _, _ = small
    with pytest.raises(ConfigError, match=match):
        compute_eda(ratings, n_users, n_items, **kwargs)


def _ml_latest_small() -> Path | None:
    candidates = []
    if os.environ.get("MOVIELENS_MIRROR"):
        candidates.append(Path(os.environ["MOVIELENS_MIRROR"]) / "ml-latest-small.zip")
    candidates.append(
        Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-latest-small.zip"
    )
    return next((p for p in candidates if p.is_file()), None)


@pytest.mark.slow
@pytest.mark.realdata
def test_eda_on_ml_latest_small():
    archive = _ml_latest_small()
    if archive is None:
        pytest.skip("ml-latest-small.zip not found in $MOVIELENS_MIRROR or ../shared/datasets")
    with zipfile.ZipFile(archive) as zf:
        frame = pd.read_csv(zf.open("ml-latest-small/ratings.csv"))
    _, user = np.unique(frame.userId.to_numpy(), return_inverse=True)
    _, item = np.unique(frame.movieId.to_numpy(), return_inverse=True)
    ratings = Ratings.from_arrays(user, item, frame.rating.to_numpy())
    eda = compute_eda(ratings, int(user.max()) + 1, int(item.max()) + 1)
    summary = eda_summary(eda)

    assert summary["n_ratings"] == 100_836
    assert summary["n_users"] == 610
    assert summary["n_movies"] == 9_724
    assert summary["mean_rating"] == pytest.approx(3.5016, abs=5e-5)
    assert summary["sparsity"] == pytest.approx(1 - 100_836 / (610 * 9_724))
    np.testing.assert_array_equal(eda.rating_values, HALF_STARS)
    assert eda.rating_counts[HALF_STARS == 4.0][0] == eda.rating_counts.max()
    assert summary["user_degree"]["min"] == 20  # ml-latest-small keeps users with ≥ 20 ratings

    # Exact variances from integer sums of doubled ratings (ties intact), as a reference.
    doubled = frame.assign(t=np.rint(2 * frame.rating).astype(np.int64), t2=lambda f: f.t**2)
    stats = doubled.groupby("movieId").agg(count=("t", "size"), s1=("t", "sum"), s2=("t2", "sum"))
    stats = stats[stats["count"] >= 2]
    n = stats["count"]
    stats["var"] = (n * stats["s2"] - stats["s1"] ** 2) / (4 * n * (n - 1))
    np.testing.assert_allclose(
        stats["var"], frame.groupby("movieId").rating.var()[stats.index], atol=1e-12
    )
    assert summary["n_movies_with_variance"] == len(stats)
    expected_rho = spearmanr(stats["count"], stats["var"]).statistic
    assert summary["spearman_variance_vs_count"] == pytest.approx(expected_rho, abs=1e-10)
    regions = summary["variance_vs_mean_rating"]["regions"]
    assert sum(r["n_movies"] for r in regions) == len(stats)
    assert 1.5 <= summary["variance_vs_mean_rating"]["peak"]["mean_rating"] <= 3.5
