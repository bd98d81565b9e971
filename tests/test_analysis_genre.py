"""Genre-factor statistics against np.linalg.svd and explicit loops."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from movielens_als.analysis.genre import (
    analyse_genres,
    cosine_similarity_matrix,
    extreme_pairs,
    genre_summary,
    project_2d,
)
from movielens_als.errors import DataError

NAMES = [f"genre{g:02d}" for g in range(7)]


def test_k2_returns_the_factors_themselves():
    W = np.random.default_rng(0).normal(size=(6, 2))
    coords, ratio = project_2d(W)
    assert ratio is None
    np.testing.assert_array_equal(coords, W)
    coords[0, 0] = 99.0  # a copy, not a view
    assert W[0, 0] != 99.0


def test_k1_returns_one_column_and_no_ratio():
    W = np.arange(5.0).reshape(5, 1)
    coords, ratio = project_2d(W)
    assert ratio is None and coords.shape == (5, 1)
    np.testing.assert_array_equal(coords, W)


@pytest.mark.parametrize(("n_genres", "n_factors"), [(19, 8), (5, 3), (3, 6), (19, 30)])
def test_pca_matches_svd_reference(n_genres, n_factors):
    W = np.random.default_rng(n_genres * 100 + n_factors).normal(size=(n_genres, n_factors))
    coords, ratio = project_2d(W)
    centred = W - W.mean(axis=0)
    u, s, _ = np.linalg.svd(centred)
    expected = u[:, :2] * s[:2]
    for c in range(2):
        sign = np.sign(coords[:, c] @ expected[:, c])
        np.testing.assert_allclose(coords[:, c], sign * expected[:, c], atol=1e-10)
        # Sign convention: the largest-magnitude loading of each component is positive.
        loading = centred.T @ coords[:, c]
        assert loading[np.argmax(np.abs(loading))] > 0
    np.testing.assert_allclose(ratio, s[:2] ** 2 / np.sum(s**2))
    # The scores are the projection of the centred rows onto orthonormal directions.
    np.testing.assert_allclose(coords, centred @ (sign_fixed_directions(centred, coords)))


def sign_fixed_directions(centred: np.ndarray, coords: np.ndarray) -> np.ndarray:
    directions = np.linalg.lstsq(centred, coords, rcond=None)[0]
    np.testing.assert_allclose(directions.T @ directions, np.eye(2), atol=1e-8)
    return directions


def test_pca_with_two_genres_has_one_component():
    W = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    coords, ratio = project_2d(W)
    np.testing.assert_allclose(ratio, [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(coords[:, 1], 0.0, atol=1e-12)
    assert abs(coords[0, 0] - coords[1, 0]) == pytest.approx(np.linalg.norm(W[0] - W[1]))


def test_pca_of_identical_genres_has_undefined_ratio():
    coords, ratio = project_2d(np.ones((4, 5)))
    assert np.all(np.isnan(ratio))
    np.testing.assert_array_equal(coords, 0.0)


def test_cosine_similarity_matches_loops():
    W = np.random.default_rng(1).normal(size=(7, 4))
    sim = cosine_similarity_matrix(W)
    for i, j in itertools.product(range(7), repeat=2):
        expected = W[i] @ W[j] / (np.linalg.norm(W[i]) * np.linalg.norm(W[j]))
        assert sim[i, j] == pytest.approx(expected, abs=1e-12)
    np.testing.assert_array_equal(np.diag(sim), 1.0)
    np.testing.assert_array_equal(sim, sim.T)


def test_cosine_similarity_of_zero_genre_is_nan():
    W = np.array([[1.0, 0.0], [0.0, 0.0], [-2.0, 0.0]])
    sim = cosine_similarity_matrix(W)
    assert np.all(np.isnan(sim[1])) and np.all(np.isnan(sim[:, 1]))
    assert sim[0, 2] == -1.0 and sim[0, 0] == 1.0 and sim[2, 2] == 1.0


def brute_force_pairs(sim, names):
    pairs = [
        (sim[i, j], i, j)
        for i in range(len(names))
        for j in range(i + 1, len(names))
        if np.isfinite(sim[i, j])
    ]
    closest = sorted(pairs, key=lambda p: (-p[0], p[1], p[2]))
    farthest = sorted(pairs, key=lambda p: (p[0], p[1], p[2]))
    return [(names[i], names[j], s) for s, i, j in closest], [
        (names[i], names[j], s) for s, i, j in farthest
    ]


def as_tuples(entries):
    return [(e["genre_a"], e["genre_b"], e["cosine_similarity"]) for e in entries]


@pytest.mark.parametrize("n", [0, 1, 5, 21, 50])
def test_extreme_pairs_match_brute_force(n):
    W = np.random.default_rng(2).normal(size=(7, 3))
    sim = cosine_similarity_matrix(W)
    pairs = extreme_pairs(sim, NAMES, n=n)
    closest, farthest = brute_force_pairs(sim, NAMES)
    assert as_tuples(pairs["closest"]) == closest[:n]
    assert as_tuples(pairs["farthest"]) == farthest[:n]


def test_extreme_pairs_ties_and_nan():
    sim = np.array(
        [
            [1.0, 0.5, 0.5, np.nan],
            [0.5, 1.0, -0.2, np.nan],
            [0.5, -0.2, 1.0, np.nan],
            [np.nan, np.nan, np.nan, np.nan],
        ]
    )
    pairs = extreme_pairs(sim, ["a", "b", "c", "d"], n=10)
    assert as_tuples(pairs["closest"]) == [("a", "b", 0.5), ("a", "c", 0.5), ("b", "c", -0.2)]
    assert as_tuples(pairs["farthest"]) == [("b", "c", -0.2), ("a", "b", 0.5), ("a", "c", 0.5)]


def test_bad_inputs_raise_data_error():
    with pytest.raises(DataError, match="3 genre names for a 2 × 2"):
        extreme_pairs(np.eye(2), ["a", "b", "c"])
    with pytest.raises(DataError, match="square"):
        extreme_pairs(np.ones((2, 3)), ["a", "b"])
    with pytest.raises(DataError, match="G × K"):
        project_2d(np.ones(4))
    with pytest.raises(DataError, match="G × K"):
        project_2d(np.ones((4, 0)))
    with pytest.raises(DataError, match="row 1"):
        cosine_similarity_matrix(np.array([[1.0, 2.0], [np.nan, 1.0]]))
    with pytest.raises(DataError, match="2 genre names for 3"):
        analyse_genres(np.ones((3, 2)), ["a", "b"])


@pytest.mark.parametrize("n_factors", [1, 2, 5])
def test_summary_is_strict_json(n_factors):
    W = np.random.default_rng(n_factors).normal(size=(7, n_factors))
    genres = analyse_genres(W, NAMES)
    summary = genre_summary(genres, n_pairs=3)
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert summary["n_genres"] == 7 and summary["n_factors"] == n_factors
    assert summary["projection"] == ("pca" if n_factors > 2 else "raw_factors")
    assert (summary["explained_variance_ratio"] is None) == (n_factors <= 2)
    assert len(summary["closest_pairs"]) == 3 and len(summary["farthest_pairs"]) == 3
    assert (
        summary["closest_pairs"][0]["cosine_similarity"]
        >= summary["farthest_pairs"][0]["cosine_similarity"]
    )
    if n_factors == 1:
        # With one factor every pair is exactly aligned or opposed.
        values = {abs(p["cosine_similarity"]) for p in summary["closest_pairs"]}
        assert values == {1.0}
