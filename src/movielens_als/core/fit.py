"""The generic training loop every model variant shares, and the pieces variants reuse.

``fit`` asks the parameters' variant (``core.variant``) for everything model-specific: the
initial per-side state, the half-step over the rows of one side given the other, the work
after both half-steps (genre embeddings, hyper-parameter draws), the objective and the
predictions scored on each eval set. One sweep is users given movies, then movies given users.

The kernels never see the callback: after each sweep ``fit`` builds an ``IterationRecord``
and hands it to the caller's callback (MLflow logging, curves, progress).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (load the BLAS that Numba's np.dot calls)
from threadpoolctl import ThreadpoolController

from movielens_als.core import kernels
from movielens_als.core.model import FactorModel, rmse_of
from movielens_als.core.rows import LOCAL, RowExecutor
from movielens_als.core.variant import Side, TrainState, VariantParams, model_params, variant_of
from movielens_als.errors import ConfigError, DataError, NumericalError
from movielens_als.sparse import CSR, RatingMatrix, Ratings

# Blocks per thread in a half-step: enough for dynamic scheduling to even out power-law rows.
BLOCKS_PER_THREAD = 16
STATUS_TEXT = {
    kernels.STATUS_NOT_PD: "its system is not positive definite even after diagonal jitter",
    kernels.STATUS_NOT_FINITE: "its system or solution contains NaN or inf",
}


@dataclass(frozen=True)
class IterationRecord:
    """What one iteration produced.

    ``eval_rmse`` has one entry per eval set given to ``fit`` ("test", "val", …);
    ``seconds`` is the wall time of the sweep and its objective (the eval RMSEs are computed
    after the clock stops); ``nll`` is the variant's objective (the NLL for ALS).
    """

    iteration: int
    nll: float
    train_rmse: float
    eval_rmse: dict[str, float]
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)  # the variant's own diagnostics


@dataclass
class FitResult:
    """The fitted model, one record per iteration, and per-eval coverage counts.

    ``eval_coverage[name]`` counts that eval set's ratings whose user / movie has no train
    ratings (predicted from the terms that exist) and the fraction with both seen.
    ``jittered_rows`` counts row solves that needed diagonal jitter (0 on healthy data).
    """

    model: FactorModel
    history: list[IterationRecord]
    eval_coverage: dict[str, dict[str, int | float]]
    jittered_rows: int = 0


@dataclass
class RowSchedule:
    """Rows of one side, longest first, cut into blocks of about equal work."""

    order: np.ndarray  # int64 row indices
    block_ptr: np.ndarray  # int64, block b = order[block_ptr[b]:block_ptr[b + 1]]


def row_schedule(counts: np.ndarray, n_factors: int, n_blocks: int | None = None) -> RowSchedule:
    """Sort rows by rating count (descending, ties by index) and cut into blocks of ~equal cost.

    A row costs about count·(K+2)²/2 for its Gram matrix plus (K+1)³/6 for its Cholesky
    solve. The schedule only affects speed: each row's result is independent of its block.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n_rows = len(counts)
    if n_blocks is None:
        n_blocks = BLOCKS_PER_THREAD * numba.get_num_threads()
    n_blocks = max(1, min(int(n_blocks), n_rows))
    order = np.argsort(-counts, kind="stable").astype(np.int64)
    dim = n_factors + 2
    cost = counts[order] * (dim * dim / 2.0 + dim) + dim**3 / 6.0 + 50.0
    cumulative = np.cumsum(cost)
    if n_rows == 0:
        return RowSchedule(order, np.zeros(1, dtype=np.int64))
    cuts = np.searchsorted(cumulative, cumulative[-1] * np.arange(1, n_blocks) / n_blocks)
    block_ptr = np.unique(np.concatenate([[0], cuts, [n_rows]])).astype(np.int64)
    return RowSchedule(order, block_ptr)


_BLAS_CONTROLLER: ThreadpoolController | None = None


@contextlib.contextmanager
def single_threaded_blas():
    """Pin BLAS to one thread while the kernels run: each Numba thread calls sgemm for its own
    rows, and a multi-threaded BLAS inside them would oversubscribe the cores."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        _BLAS_CONTROLLER = ThreadpoolController()
    with _BLAS_CONTROLLER.limit(limits=1, user_api="blas"):
        yield


def dynamic_scheduling():
    """Hand blocks to threads one at a time (power-law rows; CPUs shared with other work)."""
    return numba.parallel_chunksize(1)


def _check_train(train: RatingMatrix) -> None:
    if train.by_user.n_cols != train.n_items or train.by_item.n_cols != train.n_users:
        raise DataError(
            f"train matrix layouts disagree: by_user is {train.n_users}×{train.by_user.n_cols}, "
            f"by_item is {train.n_items}×{train.by_item.n_cols}"
        )
    if train.nnz == 0:
        raise DataError("train split has no ratings")
    bad = np.flatnonzero(~np.isfinite(train.by_user.data))
    if len(bad):
        rows, cols, _ = train.by_user.to_coo()
        raise DataError(
            f"train rating of user {rows[bad[0]]}, movie {cols[bad[0]]} is not finite "
            f"({train.by_user.data[bad[0]]}); {len(bad)} such ratings"
        )


def _check_evals(evals: Mapping[str, Ratings]) -> None:
    for name, ratings in evals.items():
        if not isinstance(ratings, Ratings):
            raise DataError(f"eval set {name!r} must be Ratings, got {type(ratings).__name__}")
        for what, values in (("user", ratings.user), ("movie", ratings.item)):
            negative = np.flatnonzero(values < 0)
            if len(negative):
                raise DataError(
                    f"eval set {name!r}: rating {negative[0]} has negative {what} index {values[negative[0]]}"
                )
        bad = np.flatnonzero(~np.isfinite(ratings.rating))
        if len(bad):
            raise DataError(
                f"eval set {name!r}: rating {bad[0]} is not finite ({ratings.rating[bad[0]]})"
            )


def eval_coverage(
    ratings: Ratings, user_counts: np.ndarray, item_counts: np.ndarray
) -> dict[str, int | float]:
    """How many of ``ratings`` have a user / movie with train ratings."""
    users = ratings.user.astype(np.int64)
    items = ratings.item.astype(np.int64)
    user_seen = np.zeros(len(users), dtype=bool)
    in_range = users < len(user_counts)
    user_seen[in_range] = user_counts[users[in_range]] > 0
    item_seen = np.zeros(len(items), dtype=bool)
    in_range = items < len(item_counts)
    item_seen[in_range] = item_counts[items[in_range]] > 0
    both = int(np.count_nonzero(user_seen & item_seen))
    return {
        "n_ratings": len(ratings),
        "n_unseen_user": int(np.count_nonzero(~user_seen)),
        "n_unseen_item": int(np.count_nonzero(~item_seen)),
        "n_both_seen": both,
        "fraction_both_seen": both / len(ratings) if len(ratings) else float("nan"),
    }


# Factor matrices start on a cache-line boundary: the kernels gather one factor row per
# rating, and at K = 32 an aligned 128-byte row spans 2 cache lines instead of 3 (the gather
# pass alone is bound by those random reads and runs ~20 % faster; a full iteration 2-4 %).
CACHE_LINE_BYTES = 64


def cache_aligned(values: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``values`` whose data starts on a 64-byte boundary."""
    values = np.asarray(values)
    buffer = np.empty(values.nbytes + CACHE_LINE_BYTES, dtype=np.uint8)
    start = -buffer.ctypes.data % CACHE_LINE_BYTES
    out = buffer[start : start + values.nbytes].view(values.dtype).reshape(values.shape)
    out[...] = values
    return out


def init_factors(
    params: VariantParams, n_users: int, n_items: int, n_genres: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """U, V (and W when genres are given) as float32: N(0, 1/K) from default_rng(seed), or zeros.

    U and V are cache-line aligned (see ``cache_aligned``)."""
    K = params.K
    if params.init == "zeros" or K == 0:
        return (
            cache_aligned(np.zeros((n_users, K), dtype=np.float32)),
            cache_aligned(np.zeros((n_items, K), dtype=np.float32)),
            None if n_genres is None else np.zeros((n_genres, K), dtype=np.float32),
        )
    rng = np.random.default_rng(params.seed)
    scale = 1.0 / math.sqrt(K)
    user_factors = cache_aligned(rng.normal(0.0, scale, size=(n_users, K)).astype(np.float32))
    item_factors = cache_aligned(rng.normal(0.0, scale, size=(n_items, K)).astype(np.float32))
    genre_factors = (
        None if n_genres is None else rng.normal(0.0, scale, size=(n_genres, K)).astype(np.float32)
    )
    return user_factors, item_factors, genre_factors


def genre_prior(movie_genres: CSR, genre_factors: np.ndarray) -> np.ndarray:
    """p_n = mean of w_g over movie n's genres (0 without genres), float32 n_items×K."""
    out = np.empty((movie_genres.n_rows, genre_factors.shape[1]), dtype=np.float32)
    kernels.genre_prior(movie_genres.indptr, movie_genres.indices, genre_factors, out)
    return out


def initial_state(
    params: VariantParams, train: RatingMatrix, movie_genres: CSR | None, mu: float
) -> TrainState:
    """Both sides at their starting point (``init_factors``, zero biases, each row's count and
    work schedule) and, with genres, the movies' prior p = A W from the initial W."""
    n_genres = None if movie_genres is None else movie_genres.n_cols
    user_factors, item_factors, genre_factors = init_factors(
        params, train.n_users, train.n_items, n_genres
    )
    sides = []
    for index, (name, matrix, factors) in enumerate(
        (("user", train.by_user, user_factors), ("movie", train.by_item, item_factors))
    ):
        counts = matrix.row_counts()
        schedule = row_schedule(counts, params.K) if params.K else None
        bias = np.zeros(matrix.n_rows, dtype=np.float32)
        sides.append(Side(name, index, matrix, bias, factors, counts, schedule=schedule))
    state = TrainState(train, mu, sides[0], sides[1], movie_genres, genre_factors)
    if genre_factors is not None:
        state.items.prior = genre_prior(movie_genres, genre_factors)
    return state


def raise_failed_rows(
    row_status: np.ndarray, matrix: CSR, side: str, settings: str, row_base: int = 0
) -> None:
    """NumericalError naming the first row whose solve failed (see kernels.STATUS_*);
    ``matrix`` holds the rows from global index ``row_base`` on."""
    failed = np.flatnonzero(row_status >= kernels.STATUS_NOT_PD)
    if len(failed):
        row = int(failed[0])
        raise NumericalError(
            f"{side} update failed for {side} index {row_base + row} ({matrix.row_counts()[row]} "
            f"ratings; {len(failed)} {side}s failed in all): "
            f"{STATUS_TEXT[int(row_status[row])]} ({settings})"
        )


def sum_squares(values: np.ndarray) -> float:
    """Σ x² in float64 (NumPy's pairwise sum: a fixed order, whatever the thread count)."""
    as_float = values.astype(np.float64).ravel()
    return float(np.sum(as_float * as_float))


def fit(
    train: RatingMatrix,
    params: VariantParams | Mapping,
    *,
    movie_genres: CSR | None = None,
    evals: Mapping[str, Ratings] | None = None,
    callback: Callable[[IterationRecord], None] | None = None,
    executor: RowExecutor | None = None,
) -> FitResult:
    """Fit the variant ``params`` names on ``train``.

    ``movie_genres`` (movies × genres) is required exactly when ``params.uses_genres``.
    ``evals`` maps names ("test", "val", …) to rating sets scored after every sweep;
    ``callback`` receives each IterationRecord as soon as it exists. ``executor`` runs the
    half-steps (``core.rows``): in this process by default, or on the row blocks of Dask
    workers (``compute.dask_rows``), with bit-identical results.
    """
    params = model_params(params)
    variant = variant_of(params)
    _check_train(train)
    evals = dict(evals or {})
    _check_evals(evals)
    if params.uses_genres:
        if movie_genres is None:
            raise ConfigError(
                "model.genres is true: fitting needs the movie–genre matrix (the index's genres)"
            )
        if movie_genres.n_rows != train.n_items:
            raise DataError(
                f"movie_genres has {movie_genres.n_rows} rows but the train matrix has {train.n_items} movies"
            )
    else:
        movie_genres = None
    mu = float(np.mean(train.by_user.data, dtype=np.float64)) if params.center else 0.0
    state = variant.start(params, train, movie_genres, mu)
    with (executor or LOCAL).open(train, params.K) as state.rows:
        return _iterate(params, variant, state, train, evals, callback)


def _iterate(params, variant, state, train, evals, callback) -> FitResult:
    user_counts, item_counts = state.users.counts, state.items.counts
    coverage = {name: eval_coverage(r, user_counts, item_counts) for name, r in evals.items()}
    history: list[IterationRecord] = []
    for sweep in range(1, params.n_iterations + 1):
        started = time.perf_counter()
        variant.half_step(params, state, state.users, state.items, sweep=sweep, compute_sse=False)
        sse = variant.half_step(
            params, state, state.items, state.users, sweep=sweep, compute_sse=True
        )
        variant.end_sweep(params, state, sweep=sweep, sse=sse)
        objective = variant.objective(params, state, sse=sse)
        seconds = time.perf_counter() - started
        record = IterationRecord(
            iteration=sweep,
            nll=float(objective),
            train_rmse=math.sqrt(sse / train.nnz),
            eval_rmse={
                name: rmse_of(variant.predict(params, state, name, ratings), ratings)
                for name, ratings in evals.items()
            },
            seconds=seconds,
            extra=variant.sweep_metrics(params, state),
        )
        history.append(record)
        if callback is not None:
            callback(record)
        if variant.converged(params, state, sweep=sweep):
            break
    return FitResult(
        model=variant.model(params, state),
        history=history,
        eval_coverage=coverage,
        jittered_rows=state.jittered_rows,
    )
