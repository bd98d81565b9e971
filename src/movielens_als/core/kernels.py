"""Numba kernels of the ALS core: exact block updates, residuals, penalties, predictions.

Notation (the notebook's): user m, movie n, rating r_mn over the observed set Ω,
prediction r̂_mn = μ + b_m + c_n + u_mᵀ v_n, and

    NLL = λ/2 Σ_Ω (r_mn − r̂_mn)² + τ/2 (Σ_m s_m ‖u_m‖² + Σ_n s_n ‖v_n − p_n‖²)
          + γ/2 (Σ_m b_m² + Σ_n c_n²) + η/2 Σ_g ‖w_g‖²

with s = 1 (``reg_scaling: constant``) or s = the row's train rating count (``count``, ALS-WR)
and p_n the genre prior (0 outside genre ALS). Every kernel is written for "rows of this
side given the other side"; users and movies only swap roles (the item-major CSR is the
transpose of the user-major one).

One row's update is the exact minimiser of the NLL over (b, u) jointly: with x_n = [1, v_n]
and y_mn = r_mn − μ − c_n,

    [b_m, u_m] = (λ Σ x_n x_nᵀ + diag(γ, τ s_m I))⁻¹ (λ Σ x_n y_mn + [0, τ s_m p_m])

which is a (K+1)×(K+1) symmetric positive-definite solve (Cholesky, float64). Its Gram
matrix is built from the row's gathered "design block" Z (one row z = [1, v_n, y_mn] per
rating), so ZᵀZ yields Σ x xᵀ and the right-hand side Σ x y in one product.

Design choices for speed (see benchmarks/bench_als.py):
* The other side's factors are gathered per row into a contiguous row-major float32 block
  Z (one row [1, v_n, y] per rating: a straight copy, each factor row prefetched eight
  ratings ahead, ``core.prefetch``, so several cache misses are in flight), and ZᵀZ is
  formed by BLAS sgemm through ``np.dot``
  (Numba calls SciPy's BLAS; the caller pins BLAS to one thread per call, so the Numba
  threads are not oversubscribed and every product is computed the same way whatever
  the thread count).
* float32 storage and float32 products (twice the SIMD width of float64); each chunk of at
  most ``gram_chunk(K)`` ≤ 512 ratings is summed in float32 (relative error ≲ 1e-6) and
  the chunks are accumulated in float64, so a movie with 100k ratings is as accurate as one
  with 100. Cholesky solves (d³/6 multiply-adds, four rows per dot-product pass) and
  residuals are float64.
* Rows are processed in blocks of similar length (longest first) that the caller builds once
  (``fit.row_schedule``); each block allocates its scratch once, and blocks are scheduled
  dynamically over the threads. No row's result depends on which thread ran it, and every
  reduction is written per row into an array and summed sequentially by the caller, so
  results are bit-identical for any number of threads.

Fast-math: only ``reassoc`` (needed to vectorise the reductions) and ``contract`` (fused
multiply-add) are enabled, and only in the Cholesky routines and the residual sum;
``nnan``/``ninf`` never are, so the finiteness checks cannot be optimised away.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from movielens_als.core.prefetch import PREFETCH_DISTANCE, prefetch_row

# Ratings per Gram chunk (float32 sums over a chunk, float64 across chunks): as many as keep
# the chunk's sgemm (K+2)·(K+2)·chunk within 2¹⁹ multiply-adds, where OpenBLAS uses its
# small-matrix kernels (3-10× faster per rating than its packed path at these shapes; see
# benchmarks/bench_als.py), and at most 512 for accuracy.
GRAM_CHUNK_WORK = 1 << 19
GRAM_CHUNK_MAX = 512
GRAM_CHUNK_MIN = 16


@njit(cache=True)
def gram_chunk(n_factors):
    """Ratings per Gram chunk for K = ``n_factors``: 453 at K = 32, 120 at 64, 31 at 128."""
    dim = n_factors + 2
    return max(GRAM_CHUNK_MIN, min(GRAM_CHUNK_MAX, GRAM_CHUNK_WORK // (dim * dim)))


# A Cholesky pivot below this fraction of the largest diagonal entry counts as zero: the
# float32-accumulated Gram matrix carries relative errors ~1e-6, so smaller pivots are noise.
PIVOT_RTOL = 1e-6
# Diagonal jitter retries: start at PIVOT_RTOL × max diagonal, grow ×10 per retry.
JITTER_RETRIES = 6

# Row status codes written by the solve kernels.
STATUS_OK = 0
STATUS_JITTERED = 1  # the system was singular or ill-conditioned; diagonal jitter was added
STATUS_NOT_PD = 2  # still not positive definite after every jitter retry
STATUS_NOT_FINITE = 3  # the system or its solution contains NaN or inf

_VECTORISE = {"reassoc", "contract"}


# ---------------------------------------------------------------------------------------------
# Dense building blocks
# ---------------------------------------------------------------------------------------------


@njit(cache=True, fastmath=_VECTORISE)
def cholesky_factor(system, dim, factor, jitter, threshold):
    """Lower Cholesky factor L of ``system[:dim, :dim]`` + jitter·I (lower triangle read).

    Left-looking by columns; each inner loop is a dot product over contiguous row prefixes,
    four rows at a time so the loads of L_j· are shared. Returns False as soon as a pivot
    is not above ``threshold`` (or is NaN).
    """
    for j in range(dim):
        lj = factor[j, :j]
        # L_jj² = A_jj − Σ_{k<j} L_jk²
        pivot = system[j, j] + jitter
        for k in range(j):
            pivot -= lj[k] * lj[k]
        if not pivot > threshold:
            return False
        root = np.sqrt(pivot)
        factor[j, j] = root
        inverse = 1.0 / root
        # L_ij = (A_ij − Σ_{k<j} L_ik L_jk) / L_jj
        i = j + 1
        while i + 3 < dim:
            l0 = factor[i, :j]
            l1 = factor[i + 1, :j]
            l2 = factor[i + 2, :j]
            l3 = factor[i + 3, :j]
            a0 = system[i, j]
            a1 = system[i + 1, j]
            a2 = system[i + 2, j]
            a3 = system[i + 3, j]
            for k in range(j):
                w = lj[k]
                a0 -= l0[k] * w
                a1 -= l1[k] * w
                a2 -= l2[k] * w
                a3 -= l3[k] * w
            factor[i, j] = a0 * inverse
            factor[i + 1, j] = a1 * inverse
            factor[i + 2, j] = a2 * inverse
            factor[i + 3, j] = a3 * inverse
            i += 4
        while i < dim:
            li = factor[i, :j]
            acc = system[i, j]
            for k in range(j):
                acc -= li[k] * lj[k]
            factor[i, j] = acc * inverse
            i += 1
    return True


@njit(cache=True)
def cholesky_jittered(system, dim, factor):
    """Lower Cholesky factor of ``system[:dim, :dim]`` (lower triangle read), with jitter.

    Returns (status, jitter): STATUS_OK with jitter 0 when the matrix is numerically positive
    definite; otherwise the diagonal is raised by PIVOT_RTOL·max_diag·10^k (k = 0, 1, …) until
    it is (STATUS_JITTERED), or STATUS_NOT_PD after JITTER_RETRIES tries. STATUS_NOT_FINITE
    when the matrix holds NaN or inf (a NaN pivot fails every try, so the full scan for
    non-finite entries is only paid on failure).
    """
    max_diag = 0.0
    for i in range(dim):
        if not np.isfinite(system[i, i]):
            return STATUS_NOT_FINITE, 0.0
        max_diag = max(max_diag, system[i, i])
    if max_diag <= 0.0:
        max_diag = 1.0  # an all-zero system (no data, no regularisation): jitter from scratch
    threshold = PIVOT_RTOL * max_diag
    if cholesky_factor(system, dim, factor, 0.0, threshold):
        return STATUS_OK, 0.0
    jitter = threshold
    for _ in range(JITTER_RETRIES):
        if cholesky_factor(system, dim, factor, jitter, threshold):
            return STATUS_JITTERED, jitter
        jitter *= 10.0
    for i in range(dim):
        for j in range(i + 1):
            if not np.isfinite(system[i, j]):
                return STATUS_NOT_FINITE, jitter
    return STATUS_NOT_PD, jitter


@njit(cache=True, fastmath=_VECTORISE)
def forward_substitute(factor, dim, rhs, out):
    """Solve L y = rhs for y (``out``), given the lower factor L: one dot product per row."""
    for i in range(dim):
        li = factor[i, :i]
        acc = rhs[i]
        for k in range(i):
            acc -= li[k] * out[k]
        out[i] = acc / factor[i, i]


@njit(cache=True, fastmath=_VECTORISE)
def back_substitute(factor, dim, values):
    """Solve Lᵀ x = y in place (``values`` holds y, then x), given the lower factor L.

    By columns of Lᵀ (rows of L): x_i = y_i / L_ii, then y[:i] −= x_i L[i, :i].
    """
    for i in range(dim - 1, -1, -1):
        x_i = values[i] / factor[i, i]
        values[i] = x_i
        li = factor[i, :i]
        head = values[:i]
        for k in range(i):
            head[k] -= x_i * li[k]


@njit(cache=True)
def cholesky_solve(factor, dim, rhs, out):
    """Solve L Lᵀ x = rhs for x (``out``), given the lower factor L."""
    forward_substitute(factor, dim, rhs, out)
    back_substitute(factor, dim, out)


# ---------------------------------------------------------------------------------------------
# One row: gather, Gram, solve, residuals
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def block_capacity(indptr, row_order, first, last):
    """The most ratings any row of ``row_order[first:last]`` has (its scratch size)."""
    capacity = 0
    for pos in range(first, last):
        row = row_order[pos]
        capacity = max(capacity, indptr[row + 1] - indptr[row])
    return capacity


@njit(cache=True)
def new_row_scratch(n_factors, capacity):
    """Scratch for rows of at most ``capacity`` ratings (allocated once per block)."""
    dim = n_factors + 2  # ones, K factors, y
    design = np.empty((max(capacity, 1), dim), dtype=np.float32)
    gram = np.empty((dim, dim), dtype=np.float32)
    system = np.empty((n_factors + 1, n_factors + 1), dtype=np.float64)
    factor = np.empty((n_factors + 1, n_factors + 1), dtype=np.float64)
    rhs = np.empty(n_factors + 1, dtype=np.float64)
    theta = np.empty(n_factors + 1, dtype=np.float64)
    return design, gram, system, factor, rhs, theta


@njit(cache=True, fastmath=_VECTORISE)
def row_squared_error(design, n, cols, vals, offset, other_bias, bias, factors):
    """Σ_t (r_t − offset − c_t − b − uᵀv_t)² in float64, v_t read from the gathered design rows.

    ``bias`` and ``factors`` are the stored float32 values, so this is the exact error of the
    model as saved (up to float64 rounding).
    """
    n_factors = len(factors)
    b = np.float64(bias)
    sse = 0.0
    for t in range(n):
        z = design[t]
        fitted = b
        for k in range(n_factors):
            fitted += np.float64(factors[k]) * np.float64(z[1 + k])
        residual = np.float64(vals[t]) - offset - np.float64(other_bias[cols[t]]) - fitted
        sse += residual * residual
    return sse


@njit(cache=True)
def row_normal_equations(cols, vals, offset, other_bias, other_factors, lam, scratch):
    """The data part of one row's system: λ Σ x xᵀ (lower triangle of ``system``) and
    λ Σ x y (``rhs``), with x = [1, v_col] and y = r − offset − c_col over the row's ratings.

    Leaves each rating's design row z = [1, v_col, y] in ``design`` (``row_squared_error``
    reads it back).
    """
    design, gram, system, _, rhs, _ = scratch
    n_factors = other_factors.shape[1]
    dim = n_factors + 1
    n = len(cols)
    y_col = n_factors + 1

    chunk_size = gram_chunk(n_factors)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        # z_t = [1, v_col, y] with y = r − offset − c_col: one contiguous row per rating
        for t in range(start, stop):
            if t + PREFETCH_DISTANCE < n:
                prefetch_row(other_factors, cols[t + PREFETCH_DISTANCE])
            col = cols[t]
            z = design[t]
            factors = other_factors[col]
            z[0] = np.float32(1.0)
            for k in range(n_factors):
                z[1 + k] = factors[k]
            z[y_col] = np.float32(vals[t] - offset - other_bias[col])
        # Σ z zᵀ over the chunk by BLAS sgemm; λ Σ x xᵀ and λ Σ x y summed over chunks in
        # float64 (lower triangle of the system)
        chunk = design[start:stop]
        np.dot(chunk.T, chunk, gram)
        first = start == 0
        for i in range(dim):
            gram_i = gram[i]
            system_i = system[i]
            for j in range(i + 1):
                system_i[j] = (0.0 if first else system_i[j]) + lam * np.float64(gram_i[j])
            rhs[i] = (0.0 if first else rhs[i]) + lam * np.float64(gram[y_col, i])


@njit(cache=True)
def solve_row(
    cols,
    vals,
    offset,
    other_bias,
    other_factors,
    lam,
    tau_row,
    gamma,
    prior_row,
    has_prior,
    scratch,
    factors_out,
    compute_sse,
):
    """Exact joint update of one row's bias and factors; returns (status, bias, sse).

    [b, u] = (λ Σ x xᵀ + diag(γ, τ_row I))⁻¹ (λ Σ x y + [0, τ_row p]) with x = [1, v_col],
    y = r − offset − c_col, over the row's ratings (``cols``, ``vals``). The factors are
    written to ``factors_out`` and the bias returned, both rounded to float32; when
    ``compute_sse``, the row's exact squared residual Σ (y − b − uᵀv)² of these stored
    float32 values is returned (float64), else 0.
    """
    design, _, system, factor, rhs, theta = scratch
    n_factors = other_factors.shape[1]
    dim = n_factors + 1
    row_normal_equations(cols, vals, offset, other_bias, other_factors, lam, scratch)

    # + diag(γ, τ_row I) and + [0, τ_row p]
    system[0, 0] += gamma
    for k in range(n_factors):
        system[1 + k, 1 + k] += tau_row
        if has_prior:
            rhs[1 + k] += tau_row * prior_row[k]

    status, _ = cholesky_jittered(system, dim, factor)
    if status >= STATUS_NOT_PD:
        return status, np.float32(0.0), 0.0
    cholesky_solve(factor, dim, rhs, theta)
    for i in range(dim):
        if not np.isfinite(theta[i]):
            return STATUS_NOT_FINITE, np.float32(0.0), 0.0

    bias = np.float32(theta[0])
    for k in range(n_factors):
        factors_out[k] = np.float32(theta[1 + k])

    sse = (
        row_squared_error(design, len(cols), cols, vals, offset, other_bias, bias, factors_out)
        if compute_sse
        else 0.0
    )
    return status, bias, sse


# ---------------------------------------------------------------------------------------------
# Half-steps over all rows of one side
# ---------------------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def update_factor_side(
    indptr,
    indices,
    data,
    offset,
    other_bias,
    other_factors,
    own_bias,
    own_factors,
    prior,
    lam,
    tau,
    gamma,
    count_scaled,
    row_order,
    block_ptr,
    compute_sse,
    row_sse,
    row_status,
):
    """Update every row's bias and factors given the other side (one ALS half-step).

    Rows are visited in ``row_order`` (longest first), split into blocks at ``block_ptr``;
    blocks run in parallel. τ_row = τ·|Ω_row| when ``count_scaled`` else τ. ``prior``
    (n_rows×K, or 0 rows for none) is the genre prior p: the factor is shrunk toward it, and
    a row without ratings takes it as its factor (else 0) with bias 0. ``row_sse`` and
    ``row_status`` receive each row's squared residual and status (see STATUS_*).
    """
    n_factors = other_factors.shape[1]
    has_prior = prior.shape[0] > 0
    for block in prange(len(block_ptr) - 1):
        first, last = block_ptr[block], block_ptr[block + 1]
        scratch = new_row_scratch(n_factors, block_capacity(indptr, row_order, first, last))
        for pos in range(first, last):
            row = row_order[pos]
            lo, hi = indptr[row], indptr[row + 1]
            count = hi - lo
            if count == 0:
                own_bias[row] = 0.0
                for k in range(n_factors):
                    own_factors[row, k] = prior[row, k] if has_prior else 0.0
                row_sse[row] = 0.0
                row_status[row] = STATUS_OK
                continue
            tau_row = tau * count if count_scaled else tau
            status, bias, sse = solve_row(
                indices[lo:hi],
                data[lo:hi],
                offset,
                other_bias,
                other_factors,
                lam,
                tau_row,
                gamma,
                prior[row] if has_prior else own_factors[row],
                has_prior,
                scratch,
                own_factors[row],
                compute_sse,
            )
            if status < STATUS_NOT_PD:
                own_bias[row] = bias
            row_sse[row] = sse
            row_status[row] = status


@njit(cache=True, parallel=True)
def update_bias_side(
    indptr,
    indices,
    data,
    offset,
    other_bias,
    own_bias,
    lam,
    gamma,
    compute_sse,
    row_sse,
    row_status,
):
    """Bias-only half-step: b_m = λ Σ_{n∈Ω_m} (r_mn − μ − c_n) / (λ|Ω_m| + γ).

    A row without ratings gets 0. ``row_sse`` receives Σ (r − μ − c − b)² per row (float64)
    when ``compute_sse``; ``row_status`` STATUS_NOT_FINITE where the result is NaN or inf.
    """
    for row in prange(len(indptr) - 1):
        lo, hi = indptr[row], indptr[row + 1]
        count = hi - lo
        total = 0.0
        for t in range(lo, hi):
            total += np.float64(data[t]) - offset - np.float64(other_bias[indices[t]])
        denominator = lam * count + gamma
        bias = lam * total / denominator if count > 0 and denominator > 0.0 else 0.0
        if not np.isfinite(bias):
            row_status[row] = STATUS_NOT_FINITE
            row_sse[row] = 0.0
            continue
        own_bias[row] = np.float32(bias)
        row_status[row] = STATUS_OK
        sse = 0.0
        if compute_sse:
            stored = np.float64(own_bias[row])
            for t in range(lo, hi):
                res = np.float64(data[t]) - offset - np.float64(other_bias[indices[t]]) - stored
                sse += res * res
        row_sse[row] = sse


# ---------------------------------------------------------------------------------------------
# Objective terms and predictions
# ---------------------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def squared_errors(
    indptr, indices, data, offset, row_bias, col_bias, row_factors, col_factors, out
):
    """out[row] = Σ_{col∈Ω_row} (r − offset − b_row − c_col − u_rowᵀ v_col)², in float64."""
    n_factors = row_factors.shape[1]
    for row in prange(len(indptr) - 1):
        total = 0.0
        for t in range(indptr[row], indptr[row + 1]):
            col = indices[t]
            res = (
                np.float64(data[t]) - offset - np.float64(row_bias[row]) - np.float64(col_bias[col])
            )
            for k in range(n_factors):
                res -= np.float64(row_factors[row, k]) * np.float64(col_factors[col, k])
            total += res * res
        out[row] = total


@njit(cache=True)
def weighted_squared_distance(factors, center, weights):
    """Σ_r w_r ‖f_r − c_r‖² in float64, summed sequentially (c = 0 when ``center`` has no rows)."""
    has_center = center.shape[0] > 0
    total = 0.0
    for r in range(factors.shape[0]):
        row_total = 0.0
        for k in range(factors.shape[1]):
            diff = np.float64(factors[r, k])
            if has_center:
                diff -= np.float64(center[r, k])
            row_total += diff * diff
        total += weights[r] * row_total
    return total


# reassoc lets LLVM vectorise the K-term dot product (4x faster scoring of eval sets, which
# every iteration and every Gibbs sample does); each pair is still summed by one thread in a
# fixed order, so the result does not depend on the thread count
@njit(cache=True, parallel=True, fastmath=_VECTORISE)
def predict_pairs(users, items, offset, user_bias, item_bias, user_factors, item_factors, out):
    """out[i] = μ + b_u + c_i + u·v for each pair, using only the terms that exist.

    A user (item) index outside the model's range contributes neither bias nor factors, so an
    unseen user is predicted μ + c_i, an unseen item μ + b_u, both unseen μ.
    """
    n_users = user_bias.shape[0]
    n_items = item_bias.shape[0]
    n_factors = user_factors.shape[1]
    for t in prange(len(users)):
        user = users[t]
        item = items[t]
        known_user = 0 <= user < n_users
        known_item = 0 <= item < n_items
        value = offset
        if known_user:
            value += np.float64(user_bias[user])
        if known_item:
            value += np.float64(item_bias[item])
        if known_user and known_item:
            for k in range(n_factors):
                value += np.float64(user_factors[user, k]) * np.float64(item_factors[item, k])
        out[t] = value


# ---------------------------------------------------------------------------------------------
# Genre prior
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def genre_prior(genre_indptr, genre_indices, genre_factors, out):
    """p_n = mean of w_g over movie n's genres (0 when it has none), into ``out`` (n×K)."""
    n_factors = genre_factors.shape[1]
    for n in range(len(genre_indptr) - 1):
        lo, hi = genre_indptr[n], genre_indptr[n + 1]
        for k in range(n_factors):
            acc = 0.0
            for t in range(lo, hi):
                acc += np.float64(genre_factors[genre_indices[t], k])
            out[n, k] = acc / (hi - lo) if hi > lo else 0.0


@njit(cache=True)
def genre_normal_equations(genre_indptr, genre_indices, item_weight, item_factors, n_genres):
    """AᵀSA (G×G) and AᵀSV (G×K) for the exact genre update, in float64.

    A_n is movie n's row of genre-averaging weights (1/|genres(n)| on each of its genres) and
    S = diag(item_weight) the per-movie prior weight (1, or the rating count under count
    scaling). Summed over movies in index order.
    """
    n_factors = item_factors.shape[1]
    ata = np.zeros((n_genres, n_genres))
    atv = np.zeros((n_genres, n_factors))
    for n in range(len(genre_indptr) - 1):
        lo, hi = genre_indptr[n], genre_indptr[n + 1]
        if hi == lo or item_weight[n] == 0.0:
            continue
        a = 1.0 / (hi - lo)
        for t in range(lo, hi):
            g = genre_indices[t]
            for s in range(lo, hi):
                ata[g, genre_indices[s]] += item_weight[n] * a * a
            for k in range(n_factors):
                atv[g, k] += item_weight[n] * a * np.float64(item_factors[n, k])
    return ata, atv


@njit(cache=True)
def solve_genre_exact(ata, atv, tau, eta, out):
    """W = argmin τ/2 Σ_n s_n ‖v_n − A_n W‖² + η/2 ‖W‖², i.e. (τ AᵀSA + η I) W = τ AᵀSV.

    Genres that no weighted movie carries (zero row in AᵀSA) are not in the data term, so
    their exact minimiser is w_g = 0. Returns the Cholesky status (see STATUS_*).
    """
    n_genres = ata.shape[0]
    n_factors = atv.shape[1]
    active = np.empty(n_genres, dtype=np.int64)
    n_active = 0
    for g in range(n_genres):
        if ata[g, g] > 0.0:
            active[n_active] = g
            n_active += 1
    out[:, :] = 0.0
    if n_active == 0:
        return STATUS_OK
    system = np.empty((n_active, n_active))
    factor = np.empty((n_active, n_active))
    for i in range(n_active):
        for j in range(n_active):
            system[i, j] = tau * ata[active[i], active[j]]
        system[i, i] += eta
    status, _ = cholesky_jittered(system, n_active, factor)
    if status >= STATUS_NOT_PD:
        return status
    rhs = np.empty(n_active)
    solution = np.empty(n_active)
    for k in range(n_factors):
        for i in range(n_active):
            rhs[i] = tau * atv[active[i], k]
        cholesky_solve(factor, n_active, rhs, solution)
        for i in range(n_active):
            if not np.isfinite(solution[i]):
                return STATUS_NOT_FINITE
            out[active[i], k] = solution[i]
    return status


@njit(cache=True)
def solve_genre_notebook(genre_indptr, genre_indices, item_weight, item_factors, tau, eta, out):
    """The notebook's rule w_g = τ Σ_{n∈g} s_n v_n / (τ Σ_{n∈g} s_n + η) (0 if no movie).

    Not the exact minimiser when movies carry several genres (p_n averages them), so the NLL
    need not decrease at this step; kept to compare against ``solve_genre_exact``.
    """
    n_genres, n_factors = out.shape
    weight_sum = np.zeros(n_genres)
    factor_sum = np.zeros((n_genres, n_factors))
    for n in range(len(genre_indptr) - 1):
        for t in range(genre_indptr[n], genre_indptr[n + 1]):
            g = genre_indices[t]
            weight_sum[g] += item_weight[n]
            for k in range(n_factors):
                factor_sum[g, k] += item_weight[n] * np.float64(item_factors[n, k])
    for g in range(n_genres):
        denominator = tau * weight_sum[g] + eta
        for k in range(n_factors):
            out[g, k] = tau * factor_sum[g, k] / denominator if denominator > 0.0 else 0.0
