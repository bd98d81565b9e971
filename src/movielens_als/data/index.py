"""Map raw MovieLens ids to contiguous indices and store the ratings as compact arrays.

Users and movies are numbered in ascending raw-id order (as the notebook does); only movies
with at least one rating get an index. Ratings keep their file order, which the notebook's
split depends on.

On disk an index is a folder holding ``index.npz`` (uncompressed, no pickles) and
``index.json`` (counts, genre names, rating scale); see :func:`save_index`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movielens_als.atomic import atomic_path, load_npz, save_npz, write_json
from movielens_als.data._kernels import (
    dense_ranks,
    first_off_scale,
    scale_counts,
    superseded_duplicates,
)
from movielens_als.data.registry import Release
from movielens_als.errors import DataError
from movielens_als.sparse import CSR, Ratings

log = logging.getLogger(__name__)

INDEX_ARRAYS = "index.npz"
INDEX_META = "index.json"
FORMAT_VERSION = 1
N_EXAMPLES = 5  # how many example ids a metric about odd rows lists


@dataclass(frozen=True)
class IndexedData:
    """Ratings with contiguous user and movie indices, plus what is known about the movies.

    ``ratings`` and ``timestamp`` are in file order (duplicates removed). ``user_ids[u]`` is
    the raw id of user index ``u`` (ascending); ``movie_ids[m]``, ``titles[m]`` and row ``m``
    of ``movie_genres`` (genre indices into ``genre_names``, data 1.0; an empty row = no
    genre) describe movie index ``m``.
    """

    ratings: Ratings
    timestamp: np.ndarray
    user_ids: np.ndarray
    movie_ids: np.ndarray
    titles: list[str]
    genre_names: list[str]
    movie_genres: CSR
    rating_scale: tuple[float, float, float]

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_movies(self) -> int:
        return len(self.movie_ids)

    @property
    def n_genres(self) -> int:
        return len(self.genre_names)


def build_index(
    ratings_df: pd.DataFrame, movies_df: pd.DataFrame, release: Release
) -> tuple[IndexedData, dict[str, Any]]:
    """Index the output of ``read_ratings`` / ``read_movies``.

    Duplicate (user, movie) pairs keep the rating with the latest timestamp (ties: the last
    in the file); ratings of movies absent from the movie table are kept with title ``""``
    and no genre. Both are counted in the metrics and logged as warnings. The genre
    vocabulary is the sorted set of genres of the indexed (rated) movies. A negative
    timestamp is a :class:`DataError` (the policy of
    :func:`movielens_als.data.parse.read_ratings`, which refuses it naming the line; checked
    again here for frames that come from elsewhere), so ``timestamp_min`` is never negative.

    Returns the index and its metrics: ``n_ratings``, ``n_users``, ``n_movies``,
    ``n_genres``, ``sparsity``, ``rating_histogram`` (rating → count over the release's
    scale), ``n_duplicates_dropped``, ``n_ratings_unknown_movie`` (+ examples) and more.
    """
    n_read = len(ratings_df)
    if n_read == 0:
        raise DataError(f"{release.name}: no ratings to index")
    user, user_ids = _dense_codes(ratings_df["userId"].to_numpy(), "userId")
    item, movie_ids = _dense_codes(ratings_df["movieId"].to_numpy(), "movieId")
    rating = np.ascontiguousarray(ratings_df["rating"].to_numpy(), dtype=np.float32)
    timestamp = np.ascontiguousarray(ratings_df["timestamp"].to_numpy(), dtype=np.int64)
    off_scale = first_off_scale(rating, *release.rating_scale)
    if off_scale >= 0:
        raise DataError(
            f"{release.name}: rating {float(rating[off_scale]):g} of userId "
            f"{user_ids[user[off_scale]]}, movieId {movie_ids[item[off_scale]]} (row "
            f"{off_scale}) is off the scale {release.rating_scale}"
        )
    negative = np.flatnonzero(timestamp < 0)
    if len(negative):
        row = int(negative[0])
        raise DataError(
            f"{release.name}: timestamp {int(timestamp[row])} of userId {user_ids[user[row]]}, "
            f"movieId {movie_ids[item[row]]} (row {row}) is negative (before 1970-01-01; "
            f"{len(negative)} negative in all); MovieLens times are seconds since then"
        )

    superseded = superseded_duplicates(user, item, timestamp, len(user_ids), len(movie_ids))
    n_duplicates = int(superseded.sum())
    duplicate_examples: list[list[int]] = []
    if n_duplicates:
        kept = ~superseded
        dropped = np.flatnonzero(superseded)[:N_EXAMPLES]
        duplicate_examples = [[int(user_ids[user[p]]), int(movie_ids[item[p]])] for p in dropped]
        log.warning(
            "%s: %d duplicate (userId, movieId) ratings dropped, keeping the latest of each "
            "pair; e.g. %s",
            release.name,
            n_duplicates,
            duplicate_examples,
        )
        user, item, rating, timestamp = user[kept], item[kept], rating[kept], timestamp[kept]
    del superseded

    catalogue_ids = movies_df["movieId"].to_numpy(dtype=np.int64)
    row_of_movie = pd.Index(catalogue_ids).get_indexer(movie_ids)
    known = row_of_movie >= 0
    unknown_movies = movie_ids[~known]
    n_ratings_unknown = int(np.bincount(item, minlength=len(movie_ids))[~known].sum())
    if len(unknown_movies):
        log.warning(
            "%s: %d ratings of %d movies missing from the movie file (kept with no title "
            "and no genre); e.g. movieId %s",
            release.name,
            n_ratings_unknown,
            len(unknown_movies),
            unknown_movies[:N_EXAMPLES].tolist(),
        )

    titles_in_file = movies_df["title"].to_numpy(dtype=object)
    titles = np.full(len(movie_ids), "", dtype=object)
    titles[known] = titles_in_file[row_of_movie[known]]
    genre_lists = np.empty(len(movie_ids), dtype=object)
    genre_lists.fill(())
    genre_lists[known] = movies_df["genres"].to_numpy(dtype=object)[row_of_movie[known]]
    genre_names, movie_genres = _genre_matrix(genre_lists)

    ratings = Ratings.from_arrays(user, item, rating)
    data = IndexedData(
        ratings=ratings,
        timestamp=timestamp,
        user_ids=user_ids,
        movie_ids=movie_ids,
        titles=titles.tolist(),
        genre_names=genre_names,
        movie_genres=movie_genres,
        rating_scale=tuple(float(v) for v in release.rating_scale),
    )
    metrics = {
        "dataset": release.name,
        "n_ratings_read": n_read,
        "n_ratings": len(ratings),
        "n_users": data.n_users,
        "n_movies": data.n_movies,
        "n_genres": data.n_genres,
        "sparsity": 1.0 - len(ratings) / (data.n_users * data.n_movies),
        "rating_mean": float(rating.mean(dtype=np.float64)),
        "rating_histogram": rating_histogram(rating, release.rating_scale),
        "n_duplicates_dropped": n_duplicates,
        "duplicate_examples": duplicate_examples,
        "n_movies_in_file": len(catalogue_ids),
        "n_movies_unrated": int(len(catalogue_ids) - known.sum()),
        "n_movies_without_genre": int((movie_genres.row_counts() == 0).sum()),
        "n_movies_unknown": len(unknown_movies),
        "n_ratings_unknown_movie": n_ratings_unknown,
        "unknown_movie_examples": unknown_movies[:N_EXAMPLES].tolist(),
        "timestamp_min": int(timestamp.min()),
        "timestamp_max": int(timestamp.max()),
    }
    return data, metrics


def rating_histogram(rating: np.ndarray, scale: tuple[float, float, float]) -> dict[str, int]:
    """Count of each value of the scale, keyed ``"0.5"``, ``"1.0"``, … (zeros included)."""
    low, high, step = scale
    n_values = round((high - low) / step) + 1
    counts = scale_counts(rating, low, step, n_values)
    return {f"{low + k * step:.1f}": int(counts[k]) for k in range(n_values)}


def save_index(data: IndexedData, folder: str | os.PathLike[str]) -> None:
    """Write ``folder/index.npz`` and ``folder/index.json`` (the folder appears atomically).

    ``index.npz`` arrays: ``user``, ``item`` (int32), ``rating`` (float32), ``timestamp``
    (int64) per rating in file order; ``user_ids``, ``movie_ids`` (int64 raw ids);
    ``genre_indptr`` (int64), ``genre_indices`` (int32): the movie → genre CSR;
    ``title_utf8`` (uint8) and ``title_offsets`` (int64): title ``m`` is the UTF-8 bytes
    ``title_utf8[title_offsets[m]:title_offsets[m+1]]``.
    """
    encoded = [title.encode("utf-8") for title in data.titles]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(title) for title in encoded], out=offsets[1:])
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        save_npz(
            tmp / INDEX_ARRAYS,
            user=data.ratings.user,
            item=data.ratings.item,
            rating=data.ratings.rating,
            timestamp=data.timestamp,
            user_ids=data.user_ids,
            movie_ids=data.movie_ids,
            genre_indptr=data.movie_genres.indptr,
            genre_indices=data.movie_genres.indices,
            title_utf8=np.frombuffer(b"".join(encoded), dtype=np.uint8),
            title_offsets=offsets,
        )
        write_json(
            tmp / INDEX_META,
            {
                "format_version": FORMAT_VERSION,
                "n_ratings": len(data.ratings),
                "n_users": data.n_users,
                "n_movies": data.n_movies,
                "n_genres": data.n_genres,
                "genre_names": data.genre_names,
                "rating_scale": list(data.rating_scale),
            },
        )


def load_index(folder: str | os.PathLike[str]) -> IndexedData:
    """Read an index written by :func:`save_index`; a :class:`DataError` if it is missing
    or inconsistent."""
    folder = Path(folder)
    meta_path, arrays_path = folder / INDEX_META, folder / INDEX_ARRAYS
    for path in (meta_path, arrays_path):
        if not path.is_file():
            raise DataError(f"{path}: missing; run the index stage first")
    try:
        meta = json.loads(meta_path.read_text())
        arrays = load_npz(arrays_path)
    except (ValueError, OSError) as exc:
        raise DataError(f"{folder}: unreadable index ({exc})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{meta_path}: format_version {meta.get('format_version')!r}, "
            f"expected {FORMAT_VERSION}; rebuild the index"
        )
    expected = {
        "user": meta["n_ratings"],
        "item": meta["n_ratings"],
        "rating": meta["n_ratings"],
        "timestamp": meta["n_ratings"],
        "user_ids": meta["n_users"],
        "movie_ids": meta["n_movies"],
        "genre_indptr": meta["n_movies"] + 1,
        "title_offsets": meta["n_movies"] + 1,
    }
    for key, length in expected.items():
        if key not in arrays or len(arrays[key]) != length:
            raise DataError(f"{arrays_path}: array {key!r} is missing or not of length {length}")
    title_bytes = arrays["title_utf8"].tobytes()
    offsets = arrays["title_offsets"]
    titles = [
        title_bytes[offsets[m] : offsets[m + 1]].decode("utf-8") for m in range(meta["n_movies"])
    ]
    genre_indices = arrays["genre_indices"]
    return IndexedData(
        ratings=Ratings(arrays["user"], arrays["item"], arrays["rating"]),
        timestamp=arrays["timestamp"],
        user_ids=arrays["user_ids"],
        movie_ids=arrays["movie_ids"],
        titles=titles,
        genre_names=list(meta["genre_names"]),
        movie_genres=CSR(
            arrays["genre_indptr"],
            genre_indices,
            np.ones(len(genre_indices), dtype=np.float32),
            len(meta["genre_names"]),
        ),
        rating_scale=tuple(float(v) for v in meta["rating_scale"]),
    )


def _dense_codes(raw_ids: np.ndarray, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(code of each id as int32, the distinct ids ascending): code = rank among distinct ids.

    Ids that span a modest range (MovieLens ids are below a few hundred thousand) are ranked
    with a presence table in linear time; others fall back to a sort.
    """
    low, high = int(raw_ids.min()), int(raw_ids.max())
    span = high - low + 1
    if span <= max(4 * len(raw_ids), 1 << 22):
        codes, distinct = dense_ranks(raw_ids, low, span)
    else:
        distinct, codes = np.unique(raw_ids, return_inverse=True)
    if len(distinct) > np.iinfo(np.int32).max:
        raise DataError(f"{column}: {len(distinct)} distinct ids do not fit int32 indices")
    return codes.astype(np.int32, copy=False), distinct.astype(np.int64, copy=False)


def _genre_matrix(genre_lists: np.ndarray) -> tuple[list[str], CSR]:
    """Sorted genre vocabulary and the movie → genre CSR (a genre listed twice counts once)."""
    lengths = np.fromiter(
        (len(genres) for genres in genre_lists), dtype=np.int64, count=len(genre_lists)
    )
    flat = np.array(list(chain.from_iterable(genre_lists)), dtype=object)
    names = sorted(set(flat.tolist()))
    codes = pd.Index(names).get_indexer(flat) if len(flat) else np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(len(genre_lists), dtype=np.int64), lengths)
    pair = np.unique(rows * max(len(names), 1) + codes)  # sorted by (movie, genre), distinct
    rows, codes = np.divmod(pair, max(len(names), 1))
    return names, CSR.from_coo(
        rows, codes, np.ones(len(rows), dtype=np.float32), len(genre_lists), len(names)
    )
