"""ALS: bias-only (K = 0), full ALS and genre-prior ALS as one variant, fitted by exact
alternating block updates.

Every step is the exact minimiser of the NLL over its block (up to diagonal jitter on a
numerically singular row, counted in ``FitResult.jittered_rows``), so the NLL never increases;
the notebook's W rule (``genre_update="notebook"``) is the one exception, kept for comparison.
One sweep: every user's (b_m, u_m) given the movies, every movie's (c_n, v_n) given the users
(shrunk toward the genre prior p_n when ``genres``), then the genre embeddings W given the
movie factors. Kernels: ``core.kernels``; NumPy reference: ``core.reference``.

The shipped hyper-parameters live in ``conf/model/*.yaml`` (the single source of truth); they
were found by hand on ml-latest-small with the notebook's split (90,926 train / 9,910 test
ratings). Test RMSE after 20 iterations:

* ``bias``: the notebook's bias-only setting (λ = γ = 0.01, μ included, zero init) — 0.8577,
  the notebook's number.
* ``als``: K = 32, λ = 1, ALS-WR count scaling with τ = 0.15 per rating, γ = 1 — 0.8384
  (hand search over τ ∈ [0.03, 0.3], γ ∈ {0.1, 1, 3, 5}, K ∈ {32, 64}; K = 64 gives 0.8383).
* ``genre_als``: the ``als`` setting plus the genre prior with η = 20 and the exact W
  update — 0.8247; the notebook's W rule with the same setting gives 0.8317.

``tests/test_core_realdata.py`` checks these as bands.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import ClassVar

import numpy as np

from movielens_als.core import coordinate, kernels
from movielens_als.core.fit import (
    STATUS_TEXT,
    RowSchedule,
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
from movielens_als.core.variant import (
    INITS,
    SOLVERS,
    Side,
    TrainState,
    Variant,
    VariantParams,
    resolved_solver,
)
from movielens_als.errors import ConfigError, DataError, NumericalError
from movielens_als.sparse import CSR, RatingMatrix

REG_SCALINGS = ("constant", "count")
GENRE_UPDATES = ("exact", "notebook")


@dataclass(frozen=True)
class ALSParams(VariantParams):
    """Hyper-parameters of one ALS fit (the ``model`` config group with ``variant: als``).

    K: latent factors (0 = bias-only). lam (λ): precision of the rating noise (> 0). tau (τ):
    factor regulariser (per rating under ``reg_scaling="count"``). gamma (γ): bias
    regulariser (never scaled). eta (η): genre-embedding regulariser. iterations: user+item
    sweeps. seed: seed of the factor initialisation. center: include the train mean μ.
    reg_scaling: "constant" (τ I, the notebook) | "count" (τ|Ω_m| I, ALS-WR). genres: shrink
    movie factors toward the mean embedding of their genres (genre ALS; needs K ≥ 1).
    genre_update: "exact" (normal equations for W) | "notebook" (weighted average).
    init: "normal" (N(0, 1/K)) | "zeros" (biases always start at 0). solver: "cholesky"
    (each row's exact minimiser), "cd" (``cd_passes`` cycles of coordinate descent per row,
    warm-started) or "auto" (cholesky on small data, cd on large; see ``variant.SOLVERS``).
    """

    variant: ClassVar[str] = "als"
    integer_keys: ClassVar = {"K": 0, "iterations": 1, "seed": 0, "cd_passes": 1}
    number_keys: ClassVar = ("lam", "tau", "gamma", "eta")
    bool_keys: ClassVar = ("center", "genres")
    choice_keys: ClassVar = {
        "reg_scaling": REG_SCALINGS,
        "genre_update": GENRE_UPDATES,
        "init": INITS,
        "solver": SOLVERS,
    }

    K: int = 32
    lam: float = 1.0
    tau: float = 0.1
    gamma: float = 1.0
    eta: float = 0.0
    iterations: int = 20
    seed: int = 42
    center: bool = True
    reg_scaling: str = "count"
    genres: bool = False
    genre_update: str = "exact"
    init: str = "normal"
    solver: str = "cholesky"
    cd_passes: int = 1

    def __post_init__(self) -> None:
        self.check_fields()
        if self.lam == 0:
            raise ConfigError(
                "model.lam: the noise precision λ must be > 0 (0 ignores every rating)"
            )
        if self.genres and self.K == 0:
            raise ConfigError(
                "model.genres: the genre prior acts on latent factors; needs model.K ≥ 1"
            )

    @property
    def n_iterations(self) -> int:
        return self.iterations

    def with_iterations(self, n: int) -> ALSParams:
        return self.replace(iterations=int(n))

    @property
    def count_scaled(self) -> bool:
        return self.reg_scaling == "count"


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
    solver: str = "cholesky",
    cd_passes: int = 1,
    row_base: int = 0,
) -> tuple[np.ndarray, int]:
    """One ALS half-step: every row of ``matrix`` given the other side, in place.

    K = other_factors.shape[1]; K = 0 runs the bias-only kernel (exact for either solver).
    ``solver="cd"`` runs ``cd_passes`` coordinate-descent cycles per row, starting from the
    row's current values; "cholesky" the exact solve. ``own_bias`` (float32,
    n_rows) and ``own_factors`` (float32, n_rows×K) are overwritten. Returns the per-row
    squared residuals (zeros unless ``compute_sse``) and the number of rows that needed
    diagonal jitter. Raises NumericalError naming the first row (as ``side`` index, counted
    from ``row_base`` when ``matrix`` is a block of a larger side) whose solve failed.
    """
    n_rows = matrix.n_rows
    n_factors = other_factors.shape[1]
    row_sse = np.zeros(n_rows, dtype=np.float64)
    row_status = np.zeros(n_rows, dtype=np.int8)
    if n_factors and schedule is None:
        schedule = row_schedule(matrix.row_counts(), n_factors)
    if prior is None:
        prior = np.zeros((0, n_factors), dtype=np.float32)
    with dynamic_scheduling(), single_threaded_blas():
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
        elif solver == "cd":
            coordinate.update_side(
                matrix,
                offset,
                other_bias,
                other_factors,
                own_bias,
                own_factors,
                prior_mean=prior,
                lam=lam,
                bias_precision=gamma,
                factor_precision=np.full(n_factors, float(tau)),
                count_scaled=count_scaled,
                passes=cd_passes,
                schedule=schedule,
                compute_sse=compute_sse,
                row_sse=row_sse,
                row_status=row_status,
            )
        else:
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
    raise_failed_rows(
        row_status,
        matrix,
        f"ALS {side}" if side != "row" else "row",
        f"λ={lam}, τ={tau}, γ={gamma}",
        row_base,
    )
    return row_sse, int(np.count_nonzero(row_status == kernels.STATUS_JITTERED))


def update_block(
    matrix: CSR, schedule, row_base: int, rows: dict, shared: dict, *, offset: float, **settings
) -> tuple[np.ndarray, int]:
    """``update_rows`` as a ``core.rows.RowFunction`` (the ALS half-step over one block)."""
    return update_rows(
        matrix,
        offset,
        shared["bias"],
        shared["factors"],
        rows["bias"],
        rows["factors"],
        prior=rows.get("prior"),
        schedule=schedule,
        row_base=row_base,
        **settings,
    )


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
                f"genre update failed: {STATUS_TEXT[int(status)]} (τ={tau}, η={eta})"
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


class ALS(Variant):
    """Exact alternating least squares (MAP of the notebook's model)."""

    name = "als"
    params_type = ALSParams

    @property
    def reference(self) -> ModuleType:
        from movielens_als.core import reference

        return reference

    def start(
        self, params: ALSParams, train: RatingMatrix, movie_genres: CSR | None, mu: float
    ) -> TrainState:
        state = initial_state(params, train, movie_genres, mu)
        for side in (state.users, state.items):
            side.extra["weight"] = (
                side.counts.astype(np.float64) if params.count_scaled else np.ones(side.n_rows)
            )
        # bias-only rows are solved exactly in closed form, whichever solver is asked for
        state.extra["solver"] = (
            resolved_solver(params.solver, train.nnz) if params.K else "cholesky"
        )
        return state

    def row_task(
        self,
        params: ALSParams,
        state: TrainState,
        side: Side,
        other: Side,
        *,
        sweep: int,
        compute_sse: bool,
    ) -> RowTask:
        # [b, u] = (λ Σ x xᵀ + diag(γ, τ s I))⁻¹ (λ Σ x (r − μ − c) + [0, τ s p]), x = [1, v]
        return side_task(
            update_block,
            side,
            other,
            offset=state.mu,
            lam=params.lam,
            tau=params.tau,
            gamma=params.gamma,
            count_scaled=params.count_scaled,
            compute_sse=compute_sse,
            side=side.name,
            solver=state.extra["solver"],
            cd_passes=params.cd_passes,
        )

    def end_sweep(self, params: ALSParams, state: TrainState, *, sweep: int, sse: float) -> None:
        if state.movie_genres is None:
            return
        items = state.items
        state.genre_factors = update_genres(
            state.movie_genres,
            items.extra["weight"],
            items.factors,
            tau=params.tau,
            eta=params.eta,
            rule=params.genre_update,
        )
        items.prior = genre_prior(state.movie_genres, state.genre_factors)
        # movies without train ratings follow their prior: v_n = p_n is their exact minimiser
        # given the new W (their only NLL term is τ/2 s_n ‖v_n − p_n‖²)
        cold = items.counts == 0
        items.factors[cold] = items.prior[cold]

    def objective(self, params: ALSParams, state: TrainState, *, sse: float) -> float:
        users, items = state.users, state.items
        # λ/2 Σ (r − r̂)² + γ/2 (Σ b² + Σ c²)
        nll = 0.5 * params.lam * sse + 0.5 * params.gamma * (
            sum_squares(users.bias) + sum_squares(items.bias)
        )
        if params.K:
            # τ/2 (Σ_m s_m ‖u_m‖² + Σ_n s_n ‖v_n − p_n‖²), p = 0 without the genre prior
            no_prior = np.zeros((0, params.K), dtype=np.float32)
            penalty = kernels.weighted_squared_distance(
                users.factors, no_prior, users.extra["weight"]
            )
            penalty += kernels.weighted_squared_distance(
                items.factors,
                no_prior if items.prior is None else items.prior,
                items.extra["weight"],
            )
            nll += 0.5 * params.tau * penalty
        if state.genre_factors is not None:
            nll += 0.5 * params.eta * sum_squares(state.genre_factors)
        return nll

    def model(self, params: ALSParams, state: TrainState) -> FactorModel:
        # the model records the solver that ran ("auto" resolved), which its params then log
        params = params.replace(solver=state.extra["solver"])
        return FactorModel(
            state.mu,
            state.users.bias,
            state.items.bias,
            state.users.factors,
            state.items.factors,
            state.genre_factors,
            params,
        )

    def fold_in(
        self, model: FactorModel, items: np.ndarray, ratings: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """[b, u] = (λ Σ x xᵀ + diag(γ, τ_u I))⁻¹ λ Σ x (r − μ − c_n), x = [1, v_n], with
        τ_u = τ·(number of ratings) under count scaling: the user half-step on one row."""
        params = model.params
        one_user = one_user_matrix(model, items, ratings)
        bias = np.zeros(1, dtype=np.float32)
        factors = np.zeros((1, model.K), dtype=np.float32)
        update_rows(
            one_user,
            model.mu,
            model.item_bias,
            model.item_factors,
            bias,
            factors,
            lam=params.lam,
            tau=params.tau,
            gamma=params.gamma,
            count_scaled=params.count_scaled,
            schedule=row_schedule(one_user.row_counts(), model.K, n_blocks=1) if model.K else None,
            side="fold-in user",
        )
        return float(bias[0]), factors[0]


def one_user_matrix(model: FactorModel, items: np.ndarray, ratings: np.ndarray) -> CSR:
    """A one-row CSR of a new user's ratings, checked against the model (DataError naming the
    position of a bad entry)."""
    items = np.asarray(items)
    ratings = np.asarray(ratings)
    if items.ndim != 1 or items.shape != ratings.shape:
        raise DataError(
            f"fold-in needs equal-length 1-d movie and rating lists, got shapes {items.shape} and {ratings.shape}"
        )
    if len(items) and not np.issubdtype(items.dtype, np.integer):
        raise DataError(f"fold-in movie indices must be integers, got dtype {items.dtype}")
    outside = np.flatnonzero((items < 0) | (items >= model.n_items))
    if len(outside):
        raise DataError(
            f"fold-in movie at position {outside[0]} has index {items[outside[0]]}, "
            f"outside the model's 0..{model.n_items - 1}"
        )
    bad = np.flatnonzero(~np.isfinite(ratings.astype(np.float64)))
    if len(bad):
        raise DataError(f"fold-in rating at position {bad[0]} is not finite ({ratings[bad[0]]})")
    return CSR(
        np.array([0, len(items)], dtype=np.int64),
        np.ascontiguousarray(items, dtype=np.int32),
        np.ascontiguousarray(ratings, dtype=np.float32),
        model.n_items,
    )


VARIANT = ALS()
