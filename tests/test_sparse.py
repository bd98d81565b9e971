"""The shared rating containers: CSR building, round trips, transposes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from movielens_als.sparse import CSR, RatingMatrix, Ratings


def _reference_csr(rows, cols, vals, n_rows):
    """Slow, obvious CSR: a stable argsort by row."""
    order = np.argsort(rows, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])
    return indptr, cols[order], vals[order]


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 500),
    n_rows=st.integers(1, 30),
    n_cols=st.integers(1, 30),
)
def test_from_coo_matches_a_stable_argsort(seed, n, n_rows, n_cols):
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, n_rows, n), rng.integers(0, n_cols, n)
    vals = rng.normal(size=n).astype(np.float32)
    csr = CSR.from_coo(rows, cols, vals, n_rows, n_cols)
    indptr, indices, data = _reference_csr(rows, cols, vals, n_rows)
    np.testing.assert_array_equal(csr.indptr, indptr)
    np.testing.assert_array_equal(csr.indices, indices)
    np.testing.assert_array_equal(csr.data, data)
    assert (csr.indptr.dtype, csr.indices.dtype, csr.data.dtype) == (np.int64, np.int32, np.float32)
    assert csr.n_rows == n_rows and csr.n_cols == n_cols


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300))
def test_round_trips_and_transpose(seed, n):
    rng = np.random.default_rng(seed)
    ratings = Ratings.from_arrays(
        rng.integers(0, 12, n), rng.integers(0, 9, n), rng.integers(1, 11, n) / 2
    )
    matrix = RatingMatrix.from_ratings(ratings, 12, 9)
    back = matrix.to_ratings()
    # same multiset of triplets, grouped by user with each user's entries in input order
    order = np.argsort(ratings.user, kind="stable")
    np.testing.assert_array_equal(back.user, ratings.user[order])
    np.testing.assert_array_equal(back.item, ratings.item[order])
    np.testing.assert_array_equal(back.rating, ratings.rating[order])
    # the transpose holds the same entries as the item-major layout (row order may differ)
    transposed = matrix.by_user.transpose()
    np.testing.assert_array_equal(transposed.indptr, matrix.by_item.indptr)
    for got, want in zip(
        _sorted_triplets(transposed), _sorted_triplets(matrix.by_item), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    assert matrix.nnz == n and matrix.n_users == 12 and matrix.n_items == 9


def _sorted_triplets(csr: CSR) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, cols, vals = csr.to_coo()
    key = np.lexsort((vals, cols, rows))
    return rows[key], cols[key], vals[key]
