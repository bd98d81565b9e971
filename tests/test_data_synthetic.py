"""The synthetic release: shape, scale, determinism, file format, and real signal."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from _data_helpers import als_rmse
from movielens_als.data.index import build_index
from movielens_als.data.parse import read_movies, read_ratings
from movielens_als.data.registry import get_release
from movielens_als.data.split import split_ratings
from movielens_als.data.synthetic import (
    PRESETS,
    SPEC_FILE,
    SyntheticSpec,
    generate,
    read_spec,
    write_release,
)
from movielens_als.errors import ConfigError

SYNTHETIC = get_release("synthetic")
SPEC = SyntheticSpec(n_users=60, n_movies=150, n_ratings=3000, n_unrated_movies=7, seed=5)


@pytest.fixture(scope="module")
def generated():
    return generate(SPEC)


def test_shape_and_activity(generated):
    ratings, movies = generated
    assert len(ratings) == SPEC.n_ratings
    per_user = ratings.groupby("userId").size()
    assert len(per_user) == SPEC.n_users and per_user.min() >= 20
    assert per_user.max() <= SPEC.max_ratings_per_user
    assert ratings["movieId"].nunique() == SPEC.n_movies  # every catalogued-and-rated movie
    assert len(movies) == SPEC.n_movies + SPEC.n_unrated_movies
    assert set(ratings["movieId"]) <= set(movies["movieId"])
    assert not ratings.duplicated(["userId", "movieId"]).any()
    # file order: by user, then movie id
    assert ratings.equals(ratings.sort_values(["userId", "movieId"], kind="stable"))


def test_half_star_scale_and_timestamps(generated):
    ratings, _ = generated
    stars = ratings["rating"].to_numpy()
    assert stars.dtype == np.float32
    assert stars.min() >= 0.5 and stars.max() <= 5.0
    np.testing.assert_array_equal(stars * 2, np.rint(stars * 2))
    assert 3.0 < stars.mean() < 4.2 and 0.6 < stars.std() < 1.3
    assert len(np.unique(stars)) >= 8
    times = ratings["timestamp"].to_numpy()
    assert times.min() >= SPEC.start_timestamp and times.max() <= SPEC.end_timestamp


def test_genres(generated):
    _, movies = generated
    genres = movies["genres"].tolist()
    assert any(len(g) == 0 for g in genres)  # some movies have no genre
    names = {g for movie in genres for g in movie}
    assert names <= {
        "Action",
        "Adventure",
        "Animation",
        "Children",
        "Comedy",
        "Crime",
        "Documentary",
        "Drama",
        "Fantasy",
        "Film-Noir",
        "Horror",
        "IMAX",
        "Musical",
        "Mystery",
        "Romance",
        "Sci-Fi",
        "Thriller",
        "War",
        "Western",
    }
    assert "Drama" in names and "Comedy" in names
    extra = generate(dataclasses.replace(SPEC, n_genres=22))[1]["genres"].tolist()
    assert "Genre 22" in {g for movie in extra for g in movie}


def test_deterministic_for_a_seed(generated):
    ratings, movies = generated
    again = generate(SPEC)
    pd.testing.assert_frame_equal(again[0], ratings)
    pd.testing.assert_frame_equal(again[1], movies)
    other = generate(dataclasses.replace(SPEC, seed=6))[0]
    assert not other["rating"].equals(ratings["rating"])


def test_written_files_read_back_identically(tmp_path, generated):
    folder = write_release(SPEC, tmp_path / "synthetic")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["movies.csv", "ratings.csv", SPEC_FILE]
    )
    ratings_text = (folder / "ratings.csv").read_text()
    assert ratings_text.startswith("userId,movieId,rating,timestamp\n")
    assert ",4.0," in ratings_text and ",4," not in ratings_text  # GroupLens' "4.0" style
    movie_lines = (folder / "movies.csv").read_text().splitlines()
    assert movie_lines[0] == "movieId,title,genres"
    assert any(", The (" in line and line.split(",")[1].startswith('"') for line in movie_lines)
    assert any(line.endswith(",(no genres listed)") for line in movie_lines)
    ratings, movies = generated
    pd.testing.assert_frame_equal(read_ratings(SYNTHETIC, folder), ratings)
    pd.testing.assert_frame_equal(read_movies(SYNTHETIC, folder), movies)
    assert read_spec(folder) == SPEC
    assert read_spec(tmp_path) is None


def test_presets():
    tiny = SyntheticSpec.preset("tiny", seed=3)
    assert tiny.seed == 3 and 300 <= tiny.n_ratings <= 2000
    ml32m = SyntheticSpec.preset("ml-32m")
    assert (ml32m.n_users, ml32m.n_movies, ml32m.n_ratings) == (200_948, 84_432, 32_000_204)
    assert set(PRESETS) == {"tiny", "small", "ml-32m"}
    ratings, _ = generate(tiny)
    assert len(ratings) == tiny.n_ratings
    with pytest.raises(ConfigError, match=r"dataset.synthetic.preset: unknown preset 'huge'"):
        SyntheticSpec.preset("huge")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"n_users": 0}, "n_users"),
        ({"rank": 2.5}, "rank"),
        ({"seed": -1}, "seed"),
        ({"noise_sd": -0.1}, "noise_sd"),
        ({"max_user_fraction": 0.0}, "max_user_fraction"),
        ({"genre_share": 1.5}, "genre_share"),
        ({"n_ratings": 100}, "n_ratings"),  # below 60 users × 20
        ({"n_ratings": 60 * 150}, "n_ratings"),  # above the per-user cap
        ({"min_ratings_per_user": 151}, "min_ratings_per_user"),
        ({"end_timestamp": 0}, "end_timestamp"),
    ],
)
def test_invalid_spec_names_the_field(changes, field):
    with pytest.raises(ConfigError, match=rf"synthetic.{field}"):
        dataclasses.replace(SPEC, **changes)


def test_heavy_users_exhaust_the_catalogue_without_repeats():
    """Users who rate nearly every movie take the exact fallback sampler."""
    spec = SyntheticSpec(
        n_users=12,
        n_movies=30,
        n_ratings=340,
        min_ratings_per_user=25,
        max_user_fraction=1.0,
        item_popularity_sigma=3.0,
        seed=1,
    )
    ratings, _ = generate(spec)
    assert len(ratings) == 340
    assert not ratings.duplicated(["userId", "movieId"]).any()
    assert ratings.groupby("userId").size().max() == 30  # someone rated everything


def test_low_rank_model_beats_biases():
    """The planted factors are recoverable: ALS with rank 4 beats the bias-only fit."""
    spec = SyntheticSpec(n_users=250, n_movies=150, n_ratings=12_000, rank=4, seed=2)
    data, _ = build_index(*generate(spec), SYNTHETIC)
    split, _ = split_ratings(data, train_fraction=0.8, seed=0)

    def arrays(matrix):
        users, items, ratings = matrix.by_user.to_coo()
        return users, items, ratings.astype(np.float64)

    train, test = arrays(split.train), arrays(split.test)
    bias_only = als_rmse(train, test, data.n_users, data.n_movies, rank=0)
    low_rank = als_rmse(train, test, data.n_users, data.n_movies, rank=4)
    assert low_rank < 0.95 * bias_only, (low_rank, bias_only)
