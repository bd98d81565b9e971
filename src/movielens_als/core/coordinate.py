"""Coordinate updates of one side's rows: ALS by coordinate descent, Gibbs by single sites.

Each row's conditional problem is the one ``kernels.solve_row`` (ALS) and
``bayes_als.sample_factor_side`` (Gibbs) solve with a (K+1)×(K+1) Cholesky factorisation:

    minimise / sample  λ/2 Σ_t (y_t − b − uᵀv_t)² + γ/2 b² + ½ Σ_k τ_k (u_k − m_k)²

with y_t = r_t − offset − c_t over the row's ratings, τ_k = τ·|Ω_row| under count scaling,
and m the row's prior mean (the genre prior, the sampled factor mean, or 0). Here the row is
updated one coordinate at a time instead — first b, then u_1 … u_K — each given the others,
using the residuals e_t = y_t − b − uᵀv_t kept up to date as coordinates change:

    u_k ← (λ Σ_t (e_t + u_k v_tk) v_tk + τ_k m_k) / (λ Σ_t v_tk² + τ_k)

(b likewise with v_t0 = 1, γ, m = 0). That is the exact minimiser of the objective along
coordinate k, so an ALS sweep of coordinate descent (Pilászy, Zibriczky & Tikk 2010; LensKit's
former explicit-feedback default) never increases the NLL. With ``draw`` each coordinate is
drawn from its exact conditional N(that value, 1/(λ Σ v_tk² + τ_k)) instead: single-site
Gibbs, as libFM and myFM sample factorisation machines. ``passes`` repeats the coordinate
cycle; warm-started from the previous sweep's values, one pass is usually close to the exact
solve (``conf/model/*.yaml`` documents the chosen number).

Why it is fast and machine-independent: per rating and pass it costs about 3.5K multiply-adds
in plain Numba loops over contiguous arrays (no BLAS call, so no small-matrix heuristic of a
BLAS build decides its speed), against (K+2)²/2 for the Gram matrix of the exact update, and
no (K+1)³/6 factorisation per row. The other side's factors are gathered per row into a
K × n float32 block (one contiguous vector per coordinate), eight ratings × eight coordinates
at a time through a vector transpose (``core.transpose``), and the starting residuals are
computed in that same pass. The cycle takes the coordinates in pairs, one pass over the
row's ratings per pair (``coordinate_row``). Residuals and the sums over ratings are float32,
each coordinate's value float64; the squared error the objective uses is recomputed in
float64 from the stored float32 values (``stored_squared_error``).

Results are bit-identical at any thread count: each row's update reads only its own ratings
and the other side, its draws come from the counter-based stream (``streams.row_normals``,
K + 1 Ziggurat normals per row and pass) keyed by its index, and every per-row figure is
written into an array the caller sums.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from movielens_als.core import kernels
from movielens_als.core.prefetch import PREFETCH_DISTANCE, prefetch_row
from movielens_als.core.streams import row_normals
from movielens_als.core.transpose import TILE, transpose_rows

_VECTORISE = {"reassoc", "contract"}


@njit(cache=True)
def new_coordinate_scratch(n_factors, capacity):
    """Scratch for rows of at most ``capacity`` ratings (allocated once per block)."""
    size = max(capacity, 1)
    # rows of ``gathered`` 16 floats (one cache line) off a multiple of 4 KiB apart: at a
    # power-of-two stride the K write streams of the gather would evict each other (4K aliasing)
    stride = (size + 31) // 32 * 32 + 16
    gathered = np.empty((n_factors, stride), dtype=np.float32)  # v_tk, one row per coordinate
    residuals = np.empty(size, dtype=np.float32)  # e_t = y_t − b − uᵀv_t
    exact = np.empty(size, dtype=np.float64)  # float64 residuals of the stored values
    ones = np.ones(size, dtype=np.float32)  # v_t0 = 1: the bias's column
    return gathered, residuals, exact, ones


@njit(cache=True, fastmath=_VECTORISE)
def gather_and_start(
    cols, vals, offset, other_bias, other_factors, theta, gathered, residuals, own
):
    """v_t (column-wise into ``gathered``, each eight ratings' rows as one transposed tile)
    and the starting residuals e_t = y_t − b − uᵀv_t (y_t = r_t − offset − c_t), in one pass
    over the row's ratings; returns Σ_t e_t. ``own`` is float32 scratch of K.

    Each v_t is used while it is in registers, read row-wise from the other side: the dot
    product vectorises over k, so the start costs no pass over the gathered columns. The
    squares Σ_t v_tk² come from the cycle's passes, which read each column anyway."""
    n_factors = other_factors.shape[1]
    n = len(cols)
    whole_tiles = n_factors - n_factors % TILE  # coordinates moved eight at a time
    bias = np.float32(theta[0])
    for k in range(n_factors):
        own[k] = np.float32(theta[1 + k])
    total = np.float32(0.0)
    for t in range(n):
        if t + PREFETCH_DISTANCE < n:
            prefetch_row(other_factors, cols[t + PREFETCH_DISTANCE])
        col = cols[t]
        target = np.float32(np.float64(vals[t]) - offset - np.float64(other_bias[col]))
        factors = other_factors[col]
        if t % TILE == TILE - 1:  # eight ratings read: their rows into the columns
            tile_start = t - (TILE - 1)
            for k in range(0, whole_tiles, TILE):
                transpose_rows(other_factors, cols, tile_start, k, gathered, k, tile_start)
            for k in range(whole_tiles, n_factors):
                column = gathered[k]
                for i in range(TILE):
                    column[tile_start + i] = other_factors[cols[tile_start + i], k]
        dot = np.float32(0.0)
        for k in range(n_factors):
            dot += own[k] * factors[k]
        residual = target - bias - dot
        residuals[t] = residual
        total += residual
    tail = n - n % TILE  # the last n mod 8 ratings, one value at a time
    for k in range(n_factors):
        column = gathered[k]
        for t in range(tail, n):
            column[t] = other_factors[cols[t], k]
    return np.float64(total)


@njit(cache=True, fastmath=_VECTORISE)
def shift_and_dots(n, delta_a, column_a, delta_b, column_b, next_c, next_d, residuals):
    """e_t −= δ_a v_ta + δ_b v_tb (the last pair of coordinates moved; the bias has v = 1, a
    coordinate that did not move δ = 0), fused with what the next pair (c, d) needs:
    Σ_t e_t v_tc, Σ_t e_t v_td, Σ_t v_tc v_td, Σ_t v_tc², Σ_t v_td²."""
    step_a = np.float32(delta_a)
    step_b = np.float32(delta_b)
    zero = np.float32(0.0)
    dot_c, dot_d, cross, square_c, square_d = zero, zero, zero, zero, zero
    for t in range(n):
        value = residuals[t] - step_a * column_a[t] - step_b * column_b[t]
        residuals[t] = value
        c = next_c[t]
        d = next_d[t]
        dot_c += value * c
        dot_d += value * d
        cross += c * d
        square_c += c * c
        square_d += d * d
    return (
        np.float64(dot_c),
        np.float64(dot_d),
        np.float64(cross),
        np.float64(square_c),
        np.float64(square_d),
    )


@njit(cache=True, fastmath=_VECTORISE)
def shift_and_sum(n, delta_a, column_a, delta_b, column_b, residuals):
    """e_t −= δ_a v_ta + δ_b v_tb (the cycle's last pair moved), fused with Σ_t e_t for the
    next cycle's bias."""
    step_a = np.float32(delta_a)
    step_b = np.float32(delta_b)
    total = np.float32(0.0)
    for t in range(n):
        value = residuals[t] - step_a * column_a[t] - step_b * column_b[t]
        residuals[t] = value
        total += value
    return np.float64(total)


@njit(cache=True, fastmath=_VECTORISE)
def stored_squared_error(cols, vals, offset, other_bias, gathered, bias, factors, exact):
    """Σ_t (r_t − offset − c_t − b − uᵀv_t)² in float64 for the stored float32 ``bias`` and
    ``factors``: the exact error of the model as saved (up to float64 rounding)."""
    n = len(cols)
    b = np.float64(bias)
    for t in range(n):
        exact[t] = np.float64(vals[t]) - offset - np.float64(other_bias[cols[t]]) - b
    for k in range(gathered.shape[0]):
        u_k = np.float64(factors[k])
        column = gathered[k]
        for t in range(n):
            exact[t] -= u_k * np.float64(column[t])
    total = 0.0
    for t in range(n):
        total += exact[t] * exact[t]
    return total


@njit(cache=True)
def coordinate_value(lam, dot, square, value, precision, prior, draw, normal):
    """Coordinate u_k given the others: (λ Σ_t (e_t + u_k v_tk) v_tk + τ_k m_k) / (λ Σ v_tk² + τ_k),
    from ``dot`` = Σ_t e_t v_tk and ``square`` = Σ_t v_tk², or with ``draw`` its conditional
    draw (``normal`` a standard normal); ``value`` unchanged and False when the coordinate has
    no information at all (λ Σ v_tk² + τ_k = 0)."""
    k_precision = lam * square + precision
    if k_precision <= 0.0:
        return value, False
    new = (lam * (dot + value * square) + precision * prior) / k_precision
    if draw:
        new += normal / np.sqrt(k_precision)
    return new, True


@njit(cache=True)
def coordinate_row(
    n,
    gathered,
    residual_sum,
    residuals,
    lam,
    bias_precision,
    precision,
    prior_row,
    passes,
    noise,
    draw,
    theta,
    ones,
):
    """Coordinate cycles over (b, u) of one row, in place in ``theta`` = [b, u] (float64).

    ``precision`` holds τ_k for this row (count scaling applied), ``prior_row`` m. With
    ``draw``, ``noise`` supplies (K+1)·passes standard normals. Returns False when some
    coordinate had no information at all (left as it was). ``ones`` is n ones (the bias's v).

    Coordinates go in pairs (k, k+1): one pass over the ratings applies the previous pair's
    moves to the residuals and sums what the pair needs (``shift_and_dots``); u_k is then
    updated, and u_{k+1}'s Σ_t e_t v_t,k+1 corrected for u_k's move δ by −δ Σ_t v_tk v_t,k+1,
    which is exact. Still one coordinate at a time, but a cycle reads the row's ratings
    ⌈K/2⌉ + 1 times instead of K + 1.
    """
    n_factors = len(precision)
    informed = True
    draw_at = 0
    for _ in range(passes):
        # b: v_t0 = 1, Σ v_t0² = n, prior mean 0
        b_precision = lam * n + bias_precision
        b_new = lam * (residual_sum + n * theta[0]) / b_precision
        if draw:
            b_new += noise[draw_at] / np.sqrt(b_precision)
            draw_at += 1
        delta_a, column_a = b_new - theta[0], ones
        delta_b, column_b = 0.0, ones
        theta[0] = b_new
        for k in range(0, n_factors, 2):
            paired = k + 1 < n_factors
            dot_a, dot_b, cross, square_a, square_b = shift_and_dots(
                n,
                delta_a,
                column_a,
                delta_b,
                column_b,
                gathered[k],
                gathered[k + 1] if paired else gathered[k],
                residuals,
            )
            u_new, ok = coordinate_value(
                lam,
                dot_a,
                square_a,
                theta[1 + k],
                precision[k],
                prior_row[k],
                draw,
                noise[draw_at] if draw else 0.0,
            )
            informed = informed and ok
            draw_at += 1 if draw else 0
            delta_a, column_a = u_new - theta[1 + k], gathered[k]
            theta[1 + k] = u_new
            delta_b, column_b = 0.0, ones
            if paired:
                u_new, ok = coordinate_value(
                    lam,
                    dot_b - delta_a * cross,
                    square_b,
                    theta[2 + k],
                    precision[k + 1],
                    prior_row[k + 1],
                    draw,
                    noise[draw_at] if draw else 0.0,
                )
                informed = informed and ok
                draw_at += 1 if draw else 0
                delta_b, column_b = u_new - theta[2 + k], gathered[k + 1]
                theta[2 + k] = u_new
        residual_sum = shift_and_sum(n, delta_a, column_a, delta_b, column_b, residuals)
    return informed


@njit(cache=True, parallel=True)
def coordinate_update_side(
    indptr,
    indices,
    data,
    offset,
    other_bias,
    other_factors,
    own_bias,
    own_factors,
    prior_mean,
    lam,
    bias_precision,
    factor_precision,
    count_scaled,
    passes,
    row_order,
    block_ptr,
    key,
    row_base,
    draw,
    compute_sse,
    row_sse,
    row_status,
):
    """Update (or, with ``draw``, sample) every row's bias and factors by coordinates, in place.

    ``prior_mean``: one row per row (the genre prior), a single shared row, or no rows (0).
    ``factor_precision``: τ_k per dimension, times the row's rating count when
    ``count_scaled``. Rows start from their current values (warm start); rows without ratings
    get bias 0 and factors m. Blocks of rows (``row_order`` split at ``block_ptr``) run in
    parallel. ``row_sse`` receives each row's exact squared residual of the stored float32
    values when ``compute_sse``; ``row_status`` STATUS_OK, STATUS_JITTERED (a coordinate had no
    information and was left unchanged) or STATUS_NOT_FINITE (nothing written).
    """
    n_factors = other_factors.shape[1]
    n_prior_rows = prior_mean.shape[0]
    zero_prior = np.zeros(n_factors)
    for block in prange(len(block_ptr) - 1):
        first, last = block_ptr[block], block_ptr[block + 1]
        gathered, residuals, exact, ones = new_coordinate_scratch(
            n_factors, kernels.block_capacity(indptr, row_order, first, last)
        )
        theta = np.empty(n_factors + 1)
        precision = np.empty(n_factors)
        prior_row = np.empty(n_factors)
        own = np.empty(n_factors, dtype=np.float32)
        noise = np.empty((n_factors + 1) * passes if draw else 0)
        for pos in range(first, last):
            row = row_order[pos]
            if n_prior_rows == 0:
                prior_row[:] = zero_prior
            else:
                source = prior_mean[0] if n_prior_rows == 1 else prior_mean[row]
                for k in range(n_factors):
                    prior_row[k] = np.float64(source[k])
            lo, hi = indptr[row], indptr[row + 1]
            n = hi - lo
            if n == 0:
                own_bias[row] = 0.0
                for k in range(n_factors):
                    own_factors[row, k] = np.float32(prior_row[k])
                row_sse[row] = 0.0
                row_status[row] = kernels.STATUS_OK
                continue
            scale = np.float64(n) if count_scaled else 1.0
            for k in range(n_factors):
                precision[k] = scale * factor_precision[k]
            cols = indices[lo:hi]
            theta[0] = np.float64(own_bias[row])
            for k in range(n_factors):
                theta[1 + k] = np.float64(own_factors[row, k])
            residual_sum = gather_and_start(
                cols,
                data[lo:hi],
                offset,
                other_bias,
                other_factors,
                theta,
                gathered,
                residuals,
                own,
            )
            if draw:
                row_normals(key, row_base + row, noise)
            informed = coordinate_row(
                n,
                gathered,
                residual_sum,
                residuals,
                lam,
                bias_precision,
                precision,
                prior_row,
                passes,
                noise,
                draw,
                theta,
                ones,
            )
            finite = True
            for i in range(n_factors + 1):
                finite = finite and np.isfinite(theta[i])
            if not finite:
                row_status[row] = kernels.STATUS_NOT_FINITE
                row_sse[row] = 0.0
                continue
            row_status[row] = kernels.STATUS_OK if informed else kernels.STATUS_JITTERED
            bias = np.float32(theta[0])
            own_bias[row] = bias
            for k in range(n_factors):
                own_factors[row, k] = np.float32(theta[1 + k])
            row_sse[row] = (
                stored_squared_error(
                    cols, data[lo:hi], offset, other_bias, gathered, bias, own_factors[row], exact
                )
                if compute_sse
                else 0.0
            )


def update_side(
    matrix,
    offset: float,
    other_bias: np.ndarray,
    other_factors: np.ndarray,
    own_bias: np.ndarray,
    own_factors: np.ndarray,
    *,
    prior_mean: np.ndarray,
    lam: float,
    bias_precision: float,
    factor_precision: np.ndarray,
    count_scaled: bool,
    passes: int,
    schedule,
    key: int = 0,
    row_base: int = 0,
    draw: bool = False,
    compute_sse: bool,
    row_sse: np.ndarray,
    row_status: np.ndarray,
) -> None:
    """``coordinate_update_side`` over the rows of CSR ``matrix`` (ALS's and Gibbs' one call)."""
    coordinate_update_side(
        matrix.indptr,
        matrix.indices,
        matrix.data,
        float(offset),
        other_bias,
        other_factors,
        own_bias,
        own_factors,
        prior_mean,
        float(lam),
        float(bias_precision),
        np.ascontiguousarray(factor_precision, dtype=np.float64),
        bool(count_scaled),
        int(passes),
        schedule.order,
        schedule.block_ptr,
        np.uint64(key),
        np.int64(row_base),
        bool(draw),
        bool(compute_sse),
        row_sse,
        row_status,
    )
