"""split_ratings (notebook rule, validation, temporal), CSR building, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from movielens_als.data.index import IndexedData
from movielens_als.data.split import (
    SPLIT_META,
    Split,
    load_split,
    save_split,
    split_ratings,
)
from movielens_als.errors import ConfigError, DataError
from movielens_als.sparse import CSR, RatingMatrix, Ratings


def indexed(user, item, rating, timestamp, n_users: int, n_movies: int) -> IndexedData:
    return IndexedData(
        ratings=Ratings.from_arrays(user, item, rating),
        timestamp=np.asarray(timestamp, dtype=np.int64),
        user_ids=np.arange(1, n_users + 1, dtype=np.int64),
        movie_ids=np.arange(1, n_movies + 1, dtype=np.int64),
        titles=[""] * n_movies,
        genre_names=[],
        movie_genres=CSR(
            np.zeros(n_movies + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), 0
        ),
        rating_scale=(0.5, 5.0, 0.5),
    )


def make_data(
    n_users: int, n_movies: int, n: int, seed: int = 0, n_times: int = 10**6
) -> IndexedData:
    """Random distinct (user, movie) pairs covering every user and movie index."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_movies, size=n, replace=False)
    user, item = np.divmod(pairs, n_movies)
    user[:n_users] = np.arange(n_users)  # every index is used
    item[:n_movies] = np.arange(n_movies)
    first = np.sort(np.unique(user * n_movies + item, return_index=True)[1])
    user, item = user[first], item[first]
    m = len(user)
    return indexed(
        user, item, rng.integers(1, 11, m) / 2, rng.integers(0, n_times, m), n_users, n_movies
    )


def expected_matrix(data: IndexedData, mask: np.ndarray) -> RatingMatrix:
    return RatingMatrix.from_ratings(data.ratings.subset(mask), data.n_users, data.n_movies)


def assert_matrix_equal(actual: RatingMatrix, expected: RatingMatrix) -> None:
    for layout in ("by_user", "by_item"):
        a, e = getattr(actual, layout), getattr(expected, layout)
        np.testing.assert_array_equal(a.indptr, e.indptr)
        np.testing.assert_array_equal(a.indices, e.indices)
        np.testing.assert_array_equal(a.data, e.data)
        assert a.n_cols == e.n_cols
        assert (a.indptr.dtype, a.indices.dtype, a.data.dtype) == (np.int64, np.int32, np.float32)


def triplets(matrix: RatingMatrix) -> set[tuple[int, int, float]]:
    rows, cols, vals = matrix.by_user.to_coo()
    return set(zip(rows.tolist(), cols.tolist(), vals.tolist(), strict=True))


DATA = make_data(60, 80, 3000)


def test_notebook_rule_exactly():
    split, metrics = split_ratings(DATA)
    in_train = np.random.RandomState(42).rand(len(DATA.ratings)) < 0.9
    assert_matrix_equal(split.train, expected_matrix(DATA, in_train))
    assert_matrix_equal(split.test, expected_matrix(DATA, ~in_train))
    assert split.val.nnz == 0 and split.val.n_users == DATA.n_users
    assert metrics["n_train"] == in_train.sum() and metrics["n_test"] == (~in_train).sum()
    assert metrics["n_val"] == 0


def test_disjoint_union_fraction_deterministic():
    split, _ = split_ratings(DATA, train_fraction=0.8, seed=7)
    train, test = triplets(split.train), triplets(split.test)
    assert not train & test
    assert train | test == triplets(
        RatingMatrix.from_ratings(DATA.ratings, DATA.n_users, DATA.n_movies)
    )
    assert abs(split.test.nnz / len(DATA.ratings) - 0.2) < 0.03
    again, _ = split_ratings(DATA, train_fraction=0.8, seed=7)
    assert triplets(again.test) == test
    other, _ = split_ratings(DATA, train_fraction=0.8, seed=8)
    assert triplets(other.test) != test


def test_validation_continues_the_random_state():
    split, metrics = split_ratings(DATA, val_fraction=0.25)
    state = np.random.RandomState(42)
    in_train = state.rand(len(DATA.ratings)) < 0.9
    train_positions = np.flatnonzero(in_train)
    in_val = np.zeros(len(in_train), bool)
    in_val[train_positions[state.rand(len(train_positions)) < 0.25]] = True
    assert_matrix_equal(split.val, expected_matrix(DATA, in_val))
    assert_matrix_equal(split.train, expected_matrix(DATA, in_train & ~in_val))
    assert_matrix_equal(split.test, expected_matrix(DATA, ~in_train))  # test is unchanged
    assert abs(metrics["n_val"] / in_train.sum() - 0.25) < 0.04
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == len(DATA.ratings)


def latest_mask(data: IndexedData, n_latest: int) -> np.ndarray:
    """Pandas reference: each user's n latest ratings by (timestamp, file position)."""
    frame = pd.DataFrame(
        {
            "user": data.ratings.user,
            "time": data.timestamp,
            "position": np.arange(len(data.ratings)),
        }
    )
    latest = (
        frame.sort_values(["user", "time", "position"], kind="stable")
        .groupby("user")
        .tail(n_latest)["position"]
        .to_numpy()
    )
    mask = np.zeros(len(frame), bool)
    mask[latest] = True
    return mask


def test_temporal_split_against_pandas_reference():
    data = make_data(40, 60, 1500, seed=3, n_times=30)  # few distinct times: many ties
    split, metrics = split_ratings(data, method="temporal", n_test_per_user=3)
    in_test = latest_mask(data, 3)
    assert_matrix_equal(split.test, expected_matrix(data, in_test))
    assert_matrix_equal(split.train, expected_matrix(data, ~in_test))
    assert np.all(split.test.by_user.row_counts() == np.minimum(3, np.bincount(data.ratings.user)))
    assert metrics["n_test_per_user"] == 3 and metrics["train_fraction"] is None


def test_temporal_with_validation_and_small_users():
    data = make_data(8, 10, 40, seed=1)  # some users have at most 4 ratings: all go to test
    split, metrics = split_ratings(
        data, method="temporal", n_test_per_user=4, val_fraction=0.5, seed=3
    )
    in_test = latest_mask(data, 4)
    train_positions = np.flatnonzero(~in_test)
    in_val = np.zeros(len(in_test), bool)
    in_val[train_positions[np.random.RandomState(3).rand(len(train_positions)) < 0.5]] = True
    assert_matrix_equal(split.test, expected_matrix(data, in_test))
    assert_matrix_equal(split.val, expected_matrix(data, in_val))
    assert_matrix_equal(split.train, expected_matrix(data, ~in_test & ~in_val))
    train_users = set(data.ratings.user[~in_test & ~in_val].tolist())
    test_users = set(data.ratings.user[in_test].tolist())
    assert len(test_users - train_users) > 0  # the case this test is about
    assert metrics["n_test_users_not_in_train"] == len(test_users - train_users)


def test_coverage_metrics_count_unseen_users_and_movies():
    # the latest rating of each user goes to test: (0,2) at t5, (1,1) at t3, (2,2) at t4, so
    # user 2 (one rating) and movie 2 (two ratings) are left without train ratings
    data = indexed([0, 0, 1, 1, 2, 0], [0, 1, 0, 1, 2, 2], [1, 2, 3, 4, 5, 1], np.arange(6), 3, 3)
    split, metrics = split_ratings(data, method="temporal", n_test_per_user=1)
    assert triplets(split.test) == {(0, 2, 1.0), (1, 1, 4.0), (2, 2, 5.0)}
    assert metrics["n_test_users_not_in_train"] == 1
    assert metrics["n_test_ratings_user_not_in_train"] == 1
    assert metrics["n_test_movies_not_in_train"] == 1
    assert metrics["n_test_ratings_movie_not_in_train"] == 2


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"train_fraction": 0.0}, "split.train_fraction"),
        ({"train_fraction": 1.0}, "split.train_fraction"),
        ({"train_fraction": 1.5}, "split.train_fraction"),
        ({"train_fraction": float("nan")}, "split.train_fraction"),
        ({"train_fraction": "0.9"}, "split.train_fraction"),
        ({"val_fraction": 1.0}, "split.val_fraction"),
        ({"val_fraction": -0.1}, "split.val_fraction"),
        ({"method": "stratified"}, "split.method"),
        ({"method": "temporal", "n_test_per_user": 0}, "split.n_test_per_user"),
        ({"seed": -1}, "split.seed"),
        ({"seed": 1.5}, "split.seed"),
    ],
)
def test_invalid_settings_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        split_ratings(DATA, **kwargs)


def test_empty_train_is_refused():
    with pytest.raises(ConfigError, match=r"leaves the train set empty"):
        split_ratings(DATA, train_fraction=1e-9)
    with pytest.raises(ConfigError, match=r"leaves the train set empty"):
        split_ratings(DATA, method="temporal", n_test_per_user=10_000)


def test_save_load_round_trip(tmp_path):
    split, _ = split_ratings(DATA, val_fraction=0.1)
    save_split(split, tmp_path / "split")
    assert sorted(p.name for p in (tmp_path / "split").iterdir()) == sorted(
        ["train.npz", "test.npz", "val.npz", SPLIT_META]
    )
    loaded = load_split(tmp_path / "split")
    assert isinstance(loaded, Split)
    assert (loaded.n_users, loaded.n_items) == (split.n_users, split.n_items)
    for part in ("train", "test", "val"):
        assert_matrix_equal(getattr(loaded, part), getattr(split, part))


def test_load_missing_or_inconsistent(tmp_path):
    with pytest.raises(DataError, match=r"split.json: missing"):
        load_split(tmp_path / "nowhere")
    split, _ = split_ratings(DATA)
    save_split(split, tmp_path / "split")
    (tmp_path / "split" / "val.npz").unlink()
    with pytest.raises(DataError, match=r"val.npz: missing"):
        load_split(tmp_path / "split")
    save_split(split, tmp_path / "split")
    (tmp_path / "split" / "test.npz").write_bytes((tmp_path / "split" / "train.npz").read_bytes())
    with pytest.raises(DataError, match=r"test.npz: by_user has"):
        load_split(tmp_path / "split")
