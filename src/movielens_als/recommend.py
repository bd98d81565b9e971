"""Using a fitted model: recommendations for a new user, and movies similar to a movie.

A new user gives ratings as ``"<title or movie id>=<rating>"`` specs (``"Toy Story
(1995)=5"``, ``"shawshank=4.5"``, ``"1=5"``). Each query resolves to one movie: a pure integer is
a raw MovieLens movieId; otherwise an exact title (case-insensitive) wins, else the title must
be the only one containing the query (case-insensitive). The user is folded into the model —
that user's bias and factors solved with the movie side fixed (the notebook's "dummy user") —
and movies are ranked by the predicted rating ``μ + b + c_n + uᵀv_n``, leaving out the movies
the user rated and those with fewer than ``min_ratings`` training ratings (the notebook uses
100, so that a handful of enthusiastic ratings cannot carry an obscure movie to the top).

``similar_movies`` ranks movies by the cosine between their factor vectors, with the same
popularity filter. Everything a user can get wrong raises ``UsageError`` with a message saying
what to change.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from movielens_als.core.foldin import fold_in_user
from movielens_als.core.model import FactorModel
from movielens_als.errors import UsageError

MAX_CANDIDATES = 10  # how many matching titles an "ambiguous" message lists
FoldIn = Callable[[FactorModel, np.ndarray, np.ndarray], tuple[float, np.ndarray]]


@dataclass(frozen=True)
class MovieCatalogue:
    """What the user-facing functions know about movie index ``m``.

    ``titles[m]``, ``movie_ids[m]`` (raw MovieLens id) and ``rating_counts[m]`` (number of
    training ratings, the popularity filter's measure), e.g. from ``IndexedData.titles``,
    ``IndexedData.movie_ids`` and ``split.train.by_item.row_counts()``.
    """

    titles: Sequence[str]
    movie_ids: np.ndarray
    rating_counts: np.ndarray
    _lower_titles: list[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.titles)
        if len(self.movie_ids) != n or len(self.rating_counts) != n:
            raise ValueError(
                f"catalogue arrays differ in length: {n} titles, {len(self.movie_ids)} movie "
                f"ids, {len(self.rating_counts)} rating counts"
            )
        object.__setattr__(self, "_lower_titles", [title.casefold() for title in self.titles])

    def __len__(self) -> int:
        return len(self.titles)

    def describe(self, index: int) -> str:
        """``"Title (year) [id 123]"`` — a title plus the id that selects it unambiguously."""
        return f"{self.titles[index]} [id {int(self.movie_ids[index])}]"

    def resolve(self, query: str) -> int:
        """Movie index named by ``query`` (movie id, exact title, or unique title substring)."""
        text = query.strip()
        if not text:
            raise UsageError("empty movie name: give a title, part of a title or a movie id")
        if re.fullmatch(r"\d+", text):
            found = np.flatnonzero(np.asarray(self.movie_ids) == int(text))
            if found.size == 0:
                raise UsageError(
                    f"movie id {text} is not in the model (no such MovieLens movieId, or the "
                    "movie has no training ratings)"
                )
            return int(found[0])
        wanted = text.casefold()
        exact = [m for m, title in enumerate(self._lower_titles) if title == wanted]
        if len(exact) == 1:
            return exact[0]
        if len(exact) > 1:
            raise UsageError(self._ambiguous(text, exact, "have exactly this title"))
        matches = [m for m, title in enumerate(self._lower_titles) if wanted in title]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UsageError(self._ambiguous(text, matches, "contain it"))
        close = difflib.get_close_matches(text, list(self.titles), n=5, cutoff=0.6)
        hint = "; did you mean: " + ", ".join(repr(t) for t in close) if close else ""
        raise UsageError(f"no movie title contains {text!r}{hint}")

    def _ambiguous(self, text: str, matches: list[int], how: str) -> str:
        shown = sorted(matches, key=lambda m: (-int(self.rating_counts[m]), m))[:MAX_CANDIDATES]
        lines = "\n".join(f"  {self.describe(m)}" for m in shown)
        more = f"\n  … and {len(matches) - len(shown)} more" if len(matches) > len(shown) else ""
        return (
            f"{text!r} is ambiguous: {len(matches)} movies {how} (most rated first):\n"
            f"{lines}{more}\ngive the full title or the movie id"
        )


def parse_rating_spec(spec: str) -> tuple[str, float]:
    """Split ``"<title or id>=<rating>"`` at its last ``=`` into (query, rating)."""
    query, sep, value = spec.rpartition("=")
    if not sep or not query.strip():
        raise UsageError(
            f"rating {spec!r} is not of the form <title or movie id>=<rating>, "
            "e.g. 'Toy Story (1995)=5'"
        )
    try:
        rating = float(value)
    except ValueError:
        raise UsageError(f"rating {spec!r}: {value.strip()!r} is not a number") from None
    return query.strip(), rating


def check_rating(rating: float, rating_scale: tuple[float, float, float], what: str) -> None:
    """Raise ``UsageError`` unless ``rating`` is ``low + k·step ≤ high`` for some integer k."""
    low, high, step = rating_scale
    steps = (rating - low) / step
    if not (math.isfinite(rating) and low <= rating <= high and abs(steps - round(steps)) < 1e-6):
        raise UsageError(
            f"rating {rating:g} for {what} is off the scale: ratings go from {low:g} to "
            f"{high:g} in steps of {step:g}"
        )


def parse_user_ratings(
    specs: Sequence[str], catalogue: MovieCatalogue, rating_scale: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Movie indices (int32) and ratings (float32) of a new user's rating specs."""
    if not specs:
        raise UsageError("give at least one rating, e.g. 'Toy Story (1995)=5'")
    items, ratings = [], []
    first_spec: dict[int, str] = {}
    for spec in specs:
        query, rating = parse_rating_spec(spec)
        item = catalogue.resolve(query)
        check_rating(rating, rating_scale, repr(catalogue.titles[item]))
        if item in first_spec:
            raise UsageError(
                f"{catalogue.describe(item)} is rated twice ({first_spec[item]!r} and "
                f"{spec!r}); keep one"
            )
        first_spec[item] = spec
        items.append(item)
        ratings.append(rating)
    return np.asarray(items, dtype=np.int32), np.asarray(ratings, dtype=np.float32)


def top_movies(
    scores: np.ndarray,
    catalogue: MovieCatalogue,
    *,
    n: int = 10,
    min_ratings: int = 100,
    exclude: Sequence[int] | np.ndarray = (),
    score_name: str = "score",
) -> list[dict[str, Any]]:
    """The ``n`` best-scoring movies with ≥ ``min_ratings`` training ratings, not in ``exclude``.

    Highest score first, ties by movie index; NaN scores are never listed. Each entry:
    ``{"rank", "movie_id", "title", <score_name>, "n_ratings"}``. Fewer than ``n`` entries
    when fewer movies qualify; none at all raises ``UsageError``.
    """
    if n < 1:
        raise UsageError(f"the number of movies to list must be at least 1, got {n}")
    scores = np.asarray(scores, dtype=np.float64)
    counts = np.asarray(catalogue.rating_counts)
    eligible = (counts >= min_ratings) & ~np.isnan(scores)
    eligible[np.asarray(exclude, dtype=np.int64)] = False
    candidates = np.flatnonzero(eligible)
    if candidates.size == 0:
        raise UsageError(
            f"no movie is left to list: none has at least {min_ratings} training ratings "
            "outside the excluded ones; lower the minimum number of ratings"
        )
    best = candidates[np.lexsort((candidates, -scores[candidates]))][:n]
    return [
        {
            "rank": rank,
            "movie_id": int(catalogue.movie_ids[m]),
            "title": catalogue.titles[m],
            score_name: float(scores[m]),
            "n_ratings": int(counts[m]),
        }
        for rank, m in enumerate(best, start=1)
    ]


def predicted_ratings(
    user_bias: float,
    user_factors: np.ndarray,
    *,
    mu: float,
    item_bias: np.ndarray,
    item_factors: np.ndarray,
) -> np.ndarray:
    """``r̂_n = μ + b + c_n + uᵀv_n`` for every movie n (float64)."""
    item_factors = np.asarray(item_factors, dtype=np.float64)
    return (
        mu
        + user_bias
        + np.asarray(item_bias, dtype=np.float64)
        + item_factors @ np.asarray(user_factors, dtype=np.float64)
    )


def recommend_new_user(
    model: FactorModel,
    catalogue: MovieCatalogue,
    specs: Sequence[str],
    *,
    rating_scale: tuple[float, float, float],
    n: int = 10,
    min_ratings: int = 100,
    fold_in: FoldIn = fold_in_user,
) -> dict[str, Any]:
    """Fold a new user's rating specs into ``model`` and list the top ``n`` movies for them.

    Only ``model.mu``, ``model.item_bias`` and ``model.item_factors`` are read (and whatever
    ``fold_in`` reads: by default ``core.foldin.fold_in_user``, which uses the model's
    regularisation). Returns ``{"ratings": [{"movie_id", "title", "rating"}], "user_bias",
    "min_ratings", "recommendations": [{"rank", "movie_id", "title", "score", "n_ratings"}]}``
    where ``score`` is the predicted rating.
    """
    if len(catalogue) != len(model.item_bias):
        raise ValueError(
            f"catalogue has {len(catalogue)} movies but the model has {len(model.item_bias)}"
        )
    items, ratings = parse_user_ratings(specs, catalogue, rating_scale)
    user_bias, user_factors = fold_in(model, items, ratings)
    scores = predicted_ratings(
        user_bias,
        user_factors,
        mu=model.mu,
        item_bias=model.item_bias,
        item_factors=model.item_factors,
    )
    return {
        "ratings": [
            {
                "movie_id": int(catalogue.movie_ids[m]),
                "title": catalogue.titles[m],
                "rating": float(r),
            }
            for m, r in zip(items, ratings, strict=True)
        ],
        "user_bias": float(user_bias),
        "min_ratings": int(min_ratings),
        "recommendations": top_movies(
            scores, catalogue, n=n, min_ratings=min_ratings, exclude=items
        ),
    }


def cosine_to(item_factors: np.ndarray, item: int) -> np.ndarray:
    """Cosine between every movie's factors and movie ``item``'s (NaN for zero vectors)."""
    factors = np.asarray(item_factors, dtype=np.float64)
    norms = np.linalg.norm(factors, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (factors @ factors[item]) / (norms * norms[item])


def similar_movies(
    item_factors: np.ndarray,
    catalogue: MovieCatalogue,
    query: str,
    *,
    n: int = 10,
    min_ratings: int = 100,
) -> dict[str, Any]:
    """The ``n`` movies whose factor vectors are closest by cosine to the movie ``query`` names.

    The query movie itself is left out; the others must have ≥ ``min_ratings`` training
    ratings. Returns ``{"movie": {"movie_id", "title", "n_ratings"}, "min_ratings",
    "similar": [{"rank", "movie_id", "title", "cosine", "n_ratings"}]}``.
    """
    item_factors = np.asarray(item_factors)
    if len(catalogue) != item_factors.shape[0]:
        raise ValueError(
            f"catalogue has {len(catalogue)} movies but item_factors has {item_factors.shape[0]}"
        )
    item = catalogue.resolve(query)
    if item_factors.shape[1] == 0:
        raise UsageError("similar movies need movie factors, but this model is bias-only (K = 0)")
    if not np.any(item_factors[item]):
        raise UsageError(
            f"{catalogue.describe(item)} has an all-zero factor vector, so no direction to "
            "compare with"
        )
    similarity = cosine_to(item_factors, item)
    return {
        "movie": {
            "movie_id": int(catalogue.movie_ids[item]),
            "title": catalogue.titles[item],
            "n_ratings": int(catalogue.rating_counts[item]),
        },
        "min_ratings": int(min_ratings),
        "similar": top_movies(
            similarity, catalogue, n=n, min_ratings=min_ratings, exclude=[item], score_name="cosine"
        ),
    }
