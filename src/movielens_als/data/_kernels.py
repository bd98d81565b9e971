"""Numba kernels of the data layer: de-duplication and selection (grouping by row lives in
``movielens_als.sparse``).

Pure functions over arrays (no I/O, logging or config).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from movielens_als.sparse import row_pointers, stable_row_order


@njit(cache=True)
def superseded_duplicates(
    user: np.ndarray, item: np.ndarray, timestamp: np.ndarray, n_users: int, n_items: int
) -> np.ndarray:
    """Mask of ratings that another rating of the same (user, item) pair supersedes.

    Of the ratings of one pair, the one with the latest timestamp is kept; among equal
    timestamps, the last in file order.
    """
    indptr = row_pointers(user, n_users)
    order = stable_row_order(user, indptr)
    owner = np.full(n_items, -1, dtype=np.int64)  # user whose rating of the item is in kept_at
    kept_at = np.zeros(n_items, dtype=np.int64)
    superseded = np.zeros(len(user), dtype=np.bool_)
    for u in range(n_users):
        for k in range(indptr[u], indptr[u + 1]):
            position = order[k]  # increasing within the user: file order
            i = item[position]
            if owner[i] != u:
                owner[i] = u
                kept_at[i] = position
            elif timestamp[position] >= timestamp[kept_at[i]]:
                superseded[kept_at[i]] = True
                kept_at[i] = position
            else:
                superseded[position] = True
    return superseded


@njit(cache=True)
def latest_per_row(
    rows: np.ndarray, timestamp: np.ndarray, n_rows: int, n_latest: int
) -> np.ndarray:
    """Mask of each row's ``n_latest`` entries with the latest timestamps (ties: the later
    position counts as later). A row with fewer entries has all of them selected."""
    indptr = row_pointers(rows, n_rows)
    order = stable_row_order(rows, indptr)
    selected = np.zeros(len(rows), dtype=np.bool_)
    for r in range(n_rows):
        lo, hi = indptr[r], indptr[r + 1]
        if hi - lo <= n_latest:
            for k in range(lo, hi):
                selected[order[k]] = True
            continue
        # positions within a row are increasing, so a stable sort by timestamp orders
        # (timestamp, position) and the last n_latest are the latest
        positions = order[lo:hi]
        by_time = np.argsort(timestamp[positions], kind="mergesort")
        for k in range(hi - lo - n_latest, hi - lo):
            selected[positions[by_time[k]]] = True
    return selected


@njit(cache=True)
def first_off_scale(values: np.ndarray, low: float, high: float, step: float) -> int:
    """Position of the first value that is NaN, outside [low, high] or not low + k·step;
    -1 when all are on the scale."""
    for position in range(len(values)):
        value = values[position]
        if not (low <= value <= high):  # NaN fails every comparison
            return position
        steps = (value - low) / step
        if abs(steps - np.rint(steps)) > 1e-4:
            return position
    return -1


@njit(cache=True)
def dense_ranks(raw_ids: np.ndarray, low: int, span: int) -> tuple[np.ndarray, np.ndarray]:
    """(rank of each id among the distinct ids as int32, the distinct ids ascending) for ids
    in ``[low, low + span)``: a presence table instead of a sort, O(n + span)."""
    present = np.zeros(span, dtype=np.bool_)
    for raw in raw_ids:
        present[raw - low] = True
    rank_of = np.empty(span, dtype=np.int32)
    n_distinct = 0
    for offset in range(span):
        rank_of[offset] = n_distinct
        n_distinct += present[offset]
    distinct = np.empty(n_distinct, dtype=np.int64)
    for offset in range(span):
        if present[offset]:
            distinct[rank_of[offset]] = low + offset
    codes = np.empty(len(raw_ids), dtype=np.int32)
    for position in range(len(raw_ids)):
        codes[position] = rank_of[raw_ids[position] - low]
    return codes, distinct


@njit(cache=True)
def scale_counts(values: np.ndarray, low: float, step: float, n_values: int) -> np.ndarray:
    """How many values equal ``low + k * step`` for each k < n_values (values on the scale)."""
    counts = np.zeros(n_values, dtype=np.int64)
    for value in values:
        k = int(np.rint((value - low) / step))
        if 0 <= k < n_values:
            counts[k] += 1
    return counts
