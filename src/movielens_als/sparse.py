"""Rating containers shared by the data layer and the ALS core.

Ratings travel in two shapes: COO triplets (``Ratings``: one entry per rating, in a fixed
order) and compressed rows (``CSR``). ALS reads "all items of user m" from the user-major
CSR and "all users of movie n" from the item-major one, so a ``RatingMatrix`` carries both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
        """Build from triplets; within a row, entries keep their input order (stable sort)."""
        rows = np.asarray(rows)
        order = np.argsort(rows, kind="stable")
        counts = np.bincount(rows, minlength=n_rows)
        indptr = np.zeros(n_rows + 1, dtype=INDPTR_DTYPE)
        np.cumsum(counts, out=indptr[1:])
        return cls(
            indptr,
            np.ascontiguousarray(np.asarray(cols)[order], dtype=INDEX_DTYPE),
            np.ascontiguousarray(np.asarray(vals)[order], dtype=RATING_DTYPE),
            int(n_cols),
        )

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
