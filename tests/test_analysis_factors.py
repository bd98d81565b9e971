"""Factor analyses against per-movie Python/NumPy/SciPy recomputations on random data."""

from __future__ import annotations

import io
import json

import matplotlib
import numpy as np
import pytest
from scipy import stats

from _real_model import real_model
from movielens_als.analysis.factors import analyse_factors, factor_analysis, factor_summary
from movielens_als.errors import ConfigError, DataError
from movielens_als.figures.factors import (
    FACTOR_FIGURE_NAMES,
    PEARSON_LABEL,
    SPEARMAN_LABEL,
    factor_figures,
)
from movielens_als.sparse import CSR

matplotlib.use("Agg")

N_MOVIES, N_USERS, RANK = 80, 400, 4
EDGES = (40, 90, 100_000)  # the last tier (≥ 100k ratings) stays empty


def random_problem(seed: int = 0, rank: int = RANK):
    """Movies with 1–150 half-star ratings of movie-specific spread; norms tied to spread."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 150, size=N_MOVIES)
    spread = rng.uniform(0.3, 1.5, size=N_MOVIES)
    items, users, ratings = [], [], []
    for movie, n in enumerate(counts):
        users.append(rng.choice(N_USERS, size=n, replace=False))
        stars = np.clip(np.rint(2 * rng.normal(3.5, spread[movie], size=n)) / 2, 0.5, 5.0)
        items.append(np.full(n, movie))
        ratings.append(stars)
    items, users, ratings = (np.concatenate(a) for a in (items, users, ratings))
    train_by_item = CSR.from_coo(items, users, ratings, N_MOVIES, N_USERS)
    factors = rng.normal(size=(N_MOVIES, rank))
    factors *= (spread + rng.normal(scale=0.3, size=N_MOVIES))[:, None] / np.linalg.norm(
        factors, axis=1, keepdims=True
    )
    bias = rng.normal(scale=0.3, size=N_MOVIES)
    titles = [f"Movie {m} ({1950 + m})" for m in range(N_MOVIES)]
    movie_ids = np.arange(N_MOVIES) * 7 + 3
    return factors.astype(np.float32), bias.astype(np.float32), train_by_item, titles, movie_ids


def per_movie(train_by_item):
    """Slow per-movie count and ddof=1 variance from each CSR row."""
    counts, variances, rows = [], [], []
    for movie in range(train_by_item.n_rows):
        r = train_by_item.row(movie)[1].astype(np.float64)
        rows.append(r)
        counts.append(len(r))
        variances.append(np.var(r, ddof=1) if len(r) >= 2 else np.nan)
    return np.array(counts), np.array(variances), rows


@pytest.fixture(scope="module")
def problem():
    return random_problem()


@pytest.fixture(scope="module")
def analysis(problem):
    return factor_analysis(
        *problem, min_ratings=20, tier_edges=EDGES, pca_movie_ids=[3, 10, 24, 52, 101]
    )


def test_top_lists_match_sorted_reference(problem, analysis):
    factors, _, train_by_item, titles, _ = problem
    counts, variances, _ = per_movie(train_by_item)
    norms = np.linalg.norm(factors.astype(np.float64), axis=1)
    eligible = [m for m in range(N_MOVIES) if counts[m] >= 20]
    assert analysis.eligible.sum() == len(eligible)
    assert analysis.largest_norm.tolist() == sorted(eligible, key=lambda m: (-norms[m], m))[:10]
    assert analysis.smallest_norm.tolist() == sorted(eligible, key=lambda m: (norms[m], m))[:10]
    assert analysis.top_variance.tolist() == sorted(eligible, key=lambda m: (-variances[m], m))[:10]
    most_rated = sorted(range(N_MOVIES), key=lambda m: (-counts[m], m))[:10]
    assert analysis.most_rated.tolist() == most_rated
    np.testing.assert_allclose(analysis.variance, variances, rtol=1e-12)

    summary = factor_summary(analysis)
    assert [row["title"] for row in summary["largest_norm"]] == [
        titles[m] for m in analysis.largest_norm
    ]
    overlap = set(most_rated) & set(analysis.largest_norm.tolist())
    assert summary["most_rated_among_largest_norm"]["n_overlap"] == len(overlap)
    assert {row["title"] for row in summary["most_rated_among_largest_norm"]["movies"]} == {
        titles[m] for m in overlap
    }


def test_histograms_count_the_ratings_of_the_top_variance_movies(problem, analysis):
    _, _, train_by_item, _, _ = problem
    _, _, rows = per_movie(train_by_item)
    assert analysis.histogram_movies.tolist() == analysis.top_variance[:3].tolist()
    np.testing.assert_allclose(analysis.rating_values, np.arange(1, 11) / 2)
    for movie, counts in zip(analysis.histogram_movies, analysis.histograms, strict=True):
        expected = [int(np.sum(rows[movie] == v)) for v in np.arange(1, 11) / 2]
        assert counts.tolist() == expected


def test_overall_and_tier_correlations_match_scipy(problem, analysis):
    factors, _, train_by_item, _, _ = problem
    counts, variances, _ = per_movie(train_by_item)
    norms = np.linalg.norm(factors.astype(np.float64), axis=1)
    eligible = counts >= 20
    overall = analysis.overall
    assert overall.pearson_r == pytest.approx(
        stats.pearsonr(norms[eligible], variances[eligible])[0]
    )
    assert overall.spearman_rho == pytest.approx(
        stats.spearmanr(norms[eligible], variances[eligible])[0]
    )
    fit = stats.linregress(norms[eligible], variances[eligible])
    assert overall.slope == pytest.approx(fit.slope) and overall.intercept == pytest.approx(
        fit.intercept
    )

    bounds = [(0, 40), (40, 90), (90, 100_000), (100_000, None)]
    assert [t.label for t in analysis.tiers] == ["< 40", "40–90", "90–100k", "≥ 100k"]
    for tier, (lower, upper) in zip(analysis.tiers, bounds, strict=True):
        inside = eligible & (counts >= lower) & (counts < (upper or np.inf))
        assert tier.movies.tolist() == np.flatnonzero(inside).tolist()
        if not inside.any():
            assert tier.correlation is None
            continue
        assert tier.correlation.pearson_r == pytest.approx(
            stats.pearsonr(norms[inside], variances[inside])[0]
        )
        assert tier.correlation.spearman_rho == pytest.approx(
            stats.spearmanr(norms[inside], variances[inside])[0]
        )


def test_tier_bars_are_the_recomputed_correlations_and_empty_tiers_have_none(problem, analysis):
    factors, _, train_by_item, _, _ = problem
    counts, variances, _ = per_movie(train_by_item)
    norms = np.linalg.norm(factors.astype(np.float64), axis=1)
    bars_ax = factor_figures(analysis)["variance_vs_norm_by_tier.pdf"].axes[2]
    heights = {c.get_label(): [p.get_height() for p in c.patches] for c in bars_ax.containers}
    expected_r, expected_rho = [], []
    for lower, upper in [(0, 40), (40, 90), (90, 100_000), (100_000, np.inf)]:
        inside = (counts >= 20) & (counts >= lower) & (counts < upper)
        if inside.any():
            expected_r.append(stats.pearsonr(norms[inside], variances[inside])[0])
            expected_rho.append(stats.spearmanr(norms[inside], variances[inside])[0])
        else:
            expected_r.append(np.nan)
            expected_rho.append(np.nan)
    assert np.isnan(expected_r[-1])  # the empty tier: no bar
    np.testing.assert_allclose(heights[PEARSON_LABEL], expected_r, equal_nan=True)
    np.testing.assert_allclose(heights[SPEARMAN_LABEL], expected_rho, equal_nan=True)
    assert "empty" in [t.get_text() for t in bars_ax.texts]


def test_default_tiers_on_small_data_are_reported_empty_not_faked(problem):
    summary = analyse_factors(*problem)
    tiers = summary["variance_vs_norm_by_tier"]
    assert [t["tier"] for t in tiers] == ["< 500", "500–5k", "5k–20k", "≥ 20k"]
    assert not tiers[0]["empty"] and tiers[0]["n_movies"] == summary["n_movies_eligible"]
    for tier in tiers[1:]:
        assert tier == {
            "tier": tier["tier"],
            "min_ratings": tier["min_ratings"],
            "max_ratings_exclusive": tier["max_ratings_exclusive"],
            "empty": True,
            "n_movies": 0,
        }
    assert tiers[0]["pearson_r"] == pytest.approx(summary["variance_vs_norm"]["pearson_r"])
    json.dumps(summary, allow_nan=False)


def test_pca_map_of_the_selected_movies(problem, analysis):
    factors, bias, _, titles, _ = problem
    selected = [0, 1, 3, 7, 14]  # raw ids 3, 10, 24, 52, 101
    assert analysis.pca_movies.tolist() == selected
    chosen = factors[selected].astype(np.float64)
    centred = chosen - chosen.mean(axis=0)
    left, singular, _ = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(
        analysis.pca_explained, singular[:2] ** 2 / np.sum(singular**2), rtol=1e-6
    )
    np.testing.assert_allclose(
        np.abs(analysis.pca_coords), np.abs(left[:, :2] * singular[:2]), atol=1e-5
    )
    summary = factor_summary(analysis)
    assert [m["title"] for m in summary["pca"]["movies"]] == [titles[m] for m in selected]
    assert [m["bias"] for m in summary["pca"]["movies"]] == pytest.approx(bias[selected].tolist())
    with pytest.raises(ConfigError, match=r"pca_movie_ids: movie id\(s\) \[4\]"):
        factor_analysis(*problem, pca_movie_ids=[3, 4])


def test_default_pca_selection_and_one_factor_model():
    factors, bias, train_by_item, titles, movie_ids = random_problem(1, rank=1)
    analysis = factor_analysis(factors, bias, train_by_item, titles, movie_ids)
    counts, _, _ = per_movie(train_by_item)
    assert (
        analysis.pca_movies.tolist() == sorted(range(N_MOVIES), key=lambda m: (-counts[m], m))[:20]
    )
    assert analysis.pca_explained is None
    np.testing.assert_allclose(analysis.pca_coords[:, 0], factors[analysis.pca_movies, 0])
    assert not analysis.pca_coords[:, 1].any()
    for name, figure in factor_figures(analysis).items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="pdf")
        assert buffer.getvalue().startswith(b"%PDF"), name


def test_figures_save_as_pdf(analysis):
    figures = factor_figures(analysis)
    assert tuple(figures) == FACTOR_FIGURE_NAMES
    for name, figure in figures.items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="pdf")
        assert buffer.getvalue().startswith(b"%PDF"), name


def test_bad_inputs_are_named(problem):
    factors, bias, train_by_item, titles, movie_ids = problem
    with pytest.raises(DataError, match="bias-only"):
        factor_analysis(np.zeros((N_MOVIES, 0)), bias, train_by_item, titles, movie_ids)
    with pytest.raises(DataError, match="titles"):
        factor_analysis(factors, bias, train_by_item, titles[:-1], movie_ids)
    broken = factors.copy()
    broken[5, 1] = np.nan
    with pytest.raises(DataError, match="row 5"):
        factor_analysis(broken, bias, train_by_item, titles, movie_ids)
    with pytest.raises(ConfigError, match="tier_edges"):
        factor_analysis(factors, bias, train_by_item, titles, movie_ids, tier_edges=(500, 100))
    with pytest.raises(ConfigError, match="min_ratings"):
        factor_analysis(factors, bias, train_by_item, titles, movie_ids, min_ratings=1)


@pytest.mark.slow
@pytest.mark.realdata
def test_real_data_factor_analysis(real_mirror, tmp_path):
    real = real_model(real_mirror)
    train_by_item = real.split.train.by_item
    real_analysis = factor_analysis(
        real.model.item_factors,
        real.model.item_bias,
        train_by_item,
        real.data.titles,
        real.data.movie_ids,
        rating_scale=real.data.rating_scale,
        pca_movie_ids=[1, 260, 296, 318, 356, 593, 2571, 4993],
    )
    summary = factor_summary(real_analysis)
    counts = np.bincount(real.split.train.to_ratings().item, minlength=real.data.n_movies)
    assert summary["n_movies_eligible"] == np.count_nonzero(counts >= 20)
    # the notebook's finding, as a band: variance grows with the factor norm
    assert 0.6 < summary["variance_vs_norm"]["pearson_r"] < 0.98
    assert 0.6 < summary["variance_vs_norm"]["spearman_rho"] < 0.98
    tiers = summary["variance_vs_norm_by_tier"]
    assert tiers[0]["n_movies"] == summary["n_movies_eligible"]  # no movie has 500 ratings
    assert all(tier["empty"] for tier in tiers[1:])
    assert summary["pca"]["movies"][6]["title"] == "Matrix, The (1999)"
    json.dumps(summary, allow_nan=False)
    for name, figure in factor_figures(real_analysis).items():
        figure.savefig(tmp_path / name)
        assert (tmp_path / name).read_bytes().startswith(b"%PDF")
