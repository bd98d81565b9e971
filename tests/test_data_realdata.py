"""The whole data layer on the real ml-latest-small archive (skipped when it is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from movielens_als.data.download import fetch_release
from movielens_als.data.index import build_index, load_index, save_index
from movielens_als.data.parse import read_movies, read_ratings
from movielens_als.data.registry import get_release
from movielens_als.data.split import load_split, save_split, split_ratings

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


@pytest.fixture(scope="module")
def indexed(real_mirror, tmp_path_factory):
    release = get_release("ml-latest-small")
    folder = fetch_release(
        release.name, tmp_path_factory.mktemp("raw"), mirror=real_mirror, progress=False
    )
    ratings, movies = read_ratings(release, folder), read_movies(release, folder)
    return ratings, movies, *build_index(ratings, movies, release)


def test_counts(indexed):
    ratings, movies, data, metrics = indexed
    assert len(ratings) == 100_836 and len(movies) == 9_742
    assert (metrics["n_ratings"], metrics["n_users"], metrics["n_movies"], metrics["n_genres"]) == (
        100_836,
        610,
        9_724,
        19,
    )
    assert metrics["n_duplicates_dropped"] == 0 and metrics["n_ratings_unknown_movie"] == 0
    assert metrics["n_movies_unrated"] == 18
    assert (len(data.ratings), data.n_users, data.n_movies, data.n_genres) == (
        100_836,
        610,
        9_724,
        19,
    )
    assert sum(metrics["rating_histogram"].values()) == 100_836
    assert metrics["rating_histogram"]["4.0"] == 26_818


def test_no_genre_movies_are_carried_without_genre(indexed):
    _, movies, data, metrics = indexed
    assert "(no genres listed)" not in data.genre_names
    assert metrics["n_movies_without_genre"] == 34
    no_genre_ids = set(movies.loc[movies["genres"].map(len) == 0, "movieId"])
    rated_no_genre = [m for m, movie_id in enumerate(data.movie_ids) if movie_id in no_genre_ids]
    assert len(rated_no_genre) == 34
    assert all(data.movie_genres.row_counts()[m] == 0 for m in rated_no_genre)


def test_notebook_split(indexed, tmp_path):
    _, _, data, _ = indexed
    split, metrics = split_ratings(data)
    assert (metrics["n_train"], metrics["n_test"]) == (90_926, 9_910)
    in_train = np.random.RandomState(42).rand(100_836) < 0.9
    assert split.train.nnz == in_train.sum()
    save_index(data, tmp_path / "index")
    save_split(split, tmp_path / "split")
    reloaded = load_split(tmp_path / "split")
    np.testing.assert_array_equal(reloaded.train.by_item.indices, split.train.by_item.indices)
    again, _ = split_ratings(load_index(tmp_path / "index"))
    np.testing.assert_array_equal(again.test.by_user.data, split.test.by_user.data)
