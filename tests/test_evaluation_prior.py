"""The validation-weighted popularity prior for ranking."""

from __future__ import annotations

import numpy as np

from movielens_als.core.als import ALSParams
from movielens_als.core.fit import fit
from movielens_als.evaluation.prior import (
    choose_prior_weight,
    model_scorer,
    popularity_log_counts,
    prior_scorer,
)
from movielens_als.evaluation.ranking import FactorScorer, evaluate_ranking
from movielens_als.sparse import RatingMatrix, Ratings


def _problem(seed=0, n_users=60, n_items=40, n=900):
    rng = np.random.default_rng(seed)
    # popular items are rated more often (and so turn up in validation more often)
    weights = np.linspace(3, 0.2, n_items)
    items = rng.choice(n_items, size=n, p=weights / weights.sum())
    users = rng.integers(0, n_users, n)
    pairs = np.unique(np.stack([users, items], 1), axis=0)
    ratings = Ratings.from_arrays(pairs[:, 0], pairs[:, 1], rng.integers(1, 11, len(pairs)) / 2)
    holdout = rng.random(len(ratings)) < 0.2
    train = RatingMatrix.from_ratings(ratings.subset(~holdout), n_users, n_items)
    return train, ratings.subset(holdout)


def test_prior_scores_are_the_model_scores_plus_weighted_log_counts():
    train, _ = _problem()
    model = fit(train, ALSParams(K=3, iterations=2)).model
    log_counts = popularity_log_counts(train.by_user)
    np.testing.assert_array_equal(log_counts, np.log1p(train.by_item.row_counts()))
    users = np.arange(5, dtype=np.int32)
    shifted = prior_scorer(model_scorer(model), log_counts, 0.5)(users)
    plain = FactorScorer(model.user_factors, model.item_factors, model.item_bias)(users)
    np.testing.assert_allclose(
        shifted - plain, np.broadcast_to(0.5 * log_counts, plain.shape), rtol=1e-5, atol=1e-5
    )


def test_chosen_weight_is_the_best_on_validation():
    train, val = _problem(seed=1)
    model = fit(train, ALSParams(K=3, iterations=2)).model
    weight, scores = choose_prior_weight(model, train, val, [0.0, 0.5, 2.0], k=5)
    assert set(scores) == {"0", "0.5", "2"}
    assert scores[f"{weight:g}"] == max(scores.values())
    expected = evaluate_ranking(
        prior_scorer(model_scorer(model), popularity_log_counts(train.by_user), weight),
        train.by_user,
        val,
        ks=(5,),
    )["ndcg@5"]
    assert scores[f"{weight:g}"] == expected
    only_zero, _ = choose_prior_weight(model, train, val, [0.0], k=5)
    assert only_zero == 0.0
