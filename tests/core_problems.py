"""Small random rating problems for the ALS core tests (built from movielens_als.sparse only)."""

from __future__ import annotations

import numpy as np

from movielens_als.sparse import CSR, RatingMatrix, Ratings


def random_ratings(
    seed: int, n_users: int = 40, n_items: int = 30, n_ratings: int = 400
) -> tuple[Ratings, int, int]:
    """Distinct (user, item) pairs with half-star ratings, plus deliberate edge cases.

    The last user has exactly one rating, the second-to-last user none; the last movie has
    no rating and the second-to-last exactly one.
    """
    rng = np.random.default_rng(seed)
    core_users, core_items = n_users - 2, n_items - 2
    pairs = rng.choice(
        core_users * core_items, size=min(n_ratings, core_users * core_items), replace=False
    )
    users = list(pairs // core_items)
    items = list(pairs % core_items)
    users.append(n_users - 1)  # the user with a single rating …
    items.append(n_items - 2)  # … on the movie with a single rating
    ratings = rng.integers(1, 11, size=len(users)) / 2.0
    return Ratings.from_arrays(users, items, ratings), n_users, n_items


def random_problem(seed: int, **sizes: int) -> tuple[RatingMatrix, Ratings]:
    """Train matrix and its COO ratings (see ``random_ratings``)."""
    ratings, n_users, n_items = random_ratings(seed, **sizes)
    return RatingMatrix.from_ratings(ratings, n_users, n_items), ratings


def random_genres(seed: int, n_items: int, n_genres: int = 5) -> CSR:
    """Each movie gets 0–3 distinct genres; movie 0 has none, genre n_genres−1 is unused."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for item in range(1, n_items):
        for genre in rng.choice(n_genres - 1, size=rng.integers(0, 4), replace=False):
            rows.append(item)
            cols.append(genre)
    return CSR.from_coo(
        np.array(rows, dtype=np.int64),
        np.array(cols, dtype=np.int64),
        np.ones(len(rows)),
        n_items,
        n_genres,
    )


def split_ratings(
    ratings: Ratings, seed: int, test_fraction: float = 0.2
) -> tuple[Ratings, Ratings]:
    """Random train/test partition of a rating set."""
    mask = np.random.default_rng(seed).random(len(ratings)) < test_fraction
    return ratings.subset(~mask), ratings.subset(mask)
