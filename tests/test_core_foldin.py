"""Fold-in of a new user equals the full-refit user update on the same data."""

from __future__ import annotations

import numpy as np
import pytest

from core_problems import random_genres, random_problem
from movielens_als.core import ALSParams, fit, fold_in_user, reference
from movielens_als.core.als import update_rows
from movielens_als.errors import DataError
from movielens_als.sparse import CSR


@pytest.mark.parametrize("reg_scaling", ["constant", "count"])
@pytest.mark.parametrize(("K", "genre"), [(0, False), (1, False), (5, False), (1, True), (5, True)])
def test_fold_in_equals_the_user_half_step(reg_scaling, K, genre):
    train, _ = random_problem(40)
    params = ALSParams(
        K=K,
        iterations=2,
        tau=0.05 if reg_scaling == "count" else 0.8,
        gamma=0.3,
        reg_scaling=reg_scaling,
        seed=3,
        genres=genre,
    )
    model = fit(
        train, params, movie_genres=random_genres(41, train.n_items) if genre else None
    ).model

    # one more user half-step with the movies fixed, as a full refit would do
    user_bias = model.user_bias.copy()
    user_factors = model.user_factors.copy()
    update_rows(
        train.by_user,
        model.mu,
        model.item_bias,
        model.item_factors,
        user_bias,
        user_factors,
        lam=params.lam,
        tau=params.tau,
        gamma=params.gamma,
        count_scaled=reg_scaling == "count",
    )
    for user in (0, 7, train.n_users - 1):  # the last user has a single rating
        items, ratings = train.by_user.row(user)
        bias, factors = fold_in_user(model, items, ratings)
        assert factors.shape == (K,)
        assert bias == pytest.approx(float(user_bias[user]), rel=1e-6, abs=1e-7)
        np.testing.assert_allclose(factors, user_factors[user], rtol=1e-6, atol=1e-7)


def test_fold_in_matches_reference_solve():
    train, _ = random_problem(42)
    params = ALSParams(K=3, iterations=2, reg_scaling="count", tau=0.1)
    model = fit(train, params).model
    items = np.array([0, 3, 5, 8])
    ratings = np.array([5.0, 1.0, 3.5, 4.0])
    bias, factors = fold_in_user(model, items, ratings)
    one = CSR(np.array([0, 4]), items.astype(np.int32), ratings.astype(np.float32), train.n_items)
    bias_ref, factors_ref = reference.update_side(
        one,
        model.mu,
        model.item_bias,
        model.item_factors,
        lam=params.lam,
        tau=params.tau,
        gamma=params.gamma,
        count_scaled=True,
    )
    assert bias == pytest.approx(bias_ref[0], rel=1e-4)
    np.testing.assert_allclose(factors, factors_ref[0], rtol=1e-4, atol=1e-6)
    # a dislike of what the model predicts high moves the user's bias down
    assert bias < fold_in_user(model, items, np.full(4, 5.0))[0]


def test_fold_in_empty_list_gives_zeros():
    train, _ = random_problem(43)
    model = fit(train, ALSParams(K=2, iterations=1)).model
    bias, factors = fold_in_user(model, np.array([], dtype=np.int64), np.array([]))
    assert bias == 0.0 and np.all(factors == 0)


def test_fold_in_rejects_bad_input():
    train, _ = random_problem(44)
    model = fit(train, ALSParams(K=2, iterations=1)).model
    with pytest.raises(DataError, match="position 1 has index 999"):
        fold_in_user(model, np.array([0, 999]), np.array([3.0, 4.0]))
    with pytest.raises(DataError, match="equal-length"):
        fold_in_user(model, np.array([0, 1]), np.array([3.0]))
    with pytest.raises(DataError, match="position 0 is not finite"):
        fold_in_user(model, np.array([0]), np.array([np.inf]))
    with pytest.raises(DataError, match="integers"):
        fold_in_user(model, np.array([0.5]), np.array([3.0]))
