"""build_index / save_index / load_index."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from movielens_als.data.index import (
    INDEX_ARRAYS,
    INDEX_META,
    _dense_codes,
    build_index,
    load_index,
    rating_histogram,
    save_index,
)
from movielens_als.data.registry import get_release
from movielens_als.errors import DataError

LATEST = get_release("ml-latest-small")


def ratings_frame(rows: list[tuple[int, int, float, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])
    return frame.astype(
        {"userId": "int64", "movieId": "int64", "rating": "float32", "timestamp": "int64"}
    )


def movies_frame(rows: list[tuple[int, str, list[str]]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "movieId": np.array([r[0] for r in rows], dtype=np.int64),
            "title": [r[1] for r in rows],
            "genres": pd.Series([r[2] for r in rows], dtype=object),
        }
    )


MOVIES = movies_frame(
    [
        (5, "Five", ["Drama", "Comedy"]),
        (50, "Fifty", []),
        (500, "Five hundred", ["Action"]),
        (7, "Never rated", ["Western"]),
    ]
)


def test_contiguous_indices_in_ascending_id_order_and_file_order():
    ratings = ratings_frame(
        [(30, 500, 4.0, 1), (10, 5, 3.0, 2), (20, 50, 5.0, 3), (10, 500, 1.0, 4)]
    )
    data, metrics = build_index(ratings, MOVIES, LATEST)
    assert data.user_ids.tolist() == [10, 20, 30]
    assert data.movie_ids.tolist() == [5, 50, 500]  # 7 has no rating, so no index
    assert data.ratings.user.tolist() == [2, 0, 1, 0]
    assert data.ratings.item.tolist() == [2, 0, 1, 2]
    assert data.ratings.rating.tolist() == [4.0, 3.0, 5.0, 1.0]
    assert data.timestamp.tolist() == [1, 2, 3, 4]
    assert (
        data.ratings.user.dtype,
        data.ratings.item.dtype,
        data.ratings.rating.dtype,
        data.timestamp.dtype,
    ) == (np.int32, np.int32, np.float32, np.int64)
    assert data.titles == ["Five", "Fifty", "Five hundred"]
    assert data.genre_names == ["Action", "Comedy", "Drama"]  # Western: only unrated movies
    assert [data.movie_genres.row(m)[0].tolist() for m in range(3)] == [[1, 2], [], [0]]
    assert metrics["n_users"] == 3 and metrics["n_movies"] == 3 and metrics["n_genres"] == 3
    assert metrics["n_ratings"] == 4 and metrics["sparsity"] == pytest.approx(1 - 4 / 9)
    assert metrics["n_movies_unrated"] == 1 and metrics["n_movies_without_genre"] == 1
    assert metrics["rating_histogram"] == {
        "0.5": 0,
        "1.0": 1,
        "1.5": 0,
        "2.0": 0,
        "2.5": 0,
        "3.0": 1,
        "3.5": 0,
        "4.0": 1,
        "4.5": 0,
        "5.0": 1,
    }
    assert metrics["n_duplicates_dropped"] == 0 and metrics["n_ratings_unknown_movie"] == 0
    json.dumps(metrics)  # a stage writes them as JSON


def test_duplicates_keep_the_latest_then_the_last(caplog):
    ratings = ratings_frame(
        [
            (1, 5, 1.0, 100),  # superseded by the later timestamp below
            (1, 50, 2.0, 10),
            (1, 5, 2.0, 300),  # kept: latest timestamp of (1, 5)
            (2, 5, 3.0, 50),  # superseded: tie, not last
            (1, 5, 3.0, 200),  # superseded: older than 300
            (2, 5, 4.0, 50),  # kept: tie on timestamp, last in file
        ]
    )
    with caplog.at_level(logging.WARNING):
        data, metrics = build_index(ratings, MOVIES, LATEST)
    assert metrics["n_duplicates_dropped"] == 3
    assert metrics["n_ratings_read"] == 6 and metrics["n_ratings"] == 3
    assert data.ratings.rating.tolist() == [2.0, 2.0, 4.0]  # file order of the kept ones
    assert data.timestamp.tolist() == [10, 300, 50]
    assert "3 duplicate (userId, movieId) ratings dropped" in caplog.text
    assert metrics["duplicate_examples"][0] == [1, 5]


def test_ratings_of_movies_missing_from_the_movie_file(caplog):
    ratings = ratings_frame([(1, 5, 4.0, 1), (1, 999, 3.0, 2), (2, 999, 2.0, 3), (2, 888, 1.0, 4)])
    with caplog.at_level(logging.WARNING):
        data, metrics = build_index(ratings, MOVIES, LATEST)
    assert metrics["n_ratings_unknown_movie"] == 3
    assert metrics["n_movies_unknown"] == 2
    assert metrics["unknown_movie_examples"] == [888, 999]
    assert "3 ratings of 2 movies missing from the movie file" in caplog.text
    assert data.movie_ids.tolist() == [5, 888, 999]
    assert data.titles == ["Five", "", ""]
    assert data.movie_genres.row_counts().tolist() == [2, 0, 0]
    assert data.n_movies == 3 and len(data.ratings) == 4


def test_ratings_off_the_release_scale_are_refused():
    ratings = ratings_frame([(1, 5, 4.0, 1), (2, 50, 4.5, 2)])
    with pytest.raises(DataError, match=r"ml-1m: rating 4.5 of userId 2, movieId 50 \(row 1\)"):
        build_index(ratings, MOVIES, get_release("ml-1m"))


def test_negative_timestamps_are_refused():
    """Frames that did not come through read_ratings meet the same policy: refused."""
    ratings = ratings_frame([(1, 5, 4.0, 0), (2, 50, 4.5, -7), (3, 500, 1.0, -8)])
    with pytest.raises(
        DataError,
        match=r"ml-latest-small: timestamp -7 of userId 2, movieId 50 \(row 1\) is negative "
        r"\(before 1970-01-01; 2 negative in all\)",
    ):
        build_index(ratings, MOVIES, LATEST)
    _, metrics = build_index(ratings_frame([(1, 5, 4.0, 0)]), MOVIES, LATEST)
    assert metrics["timestamp_min"] == 0  # zero is a time like any other


def test_no_ratings_is_an_error():
    with pytest.raises(DataError, match=r"no ratings"):
        build_index(ratings_frame([]), MOVIES, LATEST)


def test_histogram_whole_stars():
    assert rating_histogram(np.array([1, 1, 5], np.float32), (1.0, 5.0, 1.0)) == {
        "1.0": 2,
        "2.0": 0,
        "3.0": 0,
        "4.0": 0,
        "5.0": 1,
    }


def test_save_load_round_trip(tmp_path):
    ratings = ratings_frame(
        [(30, 500, 4.0, 1), (10, 5, 3.0, 2), (20, 50, 5.0, 3), (10, 500, 1.0, 4)]
    )
    movies = MOVIES.copy()
    movies.loc[0, "title"] = 'Ünïcødé, "quoted" | piped (1999)'
    data, _ = build_index(ratings, movies, LATEST)
    save_index(data, tmp_path / "index")
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == sorted(
        [INDEX_ARRAYS, INDEX_META]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # no temporaries left
    loaded = load_index(tmp_path / "index")
    for name in ("user", "item", "rating"):
        np.testing.assert_array_equal(getattr(loaded.ratings, name), getattr(data.ratings, name))
        assert getattr(loaded.ratings, name).dtype == getattr(data.ratings, name).dtype
    for name in ("timestamp", "user_ids", "movie_ids"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(data, name))
    assert loaded.titles == data.titles and loaded.genre_names == data.genre_names
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(
            getattr(loaded.movie_genres, name), getattr(data.movie_genres, name)
        )
    assert loaded.movie_genres.n_cols == data.movie_genres.n_cols
    assert loaded.rating_scale == data.rating_scale


def test_load_missing_or_inconsistent_index(tmp_path):
    with pytest.raises(DataError, match=r"index.json: missing; run the index stage first"):
        load_index(tmp_path / "nowhere")
    data, _ = build_index(ratings_frame([(1, 5, 4.0, 1)]), MOVIES, LATEST)
    save_index(data, tmp_path / "index")
    meta = json.loads((tmp_path / "index" / INDEX_META).read_text())
    meta["n_ratings"] = 2
    (tmp_path / "index" / INDEX_META).write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"array 'user' is missing or not of length 2"):
        load_index(tmp_path / "index")


def test_dense_codes_fallback_for_sparse_ids():
    raw = np.array([10**15, 3, -7, 3, 10**15], dtype=np.int64)
    codes, distinct = _dense_codes(raw, "userId")
    assert distinct.tolist() == [-7, 3, 10**15]
    assert codes.tolist() == [2, 1, 0, 1, 2]


def reference_index(frame: pd.DataFrame) -> pd.DataFrame:
    """Pandas version of the duplicate policy and the id mapping."""
    frame = frame.assign(position=np.arange(len(frame)))
    kept = (
        frame.sort_values(["timestamp", "position"], kind="stable")
        .drop_duplicates(["userId", "movieId"], keep="last")
        .sort_values("position")
    )
    kept["user"] = pd.factorize(kept["userId"], sort=True)[0]
    kept["item"] = pd.factorize(kept["movieId"], sort=True)[0]
    return kept


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 400),
    n_users=st.integers(1, 30),
    n_movies=st.integers(1, 40),
)
def test_matches_a_pandas_reference(seed, n, n_users, n_movies):
    rng = np.random.default_rng(seed)
    frame = ratings_frame(
        list(
            zip(
                rng.integers(1, 3 * n_users + 1, n).tolist(),
                rng.choice(np.arange(1, 10 * n_movies + 1, 10), n).tolist(),
                (rng.integers(1, 11, n) / 2).tolist(),
                rng.integers(0, 20, n).tolist(),  # few distinct times: ties happen
                strict=True,
            )
        )
    )
    data, metrics = build_index(frame, MOVIES, LATEST)
    expected = reference_index(frame)
    np.testing.assert_array_equal(data.ratings.user, expected["user"])
    np.testing.assert_array_equal(data.ratings.item, expected["item"])
    np.testing.assert_array_equal(data.ratings.rating, expected["rating"])
    np.testing.assert_array_equal(data.timestamp, expected["timestamp"])
    assert metrics["n_duplicates_dropped"] == n - len(expected)
    np.testing.assert_array_equal(data.user_ids, np.unique(frame["userId"]))
