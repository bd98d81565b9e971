"""The Python API on DataFrames of raw ids: fit, predict, recommend, similar, batch, files."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movielens_als import Recommender, fit, load
from movielens_als.errors import ConfigError, DataError, UsageError

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def frames():
    """Raw ids that are neither contiguous nor zero-based, with genres and titles."""
    rng = np.random.default_rng(0)
    users = np.arange(40) * 7 + 3
    movies = np.arange(30) * 11 + 100
    pairs = rng.choice(40 * 30, size=500, replace=False)
    ratings = pd.DataFrame(
        {
            "userId": users[pairs // 30],
            "movieId": movies[pairs % 30],
            "rating": rng.integers(1, 11, size=500) / 2.0,
        }
    )
    genres = ["Action|Comedy", "Drama", "(no genres listed)", "Comedy"]
    catalogue = pd.DataFrame(
        {
            "movieId": movies,
            "title": [f"Movie {m}" for m in movies],
            "genres": [genres[i % 4] for i in range(30)],
        }
    )
    return ratings, catalogue


def test_fit_predict_and_recommend_on_raw_ids(frames):
    ratings, movies = frames
    model = fit(ratings, "als", movies=movies, K=4, iterations=5)
    assert isinstance(model, Recommender) and model.titles[0] == "Movie 100"
    predicted = model.predict(ratings)
    assert predicted.shape == (len(ratings),)
    assert np.sqrt(np.mean((predicted - ratings.rating) ** 2)) < 0.9  # it learnt the train set
    user = int(ratings.userId.iloc[0])
    top = model.recommend(user, n=5)
    seen = set(ratings.movieId[ratings.userId == user])
    assert list(top.columns) == ["movieId", "title", "score"] and len(top) == 5
    assert not seen & set(top.movieId) and top.score.is_monotonic_decreasing
    with_seen = model.recommend(user, n=30, exclude_seen=False)
    assert seen <= set(with_seen.movieId)
    # the batch agrees with one user at a time
    batch = model.recommend_many([user, int(ratings.userId.iloc[1])], n=3)
    assert batch[batch.userId == user].movieId.tolist() == top.movieId.head(3).tolist()
    np.testing.assert_allclose(batch[batch.userId == user].score, top.score.head(3), rtol=1e-5)


def test_new_user_similar_and_unknown_ids(frames):
    ratings, movies = frames
    model = fit(ratings, "als", movies=movies, K=4, iterations=5)
    new = model.recommend_new({100: 5.0, 111: 1.0}, n=4)
    assert len(new) == 4 and not {100, 111} & set(new.movieId)
    similar = model.similar(100, n=3)
    assert list(similar.columns) == ["movieId", "title", "cosine"] and 100 not in set(
        similar.movieId
    )
    unseen = pd.DataFrame({"userId": [99999, int(ratings.userId.iloc[0])], "movieId": [100, 88888]})
    fallback = model.predict(unseen)  # unknown ids: the terms that exist
    m = model.model
    assert fallback[0] == pytest.approx(m.mu + m.item_bias[0], rel=1e-6)
    with pytest.raises(UsageError, match="unknown user id 99999 in row 0"):
        model.predict(unseen, unknown="error")
    with pytest.raises(UsageError, match="unknown user id 99999"):
        model.recommend(99999)
    with pytest.raises(UsageError, match="unknown movie id 88888"):
        model.similar(88888)


def test_every_variant_fits_and_survives_save_and_load(frames, tmp_path):
    ratings, movies = frames
    for name, overrides in (
        ("bias", {}),
        ("genre_als", {"K": 3, "iterations": 3}),
        ("bayes_genre_als", {"K": 3, "samples": 4, "burn_in": 1, "saved_samples": 2}),
    ):
        model = fit(ratings, name, movies=movies, **overrides)
        model.save(tmp_path / name)
        again = load(tmp_path / name)
        np.testing.assert_array_equal(again.predict(ratings), model.predict(ratings))
        assert again.titles == model.titles
        assert not any(p.suffix == ".pkl" for p in (tmp_path / name).iterdir())


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"userId": [1], "movieId": [2]}), "lacks column.*rating"),
        (
            pd.DataFrame({"userId": [1], "movieId": [2], "rating": ["good"]}),
            "'rating' must be numeric",
        ),
        (
            pd.DataFrame({"userId": [1], "movieId": [2], "rating": [np.nan]}),
            "'rating': row 0 is not a finite",
        ),
        (
            pd.DataFrame({"userId": [1.5], "movieId": [2], "rating": [3.0]}),
            "'userId': row 0 .* not an integer",
        ),
        (
            pd.DataFrame({"userId": [1, 1], "movieId": [2, 2], "rating": [3.0, 4.0]}),
            "rated movie 2 twice",
        ),
        (pd.DataFrame({"userId": [], "movieId": [], "rating": []}), "ratings is empty"),
        ([1, 2, 3], "must be a pandas DataFrame"),
    ],
)
def test_bad_frames_name_the_column(frame, message):
    with pytest.raises(DataError, match=message):
        fit(frame, "als")


def test_unknown_model_and_missing_genres(frames):
    ratings, _ = frames
    with pytest.raises(ConfigError, match="nosuch"):
        fit(ratings, "nosuch")
    with pytest.raises(DataError, match="uses genres: pass movies="):
        fit(ratings, "genre_als")
    with pytest.raises(ConfigError, match=r"model\.K"):
        fit(ratings, "als", K=-1)


@pytest.mark.realdata
def test_readme_snippet_runs(real_mirror, tmp_path, monkeypatch, capsys):
    """The README's Python API snippet, run as written on the real archive."""
    code = re.search(
        r"## Python API.*?```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S
    ).group(1)
    shutil.copy(real_mirror / "ml-latest-small.zip", tmp_path / "ml-latest-small.zip")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "Shawshank" in out or "movieId" in out
    assert (tmp_path / "my_model" / "model.npz").is_file()
