"""A half-step as a pure function over a block of one side's rows, and where it runs.

A variant's ``row_task`` says what one half-step computes: a module-level function, the other
side's arrays every row reads (``shared``), this side's per-row arrays (``rows``; the ones
named in ``writes`` are overwritten) and its settings. ``LocalRows`` runs the task over all
rows in this process; ``movielens_als.compute.dask_rows.DaskRows`` runs it on row blocks that
Dask workers hold. A row's result depends only on its inputs and its global index (random
streams are keyed by it) and never on the block, the schedule or the thread count, so every
partition of the rows gives bit-identical factors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from movielens_als.sparse import CSR, RatingMatrix

if TYPE_CHECKING:
    from movielens_als.core.variant import Side

# function(matrix, schedule, row_base, rows, shared, **settings) -> (row_sse, jittered rows):
# updates rows[name] for name in writes in place; ``row_base`` is the global index of the
# block's first row (messages and random streams use global indices).
RowFunction = Callable[..., tuple[np.ndarray, int]]


@dataclass(frozen=True)
class RowTask:
    """One half-step of one side, as ``Variant.row_task`` describes it."""

    function: RowFunction
    rows: dict[str, np.ndarray]  # this side's per-row arrays (first axis = rows)
    writes: tuple[str, ...]  # the keys of ``rows`` the function overwrites
    shared: dict[str, np.ndarray]  # the other side's arrays, read by every row
    settings: dict[str, Any] = field(default_factory=dict)


def side_task(function: RowFunction, own: Side, other: Side, **settings: Any) -> RowTask:
    """The task of a half-step that rewrites side ``own``'s bias and factors (each row reading
    its prior mean, when the side has one) from ``other``'s: the shape of every shipped variant.
    """
    rows = {"bias": own.bias, "factors": own.factors}
    if own.prior is not None:
        rows["prior"] = own.prior
    return RowTask(
        function,
        rows=rows,
        writes=("bias", "factors"),
        shared={"bias": other.bias, "factors": other.factors},
        settings=settings,
    )


class RowRunner(Protocol):
    """Runs a side's ``RowTask``; returns the per-row squared errors and the jittered rows."""

    def run(self, side: Side, task: RowTask) -> tuple[np.ndarray, int]: ...


class RowExecutor(Protocol):
    """Where the half-steps of one fit run; ``open`` prepares them for one train matrix."""

    def open(
        self, train: RatingMatrix, n_factors: int
    ) -> contextlib.AbstractContextManager[RowRunner]: ...


class LocalRows:
    """Every row in this process, with the side's own schedule (the default)."""

    def run(self, side: Side, task: RowTask) -> tuple[np.ndarray, int]:
        return task.function(side.matrix, side.schedule, 0, task.rows, task.shared, **task.settings)


class LocalExecutor:
    @contextlib.contextmanager
    def open(self, train: RatingMatrix, n_factors: int) -> Iterator[LocalRows]:
        yield LocalRows()


LOCAL = LocalExecutor()


def row_block(matrix: CSR, start: int, stop: int) -> CSR:
    """Rows ``start:stop`` of ``matrix`` as a CSR of their own (column indices unchanged)."""
    lo, hi = int(matrix.indptr[start]), int(matrix.indptr[stop])
    return CSR(
        np.ascontiguousarray(matrix.indptr[start : stop + 1] - lo),
        np.ascontiguousarray(matrix.indices[lo:hi]),
        np.ascontiguousarray(matrix.data[lo:hi]),
        matrix.n_cols,
    )


def balanced_bounds(counts: np.ndarray, n_blocks: int) -> list[tuple[int, int]]:
    """``n_blocks`` contiguous row ranges of about equal ratings (+1 per row, so empty rows
    count); ranges may be empty when there are fewer rows than blocks."""
    n_rows = len(counts)
    cumulative = np.cumsum(np.asarray(counts, dtype=np.int64) + 1)
    total = int(cumulative[-1]) if n_rows else 0
    cuts = [0]
    for b in range(1, n_blocks):
        cuts.append(int(np.searchsorted(cumulative, total * b / n_blocks)))
    cuts.append(n_rows)
    cuts = np.maximum.accumulate(np.array(cuts, dtype=np.int64))
    return [(int(cuts[b]), int(cuts[b + 1])) for b in range(n_blocks)]
