"""Rating containers shared by the data layer and the ALS core.

Ratings travel in two shapes: COO triplets (``Ratings``: one entry per rating, in a fixed
order) and compressed rows (``CSR``). ALS reads "all items of user m" from the user-major
CSR and "all users of movie n" from the item-major one, so a ``RatingMatrix`` carries both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

INDEX_DTYPE = np.int32
INDPTR_DTYPE = np.int64
RATING_DTYPE = np.float32


@dataclass(frozen=True)
class Ratings:
    """COO ratings: ``user[i]`` rated ``item[i]`` with ``rating[i]`` (contiguous indices)."""

    user: np.ndarray  # int32
    item: np.ndarray  # int32
    rating: np.ndarray  # float32

    def __post_init__(self) -> None:
        if not (len(self.user) == len(self.item) == len(self.rating)):
            raise ValueError("user, item and rating must have the same length")

    def __len__(self) -> int:
        return len(self.rating)

    @classmethod
    def from_arrays(cls, user, item, rating) -> Ratings:
        return cls(
            np.ascontiguousarray(user, dtype=INDEX_DTYPE),
            np.ascontiguousarray(item, dtype=INDEX_DTYPE),
            np.ascontiguousarray(rating, dtype=RATING_DTYPE),
        )

    def subset(self, mask_or_index: np.ndarray) -> Ratings:
        return Ratings(
            self.user[mask_or_index], self.item[mask_or_index], self.rating[mask_or_index]
        )


@dataclass(frozen=True)
class CSR:
    """Compressed sparse rows: row ``r`` holds ``indices[indptr[r]:indptr[r+1]]`` / ``data[...]``."""

    indptr: np.ndarray  # int64, n_rows + 1
    indices: np.ndarray  # int32
    data: np.ndarray  # float32
    n_cols: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return len(self.indices)

    def row_counts(self) -> np.ndarray:
        return np.diff(self.indptr)

    def row(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.indptr[r], self.indptr[r + 1]
        return self.indices[lo:hi], self.data[lo:hi]

    @classmethod
    def from_coo(cls, rows, cols, vals, n_rows: int, n_cols: int) -> CSR:
        """Build from triplets; within a row, entries keep their input order.

        A counting sort, O(n + n_rows): at 32 M ratings a stable argsort takes seconds.
        """
        rows = np.ascontiguousarray(rows)
        indptr = row_pointers(rows, int(n_rows))
        indices, data = scatter_by_row(
            rows,
            np.ascontiguousarray(cols, dtype=INDEX_DTYPE),
            np.ascontiguousarray(vals, dtype=RATING_DTYPE),
            indptr,
        )
        return cls(indptr, indices, data, int(n_cols))

    def to_coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = np.repeat(np.arange(self.n_rows, dtype=INDEX_DTYPE), self.row_counts())
        return rows, self.indices, self.data

    def transpose(self) -> CSR:
        rows, cols, vals = self.to_coo()
        return CSR.from_coo(cols, rows, vals, self.n_cols, self.n_rows)


@dataclass(frozen=True)
class RatingMatrix:
    """One set of ratings (train, validation or test) in both layouts."""

    by_user: CSR  # rows = users, indices = items
    by_item: CSR  # rows = items, indices = users

    @property
    def n_users(self) -> int:
        return self.by_user.n_rows

    @property
    def n_items(self) -> int:
        return self.by_item.n_rows

    @property
    def nnz(self) -> int:
        return self.by_user.nnz

    @classmethod
    def from_ratings(cls, ratings: Ratings, n_users: int, n_items: int) -> RatingMatrix:
        by_user = CSR.from_coo(ratings.user, ratings.item, ratings.rating, n_users, n_items)
        by_item = CSR.from_coo(ratings.item, ratings.user, ratings.rating, n_items, n_users)
        return cls(by_user, by_item)

    def to_ratings(self) -> Ratings:
        rows, cols, vals = self.by_user.to_coo()
        return Ratings(rows, cols, vals)


# Grouping by row as a counting sort; pure kernels, also used by the data layer.


@njit(cache=True)
def row_pointers(rows: np.ndarray, n_rows: int) -> np.ndarray:
    """``indptr`` of length ``n_rows + 1``: row ``r`` owns ``indptr[r]:indptr[r+1]``."""
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    for r in rows:
        indptr[r + 1] += 1
    for r in range(n_rows):
        indptr[r + 1] += indptr[r]
    return indptr


@njit(cache=True)
def stable_row_order(rows: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Permutation listing the positions of row 0, then row 1, …, each in input order."""
    next_slot = indptr[:-1].copy()
    order = np.empty(len(rows), dtype=np.int64)
    for position in range(len(rows)):
        r = rows[position]
        order[next_slot[r]] = position
        next_slot[r] += 1
    return order


@njit(cache=True)
def scatter_by_row(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, indptr: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """CSR ``indices`` and ``data`` of the triplets, entries of a row in input order."""
    next_slot = indptr[:-1].copy()
    indices = np.empty(len(rows), dtype=np.int32)
    data = np.empty(len(rows), dtype=np.float32)
    for position in range(len(rows)):
        r = rows[position]
        slot = next_slot[r]
        indices[slot] = cols[position]
        data[slot] = vals[position]
        next_slot[r] = slot + 1
    return indices, data
