"""The Numba kernels against the slow NumPy reference (core/reference.py) on small problems.

Tests whose name contains "reference" are re-run with NUMBA_DISABLE_JIT=1 by
``test_reference_tests_pass_without_jit`` so the kernel bodies run as plain Python too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core_problems import random_genres, random_problem
from movielens_als.core import kernels, reference
from movielens_als.core.als import ALSParams, update_genres, update_rows
from movielens_als.core.model import FactorModel, rmse
from movielens_als.errors import NumericalError
from movielens_als.sparse import Ratings

JIT_DISABLED = bool(numba.config.DISABLE_JIT)
OFFSET = 3.3


def assert_close(actual, expected, rtol=1e-4):
    """Relative agreement, with an absolute floor at rtol × the largest expected magnitude."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(float(np.max(np.abs(expected))), 1e-12) if expected.size else 1.0
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64), expected, rtol=rtol, atol=rtol * scale
    )


def other_side(seed: int, n_rows: int, n_factors: int):
    rng = np.random.default_rng(seed)
    bias = rng.normal(0.0, 0.3, n_rows).astype(np.float32)
    factors = rng.normal(0.0, 0.5, (n_rows, n_factors)).astype(np.float32)
    return bias, factors


@pytest.mark.parametrize("n_factors", [1, 3, 16])
@pytest.mark.parametrize("count_scaled", [False, True])
@pytest.mark.parametrize("side", ["users", "items"])
def test_factor_half_step_matches_reference(n_factors, count_scaled, side):
    train, _ = random_problem(1)
    matrix = train.by_user if side == "users" else train.by_item
    other_bias, other_factors = other_side(2, matrix.n_cols, n_factors)
    own_bias = np.full(matrix.n_rows, 9.0, dtype=np.float32)  # overwritten, incl. empty rows
    own_factors = np.full((matrix.n_rows, n_factors), 9.0, dtype=np.float32)
    regs = {
        "lam": 1.3,
        "tau": 0.2 if count_scaled else 1.5,
        "gamma": 0.7,
        "count_scaled": count_scaled,
    }

    update_rows(matrix, OFFSET, other_bias, other_factors, own_bias, own_factors, **regs)
    bias_ref, factors_ref = reference.update_side(matrix, OFFSET, other_bias, other_factors, **regs)

    counts = matrix.row_counts()
    assert counts.min() == 0 and (counts == 1).any()  # a row with none and a row with one
    assert (counts < n_factors).any() or n_factors == 1  # K above some rows' counts
    assert_close(own_bias, bias_ref)
    assert_close(own_factors, factors_ref)
    assert np.all(own_bias[counts == 0] == 0) and np.all(own_factors[counts == 0] == 0)


@pytest.mark.parametrize("count_scaled", [False, True])
def test_prior_half_step_matches_reference(count_scaled):
    train, _ = random_problem(3)
    n_factors = 4
    other_bias, other_factors = other_side(4, train.n_users, n_factors)
    prior = np.random.default_rng(5).normal(0, 0.4, (train.n_items, n_factors)).astype(np.float32)
    own_bias = np.zeros(train.n_items, dtype=np.float32)
    own_factors = np.zeros((train.n_items, n_factors), dtype=np.float32)
    regs = {"lam": 0.8, "tau": 0.5, "gamma": 0.2, "count_scaled": count_scaled}

    update_rows(
        train.by_item, OFFSET, other_bias, other_factors, own_bias, own_factors, prior=prior, **regs
    )
    bias_ref, factors_ref = reference.update_side(
        train.by_item, OFFSET, other_bias, other_factors, prior=prior.astype(np.float64), **regs
    )
    assert_close(own_bias, bias_ref)
    assert_close(own_factors, factors_ref)
    cold = train.by_item.row_counts() == 0
    np.testing.assert_array_equal(own_factors[cold], prior[cold])  # cold start: v_n = p_n


@pytest.mark.parametrize("side", ["users", "items"])
def test_bias_half_step_matches_reference(side):
    train, _ = random_problem(6)
    matrix = train.by_user if side == "users" else train.by_item
    other_bias, _ = other_side(7, matrix.n_cols, 0)
    own_bias = np.full(matrix.n_rows, 5.0, dtype=np.float32)
    empty = np.zeros((matrix.n_cols, 0), dtype=np.float32)
    row_sse, _ = update_rows(
        matrix,
        OFFSET,
        other_bias,
        empty,
        own_bias,
        np.zeros((matrix.n_rows, 0), np.float32),
        lam=0.01,
        tau=0.0,
        gamma=0.01,
        count_scaled=False,
        compute_sse=True,
    )
    bias_ref, factors_ref = reference.update_side(
        matrix, OFFSET, other_bias, empty, lam=0.01, tau=0.0, gamma=0.01, count_scaled=False
    )
    assert factors_ref.shape == (matrix.n_rows, 0)
    assert_close(own_bias, bias_ref)
    rows, cols, vals = matrix.to_coo()
    residual = vals.astype(np.float64) - OFFSET - own_bias[rows] - other_bias[cols]
    assert_close(
        row_sse, np.bincount(rows, weights=residual**2, minlength=matrix.n_rows), rtol=1e-9
    )


def test_row_squared_error_is_the_stored_models_error_reference():
    train, ratings = random_problem(8)
    n_factors = 5
    user_bias, user_factors = other_side(9, train.n_users, n_factors)
    item_bias = np.zeros(train.n_items, dtype=np.float32)
    item_factors = np.zeros((train.n_items, n_factors), dtype=np.float32)
    row_sse, _ = update_rows(
        train.by_item,
        OFFSET,
        user_bias,
        user_factors,
        item_bias,
        item_factors,
        lam=1.0,
        tau=0.3,
        gamma=1.0,
        count_scaled=True,
        compute_sse=True,
    )
    total = reference.squared_error(
        ratings, OFFSET, user_bias, item_bias, user_factors, item_factors
    )
    assert_close(np.sum(row_sse), total, rtol=1e-10)

    out = np.empty(train.n_items)
    kernels.squared_errors(
        train.by_item.indptr,
        train.by_item.indices,
        train.by_item.data,
        OFFSET,
        item_bias,
        user_bias,
        item_factors,
        user_factors,
        out,
    )
    assert_close(out, row_sse, rtol=1e-10)


def test_predictions_and_rmse_match_reference_with_unseen_indices():
    rng = np.random.default_rng(10)
    n_users, n_items, n_factors = 6, 5, 3
    model = FactorModel(
        mu=3.5,
        user_bias=rng.normal(size=n_users).astype(np.float32),
        item_bias=rng.normal(size=n_items).astype(np.float32),
        user_factors=rng.normal(size=(n_users, n_factors)).astype(np.float32),
        item_factors=rng.normal(size=(n_items, n_factors)).astype(np.float32),
        genre_factors=None,
        params=ALSParams(K=n_factors),
    )
    users = np.array([0, 5, 6, 2, 9, 1])  # 6 and 9 are outside the model
    items = np.array([4, 0, 1, 7, 8, 2])  # 7 and 8 are outside the model
    ratings = Ratings.from_arrays(users, items, rng.integers(1, 11, 6) / 2)
    expected = reference.predict(
        ratings, 3.5, model.user_bias, model.item_bias, model.user_factors, model.item_factors
    )
    assert_close(model.predict(users, items), expected, rtol=1e-6)
    assert expected[2] == pytest.approx(3.5 + model.item_bias[1])  # unseen user: μ + c
    assert expected[3] == pytest.approx(3.5 + model.user_bias[2])  # unseen movie: μ + b
    assert expected[4] == 3.5
    errors = ratings.rating - expected
    assert rmse(model, ratings) == pytest.approx(np.sqrt(np.mean(errors**2)), rel=1e-6)


@pytest.mark.parametrize("rule", ["exact", "notebook"])
@pytest.mark.parametrize("eta", [0.0, 2.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_genre_updates_match_reference(rule, eta, weighted):
    n_items, n_factors = 30, 4
    genres = random_genres(11, n_items)
    rng = np.random.default_rng(12)
    item_factors = rng.normal(size=(n_items, n_factors)).astype(np.float32)
    weight = rng.integers(0, 5, n_items).astype(np.float64) if weighted else np.ones(n_items)
    actual = update_genres(genres, weight, item_factors, tau=0.7, eta=eta, rule=rule)
    expected = (
        reference.genre_update_exact if rule == "exact" else reference.genre_update_notebook
    )(genres, weight, item_factors, 0.7, eta)
    assert_close(actual, expected, rtol=1e-5)
    assert np.all(actual[-1] == 0)  # the unused genre

    prior = np.empty((n_items, n_factors), dtype=np.float32)
    kernels.genre_prior(genres.indptr, genres.indices, actual, prior)
    assert_close(prior, reference.genre_prior(genres, actual), rtol=1e-6)
    assert np.all(prior[0] == 0)  # movie without genres


def test_exact_genre_update_is_the_minimiser_and_beats_the_notebook_rule():
    n_items, n_factors, tau, eta = 40, 3, 0.5, 1.0
    genres = random_genres(13, n_items)
    item_factors = np.random.default_rng(14).normal(size=(n_items, n_factors)).astype(np.float32)
    weight = np.ones(n_items)
    a = reference.genre_matrix(genres)

    def objective(w):
        return 0.5 * tau * np.sum((item_factors - a @ w) ** 2) + 0.5 * eta * np.sum(w**2)

    exact = update_genres(genres, weight, item_factors, tau=tau, eta=eta, rule="exact").astype(
        np.float64
    )
    notebook = update_genres(genres, weight, item_factors, tau=tau, eta=eta, rule="notebook")
    assert objective(exact) < objective(notebook.astype(np.float64))
    rng = np.random.default_rng(15)
    for _ in range(20):
        assert objective(exact) <= objective(exact + 1e-3 * rng.normal(size=exact.shape)) + 1e-9


def test_singular_systems_are_jittered_not_nan():
    """τ = 0 with duplicated factor columns and rows with fewer ratings than K."""
    train, _ = random_problem(16)
    n_factors = 6
    _, other_factors = other_side(17, train.n_items, n_factors)
    other_factors[:, 1] = other_factors[:, 0]  # duplicated factor
    own_bias = np.zeros(train.n_users, dtype=np.float32)
    own_factors = np.zeros((train.n_users, n_factors), dtype=np.float32)
    _, jittered = update_rows(
        train.by_user,
        OFFSET,
        np.zeros(train.n_items, np.float32),
        other_factors,
        own_bias,
        own_factors,
        lam=1.0,
        tau=0.0,
        gamma=0.0,
        count_scaled=False,
    )
    assert jittered > 0
    assert np.all(np.isfinite(own_bias)) and np.all(np.isfinite(own_factors))


def test_non_finite_input_raises_numerical_error_naming_the_row():
    train, _ = random_problem(18)
    n_factors = 3
    other_bias, other_factors = other_side(19, train.n_items, n_factors)
    item = int(train.by_user.indices[train.by_user.indptr[4]])  # a movie that user 4 rated
    other_factors[item, 0] = np.nan
    bad_users = sorted(int(u) for u in train.by_item.row(item)[0])
    with pytest.raises(NumericalError, match=rf"user index {bad_users[0]} \(") as info:
        update_rows(
            train.by_user,
            OFFSET,
            other_bias,
            other_factors,
            np.zeros(train.n_users, np.float32),
            np.zeros((train.n_users, n_factors), np.float32),
            lam=1.0,
            tau=0.1,
            gamma=1.0,
            count_scaled=False,
            side="user",
        )
    assert "NaN" in str(info.value)


def test_cholesky_statuses():
    factor = np.zeros((3, 3))
    singular = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    status, jitter = kernels.cholesky_jittered(singular, 3, factor)
    assert status == kernels.STATUS_JITTERED and jitter > 0
    assert np.all(np.isfinite(factor))
    status, _ = kernels.cholesky_jittered(-np.eye(3), 3, factor)
    assert status == kernels.STATUS_NOT_PD
    with_nan = np.eye(3)
    with_nan[2, 1] = np.nan
    status, _ = kernels.cholesky_jittered(with_nan, 3, factor)
    assert status == kernels.STATUS_NOT_FINITE


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dim=st.integers(1, 40), extra=st.integers(0, 30))
def test_cholesky_solve_matches_numpy_reference(seed, dim, extra):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(dim + extra, dim))
    system = x.T @ x + 0.1 * np.eye(dim)
    rhs = rng.normal(size=dim)
    factor = np.zeros((dim, dim))
    status, _ = kernels.cholesky_jittered(system, dim, factor)
    assert status == kernels.STATUS_OK
    out = np.zeros(dim)
    kernels.cholesky_solve(factor, dim, rhs, out)
    np.testing.assert_allclose(out, np.linalg.solve(system, rhs), rtol=1e-8, atol=1e-10)


@pytest.mark.skipif(JIT_DISABLED, reason="already running without JIT")
def test_reference_tests_pass_without_jit():
    """Runs this file's reference comparisons as plain Python (NUMBA_DISABLE_JIT=1)."""
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "reference",
            __file__,
        ],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
