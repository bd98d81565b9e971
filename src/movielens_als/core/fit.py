"""The ALS training loop: alternating exact block updates, NLL and RMSE every iteration.

One iteration is: every user's (b_m, u_m) given the movies, every movie's (c_n, v_n) given
the users (shrunk toward the genre prior p_n in genre ALS), then — genre ALS only — the
genre embeddings W given the movie factors. Each step is the exact minimiser of the NLL over
its block (up to diagonal jitter on a numerically singular row, counted in
``FitResult.jittered_rows``), so the NLL never increases; the notebook's W rule
(``genre_update="notebook"``) is the one exception and is kept for comparison.

The kernels never see the callback: after each iteration ``fit`` builds an
``IterationRecord`` and hands it to the caller's callback (MLflow logging, curves).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (load the BLAS that Numba's np.dot calls)
from threadpoolctl import ThreadpoolController

from movielens_als.core import kernels
from movielens_als.core.model import ALSParams, FactorModel, rmse
from movielens_als.errors import ConfigError, DataError, NumericalError
from movielens_als.sparse import CSR, RatingMatrix, Ratings

# Blocks per thread in a half-step: enough for dynamic scheduling to even out power-law rows.
BLOCKS_PER_THREAD = 16
_STATUS_TEXT = {
    kernels.STATUS_NOT_PD: "its system is not positive definite even after diagonal jitter",
    kernels.STATUS_NOT_FINITE: "its system or solution contains NaN or inf",
}


@dataclass(frozen=True)
class IterationRecord:
    """What one iteration produced.

    ``eval_rmse`` has one entry per eval set given to ``fit`` ("test", "val", …);
    ``seconds`` is the wall time of the sweep and its NLL (the eval RMSEs are computed after
    the clock stops).
    """

    iteration: int
    nll: float
    train_rmse: float
    eval_rmse: dict[str, float]
    seconds: float


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


def _dynamic_scheduling():
    """Hand blocks to threads one at a time (power-law rows; CPUs shared with other work)."""
    return numba.parallel_chunksize(1)


def update_rows(
    matrix: CSR,
    offset: float,
    other_bias: np.ndarray,
    other_factors: np.ndarray,
    own_bias: np.ndarray,
    own_factors: np.ndarray,
    *,
    lam: float,
    tau: float,
    gamma: float,
    count_scaled: bool,
    prior: np.ndarray | None = None,
    schedule: RowSchedule | None = None,
    compute_sse: bool = False,
    side: str = "row",
) -> tuple[np.ndarray, int]:
    """One ALS half-step: every row of ``matrix`` given the other side, in place.

    K = other_factors.shape[1]; K = 0 runs the bias-only kernel. ``own_bias`` (float32,
    n_rows) and ``own_factors`` (float32, n_rows×K) are overwritten. Returns the per-row
    squared residuals (zeros unless ``compute_sse``) and the number of rows that needed
    diagonal jitter. Raises NumericalError naming the first row (as ``side`` index) whose
    solve failed.
    """
    n_rows = matrix.n_rows
    n_factors = other_factors.shape[1]
    row_sse = np.zeros(n_rows, dtype=np.float64)
    row_status = np.zeros(n_rows, dtype=np.int8)
    with _dynamic_scheduling(), single_threaded_blas():
        if n_factors == 0:
            kernels.update_bias_side(
                matrix.indptr,
                matrix.indices,
                matrix.data,
                float(offset),
                other_bias,
                own_bias,
                float(lam),
                float(gamma),
                bool(compute_sse),
                row_sse,
                row_status,
            )
        else:
            if schedule is None:
                schedule = row_schedule(matrix.row_counts(), n_factors)
            if prior is None:
                prior = np.zeros((0, n_factors), dtype=np.float32)
            kernels.update_factor_side(
                matrix.indptr,
                matrix.indices,
                matrix.data,
                float(offset),
                other_bias,
                other_factors,
                own_bias,
                own_factors,
                prior,
                float(lam),
                float(tau),
                float(gamma),
                bool(count_scaled),
                schedule.order,
                schedule.block_ptr,
                bool(compute_sse),
                row_sse,
                row_status,
            )
    failed = np.flatnonzero(row_status >= kernels.STATUS_NOT_PD)
    if len(failed):
        row = int(failed[0])
        raise NumericalError(
            f"ALS {side} update failed for {side} index {row} ({matrix.row_counts()[row]} "
            f"ratings; {len(failed)} {side}s failed in all): "
            f"{_STATUS_TEXT[int(row_status[row])]} (λ={lam}, τ={tau}, γ={gamma})"
        )
    return row_sse, int(np.count_nonzero(row_status == kernels.STATUS_JITTERED))


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
    params: ALSParams, n_users: int, n_items: int, n_genres: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """U, V (and W for genre ALS) as float32: N(0, 1/K) from default_rng(seed), or zeros.

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


def update_genres(
    movie_genres: CSR,
    item_weight: np.ndarray,
    item_factors: np.ndarray,
    *,
    tau: float,
    eta: float,
    rule: str,
) -> np.ndarray:
    """New genre embeddings W (float32, G×K) given the movie factors V.

    ``rule="exact"``: W minimises τ/2 Σ_n s_n ‖v_n − A_n W‖² + η/2 ‖W‖², where A_n is movie
    n's row of genre-averaging weights (1/|genres(n)| on each of its genres, so p_n = A_n W)
    and s_n its prior weight (1, or its train rating count under count scaling). Setting the
    gradient −τ Σ_n s_n A_nᵀ (v_n − A_n W) + η W to zero gives the G×G normal equations
    (τ AᵀSA + η I) W = τ AᵀSV, solved by Cholesky; genres no weighted movie carries get 0.
    ``rule="notebook"``: w_g = τ Σ_{n∈g} s_n v_n / (τ Σ_{n∈g} s_n + η), which equals the
    exact rule only when every movie has at most one genre.
    """
    out = np.zeros((movie_genres.n_cols, item_factors.shape[1]), dtype=np.float64)
    if rule == "exact":
        ata, atv = kernels.genre_normal_equations(
            movie_genres.indptr,
            movie_genres.indices,
            item_weight,
            item_factors,
            movie_genres.n_cols,
        )
        status = kernels.solve_genre_exact(ata, atv, float(tau), float(eta), out)
        if status >= kernels.STATUS_NOT_PD:
            raise NumericalError(
                f"genre update failed: {_STATUS_TEXT[int(status)]} (τ={tau}, η={eta})"
            )
    else:
        kernels.solve_genre_notebook(
            movie_genres.indptr,
            movie_genres.indices,
            item_weight,
            item_factors,
            float(tau),
            float(eta),
            out,
        )
    return out.astype(np.float32)


def genre_prior(movie_genres: CSR, genre_factors: np.ndarray) -> np.ndarray:
    """p_n = mean of w_g over movie n's genres (0 without genres), float32 n_items×K."""
    out = np.empty((movie_genres.n_rows, genre_factors.shape[1]), dtype=np.float32)
    kernels.genre_prior(movie_genres.indptr, movie_genres.indices, genre_factors, out)
    return out


def _sum_squares(values: np.ndarray) -> float:
    """Σ x² in float64 (NumPy's pairwise sum: a fixed order, whatever the thread count)."""
    as_float = values.astype(np.float64).ravel()
    return float(np.sum(as_float * as_float))


def fit(
    train: RatingMatrix,
    params: ALSParams,
    *,
    movie_genres: CSR | None = None,
    evals: Mapping[str, Ratings] | None = None,
    callback: Callable[[IterationRecord], None] | None = None,
) -> FitResult:
    """Fit bias-only (K = 0), full ALS, or genre ALS (``movie_genres`` given) on ``train``.

    ``evals`` maps names ("test", "val", …) to rating sets scored every iteration;
    ``callback`` receives each IterationRecord as soon as it exists.
    """
    _check_train(train)
    evals = dict(evals or {})
    _check_evals(evals)
    if movie_genres is not None:
        if params.K == 0:
            raise ConfigError(
                "genre ALS needs latent factors: model.K must be ≥ 1 when genres are given"
            )
        if movie_genres.n_rows != train.n_items:
            raise DataError(
                f"movie_genres has {movie_genres.n_rows} rows but the train matrix has {train.n_items} movies"
            )

    n_users, n_items, K = train.n_users, train.n_items, params.K
    count_scaled = params.reg_scaling == "count"
    user_counts = train.by_user.row_counts()
    item_counts = train.by_item.row_counts()
    user_weight = user_counts.astype(np.float64) if count_scaled else np.ones(n_users)
    item_weight = item_counts.astype(np.float64) if count_scaled else np.ones(n_items)
    mu = float(np.mean(train.by_user.data, dtype=np.float64)) if params.center else 0.0
    lam, tau, gamma, eta = params.lam, params.tau, params.gamma, params.eta

    user_bias = np.zeros(n_users, dtype=np.float32)
    item_bias = np.zeros(n_items, dtype=np.float32)
    n_genres = None if movie_genres is None else movie_genres.n_cols
    user_factors, item_factors, genre_factors = init_factors(params, n_users, n_items, n_genres)
    prior = None if genre_factors is None else genre_prior(movie_genres, genre_factors)
    cold_items = np.flatnonzero(item_counts == 0)
    user_schedule = row_schedule(user_counts, K) if K else None
    item_schedule = row_schedule(item_counts, K) if K else None
    model = FactorModel(mu, user_bias, item_bias, user_factors, item_factors, genre_factors, params)

    coverage = {name: eval_coverage(r, user_counts, item_counts) for name, r in evals.items()}
    history: list[IterationRecord] = []
    jittered = 0
    for iteration in range(1, params.iterations + 1):
        start = time.perf_counter()
        # users: [b_m, u_m] = (λ Σ x xᵀ + diag(γ, τ s_m I))⁻¹ λ Σ x (r − μ − c_n), x = [1, v_n]
        _, n_jit = update_rows(
            train.by_user,
            mu,
            item_bias,
            item_factors,
            user_bias,
            user_factors,
            lam=lam,
            tau=tau,
            gamma=gamma,
            count_scaled=count_scaled,
            schedule=user_schedule,
            side="user",
        )
        jittered += n_jit
        # movies: same with users fixed, shrunk toward p_n (+ τ s_n p_n on the right)
        item_sse, n_jit = update_rows(
            train.by_item,
            mu,
            user_bias,
            user_factors,
            item_bias,
            item_factors,
            lam=lam,
            tau=tau,
            gamma=gamma,
            count_scaled=count_scaled,
            prior=prior,
            schedule=item_schedule,
            compute_sse=True,
            side="movie",
        )
        jittered += n_jit
        if movie_genres is not None:
            genre_factors = update_genres(
                movie_genres, item_weight, item_factors, tau=tau, eta=eta, rule=params.genre_update
            )
            prior = genre_prior(movie_genres, genre_factors)
            model.genre_factors = genre_factors
            # movies without train ratings follow their prior: v_n = p_n is their exact
            # minimiser given the new W (their only NLL term is τ/2 s_n ‖v_n − p_n‖²)
            item_factors[cold_items] = prior[cold_items]

        sse = float(np.sum(item_sse))
        nll = 0.5 * lam * sse + 0.5 * gamma * (_sum_squares(user_bias) + _sum_squares(item_bias))
        if K:
            # τ/2 (Σ_m s_m ‖u_m‖² + Σ_n s_n ‖v_n − p_n‖²), p = 0 outside genre ALS
            no_prior = np.zeros((0, K), dtype=np.float32)
            penalty = kernels.weighted_squared_distance(user_factors, no_prior, user_weight)
            penalty += kernels.weighted_squared_distance(
                item_factors, no_prior if prior is None else prior, item_weight
            )
            nll += 0.5 * tau * penalty
        if genre_factors is not None:
            nll += 0.5 * eta * _sum_squares(genre_factors)
        seconds = time.perf_counter() - start

        record = IterationRecord(
            iteration=iteration,
            nll=float(nll),
            train_rmse=math.sqrt(sse / train.nnz),
            eval_rmse={name: rmse(model, ratings) for name, ratings in evals.items()},
            seconds=seconds,
        )
        history.append(record)
        if callback is not None:
            callback(record)
    return FitResult(model=model, history=history, eval_coverage=coverage, jittered_rows=jittered)
