"""Ranking metrics against a slow, obvious per-user reference (loops and ``sorted``)."""

from __future__ import annotations

import math
from itertools import islice

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _real_model import real_model
from movielens_als.errors import ConfigError, NumericalError
from movielens_als.evaluation.ranking import (
    CHUNK,
    FACTOR_TILE,
    FactorScorer,
    ItemScorer,
    _score_groups,
    evaluate_ranking,
    evaluate_rankings,
    popularity_scores,
    ranking_table,
    sample_users,
    shared_factor_top_k_unseen,
    top_k_unseen,
)
from movielens_als.sparse import CSR, Ratings

METRICS = ("recall", "ndcg", "mrr", "hit_rate", "coverage", "mean_popularity")


def reference_ranking(scores, train_rows, test, ks, threshold):
    """Per-user loops: rank unseen items by (score desc, index asc) and count hits."""
    n_items = scores.shape[1]
    item_counts = [0] * n_items
    for row in train_rows:
        for item in row:
            item_counts[item] += 1
    positives = {}
    tested = set()
    for user, item, rating in zip(test.user, test.item, test.rating, strict=True):
        tested.add(int(user))
        if rating >= threshold:
            positives.setdefault(int(user), set()).add(int(item))
    per_user = {k: {m: [] for m in ("recall", "ndcg", "mrr", "hit_rate")} for k in ks}
    covered = {k: set() for k in ks}
    recommended_counts = {k: [] for k in ks}
    for user in sorted(positives):
        pos = positives[user]
        candidates = [i for i in range(n_items) if i not in set(train_rows[user])]
        ranked = sorted(candidates, key=lambda i: (-scores[user, i], i))
        for k in ks:
            top = ranked[:k]
            hits = [item in pos for item in top]
            per_user[k]["recall"].append(sum(hits) / len(pos))
            dcg = sum(1 / math.log2(rank + 2) for rank, hit in enumerate(hits) if hit)
            idcg = sum(1 / math.log2(rank + 2) for rank in range(min(len(pos), k)))
            per_user[k]["ndcg"].append(dcg / idcg)
            first = next((rank for rank, hit in enumerate(hits) if hit), None)
            per_user[k]["mrr"].append(0.0 if first is None else 1 / (first + 1))
            per_user[k]["hit_rate"].append(float(any(hits)))
            covered[k].update(top)
            recommended_counts[k].extend(item_counts[item] for item in top)
    result = {}
    for k in ks:
        for name, values in per_user[k].items():
            result[f"{name}@{k}"] = sum(values) / len(values) if values else float("nan")
        result[f"coverage@{k}"] = len(covered[k]) / n_items
        counts = recommended_counts[k]
        result[f"mean_popularity@{k}"] = sum(counts) / len(counts) if counts else float("nan")
    result["n_users_evaluated"] = len(positives)
    result["n_users_without_positives"] = len(tested) - len(positives)
    return result


def random_problem(seed, n_users, n_items, *, tie_levels=None):
    """Random train/test split of a random rating pattern, plus a score matrix."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < 0.45
    users, items = np.nonzero(mask)
    ratings = rng.choice(np.arange(1, 11) / 2, size=users.size)
    in_test = rng.random(users.size) < 0.3
    train = CSR.from_coo(users[~in_test], items[~in_test], ratings[~in_test], n_users, n_items)
    test = Ratings.from_arrays(users[in_test], items[in_test], ratings[in_test])
    if tie_levels is None:
        scores = rng.normal(size=(n_users, n_items))
    else:  # few distinct values: many ties, exercising the tie rule
        scores = rng.integers(0, tie_levels, size=(n_users, n_items)).astype(np.float64)
    train_rows = [list(train.row(u)[0]) for u in range(n_users)]
    return scores, train, train_rows, test


def rows_fn(scores):
    return lambda users: scores[users]


def assert_metrics_equal(actual, expected, ks):
    for k in ks:
        for name in METRICS:
            key = f"{name}@{k}"
            np.testing.assert_allclose(actual[key], expected[key], rtol=1e-12, err_msg=key)
    assert actual["n_users_evaluated"] == expected["n_users_evaluated"]
    assert actual["n_users_without_positives"] == expected["n_users_without_positives"]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_users=st.integers(1, 12),
    n_items=st.integers(1, 15),
    tie_levels=st.sampled_from([None, 2, 3]),
    batch_size=st.sampled_from([None, 1, 4]),
)
def test_matches_reference_on_random_problems(seed, n_users, n_items, tie_levels, batch_size):
    scores, train, train_rows, test = random_problem(seed, n_users, n_items, tie_levels=tie_levels)
    ks = (1, 3, 10)
    expected = reference_ranking(scores, train_rows, test, ks, 4.0)
    actual = evaluate_ranking(rows_fn(scores), train, test, ks=ks, batch_size=batch_size)
    assert_metrics_equal(actual, expected, ks)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_items=st.integers(CHUNK + 1, 5 * CHUNK),
    tie_levels=st.sampled_from([None, 3, 50]),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_matches_reference_when_rows_span_many_chunks(seed, n_items, tie_levels, dtype):
    """Long rows exercise the chunk skip: bars, ties and NaN/seen items past the first chunk."""
    scores, train, train_rows, test = random_problem(seed, 6, n_items, tie_levels=tie_levels)
    scores = scores.astype(dtype)
    ks = (1, 7, 40)
    expected = reference_ranking(scores, train_rows, test, ks, 4.0)
    actual = evaluate_ranking(rows_fn(scores), train, test, ks=ks, batch_size=4)
    assert_metrics_equal(actual, expected, ks)
    users = np.arange(6, dtype=np.int32)
    with_nan = scores.copy()
    with_nan[:, n_items - 1] = np.nan  # in the last chunk, after the list is full
    top, n_nan = top_k_unseen(with_nan, users, train.indptr, train.indices, 5)
    for user in users:
        seen = set(train_rows[user])
        assert n_nan[user] == (n_items - 1 not in seen)
        candidates = [i for i in range(n_items - 1) if i not in seen]
        assert top[user].tolist() == sorted(candidates, key=lambda i: (-scores[user, i], i))[:5]


def test_ties_are_broken_by_lower_item_index():
    scores = np.array([[1.0, 2.0, 2.0, 0.5, 2.0, 1.0]])
    seen = CSR.from_coo([0], [2], [3.0], 1, 6)
    top, n_nan = top_k_unseen(scores, np.array([0], np.int32), seen.indptr, seen.indices, 5)
    np.testing.assert_array_equal(top, [[1, 4, 0, 5, 3]])
    assert n_nan.tolist() == [0]


def test_short_candidate_lists_are_padded_and_duplicates_in_train_are_harmless():
    scores = np.array([[3.0, 2.0, 1.0]])
    seen = CSR.from_coo([0, 0, 0], [1, 1, 0], [3.0, 3.0, 3.0], 1, 3)
    top, _ = top_k_unseen(scores, np.array([0], np.int32), seen.indptr, seen.indices, 3)
    np.testing.assert_array_equal(top, [[2, -1, -1]])


def test_negative_test_items_stay_candidates_and_count_as_misses():
    train = CSR.from_coo([0], [0], [5.0], 1, 3)
    test = Ratings.from_arrays([0, 0], [1, 2], [2.0, 5.0])
    scores = np.array([[9.0, 2.0, 1.0]])  # item 1 (negative test rating) ranks first
    result = evaluate_ranking(rows_fn(scores), train, test, ks=(1, 2))
    assert result["recall@1"] == 0.0 and result["hit_rate@1"] == 0.0
    assert result["recall@2"] == 1.0 and result["mrr@2"] == 0.5
    assert result["ndcg@2"] == pytest.approx(1 / math.log2(3))


def test_perfect_scorer_gets_full_marks_when_positives_fit_in_k():
    scores, train, _, test = random_problem(7, 30, 40)
    perfect = np.zeros_like(scores)
    positive = test.rating >= 4.0
    perfect[test.user[positive], test.item[positive]] = 1.0
    n_pos = np.bincount(test.user[positive], minlength=30)
    result = evaluate_ranking(rows_fn(perfect), train, test, ks=(int(n_pos.max()),))
    k = int(n_pos.max())
    for name in ("recall", "ndcg", "mrr", "hit_rate"):
        assert result[f"{name}@{k}"] == pytest.approx(1.0)


def test_users_without_positives_are_skipped_and_counted():
    train = CSR.from_coo([0, 1, 2], [0, 0, 0], [4.0, 4.0, 4.0], 4, 3)
    # user 0: one positive; user 1: only negatives; user 2: no test ratings; user 3: negatives
    test = Ratings.from_arrays([0, 1, 1, 3], [1, 1, 2, 2], [4.5, 3.5, 1.0, 3.9])
    result = evaluate_ranking(rows_fn(np.ones((4, 3))), train, test, ks=(2,))
    assert result["n_users_evaluated"] == 1
    assert result["n_users_without_positives"] == 2


def test_threshold_is_configurable():
    scores, train, train_rows, test = random_problem(3, 10, 12)
    expected = reference_ranking(scores, train_rows, test, (5,), 3.0)
    actual = evaluate_ranking(rows_fn(scores), train, test, ks=5, threshold=3.0)
    assert_metrics_equal(actual, expected, (5,))
    assert actual["threshold"] == 3.0


def test_factor_scorer_ranks_like_full_predictions():
    rng = np.random.default_rng(11)
    n_users, n_items, rank = 9, 14, 3
    user_factors = rng.normal(size=(n_users, rank))
    item_factors = rng.normal(size=(n_items, rank))
    user_bias, item_bias, mu = rng.normal(size=n_users), rng.normal(size=n_items), 3.5
    predictions = mu + user_bias[:, None] + item_bias[None, :] + user_factors @ item_factors.T
    _, train, train_rows, test = random_problem(5, n_users, n_items)
    expected = reference_ranking(predictions, train_rows, test, (4,), 4.0)
    score = FactorScorer(user_factors, item_factors, item_bias)
    actual = evaluate_ranking(score, train, test, ks=(4,), batch_size=2)
    assert_metrics_equal(actual, expected, (4,))
    np.testing.assert_allclose(
        score(np.array([3, 1])), (user_factors @ item_factors.T + item_bias)[[3, 1]]
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_factor_scorer_tiles_give_the_same_lists_as_its_score_block(dtype):
    rng = np.random.default_rng(4)
    n_users, n_items = 3 * FACTOR_TILE + 5, 3 * CHUNK + 7  # several tiles, a partial last one
    user_factors = rng.normal(size=(n_users, 5)).astype(dtype)
    item_factors = rng.normal(size=(n_items, 5)).astype(dtype)
    scorer = FactorScorer(user_factors, item_factors, rng.normal(size=n_items).astype(dtype))
    _, train, _, _ = random_problem(6, n_users, n_items)
    users = rng.permutation(n_users).astype(np.int32)
    expected = top_k_unseen(scorer(users), users, train.indptr, train.indices, 12)
    actual = scorer.top_k_unseen(users, train.indptr, train.indices, 12)
    np.testing.assert_array_equal(actual[0], expected[0])
    np.testing.assert_array_equal(actual[1], expected[1])
    assert scorer(users).dtype == dtype


@pytest.mark.parametrize("rank", [0, 4])
def test_scorers_sharing_factors_rank_together_as_each_alone(rank):
    """Several item biases over one factor product give each scorer's own lists and metrics."""
    rng = np.random.default_rng(8)
    n_users, n_items = 2 * FACTOR_TILE + 3, 2 * CHUNK + 9
    base = FactorScorer(
        rng.normal(size=(n_users, rank)).astype(np.float32),
        rng.normal(size=(n_items, rank)).astype(np.float32),
        rng.normal(size=n_items).astype(np.float32),
    )
    log_counts = np.log1p(rng.integers(0, 50, n_items))
    shifted = {f"w{w}": base.with_item_bias(base.item_bias + w * log_counts) for w in (0.5, 2.0)}
    assert all(base.shares_factors_with(s) for s in shifted.values())
    assert shifted["w2.0"].item_bias.dtype == np.float32
    _, train, train_rows, test = random_problem(9, n_users, n_items)
    other = ItemScorer(popularity_scores(train))
    fns = {"plain": base, **shifted, "popularity": other}
    assert _score_groups(fns) == [["plain", "w0.5", "w2.0"], ["popularity"]]
    together = evaluate_rankings(fns, train, test, ks=(3, 7), batch_size=5)
    for name, fn in fns.items():  # each alone: a group of one
        assert together[name] == evaluate_ranking(fn, train, test, ks=(3, 7), batch_size=5)
    users = np.arange(n_users, dtype=np.int32)
    expected = reference_ranking(shifted["w2.0"](users), train_rows, test, (3,), 4.0)
    assert_metrics_equal(together["w2.0"], expected, (3,))


def test_only_scorers_over_the_same_factor_arrays_are_ranked_together():
    rng = np.random.default_rng(1)
    a = FactorScorer(rng.normal(size=(4, 2)), rng.normal(size=(6, 2)))
    b = FactorScorer(a.user_factors, rng.normal(size=(6, 2)))  # same users, other items
    assert not a.shares_factors_with(b) and a.shares_factors_with(a.with_item_bias(np.ones(6)))
    _, train, _, _ = random_problem(1, 4, 6)
    with pytest.raises(ValueError, match="share"):
        shared_factor_top_k_unseen([a, b], np.arange(4), train.indptr, train.indices, 2)


def test_non_finite_factors_raise_a_numerical_error():
    _, train, _, test = random_problem(2, 6, 8)
    user_factors = np.ones((6, 2))
    user_factors[:, 1] = np.nan  # every evaluated user meets NaN scores
    with pytest.raises(NumericalError, match="NaN"):
        evaluate_ranking(FactorScorer(user_factors, np.ones((8, 2))), train, test)


def test_bias_only_factor_model_ranks_by_item_bias():
    item_bias = np.array([0.1, 0.9, 0.5])
    score = FactorScorer(np.zeros((2, 0)), np.zeros((3, 0)), item_bias)
    np.testing.assert_allclose(score(np.array([0, 1])), np.tile(item_bias, (2, 1)))
    seen = CSR.from_coo([1], [1], [4.0], 2, 3)
    top, _ = score.top_k_unseen(np.array([0, 1]), seen.indptr, seen.indices, 3)
    np.testing.assert_array_equal(top, [[1, 2, 0], [2, 0, -1]])


def test_popularity_baseline_counts_positive_train_ratings_and_joins_the_table():
    scores, train, train_rows, test = random_problem(21, 12, 10)
    popularity = popularity_scores(train, threshold=4.0)
    expected_counts = np.zeros(10)
    for user in range(12):
        items, ratings = train.row(user)
        for item, rating in zip(items, ratings, strict=True):
            expected_counts[item] += rating >= 4.0
    np.testing.assert_array_equal(popularity, expected_counts)

    table = ranking_table({"model": rows_fn(scores)}, train, test, ks=(3,))
    assert set(table) == {"model", "popularity"}
    popular = np.tile(popularity, (12, 1))
    assert_metrics_equal(
        table["popularity"], reference_ranking(popular, train_rows, test, (3,), 4.0), (3,)
    )
    assert_metrics_equal(
        table["model"], reference_ranking(scores, train_rows, test, (3,), 4.0), (3,)
    )
    assert ItemScorer(popularity)(np.arange(4)).shape == (4, 10)


def test_nan_scores_raise_a_numerical_error():
    scores, train, _, test = random_problem(2, 6, 8)
    scores[:, 3] = np.nan
    with pytest.raises(NumericalError, match="NaN"):
        evaluate_ranking(rows_fn(scores), train, test)


@pytest.mark.parametrize("ks", [(), (0,), (3, -1), (2.5,), (True,)])
def test_invalid_cutoffs_are_rejected(ks):
    scores, train, _, test = random_problem(2, 4, 5)
    with pytest.raises(ConfigError, match="ks"):
        evaluate_ranking(rows_fn(scores), train, test, ks=ks)


def test_no_evaluable_users_gives_nan_means_and_zero_counts():
    train = CSR.from_coo([0], [0], [4.0], 2, 3)
    test = Ratings.from_arrays([1], [2], [1.0])
    result = evaluate_ranking(rows_fn(np.ones((2, 3))), train, test, ks=(2,))
    assert result["n_users_evaluated"] == 0 and result["n_users_without_positives"] == 1
    assert math.isnan(result["recall@2"]) and result["coverage@2"] == 0.0


@pytest.mark.slow
@pytest.mark.realdata
def test_real_data_top_lists_and_popularity_metrics_match_references(real_mirror):
    real = real_model(real_mirror)
    train, test, model = real.split.train.by_user, real.split.test.to_ratings(), real.model
    scorer = FactorScorer(model.user_factors, model.item_factors, model.item_bias)
    users = np.arange(train.n_rows, dtype=np.int32)
    top, n_nan = scorer.top_k_unseen(users, train.indptr, train.indices, 20)
    scores = scorer(users)
    assert not n_nan.any()
    for user in users:
        candidates = np.setdiff1d(np.arange(train.n_cols), train.row(user)[0])
        order = np.lexsort((candidates, -scores[user, candidates]))
        np.testing.assert_array_equal(top[user], candidates[order[:20]])

    popularity = popularity_scores(train)
    ranked = sorted(range(train.n_cols), key=lambda i: (-popularity[i], i))
    train_rows = [set(train.row(u)[0].tolist()) for u in users]
    pop_top, _ = ItemScorer(popularity).top_k_unseen(users, train.indptr, train.indices, 10)
    for user in users:
        unseen = (i for i in ranked if i not in train_rows[user])
        assert pop_top[user].tolist() == list(islice(unseen, 10))

    table = ranking_table({"als": scorer}, train, test, ks=(5, 10))
    positive_users = {int(u) for u, r in zip(test.user, test.rating, strict=True) if r >= 4.0}
    assert table["als"]["n_users_evaluated"] == table["popularity"]["n_users_evaluated"]
    assert table["als"]["n_users_evaluated"] == len(positive_users) == 554
    first_users = test.subset(test.user < 60)  # the slow reference on a tenth of the users
    for fn, full_scores in (
        (scorer, scores),
        (ItemScorer(popularity), np.tile(popularity, (len(users), 1))),
    ):
        expected = reference_ranking(
            full_scores, [list(r) for r in train_rows], first_users, (5, 10), 4.0
        )
        assert_metrics_equal(
            evaluate_ranking(fn, train, first_users, ks=(5, 10)), expected, (5, 10)
        )


def test_user_sample_is_seeded_whole_users_and_all_when_few():
    rng = np.random.default_rng(0)
    ratings = Ratings.from_arrays(
        rng.integers(0, 500, 5000), rng.integers(0, 80, 5000), rng.integers(1, 6, 5000)
    )
    sample = sample_users(ratings, 50, seed=3)
    users = np.unique(sample.user)
    assert users.size == 50
    # every rating of a chosen user is kept, none of the others
    assert len(sample) == np.count_nonzero(np.isin(ratings.user, users))
    assert np.array_equal(sample_users(ratings, 50, seed=3).user, sample.user)  # seeded
    assert not np.array_equal(np.unique(sample_users(ratings, 50, seed=4).user), users)
    assert sample_users(ratings, 10_000, seed=3) is ratings
    assert sample_users(ratings, None, seed=3) is ratings
