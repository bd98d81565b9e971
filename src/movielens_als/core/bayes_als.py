"""Bayesian ALS: the notebook's model read as a probability model and sampled by Gibbs.

Model (user m, movie n, r̂_mn = μ + b_m + c_n + u_mᵀ v_n):

    r_mn ~ N(r̂_mn, λ⁻¹)                         λ ~ Gamma(a₀, b₀)
    u_mk ~ N(μ_Uk, τ_Uk⁻¹),  b_m ~ N(0, γ_U⁻¹)   τ_Uk ~ Gamma(a, b), μ_Uk | τ_Uk ~ N(0, (β₀ τ_Uk)⁻¹)
    v_nk ~ N(m_nk, τ_Vk⁻¹),  c_n ~ N(0, γ_V⁻¹)   γ ~ Gamma(a, b) per side, likewise τ_V, μ_V

with m_n = μ_V, or with ``genres`` m_n = p_n = A_n W (the mean embedding of the movie's genres,
A_n averaging its genres) and w_gk ~ N(0, η_k⁻¹), η_k ~ Gamma(a, b). This is Salakhutdinov &
Mnih's BPMF (2008) with biases and a diagonal Normal–Gamma hyperprior per dimension (as in
Rendle's Bayesian FM / libFM and myFM) instead of the full Normal–Wishart.

One Gibbs sweep: every user's (b_m, u_m) from its exact Gaussian conditional given the movies
— the same (K+1)×(K+1) system the ALS kernel builds,

    A = λ Σ x xᵀ + diag(γ_U, τ_U),   θ̄ = A⁻¹ (λ Σ x (r − μ − c_n) + [0, τ_U ⊙ μ_U]),  x = [1, v_n]

drawn as θ = θ̄ + L⁻ᵀ z with A = L Lᵀ and z ~ N(0, I) (so Cov θ = A⁻¹) — then every movie's
likewise, then λ, each side's (μ, τ, γ), and W and η from their conjugate conditionals.
After ``burn_in`` sweeps, predictions are the running posterior mean over the kept samples.

Chain length: ``samples`` is the cap. With ``mcse_tolerance`` > 0 the chain stops as soon as
the Monte-Carlo standard error of the posterior-mean prediction — batch means (Flegal & Jones
2010) over the kept draws, root-mean-square over a fixed random sample of training pairs —
is at most that many stars. It needs no held-out labels, so it never looks at test; and a
chain that still drifts has batch means that disagree, so its error stays large and it runs on.

Randomness: the row draws z come from a counter-based generator keyed by (seed, sample, side,
row) — SplitMix64 over the key, Ziggurat — so a row's draw does not depend on which thread
(or which worker, for a partitioned fit) computes it: results are bit-identical at any thread
count. The hyper-parameter draws use NumPy's generator seeded by (seed, sample).

Movies (users) without training ratings are not sampled: they sit at their prior mean (bias 0,
factors m_n), as in ALS, and do not enter the hyper-parameter updates.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import ClassVar

import numpy as np
from numba import njit, prange

from movielens_als.core import coordinate, kernels
from movielens_als.core.als import one_user_matrix
from movielens_als.core.fit import (
    dynamic_scheduling,
    genre_prior,
    initial_state,
    raise_failed_rows,
    row_schedule,
    single_threaded_blas,
    sum_squares,
)
from movielens_als.core.model import FactorModel
from movielens_als.core.rows import RowTask, side_task
from movielens_als.core.streams import row_normals, stream_key
from movielens_als.core.variant import (
    INITS,
    SOLVERS,
    Side,
    TrainState,
    Variant,
    VariantParams,
    resolved_solver,
)
from movielens_als.errors import ConfigError
from movielens_als.sparse import CSR, RatingMatrix, Ratings

HYPER_STREAM = 2  # the "side" index of the hyper-parameter stream (users 0, movies 1)
PROBE_STREAM = 3  # the stream that picks the training pairs the chain-length rule watches
PROBE_PAIRS = 10_000  # enough pairs that the RMS error hardly varies with which were picked
# kept draws before the error is estimated: √n batches of √n draws need n ≈ 50 for the
# variance of ~7 batch means to mean anything
MIN_KEPT_FOR_MCSE = 49


@dataclass(frozen=True)
class BayesALSParams(VariantParams):
    """Settings of one Gibbs run (the ``model`` config group with ``variant: bayes_als``).

    K: latent factors (≥ 1). samples: Gibbs sweeps in all; burn_in: sweeps before the
    posterior mean starts (< samples). lam, tau, gamma, eta: starting values of the
    precisions λ, τ, γ, η (kept fixed when ``sample_hyper`` is false). noise_shape/noise_rate:
    Gamma hyperprior of λ; prior_shape/prior_rate: of τ, γ, η; mean_precision: β₀ of the
    factor means' Normal hyperprior. saved_samples: at most how many kept draws (spread
    over the chain, see ``SavedDraws``) the saved model averages. mcse_tolerance: stop the chain
    once the posterior-mean prediction's Monte-Carlo standard error is at most this many
    stars (0: run all ``samples``). seed, center, genres, init as for ALS. solver: "cholesky" draws
    each row's (b, u) jointly from its Gaussian conditional; "cd" draws one coordinate at a
    time from its conditional given the rest (single-site Gibbs, as libFM and myFM); "auto"
    as in ``variant.SOLVERS``.
    """

    variant: ClassVar[str] = "bayes_als"
    integer_keys: ClassVar = {"K": 1, "samples": 1, "burn_in": 0, "seed": 0, "saved_samples": 1}
    number_keys: ClassVar = (
        "lam",
        "tau",
        "gamma",
        "eta",
        "noise_shape",
        "noise_rate",
        "prior_shape",
        "prior_rate",
        "mean_precision",
        "mcse_tolerance",
    )
    bool_keys: ClassVar = ("center", "genres", "sample_hyper")
    choice_keys: ClassVar = {"init": INITS, "solver": SOLVERS}

    K: int = 32
    samples: int = 300
    burn_in: int = 50
    seed: int = 42
    center: bool = True
    genres: bool = False
    init: str = "normal"
    lam: float = 1.0
    tau: float = 1.0
    gamma: float = 1.0
    eta: float = 1.0
    sample_hyper: bool = True
    noise_shape: float = 1.0
    noise_rate: float = 1.0
    prior_shape: float = 1.0
    prior_rate: float = 1.0
    mean_precision: float = 1.0
    saved_samples: int = 16
    solver: str = "cholesky"
    mcse_tolerance: float = 0.0

    def __post_init__(self) -> None:
        self.check_fields()
        if self.burn_in >= self.samples:
            raise ConfigError(
                f"model.burn_in must be < model.samples (no sample would be kept), got "
                f"burn_in={self.burn_in}, samples={self.samples}"
            )
        for name in (
            "lam",
            "tau",
            "gamma",
            "noise_shape",
            "noise_rate",
            "prior_shape",
            "prior_rate",
            "mean_precision",
        ):
            if getattr(self, name) == 0:
                raise ConfigError(
                    f"model.{name} must be > 0 (a precision or Gamma parameter), got 0"
                )
        if self.genres and self.eta == 0:
            raise ConfigError(
                "model.eta must be > 0 with genres (the genre embeddings' precision), got 0"
            )

    @property
    def n_iterations(self) -> int:
        return self.samples

    def with_iterations(self, n: int) -> BayesALSParams:
        """``n`` sweeps with the same share of burn-in (at least one kept sample)."""
        n = int(n)
        burn_in = min(n - 1, round(self.burn_in * n / self.samples))
        return self.replace(samples=n, burn_in=burn_in)

    @property
    def kept(self) -> int:
        return self.samples - self.burn_in


class SavedDraws:
    """At most ``capacity`` draws of a chain whose length is not known in advance, spread over
    the kept sweeps. Every kept draw is offered; once more than ``capacity`` are held, the
    store drops the one (never the newest) whose loss leaves the shortest gap between its
    neighbours (the earliest on a tie). So after n kept draws it holds min(n, capacity) of
    them, the newest among them, with no gap longer than about twice the even spacing
    n/capacity — whatever n the chain stops at. (Halving a power-of-two stride instead keeps
    exact spacing but as few as capacity/2 draws: the saved model then averaged 8 draws
    instead of 16 and scored 0.01 worse on ml-latest-small.)"""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held: list[tuple[int, dict[str, np.ndarray]]] = []

    def add(self, kept: int, draw: dict[str, np.ndarray]) -> None:
        """Hold kept draw number ``kept`` (1-based, increasing); drop one if over capacity."""
        self.held.append((kept, draw))
        if len(self.held) > self.capacity:
            sweeps = [0, *self.kept_indices]
            # dropping held[i] joins the gaps either side: sweeps[i + 2] − sweeps[i]
            merged = [sweeps[i + 2] - sweeps[i] for i in range(len(self.held) - 1)]
            del self.held[merged.index(min(merged))]

    @property
    def kept_indices(self) -> list[int]:
        return [j for j, _ in self.held]

    @property
    def draws(self) -> list[dict[str, np.ndarray]]:
        return [d for _, d in self.held]


def batch_means_mcse(draws: np.ndarray) -> float:
    """Monte-Carlo standard error of the mean of each column of ``draws`` (one row per kept
    sample), root-mean-square over the columns: batch means with b = ⌊√n⌋ draws per batch
    (Flegal & Jones 2010), over the latest a·b draws (a = ⌊n/b⌋ batches). The variance of the
    batch means, times b, estimates the chain's long-run variance σ², so autocorrelation and
    drift both widen it; the error of a mean of a·b draws is σ/√(a·b)."""
    n = len(draws)
    b = math.isqrt(n)
    a = n // b
    if a < 2:
        raise ValueError(f"batch means need at least 2 batches, got {n} draws")
    used = draws[n - a * b :].astype(np.float64)
    means = used.reshape(a, b, -1).mean(axis=1)
    long_run_variance = b * np.var(means, axis=0, ddof=1)
    return math.sqrt(float(np.mean(long_run_variance)) / (a * b))


def probe_pairs(train: RatingMatrix, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (user, movie) pairs the chain-length rule watches: ``PROBE_PAIRS`` training
    ratings drawn without replacement from the seed's own stream (all of them if fewer)."""
    by_user = train.by_user
    rng = np.random.default_rng([seed, 0, PROBE_STREAM])
    n = min(PROBE_PAIRS, by_user.nnz)
    entries = np.sort(rng.choice(by_user.nnz, size=n, replace=False))
    users = np.searchsorted(by_user.indptr, entries, side="right") - 1
    return users.astype(np.int64), by_user.indices[entries].astype(np.int64)


# ---------------------------------------------------------------------------------------------
# The half-step: every row's (bias, factors) from its Gaussian conditional
# ---------------------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def sample_factor_side(
    indptr,
    indices,
    data,
    offset,
    other_bias,
    other_factors,
    own_bias,
    own_factors,
    prior_mean,
    bias_precision,
    factor_precision,
    lam,
    row_order,
    block_ptr,
    key,
    row_base,
    draw,
    compute_sse,
    row_sse,
    row_status,
):
    """(b, u) of every row from N(θ̄, A⁻¹), A = λ Σ x xᵀ + diag(γ, τ), in place.

    θ̄ = A⁻¹ (λ Σ x (r − offset − c) + [0, τ ⊙ m]) with m the row's prior mean (``prior_mean``
    has one row per row, or a single shared row). ``draw`` false writes θ̄ itself (fold-in).
    ``factor_precision`` is τ per dimension. Rows without ratings get (0, m). Blocks of rows
    run in parallel; each row's draw depends only on (``key``, ``row_base`` + row), its global
    index.
    """
    n_factors = other_factors.shape[1]
    dim = n_factors + 1
    shared_mean = prior_mean.shape[0] == 1
    for block in prange(len(block_ptr) - 1):
        first, last = block_ptr[block], block_ptr[block + 1]
        scratch = kernels.new_row_scratch(
            n_factors, kernels.block_capacity(indptr, row_order, first, last)
        )
        design, _, system, factor, rhs, theta = scratch
        noise = np.empty(dim)
        for pos in range(first, last):
            row = row_order[pos]
            mean = prior_mean[0] if shared_mean else prior_mean[row]
            lo, hi = indptr[row], indptr[row + 1]
            if hi == lo:
                own_bias[row] = 0.0
                for k in range(n_factors):
                    own_factors[row, k] = mean[k]
                row_sse[row] = 0.0
                row_status[row] = kernels.STATUS_OK
                continue
            cols, vals = indices[lo:hi], data[lo:hi]
            kernels.row_normal_equations(
                cols, vals, offset, other_bias, other_factors, lam, scratch
            )
            # + diag(γ, τ) and + [0, τ ⊙ m]
            system[0, 0] += bias_precision
            for k in range(n_factors):
                system[1 + k, 1 + k] += factor_precision[k]
                rhs[1 + k] += factor_precision[k] * mean[k]
            status, _ = kernels.cholesky_jittered(system, dim, factor)
            row_status[row] = status
            if status >= kernels.STATUS_NOT_PD:
                row_sse[row] = 0.0
                continue
            kernels.cholesky_solve(factor, dim, rhs, theta)
            if draw:
                # L⁻ᵀ z ~ N(0, A⁻¹) because A⁻¹ = L⁻ᵀ L⁻¹
                row_normals(key, row_base + row, noise)
                kernels.back_substitute(factor, dim, noise)
                for i in range(dim):
                    theta[i] += noise[i]
            finite = True
            for i in range(dim):
                finite = finite and np.isfinite(theta[i])
            if not finite:
                row_status[row] = kernels.STATUS_NOT_FINITE
                row_sse[row] = 0.0
                continue
            bias = np.float32(theta[0])
            own_bias[row] = bias
            for k in range(n_factors):
                own_factors[row, k] = np.float32(theta[1 + k])
            row_sse[row] = (
                kernels.row_squared_error(
                    design, hi - lo, cols, vals, offset, other_bias, bias, own_factors[row]
                )
                if compute_sse
                else 0.0
            )


def sample_side(
    matrix: CSR,
    offset: float,
    other_bias: np.ndarray,
    other_factors: np.ndarray,
    own_bias: np.ndarray,
    own_factors: np.ndarray,
    *,
    lam: float,
    bias_precision: float,
    factor_precision: np.ndarray,
    prior_mean: np.ndarray,
    key: int,
    draw: bool = True,
    schedule=None,
    compute_sse: bool = False,
    side: str = "row",
    solver: str = "cholesky",
    row_base: int = 0,
) -> tuple[np.ndarray, int]:
    """One Gibbs half-step over every row of ``matrix``: each row's (b, u) drawn jointly
    (``solver="cholesky"``, ``sample_factor_side``) or one coordinate at a time (``"cd"``,
    ``coordinate.coordinate_update_side``; ``draw`` false then moves each coordinate to its
    conditional mean once, which is not the joint mean).

    Returns the per-row squared residuals (zeros unless ``compute_sse``) and the number of
    rows whose system needed diagonal jitter; NumericalError names the first failed row.
    """
    n_factors = other_factors.shape[1]
    if schedule is None:
        schedule = row_schedule(matrix.row_counts(), n_factors)
    prior_mean = np.ascontiguousarray(prior_mean, dtype=np.float64).reshape(-1, n_factors)
    row_sse = np.zeros(matrix.n_rows, dtype=np.float64)
    row_status = np.zeros(matrix.n_rows, dtype=np.int8)
    with dynamic_scheduling(), single_threaded_blas():
        if solver == "cd":
            coordinate.update_side(
                matrix,
                offset,
                other_bias,
                other_factors,
                own_bias,
                own_factors,
                prior_mean=prior_mean,
                lam=lam,
                bias_precision=bias_precision,
                factor_precision=factor_precision,
                count_scaled=False,
                passes=1,
                schedule=schedule,
                key=key,
                row_base=row_base,
                draw=draw,
                compute_sse=compute_sse,
                row_sse=row_sse,
                row_status=row_status,
            )
        else:
            sample_factor_side(
                matrix.indptr,
                matrix.indices,
                matrix.data,
                float(offset),
                other_bias,
                other_factors,
                own_bias,
                own_factors,
                prior_mean,
                float(bias_precision),
                np.ascontiguousarray(factor_precision, dtype=np.float64),
                float(lam),
                schedule.order,
                schedule.block_ptr,
                np.uint64(key),
                np.int64(row_base),
                bool(draw),
                bool(compute_sse),
                row_sse,
                row_status,
            )
    raise_failed_rows(
        row_status, matrix, f"Gibbs {side}", f"λ={lam:.4g}, γ={bias_precision:.4g}", row_base
    )
    return row_sse, int(np.count_nonzero(row_status == kernels.STATUS_JITTERED))


def sample_block(
    matrix: CSR,
    schedule,
    row_base: int,
    rows: dict,
    shared: dict,
    *,
    offset: float,
    shared_mean: np.ndarray,
    **settings,
) -> tuple[np.ndarray, int]:
    """``sample_side`` as a ``core.rows.RowFunction``: the rows' own prior means (the genre
    prior) when given, else the side's shared mean."""
    return sample_side(
        matrix,
        offset,
        shared["bias"],
        shared["factors"],
        rows["bias"],
        rows["factors"],
        prior_mean=rows.get("prior", shared_mean),
        schedule=schedule,
        row_base=row_base,
        **settings,
    )


# ---------------------------------------------------------------------------------------------
# Conjugate hyper-parameter draws
# ---------------------------------------------------------------------------------------------


def draw_gamma(rng: np.random.Generator, shape: float, rate: float) -> float:
    return float(rng.gamma(shape, 1.0 / rate))


@njit(cache=True)
def offset_moments(factors, prior, rows):
    """Per column k of x = factors[r] − prior[r] over ``rows`` r (``prior`` with no rows: 0):
    (mean x̄_k, scatter Σ (x − x̄)², Σ x²), in float64, two sequential passes in a fixed order
    (so the same on every thread count), without copying the n×K block as NumPy would."""
    n_factors = factors.shape[1]
    has_prior = prior.shape[0] > 0
    total = np.zeros(n_factors)
    squares = np.zeros(n_factors)
    for r in rows:
        for k in range(n_factors):
            x = np.float64(factors[r, k]) - (np.float64(prior[r, k]) if has_prior else 0.0)
            total[k] += x
            squares[k] += x * x
    mean = total / max(len(rows), 1)
    scatter = np.zeros(n_factors)
    for r in rows:
        for k in range(n_factors):
            x = np.float64(factors[r, k]) - (np.float64(prior[r, k]) if has_prior else 0.0)
            scatter[k] += (x - mean[k]) ** 2
    return mean, scatter, squares


def moments_of(values: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(n, x̄, Σ (x − x̄)², Σ x²) per column of an n×K array (``offset_moments`` on all rows)."""
    values = np.ascontiguousarray(values)
    rows = np.arange(len(values), dtype=np.int64)
    return (len(values), *offset_moments(values, np.zeros((0, values.shape[1])), rows))


def draw_normal_gamma(
    rng: np.random.Generator,
    moments: tuple[int, np.ndarray, np.ndarray, np.ndarray],
    *,
    shape: float,
    rate: float,
    beta0: float,
    with_mean: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Per column k of values x (n×K, given by their ``moments``: n, x̄, S = Σ (x − x̄)², Σ x²;
    see ``offset_moments``): (μ_k, τ_k) from the Normal–Gamma posterior.

    Prior τ ~ Gamma(a, b), μ | τ ~ N(0, (β₀ τ)⁻¹), x_i ~ N(μ, τ⁻¹); posterior
    τ ~ Gamma(a + n/2, b + S/2 + β₀ n x̄² / (2 β_n)), μ | τ ~ N(n x̄ / β_n, (β_n τ)⁻¹),
    β_n = β₀ + n. ``with_mean`` false fixes μ = 0: τ ~ Gamma(a + n/2, b + Σx²/2).
    """
    n, mean, scatter, squares = moments
    K = len(mean)
    if not with_mean:
        precision = rng.gamma(shape + n / 2.0, 1.0 / (rate + 0.5 * squares), size=K)
        return np.zeros(K), precision
    beta_n = beta0 + n
    rate_n = rate + 0.5 * scatter + beta0 * n * mean**2 / (2.0 * beta_n)
    precision = rng.gamma(shape + n / 2.0, 1.0 / rate_n, size=K)
    center = rng.normal(n * mean / beta_n, 1.0 / np.sqrt(beta_n * precision))
    return center, precision


def draw_genre_factors(
    rng: np.random.Generator,
    movie_genres: CSR,
    warm: np.ndarray,
    item_factors: np.ndarray,
    factor_precision: np.ndarray,
    genre_precision: np.ndarray,
) -> np.ndarray:
    """W column by column from its Gaussian conditional given the rated movies' factors:
    precision τ_k AᵀA + η_k I, mean (τ_k AᵀA + η_k I)⁻¹ τ_k Aᵀ v_k (A over rated movies)."""
    ata, atv = kernels.genre_normal_equations(
        movie_genres.indptr,
        movie_genres.indices,
        warm.astype(np.float64),
        item_factors,
        movie_genres.n_cols,
    )
    n_genres, K = atv.shape
    out = np.empty((n_genres, K))
    for k in range(K):
        precision = factor_precision[k] * ata + genre_precision[k] * np.eye(n_genres)
        factor = np.linalg.cholesky(precision)
        mean = np.linalg.solve(precision, factor_precision[k] * atv[:, k])
        out[:, k] = mean + np.linalg.solve(factor.T, rng.standard_normal(n_genres))
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The variant
# ---------------------------------------------------------------------------------------------


class BayesALS(Variant):
    """Gibbs sampling of the ALS model; the saved model averages up to ``saved_samples``
    draws."""

    name = "bayes_als"
    params_type = BayesALSParams
    step_label = "sample"
    objective_label = "−log joint at the draw"

    @property
    def reference(self) -> ModuleType:
        return sys.modules[__name__]

    def start(
        self, params: BayesALSParams, train: RatingMatrix, movie_genres: CSR | None, mu: float
    ) -> TrainState:
        state = initial_state(params, train, movie_genres, mu)
        K = params.K
        for side in (state.users, state.items):
            side.extra.update(
                mean=np.zeros(K), precision=np.full(K, params.tau), bias_precision=params.gamma
            )
        state.extra.update(
            noise_precision=params.lam,
            genre_precision=np.full(K, params.eta),
            sums={},  # eval name → Σ predictions over kept samples
            kept=0,
            saved=SavedDraws(params.saved_samples),
            probe=probe_pairs(train, params.seed),
            # the current draw's prediction on the probe pairs, one row per kept sample
            probe_draws=np.empty((params.kept, min(PROBE_PAIRS, train.nnz)), dtype=np.float32),
            mcse=math.nan,
            solver=resolved_solver(params.solver, train.nnz),
        )
        return state

    def row_task(
        self,
        params: BayesALSParams,
        state: TrainState,
        side: Side,
        other: Side,
        *,
        sweep: int,
        compute_sse: bool,
    ) -> RowTask:
        return side_task(
            sample_block,
            side,
            other,
            offset=state.mu,
            lam=state.extra["noise_precision"],
            bias_precision=side.extra["bias_precision"],
            factor_precision=side.extra["precision"],
            shared_mean=side.extra["mean"],
            key=int(stream_key(params.seed, sweep, side.index)),
            compute_sse=compute_sse,
            side=side.name,
            solver=state.extra["solver"],
        )

    def end_sweep(
        self, params: BayesALSParams, state: TrainState, *, sweep: int, sse: float
    ) -> None:
        if params.sample_hyper:
            rng = np.random.default_rng([params.seed, sweep, HYPER_STREAM])
            a, b = params.prior_shape, params.prior_rate
            state.extra["noise_precision"] = draw_gamma(
                rng, params.noise_shape + state.train.nnz / 2.0, params.noise_rate + sse / 2.0
            )
            for side in (state.users, state.items):
                warm = side.counts > 0
                side.extra["mean"], side.extra["precision"] = draw_normal_gamma(
                    rng,
                    self._moments(side),
                    shape=a,
                    rate=b,
                    beta0=params.mean_precision,
                    with_mean=side.prior is None,
                )
                side.extra["bias_precision"] = draw_gamma(
                    rng, a + np.count_nonzero(warm) / 2.0, b + sum_squares(side.bias[warm]) / 2.0
                )
            if state.movie_genres is not None:
                items = state.items
                state.genre_factors = draw_genre_factors(
                    rng,
                    state.movie_genres,
                    items.counts > 0,
                    items.factors,
                    items.extra["precision"],
                    state.extra["genre_precision"],
                )
                g = state.genre_factors.astype(np.float64)
                state.extra["genre_precision"] = rng.gamma(
                    a + len(g) / 2.0, 1.0 / (b + 0.5 * np.sum(g * g, axis=0))
                )
                items.prior = genre_prior(state.movie_genres, state.genre_factors)
        # unrated rows sit at their prior mean (their conditional is the prior)
        for side in (state.users, state.items):
            cold = side.counts == 0
            side.factors[cold] = side.prior[cold] if side.prior is not None else side.extra["mean"]
        if sweep > params.burn_in:
            self._keep(params, state)

    def _keep(self, params: BayesALSParams, state: TrainState) -> None:
        """Count the draw as kept: save it if its turn has come; update the error estimate."""
        extra = state.extra
        extra["kept"] += 1
        kept = extra["kept"]
        extra["saved"].add(kept, self._draw(state))
        users, items = extra["probe"]
        extra["probe_draws"][kept - 1] = self._current(params, state).predict(users, items)
        if kept >= MIN_KEPT_FOR_MCSE:
            extra["mcse"] = batch_means_mcse(extra["probe_draws"][:kept])

    def converged(self, params: BayesALSParams, state: TrainState, *, sweep: int) -> bool:
        return params.mcse_tolerance > 0 and state.extra["mcse"] <= params.mcse_tolerance

    @staticmethod
    def _current(params: BayesALSParams, state: TrainState) -> FactorModel:
        """The current draw as a model (sharing the state's arrays)."""
        return FactorModel(
            state.mu,
            state.users.bias,
            state.items.bias,
            state.users.factors,
            state.items.factors,
            None,
            params,
        )

    @staticmethod
    def _moments(side: Side) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """Column moments of the rated rows' offsets from their prior (the genre prior p, or 0)."""
        if "warm_rows" not in side.extra:  # the rated rows never change during a fit
            side.extra["warm_rows"] = np.flatnonzero(side.counts > 0).astype(np.int64)
        rows = side.extra["warm_rows"]
        prior = side.prior if side.prior is not None else np.zeros((0, side.factors.shape[1]))
        return (len(rows), *offset_moments(side.factors, prior, rows))

    def _draw(self, state: TrainState) -> dict[str, np.ndarray]:
        users = state.users
        return {
            "user_bias": state.users.bias.copy(),
            "item_bias": state.items.bias.copy(),
            "user_factors": users.factors.copy(),
            "item_factors": state.items.factors.copy(),
            "genre_factors": None if state.genre_factors is None else state.genre_factors.copy(),
            "noise_precision": np.float64(state.extra["noise_precision"]),
            "user_factor_mean": users.extra["mean"].copy(),
            "user_factor_precision": users.extra["precision"].copy(),
            "user_bias_precision": np.float64(users.extra["bias_precision"]),
        }

    def objective(self, params: BayesALSParams, state: TrainState, *, sse: float) -> float:
        """−log p(ratings, draws | precisions) up to a constant: the ALS objective at this draw
        with the sampled precisions, plus the Gaussian normalisers' −½ n log precision."""
        lam = state.extra["noise_precision"]
        value = 0.5 * lam * sse - 0.5 * state.train.nnz * math.log(lam)
        for side in (state.users, state.items):
            warm = side.counts > 0
            # Σ over rated rows of (v − p)² with the genre prior p, else of (u − m)² with the
            # sampled mean m, which is S + n (x̄ − m)² for the offsets x = u
            n, mean, scatter, squares = self._moments(side)
            if side.prior is None:
                squares = scatter + n * (mean - side.extra["mean"]) ** 2
            precision = side.extra["precision"]
            value += 0.5 * float(np.sum(precision * squares))
            value -= 0.5 * np.count_nonzero(warm) * float(np.sum(np.log(precision)))
            gamma = side.extra["bias_precision"]
            value += 0.5 * gamma * sum_squares(side.bias[warm]) - 0.5 * np.count_nonzero(
                warm
            ) * math.log(gamma)
        return value

    def predict(
        self, params: BayesALSParams, state: TrainState, name: str, ratings: Ratings
    ) -> np.ndarray:
        """The running posterior mean after burn-in (the current draw's prediction before)."""
        current = self._current(params, state).predict(ratings.user, ratings.item)
        kept = state.extra["kept"]
        if kept == 0:
            return current
        # fit scores every eval set once per sweep, so each running sum holds ``kept`` draws
        sums = state.extra["sums"]
        sums[name] = sums.get(name, 0.0) + current
        return sums[name] / kept

    def sweep_metrics(self, params: BayesALSParams, state: TrainState) -> dict[str, float]:
        metrics = {
            "noise_precision": float(state.extra["noise_precision"]),
            "user_factor_precision": float(np.mean(state.users.extra["precision"])),
            "movie_factor_precision": float(np.mean(state.items.extra["precision"])),
        }
        if not math.isnan(state.extra["mcse"]):  # once enough draws are kept to estimate it
            metrics["mcse"] = state.extra["mcse"]
        return metrics

    def model(self, params: BayesALSParams, state: TrainState) -> FactorModel:
        """The average of the saved draws as one factor model: factors side by side, scaled by
        1/√S, so u·v is the mean of the draws' u_s·v_s; biases averaged."""
        params = params.replace(solver=state.extra["solver"])  # the solver that ran
        draws = state.extra["saved"].draws or [self._draw(state)]
        scale = np.float32(1.0 / math.sqrt(len(draws)))

        def stacked(key: str) -> np.ndarray:
            return np.ascontiguousarray(np.concatenate([d[key] for d in draws], axis=1) * scale)

        def averaged(key: str) -> np.ndarray:
            return np.mean([d[key].astype(np.float64) for d in draws], axis=0).astype(np.float32)

        genre = None if draws[0]["genre_factors"] is None else stacked("genre_factors")
        extras = {
            "item_bias_draws": np.stack([d["item_bias"] for d in draws]),
            "noise_precision": np.array([d["noise_precision"] for d in draws]),
            "user_factor_mean": np.stack([d["user_factor_mean"] for d in draws]),
            "user_factor_precision": np.stack([d["user_factor_precision"] for d in draws]),
            "user_bias_precision": np.array([d["user_bias_precision"] for d in draws]),
        }
        return FactorModel(
            state.mu,
            averaged("user_bias"),
            averaged("item_bias"),
            stacked("user_factors"),
            stacked("item_factors"),
            genre,
            params,
            extras,
        )

    def fold_in(
        self, model: FactorModel, items: np.ndarray, ratings: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """The new user's conditional mean under each saved draw (movies and precisions of that
        draw), stacked like the model's factors: the user's posterior-mean prediction."""
        one_user = one_user_matrix(model, items, ratings)
        params = model.params
        extras = model.extras
        n_draws = len(extras["noise_precision"])
        K = params.K
        scale = math.sqrt(n_draws)
        biases, blocks = [], []
        schedule = row_schedule(one_user.row_counts(), K, n_blocks=1)
        for s in range(n_draws):
            item_factors = np.ascontiguousarray(
                model.item_factors[:, s * K : (s + 1) * K] * np.float32(scale)
            )
            bias = np.zeros(1, dtype=np.float32)
            factors = np.zeros((1, K), dtype=np.float32)
            sample_side(
                one_user,
                model.mu,
                extras["item_bias_draws"][s],
                item_factors,
                bias,
                factors,
                lam=float(extras["noise_precision"][s]),
                bias_precision=float(extras["user_bias_precision"][s]),
                factor_precision=extras["user_factor_precision"][s],
                prior_mean=extras["user_factor_mean"][s],
                key=0,
                draw=False,
                schedule=schedule,
                side="fold-in user",
            )
            biases.append(float(bias[0]))
            blocks.append(factors[0] / np.float32(scale))
        return float(np.mean(biases)), np.concatenate(blocks).astype(np.float32)


VARIANT = BayesALS()


# ---------------------------------------------------------------------------------------------
# NumPy reference (tests compare the kernel against it)
# ---------------------------------------------------------------------------------------------


def reference_conditional(
    cols: np.ndarray,
    vals: np.ndarray,
    offset: float,
    other_bias: np.ndarray,
    other_factors: np.ndarray,
    *,
    lam: float,
    bias_precision: float,
    factor_precision: np.ndarray,
    prior_mean: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of one row's (b, u) given the other side, in float64:
    A = λ XᵀX + diag(γ, τ), mean = A⁻¹ (λ Xᵀ y + [0, τ ⊙ m]), covariance A⁻¹."""
    x = np.hstack([np.ones((len(cols), 1)), other_factors[cols].astype(np.float64)])
    y = vals.astype(np.float64) - offset - other_bias[cols].astype(np.float64)
    precision = lam * x.T @ x + np.diag(np.concatenate([[bias_precision], factor_precision]))
    rhs = lam * x.T @ y
    rhs[1:] += factor_precision * prior_mean
    covariance = np.linalg.inv(precision)
    return covariance @ rhs, covariance


def reference_draw(mean: np.ndarray, covariance: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """mean + L⁻ᵀ z with L Lᵀ = A = covariance⁻¹: the draw the kernel makes from ``normals``."""
    factor = np.linalg.cholesky(np.linalg.inv(covariance))
    return mean + np.linalg.solve(factor.T, normals)


def reference_normals(seed: int, sample: int, side: int, row: int, n: int) -> np.ndarray:
    """The kernel's standard normals for one row (through the same generator)."""
    out = np.empty(n)
    row_normals(np.uint64(stream_key(seed, sample, side)), row, out)
    return out
