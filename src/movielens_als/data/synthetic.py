"""A seeded MovieLens stand-in: ratings from a planted low-rank model, in the ml-latest format.

The generative model (all draws from ``numpy.random.default_rng(spec.seed)``):

- genres: movie ``n`` has genre ``g`` with probability ``prevalence_g`` (independently); a
  movie may have none (written ``(no genres listed)``);
- factors: genre embeddings ``w_g ~ N(0, I)``; movie factors
  ``v_n = sqrt(genre_share) * mean_{g ∈ G_n} w_g + sqrt(1 - genre_share) * e_n`` with
  ``e_n ~ N(0, I)`` (the genre mean rescaled to unit root mean square first; a movie without
  genre gets ``e_n`` only), each coordinate then rescaled to unit root mean square; user
  factors ``u_m ~ N(0, I / rank)`` times ``interaction_sd``, so that ``u_m · v_n`` has
  standard deviation about ``interaction_sd``;
- biases: ``b_m ~ N(0, user_bias_sd²)``; ``b_n ~ N(0, item_bias_sd²)`` plus
  ``popularity_bias`` × standardised log popularity (popular movies are rated higher);
- activity: every user rates ``min_ratings_per_user`` movies plus a log-normal share of the
  rest (capped at ``max_user_fraction`` of the catalogue); movies are picked without
  repeats with probability proportional to a log-normal popularity, after one rating of each
  of the ``n_movies`` rated movies has been handed to a random rating slot (so each is rated);
- rating: ``r = μ + b_m + b_n + u_m · v_n + ε``, ``ε ~ N(0, noise_sd²)``, rounded to the
  nearest half star and clipped to [0.5, 5];
- time: user ``m`` is active from a uniform start over a log-normal span of days, each of
  their ratings at a uniform time in that window (clipped to the end of the period).

Rows are written sorted by user, then movie id, like the GroupLens files. The sampling and
rating kernels are Numba loops over the ratings (O(n_ratings) memory and time), so the
ML-32M shape (200,948 users × 84,432 movies, 32,000,204 ratings) is drawn in about 10 s
and written in about 10 s more on two cores.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
from numba import njit

from movielens_als.atomic import atomic_path
from movielens_als.data.parse import MOVIES_COLUMNS, NO_GENRES, RATINGS_COLUMNS
from movielens_als.errors import ConfigError
from movielens_als.sparse import row_pointers, stable_row_order

SPEC_FILE = "synthetic.json"
RATING_LOW, RATING_HIGH, RATING_STEP = 0.5, 5.0, 0.5

# The MovieLens genres with roughly their share of ml-latest movies; more genres than these
# get generic names and a small prevalence.
GENRE_PREVALENCE = {
    "Drama": 0.42,
    "Comedy": 0.30,
    "Thriller": 0.16,
    "Romance": 0.15,
    "Action": 0.14,
    "Crime": 0.11,
    "Horror": 0.10,
    "Documentary": 0.09,
    "Adventure": 0.08,
    "Sci-Fi": 0.07,
    "Mystery": 0.06,
    "Fantasy": 0.06,
    "Children": 0.05,
    "Animation": 0.05,
    "War": 0.04,
    "Musical": 0.03,
    "Western": 0.02,
    "Film-Noir": 0.01,
    "IMAX": 0.01,
}
EXTRA_GENRE_PREVALENCE = 0.02

PRESETS: dict[str, dict[str, Any]] = {
    # a few hundred ratings: unit tests
    "tiny": {"n_users": 25, "n_movies": 80, "n_ratings": 700, "n_unrated_movies": 4, "rank": 4},
    # the ml-latest-small shape
    "small": {"n_users": 610, "n_movies": 9_724, "n_ratings": 100_836, "n_unrated_movies": 18},
    # the ml-32m shape (rated movies; ml-32m lists 87,585 movies, 84,432 of them rated)
    "ml-32m": {
        "n_users": 200_948,
        "n_movies": 84_432,
        "n_ratings": 32_000_204,
        "n_unrated_movies": 3_153,
    },
}


@dataclass(frozen=True)
class SyntheticSpec:
    """Size and parameters of a synthetic release (see the module docstring for the model).

    ``n_movies`` movies are rated (each at least once); ``n_unrated_movies`` more are listed
    in ``movies.csv`` without ratings.
    """

    n_users: int
    n_movies: int
    n_ratings: int
    n_genres: int = 19
    rank: int = 8
    seed: int = 0
    n_unrated_movies: int = 0
    min_ratings_per_user: int = 20
    max_user_fraction: float = 0.4
    user_activity_sigma: float = 1.2
    item_popularity_sigma: float = 1.8
    global_mean: float = 3.5
    user_bias_sd: float = 0.4
    item_bias_sd: float = 0.35
    popularity_bias: float = 0.15
    interaction_sd: float = 0.6
    genre_share: float = 0.5
    noise_sd: float = 0.6
    start_timestamp: int = 789_652_009  # 1995-01-09, the first MovieLens rating
    end_timestamp: int = 1_697_155_200  # 2023-10-13, when ml-32m was generated
    mean_active_days: float = 30.0

    def __post_init__(self) -> None:
        for name in (
            "n_users",
            "n_movies",
            "n_ratings",
            "n_genres",
            "rank",
            "min_ratings_per_user",
        ):
            _require(name, getattr(self, name), lambda v: _is_int(v) and v >= 1, "an integer >= 1")
        _require(
            "n_unrated_movies",
            self.n_unrated_movies,
            lambda v: _is_int(v) and v >= 0,
            "an integer >= 0",
        )
        _require("seed", self.seed, lambda v: _is_int(v) and v >= 0, "an integer >= 0")
        for name in (
            "user_activity_sigma",
            "item_popularity_sigma",
            "user_bias_sd",
            "item_bias_sd",
            "popularity_bias",
            "interaction_sd",
            "noise_sd",
            "mean_active_days",
        ):
            _require(name, getattr(self, name), lambda v: _is_real(v) and v >= 0, "a number >= 0")
        _require(
            "max_user_fraction",
            self.max_user_fraction,
            lambda v: _is_real(v) and 0 < v <= 1,
            "a number in (0, 1]",
        )
        _require(
            "genre_share",
            self.genre_share,
            lambda v: _is_real(v) and 0 <= v <= 1,
            "a number in [0, 1]",
        )
        _require(
            "end_timestamp",
            self.end_timestamp,
            lambda v: _is_int(v) and v > self.start_timestamp,
            "an integer > start_timestamp",
        )
        if self.min_ratings_per_user > self.n_movies:
            raise ConfigError(
                f"synthetic.min_ratings_per_user: {self.min_ratings_per_user} exceeds "
                f"n_movies={self.n_movies}"
            )
        low = max(self.n_users * self.min_ratings_per_user, self.n_movies)
        high = self.n_users * self.max_ratings_per_user
        if not low <= self.n_ratings <= high:
            raise ConfigError(
                f"synthetic.n_ratings: {self.n_ratings} is not in [{low}, {high}] "
                f"(every user rates {self.min_ratings_per_user} to {self.max_ratings_per_user} "
                f"movies and every movie is rated)"
            )

    @property
    def max_ratings_per_user(self) -> int:
        return max(self.min_ratings_per_user, int(self.max_user_fraction * self.n_movies))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SyntheticSpec:
        """A named size (``tiny``, ``small``, ``ml-32m``) with fields overridden by keyword."""
        if name not in PRESETS:
            raise ConfigError(
                f"dataset.synthetic.preset: unknown preset {name!r}; known: {', '.join(PRESETS)}"
            )
        return cls(**{**PRESETS[name], **overrides})


def generate(spec: SyntheticSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw a release from the planted model.

    Returns ``(ratings, movies)`` with the columns and dtypes of
    :func:`~movielens_als.data.parse.read_ratings` and
    :func:`~movielens_als.data.parse.read_movies` (genres as lists), rows in file order.
    """
    rng = np.random.default_rng(spec.seed)
    n_catalogue = spec.n_movies + spec.n_unrated_movies
    genre_names = _genre_names(spec.n_genres)
    prevalence = np.array([GENRE_PREVALENCE.get(g, EXTRA_GENRE_PREVALENCE) for g in genre_names])
    has_genre = rng.random((n_catalogue, spec.n_genres)) < prevalence

    genre_embedding = rng.standard_normal((spec.n_genres, spec.rank))
    n_genres_of_movie = has_genre.sum(axis=1, keepdims=True)
    genre_mean = (has_genre @ genre_embedding) / np.maximum(n_genres_of_movie, 1)
    genre_mean /= _root_mean_square(genre_mean[n_genres_of_movie[:, 0] > 0])
    item_factors = np.sqrt(spec.genre_share) * genre_mean + np.sqrt(
        1 - spec.genre_share
    ) * rng.standard_normal((n_catalogue, spec.rank))
    item_factors /= _root_mean_square(item_factors, axis=0)
    user_factors = rng.standard_normal((spec.n_users, spec.rank)) * (
        spec.interaction_sd / np.sqrt(spec.rank)
    )

    # which catalogue entries get ratings: a random subset, so unrated ids are interleaved
    rated = np.sort(rng.permutation(n_catalogue)[: spec.n_movies])
    log_popularity = rng.normal(0.0, spec.item_popularity_sigma, spec.n_movies)
    popularity = np.exp(log_popularity - log_popularity.max())
    standardised = (log_popularity - log_popularity.mean()) / max(log_popularity.std(), 1e-12)
    item_bias = (
        rng.normal(0.0, spec.item_bias_sd, spec.n_movies) + spec.popularity_bias * standardised
    )
    user_bias = rng.normal(0.0, spec.user_bias_sd, spec.n_users)

    user_counts = _user_counts(spec, rng)
    user_indptr = np.zeros(spec.n_users + 1, dtype=np.int64)
    np.cumsum(user_counts, out=user_indptr[1:])
    # one rating of every movie goes to a distinct random slot, hence to a user with room
    slots = rng.choice(spec.n_ratings, size=spec.n_movies, replace=False)
    owner = (np.searchsorted(user_indptr, slots, side="right") - 1).astype(np.int32)
    owner_indptr = row_pointers(owner, spec.n_users)
    owned_items = stable_row_order(owner, owner_indptr).astype(np.int32)  # item = position
    items = _sample_items(
        rng, user_indptr, owner_indptr, owned_items, np.cumsum(popularity), popularity
    )
    del slots, owner, owned_items

    start = rng.integers(spec.start_timestamp, spec.end_timestamp, spec.n_users)
    active_seconds = rng.lognormal(
        np.log(max(spec.mean_active_days, 1e-3) * 86_400), 1.5, spec.n_users
    )
    ratings, timestamps = _rate(
        rng,
        user_indptr,
        items,
        spec.global_mean,
        user_bias,
        item_bias,
        np.ascontiguousarray(user_factors),
        np.ascontiguousarray(item_factors[rated]),
        spec.noise_sd,
        start,
        active_seconds,
        spec.end_timestamp,
    )

    catalogue_ids = _movie_ids(n_catalogue, rng)
    users = np.repeat(np.arange(1, spec.n_users + 1, dtype=np.int32), user_counts)
    ratings_df = pd.DataFrame(  # the dtypes parse.read_ratings gives
        {
            "userId": users,
            "movieId": catalogue_ids[rated][items].astype(np.int32),
            "rating": ratings,
            "timestamp": timestamps,
        },
        copy=False,
    )
    names = np.asarray(genre_names, dtype=object)
    movies_df = pd.DataFrame(
        {
            "movieId": catalogue_ids,
            "title": pd.Series(_titles(catalogue_ids, rng), dtype=str),
            "genres": pd.Series([names[row].tolist() for row in has_genre], dtype=object),
        }
    )
    return ratings_df, movies_df


def write_release(spec: SyntheticSpec, folder: str | os.PathLike[str]) -> Path:
    """Generate and write ``ratings.csv``, ``movies.csv`` (ml-latest format) and
    ``synthetic.json`` (the spec) into ``folder``, which appears atomically. Returns it."""
    folder = Path(folder)
    ratings_df, movies_df = generate(spec)
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        _write_ratings_csv(ratings_df, tmp / "ratings.csv")
        del ratings_df
        _write_movies_csv(movies_df, tmp / "movies.csv")
        (tmp / SPEC_FILE).write_text(json.dumps(dataclasses.asdict(spec), indent=2) + "\n")
    return folder


def read_spec(folder: str | os.PathLike[str]) -> SyntheticSpec | None:
    """The spec a folder written by :func:`write_release` was generated from (None if none)."""
    path = Path(folder) / SPEC_FILE
    if not path.is_file():
        return None
    return SyntheticSpec(**json.loads(path.read_text()))


# --------------------------------------------------------------------------- pieces


def _user_counts(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """Ratings per user: the minimum plus a log-normal share of the rest, each capped."""
    cap = spec.max_ratings_per_user
    counts = np.full(spec.n_users, spec.min_ratings_per_user, dtype=np.int64)
    weights = rng.lognormal(0.0, spec.user_activity_sigma, spec.n_users)
    remaining = spec.n_ratings - int(counts.sum())
    while remaining > 0:
        open_users = counts < cap
        share = np.where(open_users, weights, 0.0)
        counts += rng.multinomial(remaining, share / share.sum())
        overflow = np.maximum(counts - cap, 0)
        counts -= overflow
        remaining = int(overflow.sum())
    return counts


@njit(cache=True)
def _sample_items(rng, user_indptr, owner_indptr, owned_items, cumulative, popularity):
    """Per user, its handed-out items, then popularity draws rejecting repeats; sorted.

    A user whose draws keep landing on taken items (a heavy user that has exhausted the
    popular movies) finishes with an exact weighted sample of the untaken movies
    (Efraimidis–Spirakis keys log(U) / w, the largest win).
    """
    n_users = len(user_indptr) - 1
    n_items = len(popularity)
    total = cumulative[-1]
    items = np.empty(user_indptr[-1], dtype=np.int32)
    taken_by = np.full(n_items, -1, dtype=np.int64)
    for u in range(n_users):
        lo, hi = user_indptr[u], user_indptr[u + 1]
        k = lo
        for t in range(owner_indptr[u], owner_indptr[u + 1]):
            taken_by[owned_items[t]] = u
            items[k] = owned_items[t]
            k += 1
        misses = 0
        patience = 4 * (hi - k) + 64
        while k < hi and misses <= patience:
            j = np.searchsorted(cumulative, rng.random() * total, side="right")
            j = min(j, n_items - 1)
            if taken_by[j] == u:
                misses += 1
                continue
            taken_by[j] = u
            items[k] = j
            k += 1
        if k < hi:
            free = np.flatnonzero(taken_by != u)
            keys = np.empty(len(free))
            for t in range(len(free)):
                keys[t] = np.log(rng.random()) / popularity[free[t]]
            chosen = free[np.argsort(-keys)[: hi - k]]
            for j in chosen:
                taken_by[j] = u
                items[k] = j
                k += 1
        items[lo:hi] = np.sort(items[lo:hi])
    return items


@njit(cache=True)
def _rate(
    rng,
    user_indptr,
    items,
    mean,
    user_bias,
    item_bias,
    user_factors,
    item_factors,
    noise_sd,
    start,
    active_seconds,
    end,
):
    """r = μ + b_m + b_n + u_m·v_n + ε rounded to half stars in [0.5, 5]; a time per rating."""
    n = len(items)
    ratings = np.empty(n, dtype=np.float32)
    timestamps = np.empty(n, dtype=np.int64)
    rank = user_factors.shape[1]
    for u in range(len(user_indptr) - 1):
        for k in range(user_indptr[u], user_indptr[u + 1]):
            j = items[k]
            score = mean + user_bias[u] + item_bias[j] + noise_sd * rng.standard_normal()
            for f in range(rank):
                score += user_factors[u, f] * item_factors[j, f]
            half_stars = min(max(np.rint(score * 2.0), 1.0), 10.0)
            ratings[k] = half_stars / 2.0
            timestamps[k] = min(start[u] + np.int64(rng.random() * active_seconds[u]), end)
    return ratings, timestamps


def _root_mean_square(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """RMS (1 where there is nothing to scale: no values, or all zero)."""
    if values.size == 0:
        return 1.0
    rms = np.sqrt(np.mean(values**2, axis=axis, keepdims=axis is not None))
    return np.where(rms > 0, rms, 1.0)


def _movie_ids(n_catalogue: int, rng: np.random.Generator) -> np.ndarray:
    """Ascending movie ids with gaps (as in MovieLens, where ids reach ~3× the count)."""
    return np.sort(rng.choice(3 * n_catalogue, size=n_catalogue, replace=False)) + 1


def _titles(movie_ids: np.ndarray, rng: np.random.Generator) -> list[str]:
    years = rng.integers(1920, 2024, len(movie_ids))
    # every 8th title ends in ", The" (a quoted comma in CSV), every 13th holds a colon
    return [
        f"Movie {movie_id}{', The' if movie_id % 8 == 0 else ''}"
        f"{': Part II' if movie_id % 13 == 0 else ''} ({year})"
        for movie_id, year in zip(movie_ids.tolist(), years.tolist(), strict=True)
    ]


def _genre_names(n_genres: int) -> list[str]:
    known = list(GENRE_PREVALENCE)
    return sorted(known[:n_genres] + [f"Genre {g + 1}" for g in range(len(known), n_genres)])


def _write_ratings_csv(ratings_df: pd.DataFrame, path: Path) -> None:
    """pyarrow's multithreaded writer; ratings as ``4.0``/``4.5`` strings like GroupLens."""
    half_stars = np.rint(ratings_df["rating"].to_numpy() * 2).astype(np.int8) - 1
    labels = pa.array([f"{(k + 1) / 2:.1f}" for k in range(10)])
    table = pa.table(
        {
            "userId": ratings_df["userId"].to_numpy(),
            "movieId": ratings_df["movieId"].to_numpy(),
            "rating": pa.DictionaryArray.from_arrays(pa.array(half_stars), labels),
            "timestamp": ratings_df["timestamp"].to_numpy(),
        }
    )
    with open(path, "wb") as fh:
        fh.write((",".join(RATINGS_COLUMNS) + "\n").encode())
        pcsv.write_csv(table, fh, pcsv.WriteOptions(include_header=False, quoting_style="none"))


def _write_movies_csv(movies_df: pd.DataFrame, path: Path) -> None:
    """Quotes only where needed (titles with commas), as GroupLens does."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MOVIES_COLUMNS)
        writer.writerows(
            (movie_id, title, "|".join(genres) if genres else NO_GENRES)
            for movie_id, title, genres in zip(
                movies_df["movieId"].tolist(),
                movies_df["title"],
                movies_df["genres"],
                strict=True,
            )
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and np.isfinite(value)
    )


def _require(name: str, value: Any, check, what: str) -> None:
    if not check(value):
        raise ConfigError(f"synthetic.{name}: {value!r} is not {what}")
