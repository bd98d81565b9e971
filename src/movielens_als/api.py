"""The Python API: fit any shipped model on a DataFrame of raw ids and use it.

    import pandas as pd
    from movielens_als import fit, load

    ratings = pd.read_csv("ratings.csv")                  # userId, movieId, rating[, timestamp]
    model = fit(ratings, "bayes_als", samples=100)        # any conf/model/<name>.yaml, plus overrides
    model.predict(ratings.head(3))                        # predicted ratings of (userId, movieId) rows
    model.recommend(user_id=1, n=10)                      # top 10 unrated movies of an existing user
    model.recommend_new({1: 5.0, 50: 4.0}, n=10)          # … of a new user given a few ratings
    model.similar(movie_id=1, n=10)                       # closest movies by factor cosine
    model.recommend_many([1, 2, 3], n=5)                  # batch scoring of many users at once
    model.save("my_model"); model = load("my_model")       # .npz + JSON, never pickle
    model = load_trained("als", project_dir=".")           # a model the DVC pipeline trained

Ids are raw MovieLens ids; they are mapped to contiguous indices inside (ascending, like the
pipeline's index). Unknown ids: ``predict`` scores a user or movie the model has never seen
from the terms that exist (the global mean plus the known bias, as the pipeline's RMSE does)
unless ``unknown="error"``; ``recommend`` and ``similar`` raise ``UsageError`` naming the id.
Genre models need ``movies`` (``movieId, genres`` with ``|``-separated genres, as movies.csv).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movielens_als.atomic import atomic_path, load_npz, read_json, save_npz
from movielens_als.errors import DataError, UsageError
from movielens_als.sparse import CSR, RatingMatrix, Ratings

RATING_COLUMNS = ("userId", "movieId", "rating")
IDS_FILE = "ids.npz"
API_META = "recommender.json"
NO_GENRES = "(no genres listed)"


def _check_frame(frame: Any, columns: Sequence[str], what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"{what} must be a pandas DataFrame with columns {', '.join(columns)}; got {type(frame).__name__}"
        )
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{what} lacks column(s) {', '.join(missing)}; it has {', '.join(map(str, frame.columns))}"
        )
    for column in columns:
        if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(
            frame[column]
        ):
            raise DataError(
                f"{what} column {column!r} must be numeric, got dtype {frame[column].dtype}"
            )
        bad = np.flatnonzero(~np.isfinite(frame[column].to_numpy(dtype=np.float64)))
        if len(bad):
            raise DataError(
                f"{what} column {column!r}: row {bad[0]} is not a finite number ({frame[column].iloc[bad[0]]!r})"
            )
    return frame


def _integer_ids(values: pd.Series, column: str, what: str) -> np.ndarray:
    as_float = values.to_numpy(dtype=np.float64)
    bad = np.flatnonzero(as_float != np.round(as_float))
    if len(bad):
        raise DataError(
            f"{what} column {column!r}: row {bad[0]} holds {as_float[bad[0]]!r}, not an integer id"
        )
    return as_float.astype(np.int64)


def _genre_matrix(movies: pd.DataFrame, movie_ids: np.ndarray) -> tuple[CSR, list[str]]:
    """Movies × genres (data 1.0) in the model's movie order, from ``movieId, genres``."""
    _check_frame(movies, ("movieId",), "movies")
    if "genres" not in movies.columns:
        raise DataError(f"movies lacks column genres; it has {', '.join(map(str, movies.columns))}")
    ids = _integer_ids(movies["movieId"], "movieId", "movies")
    by_id = dict(zip(ids.tolist(), movies["genres"].fillna("").astype(str), strict=True))
    lists = [
        [g for g in by_id.get(int(m), "").split("|") if g and g != NO_GENRES] for m in movie_ids
    ]
    names = sorted({g for genres in lists for g in genres})
    column = {name: j for j, name in enumerate(names)}
    rows = np.repeat(np.arange(len(lists)), [len(g) for g in lists])
    cols = np.array([column[g] for genres in lists for g in genres], dtype=np.int64)
    return CSR.from_coo(rows, cols, np.ones(len(cols)), len(lists), len(names)), names


@dataclass
class Recommender:
    """A fitted model with its raw-id maps and each user's training ratings (``seen``)."""

    model: Any  # core.model.FactorModel
    user_ids: np.ndarray  # raw id of user index u (ascending)
    movie_ids: np.ndarray  # raw id of movie index m (ascending)
    seen: CSR  # user-major training ratings (what recommend excludes)
    name: str = "model"
    titles: list[str] | None = None
    rating_scale: tuple[float, float, float] | None = None  # (low, high, step), when known
    _user_index: dict[int, int] = field(init=False, repr=False)
    _movie_index: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._user_index = {int(u): i for i, u in enumerate(self.user_ids)}
        self._movie_index = {int(m): i for i, m in enumerate(self.movie_ids)}

    @classmethod
    def from_index(cls, model: Any, index: Any, train: RatingMatrix, name: str) -> Recommender:
        """A model the pipeline fitted on ``train`` (the split's training ratings), with the
        raw ids, titles and rating scale of ``index`` (``data.index.IndexedData``)."""
        return cls(
            model,
            index.user_ids,
            index.movie_ids,
            train.by_user,
            name=name,
            titles=list(index.titles),
            rating_scale=tuple(index.rating_scale),
        )

    # -- ids -------------------------------------------------------------------------------

    def user_index(self, user_id: int) -> int:
        try:
            return self._user_index[int(user_id)]
        except (KeyError, TypeError, ValueError):
            raise UsageError(
                f"unknown user id {user_id!r}: the model was not trained on it "
                "(use recommend_new for a new user)"
            ) from None

    def movie_index(self, movie_id: int) -> int:
        try:
            return self._movie_index[int(movie_id)]
        except (KeyError, TypeError, ValueError):
            raise UsageError(
                f"unknown movie id {movie_id!r}: the model has no such movie"
            ) from None

    def _indices(self, ids: np.ndarray, lookup: Mapping[int, int]) -> np.ndarray:
        return np.fromiter((lookup.get(int(i), -1) for i in ids), dtype=np.int64, count=len(ids))

    # -- scoring ---------------------------------------------------------------------------

    def predict(self, pairs: pd.DataFrame, *, unknown: str = "mean") -> np.ndarray:
        """Predicted ratings of the ``userId, movieId`` rows of ``pairs`` (float64).

        ``unknown="mean"``: an id the model never saw contributes no terms (global mean plus
        the known bias); ``unknown="error"``: UsageError naming the first unknown id.
        """
        if unknown not in ("mean", "error"):
            raise UsageError(f"unknown must be 'mean' or 'error', got {unknown!r}")
        _check_frame(pairs, ("userId", "movieId"), "pairs")
        users = self._indices(_integer_ids(pairs["userId"], "userId", "pairs"), self._user_index)
        items = self._indices(_integer_ids(pairs["movieId"], "movieId", "pairs"), self._movie_index)
        if unknown == "error":
            for what, idx, column in (("user", users, "userId"), ("movie", items, "movieId")):
                missing = np.flatnonzero(idx < 0)
                if len(missing):
                    raise UsageError(
                        f"unknown {what} id {int(pairs[column].iloc[missing[0]])} in row {missing[0]}"
                    )
        return self.model.predict(users, items)

    @property
    def rating_counts(self) -> np.ndarray:
        """Training ratings per movie (the popularity filter's measure)."""
        return np.bincount(self.seen.indices, minlength=len(self.movie_ids))

    def _top(
        self, scores: np.ndarray, n: int, exclude: np.ndarray, column: str, min_ratings: int = 0
    ) -> pd.DataFrame:
        if n < 1:
            raise UsageError(f"n must be at least 1, got {n}")
        scores = np.asarray(scores, dtype=np.float64).copy()
        scores[exclude] = np.nan
        if min_ratings > 0:
            scores[self.rating_counts < min_ratings] = np.nan
        candidates = np.flatnonzero(~np.isnan(scores))
        best = candidates[np.lexsort((candidates, -scores[candidates]))][:n]
        frame = pd.DataFrame({"movieId": self.movie_ids[best], column: scores[best]})
        if self.titles is not None:
            frame.insert(1, "title", [self.titles[m] for m in best])
        return frame

    def _scores(self, bias: float, factors: np.ndarray) -> np.ndarray:
        from movielens_als.recommend import predicted_ratings

        m = self.model
        return predicted_ratings(
            bias, factors, mu=m.mu, item_bias=m.item_bias, item_factors=m.item_factors
        )

    def recommend(
        self, user_id: int, n: int = 10, *, exclude_seen: bool = True, min_ratings: int = 0
    ) -> pd.DataFrame:
        """The ``n`` best predicted movies (``movieId[, title], score``) of an existing user,
        among movies with at least ``min_ratings`` training ratings."""
        u = self.user_index(user_id)
        m = self.model
        seen = self.seen.row(u)[0] if exclude_seen else np.array([], dtype=np.int64)
        return self._top(
            self._scores(float(m.user_bias[u]), m.user_factors[u]), n, seen, "score", min_ratings
        )

    def recommend_new(
        self, ratings: Mapping[int, float], n: int = 10, *, min_ratings: int = 0
    ) -> pd.DataFrame:
        """Top ``n`` for a new user who gave ``ratings`` ({movieId: rating}), folded in by the
        model's variant (its rated movies excluded)."""
        from movielens_als.core.foldin import fold_in_user

        items = np.array([self.movie_index(movie) for movie in ratings], dtype=np.int32)
        values = np.array(list(ratings.values()), dtype=np.float32)
        bias, factors = fold_in_user(self.model, items, values)
        return self._top(self._scores(bias, factors), n, items, "score", min_ratings)

    def recommend_many(
        self, user_ids: Iterable[int], n: int = 10, *, exclude_seen: bool = True
    ) -> pd.DataFrame:
        """Top ``n`` of many existing users at once (the ranking stage's tiled top-K over all
        movies): ``userId, rank, movieId, score`` rows, ``n`` per user."""
        from movielens_als.evaluation.ranking import FactorScorer

        if n < 1:
            raise UsageError(f"n must be at least 1, got {n}")
        users = np.array([self.user_index(u) for u in user_ids], dtype=np.int64)
        m = self.model
        seen_indptr = (
            self.seen.indptr if exclude_seen else np.zeros(len(self.user_ids) + 1, dtype=np.int64)
        )
        top, _ = FactorScorer(m.user_factors, m.item_factors, m.item_bias).top_k_unseen(
            users, seen_indptr, self.seen.indices, n
        )
        rank = np.tile(np.arange(1, top.shape[1] + 1), len(users))
        row_users = np.repeat(users, top.shape[1])
        items = top.ravel().astype(np.int64)
        kept = items >= 0
        frame = pd.DataFrame(
            {
                "userId": self.user_ids[row_users[kept]],
                "rank": rank[kept],
                "movieId": self.movie_ids[items[kept]],
                "score": m.predict(row_users[kept], items[kept]),
            }
        )
        return frame

    def similar(self, movie_id: int, n: int = 10, *, min_ratings: int = 0) -> pd.DataFrame:
        """The ``n`` movies whose factors are closest by cosine (``movieId[, title], cosine``)."""
        from movielens_als.recommend import cosine_to

        item = self.movie_index(movie_id)
        if self.model.K == 0:
            raise UsageError(
                "similar movies need movie factors, but this model is bias-only (K = 0)"
            )
        if not np.any(self.model.item_factors[item]):
            raise UsageError(
                f"movie id {movie_id} has an all-zero factor vector: nothing to compare with"
            )
        return self._top(
            cosine_to(self.model.item_factors, item), n, np.array([item]), "cosine", min_ratings
        )

    # -- files -----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write a folder ``path`` (model.npz/json, ids.npz, recommender.json), replaced atomically."""
        from movielens_als.core.model import save_model

        target = Path(path)
        with atomic_path(target) as tmp:
            tmp.mkdir(parents=True)
            save_model(self.model, tmp / "model")
            save_npz(
                tmp / IDS_FILE,
                user_ids=self.user_ids,
                movie_ids=self.movie_ids,
                seen_indptr=self.seen.indptr,
                seen_indices=self.seen.indices,
                seen_data=self.seen.data,
            )
            meta = {"name": self.name, "titles": self.titles, "rating_scale": self.rating_scale}
            (tmp / API_META).write_text(json.dumps(meta), encoding="utf-8")
        return target


def fit(
    ratings: pd.DataFrame,
    model: str = "als",
    *,
    movies: pd.DataFrame | None = None,
    **overrides: Any,
) -> Recommender:
    """Fit the shipped model ``model`` (``conf/model/<model>.yaml``, any variant) on a DataFrame of
    raw ``userId, movieId, rating``; keyword ``overrides`` replace model keys (``K=64``)."""
    from movielens_als.config import compose
    from movielens_als.core import fit as core_fit
    from movielens_als.core import model_params
    from movielens_als.errors import ConfigError

    _check_frame(ratings, RATING_COLUMNS, "ratings")
    if len(ratings) == 0:
        raise DataError("ratings is empty: nothing to fit")
    try:
        values = dict(compose("train", [f"model={model}"]).model)
    except Exception as exc:  # Hydra's MissingConfigException names the options
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(
            f"model: unknown model {model!r} ({str(exc).splitlines()[-1].strip()})"
        ) from None
    params = model_params({**values, **overrides})
    user_raw = _integer_ids(ratings["userId"], "userId", "ratings")
    movie_raw = _integer_ids(ratings["movieId"], "movieId", "ratings")
    user_ids, users = np.unique(user_raw, return_inverse=True)
    movie_ids, items = np.unique(movie_raw, return_inverse=True)
    pairs = users.astype(np.int64) * len(movie_ids) + items
    if len(np.unique(pairs)) != len(pairs):
        first = int(np.flatnonzero(pd.Series(pairs).duplicated().to_numpy())[0])
        raise DataError(
            f"ratings row {first}: user {user_raw[first]} rated movie {movie_raw[first]} twice"
        )
    train = RatingMatrix.from_ratings(
        Ratings.from_arrays(users, items, ratings["rating"].to_numpy(dtype=np.float32)),
        len(user_ids),
        len(movie_ids),
    )
    genres = None
    if params.uses_genres:
        if movies is None:
            raise DataError(
                f"model {model!r} uses genres: pass movies= (a DataFrame of movieId, genres)"
            )
        genres, _ = _genre_matrix(movies, movie_ids)
    fitted = core_fit(train, params, movie_genres=genres).model
    titles = None
    if movies is not None and "title" in movies.columns:
        by_id = dict(
            zip(
                _integer_ids(movies["movieId"], "movieId", "movies").tolist(),
                movies["title"].astype(str),
                strict=True,
            )
        )
        titles = [by_id.get(int(m), str(m)) for m in movie_ids]
    return Recommender(fitted, user_ids, movie_ids, train.by_user, name=model, titles=titles)


def load(path: str | Path) -> Recommender:
    """A model written by ``Recommender.save`` (DataError naming the file when incomplete)."""
    from movielens_als.core.model import load_model

    folder = Path(path)
    arrays = load_npz(folder / IDS_FILE)
    meta = read_json(folder / API_META)
    missing = {"user_ids", "movie_ids", "seen_indptr", "seen_indices", "seen_data"} - set(arrays)
    if missing:
        raise DataError(f"{folder / IDS_FILE}: missing arrays {', '.join(sorted(missing))}")
    model = load_model(folder / "model")
    seen = CSR(
        arrays["seen_indptr"], arrays["seen_indices"], arrays["seen_data"], len(arrays["movie_ids"])
    )
    scale = meta.get("rating_scale")
    return Recommender(
        model,
        arrays["user_ids"],
        arrays["movie_ids"],
        seen,
        name=meta.get("name", "model"),
        titles=meta.get("titles"),
        rating_scale=None if scale is None else tuple(scale),
    )


def load_trained(
    model: str = "als",
    *,
    project_dir: str | Path = ".",
    dataset: str = "ml-latest-small",
    data: str | Path = "data",
    results: str | Path | None = None,
) -> Recommender:
    """A model the DVC pipeline trained (``<results>/models/<dataset>/<model>/``), with the
    index's ids, titles and rating scale and the split's training ratings; ``data`` and
    ``results`` are relative to ``project_dir`` (or absolute)."""
    from movielens_als.core.model import load_model
    from movielens_als.data.index import load_index
    from movielens_als.data.split import load_split
    from movielens_als.pipeline.layout import Layout

    root = Path(project_dir)
    layout = Layout(root / data, root / (results or data), root / "reports", dataset)
    if not layout.model_dir(model).is_dir():
        trained = sorted(p.name for p in layout.model_dir(model).parent.glob("*") if p.is_dir())
        raise UsageError(
            f"no trained model {model!r} in {layout.model_dir(model).parent} "
            f"(trained: {', '.join(trained) or 'none; run dvc repro first'})"
        )
    return Recommender.from_index(
        load_model(layout.model_dir(model) / "model"),
        load_index(layout.index_dir),
        load_split(layout.split_dir).train,
        name=model,
    )
