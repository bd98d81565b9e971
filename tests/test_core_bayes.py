"""Bayesian ALS (Gibbs sampling) against its NumPy reference, on small random problems."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from _threads import outputs_at_one_and_two_threads
from core_problems import random_genres, random_problem, split_ratings
from movielens_als.core import bayes_als, fit, fold_in_user, load_model, save_model
from movielens_als.core.als import ALSParams
from movielens_als.core.bayes_als import BayesALSParams, sample_side
from movielens_als.core.model import rmse
from movielens_als.errors import ConfigError
from movielens_als.sparse import CSR, RatingMatrix, Ratings


def _problem(seed: int, K: int):
    """A side to sample (movies of ``random_problem``: one with a single rating, one with
    none) given random user factors, biases and per-dimension precisions."""
    train, _ = random_problem(seed)
    rng = np.random.default_rng(seed + 1)
    other_factors = rng.normal(0, 0.5, size=(train.n_users, K)).astype(np.float32)
    other_bias = rng.normal(0, 0.3, size=train.n_users).astype(np.float32)
    precision = rng.uniform(0.5, 3.0, size=K)
    mean = rng.normal(0, 0.2, size=K)
    return train.by_item, other_bias, other_factors, precision, mean


@pytest.mark.parametrize("K", [1, 3, 12])
@pytest.mark.parametrize("draw", [False, True])
def test_conditional_draw_matches_reference(K, draw):
    matrix, other_bias, other_factors, precision, mean = _problem(3, K)
    bias = np.zeros(matrix.n_rows, dtype=np.float32)
    factors = np.zeros((matrix.n_rows, K), dtype=np.float32)
    key = int(bayes_als.stream_key(7, 5, 1))
    sample_side(
        matrix,
        3.5,
        other_bias,
        other_factors,
        bias,
        factors,
        lam=2.0,
        bias_precision=0.7,
        factor_precision=precision,
        prior_mean=mean,
        key=key,
        draw=draw,
    )
    counts = matrix.row_counts()
    assert counts.min() == 0 and 1 in counts and counts.max() > K  # the edge cases are there
    for row in range(matrix.n_rows):
        cols, vals = matrix.row(row)
        if len(cols) == 0:  # unrated: the prior mean
            assert bias[row] == 0 and np.allclose(factors[row], mean.astype(np.float32))
            continue
        expected_mean, covariance = bayes_als.reference_conditional(
            cols,
            vals,
            3.5,
            other_bias,
            other_factors,
            lam=2.0,
            bias_precision=0.7,
            factor_precision=precision,
            prior_mean=mean,
        )
        expected = expected_mean
        if draw:
            normals = bayes_als.reference_normals(7, 5, 1, row, K + 1)
            expected = bayes_als.reference_draw(expected_mean, covariance, normals)
        got = np.concatenate([[bias[row]], factors[row]])
        np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4 * np.abs(expected).max())


def test_draws_have_the_conditional_mean_and_covariance():
    """Many draws of one row (one key per draw) against the reference N(θ̄, A⁻¹)."""
    matrix, other_bias, other_factors, precision, mean = _problem(4, 3)
    row = int(np.argmax(matrix.row_counts() == 3))
    cols, vals = matrix.row(row)
    one_row = CSR(
        np.array([0, len(cols)]), cols.astype(np.int32), vals.astype(np.float32), matrix.n_cols
    )
    settings = dict(lam=1.5, bias_precision=0.4, factor_precision=precision, prior_mean=mean)
    draws = []
    for sample in range(6000):
        bias, factors = np.zeros(1, np.float32), np.zeros((1, 3), np.float32)
        sample_side(
            one_row,
            3.0,
            other_bias,
            other_factors,
            bias,
            factors,
            key=int(bayes_als.stream_key(1, sample, 0)),
            **settings,
        )
        draws.append(np.concatenate([bias, factors[0]]))
    draws = np.array(draws, dtype=np.float64)
    expected_mean, covariance = bayes_als.reference_conditional(
        cols, vals, 3.0, other_bias, other_factors, **settings
    )
    scale = np.sqrt(np.diag(covariance))
    # 6000 draws: the mean is within ~4 standard errors, the covariance within ~10 %
    assert np.all(np.abs(draws.mean(axis=0) - expected_mean) < 4 * scale / np.sqrt(len(draws)))
    np.testing.assert_allclose(np.cov(draws.T), covariance, atol=0.1 * scale.max() ** 2)


def test_row_normals_are_standard_and_independent_of_the_key_layout():
    values = np.concatenate(
        [
            bayes_als.reference_normals(3, sample, side, row, 9)
            for sample in range(20)
            for side in (0, 1)
            for row in range(60)
        ]
    )
    assert abs(values.mean()) < 0.03 and abs(values.std() - 1) < 0.03
    # different sample, side or row: different draws
    a = bayes_als.reference_normals(3, 1, 0, 5, 4)
    for other in ((3, 2, 0, 5), (3, 1, 1, 5), (3, 1, 0, 6), (4, 1, 0, 5)):
        assert not np.allclose(a, bayes_als.reference_normals(*other, 4))
    np.testing.assert_array_equal(a, bayes_als.reference_normals(3, 1, 0, 5, 4))


def test_normal_gamma_draw_concentrates_on_the_sample_moments():
    rng = np.random.default_rng(0)
    values = rng.normal([1.0, -2.0], [0.5, 2.0], size=(20000, 2))
    center, precision = bayes_als.draw_normal_gamma(
        rng, bayes_als.moments_of(values), shape=1.0, rate=1.0, beta0=1.0, with_mean=True
    )
    np.testing.assert_allclose(center, [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(precision, [4.0, 0.25], rtol=0.05)
    zero, precision = bayes_als.draw_normal_gamma(
        rng,
        bayes_als.moments_of(values - values.mean(0)),
        shape=1.0,
        rate=1.0,
        beta0=1.0,
        with_mean=False,
    )
    assert np.all(zero == 0)
    np.testing.assert_allclose(precision, [4.0, 0.25], rtol=0.05)


def test_offset_moments_match_numpy():
    rng = np.random.default_rng(1)
    factors = rng.normal(0.3, 1.0, size=(50, 4)).astype(np.float32)
    prior = rng.normal(0, 0.5, size=(50, 4)).astype(np.float32)
    rows = np.array([0, 3, 4, 10, 49], dtype=np.int64)
    x = factors[rows].astype(np.float64) - prior[rows]
    mean, scatter, squares = bayes_als.offset_moments(factors, prior, rows)
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(scatter, ((x - x.mean(0)) ** 2).sum(0), rtol=1e-12)
    np.testing.assert_allclose(squares, (x**2).sum(0), rtol=1e-12)


def _planted(seed: int, n_users=150, n_items=120, K=3, density=0.12, noise=0.5):
    rng = np.random.default_rng(seed)
    users = rng.normal(0, 1, size=(n_users, K))
    items = rng.normal(0, 1, size=(n_items, K))
    mask = rng.random((n_users, n_items)) < density
    u, i = np.nonzero(mask)
    r = 3.0 + np.sum(users[u] * items[i], axis=1) + rng.normal(0, noise, size=len(u))
    ratings = Ratings.from_arrays(u, i, r)
    train, test = split_ratings(ratings, seed + 1)
    return RatingMatrix.from_ratings(train, n_users, n_items), test


def test_posterior_mean_beats_the_map_fit_on_a_planted_model():
    train, test = _planted(11)
    # the MAP of the same model (true noise and factor precisions), and its posterior mean
    map_fit = fit(
        train,
        ALSParams(K=3, lam=4.0, tau=1.0, gamma=1.0, iterations=30, reg_scaling="constant"),
        evals={"test": test},
    )
    gibbs = fit(
        train,
        BayesALSParams(K=3, samples=150, burn_in=30, lam=4.0, tau=1.0, seed=3),
        evals={"test": test},
    )
    map_rmse = map_fit.history[-1].eval_rmse["test"]
    bayes_rmse = gibbs.history[-1].eval_rmse["test"]
    assert bayes_rmse < map_rmse - 0.02, (bayes_rmse, map_rmse)
    # the sampled noise precision finds the planted one (σ = 0.5 → λ = 4) within 50 %
    assert 2.0 < gibbs.history[-1].extra["noise_precision"] < 6.0
    # the saved model (16 draws side by side) predicts close to the running mean
    assert rmse(gibbs.model, test) < map_rmse


def test_running_posterior_mean_is_the_average_of_the_kept_draws():
    train, ratings = random_problem(21, n_users=30, n_items=25, n_ratings=300)
    params = BayesALSParams(K=2, samples=6, burn_in=2, saved_samples=4)
    result = fit(train, params, evals={"all": ratings})
    # the saved model holds all 4 kept draws (sweeps 3..6): its prediction is their average
    np.testing.assert_allclose(
        rmse(result.model, ratings), result.history[-1].eval_rmse["all"], rtol=1e-5
    )
    assert result.model.K == 8


def test_genre_model_and_fold_in_and_files(tmp_path):
    train, _ = random_problem(22, n_users=40, n_items=30, n_ratings=400)
    genres = random_genres(23, train.n_items)
    params = BayesALSParams(K=3, samples=8, burn_in=5, saved_samples=3, genres=True, eta=2.0)
    model = fit(train, params, movie_genres=genres).model
    assert model.genre_factors.shape == (genres.n_cols, 9)
    save_model(model, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert loaded.params == params and set(loaded.extras) == set(model.extras)
    np.testing.assert_array_equal(loaded.user_factors, model.user_factors)
    # folding an existing user in gives, per saved draw, that user's conditional mean
    cols, vals = train.by_user.row(0)
    bias, factors = fold_in_user(loaded, cols, vals)
    assert factors.shape == (9,) and np.isfinite(bias)
    s = 1  # the second draw
    scale = np.sqrt(3)
    expected, _ = bayes_als.reference_conditional(
        cols,
        vals,
        loaded.mu,
        loaded.extras["item_bias_draws"][s],
        loaded.item_factors[:, 3:6] * scale,
        lam=loaded.extras["noise_precision"][s],
        bias_precision=loaded.extras["user_bias_precision"][s],
        factor_precision=loaded.extras["user_factor_precision"][s],
        prior_mean=loaded.extras["user_factor_mean"][s],
    )
    np.testing.assert_allclose(factors[3:6] * scale, expected[1:], rtol=1e-3, atol=1e-4)
    empty_bias, empty = fold_in_user(loaded, np.array([], dtype=np.int64), np.array([]))
    assert empty_bias == 0 and np.all(np.isfinite(empty))


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"burn_in": 300, "samples": 300}, "model.burn_in"),
        ({"samples": 0}, "model.samples"),
        ({"K": 0}, "model.K"),
        ({"noise_shape": -1.0}, "model.noise_shape"),
        ({"prior_rate": 0.0}, "model.prior_rate"),
        ({"lam": 0.0}, "model.lam"),
        ({"saved_samples": 0}, "model.saved_samples"),
        ({"mcse_tolerance": -0.01}, "model.mcse_tolerance"),
        ({"sample_hyper": "yes"}, "model.sample_hyper"),
    ],
)
def test_bad_gibbs_settings_name_the_key(values, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        BayesALSParams(**values)


def test_with_iterations_keeps_the_burn_in_share():
    params = BayesALSParams(samples=300, burn_in=60)
    assert (params.with_iterations(100).samples, params.with_iterations(100).burn_in) == (100, 20)
    assert params.with_iterations(1).burn_in == 0


_DETERMINISM_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    import numba
    sys.path.insert(0, {tests!r})
    from core_problems import random_genres, random_problem
    from movielens_als.core import fit
    from movielens_als.core.bayes_als import BayesALSParams
    train, ratings = random_problem(32, n_users=300, n_items=200, n_ratings=6000)
    digest = hashlib.sha256()
    for genres in (None, random_genres(33, train.n_items)):
        params = BayesALSParams(K=5, samples=6, burn_in=2, saved_samples=3, genres=genres is not None)
        result = fit(train, params, movie_genres=genres, evals={{"all": ratings}})
        m = result.model
        for array in (m.user_bias, m.item_bias, m.user_factors, m.item_factors):
            digest.update(array.tobytes())
        digest.update(json.dumps([[float.hex(r.nll), float.hex(r.eval_rmse["all"])] for r in result.history]).encode())
    print(json.dumps({{"threads": numba.get_num_threads(), "digest": digest.hexdigest()}}))
    """
)


def test_gibbs_draws_are_bit_identical_with_one_and_two_threads():
    script = _DETERMINISM_SCRIPT.format(tests=str(Path(__file__).resolve().parent))
    outputs = outputs_at_one_and_two_threads(script)
    assert outputs[0]["digest"] == outputs[1]["digest"]
