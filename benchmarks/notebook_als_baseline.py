"""The notebook's ALS kernel design, kept only as the speed baseline of bench_als.py.

Per row (``prange`` over rows in index order, static scheduling): first the bias,
b_m ← λ Σ (r − μ − c_n − u_mᵀv_n) / (λ|Ω_m| + γ), then the factors: a fresh float64 K×K
matrix, one rank-1 update of the *full* matrix per rating (A += v vᵀ), and a hand-written
Cholesky solve of (λ A + τ I) u = λ Σ v (r − μ − b_m − c_n). Not used by the package.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _cholesky_solve(a, b):
    k = a.shape[0]
    lower = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1):
            s = a[i, j]
            for t in range(j):
                s -= lower[i, t] * lower[j, t]
            if i == j:
                lower[i, i] = np.sqrt(s)
            else:
                lower[i, j] = s / lower[j, j]
    y = np.zeros(k)
    for i in range(k):
        s = b[i]
        for t in range(i):
            s -= lower[i, t] * y[t]
        y[i] = s / lower[i, i]
    x = np.zeros(k)
    for i in range(k - 1, -1, -1):
        s = y[i]
        for t in range(i + 1, k):
            s -= lower[t, i] * x[t]
        x[i] = s / lower[i, i]
    return x


@njit(cache=True, parallel=True)
def notebook_half_step(
    indptr, indices, data, mu, other_bias, other_factors, own_bias, own_factors, lam, tau, gamma
):
    """Update every row's bias, then its factors, the notebook's way (float64 arrays)."""
    n_factors = other_factors.shape[1]
    for row in prange(len(indptr) - 1):
        lo, hi = indptr[row], indptr[row + 1]
        if hi == lo:
            continue
        # b_m ← λ Σ (r − μ − c_n − u_mᵀv_n) / (λ|Ω_m| + γ)
        total = 0.0
        for t in range(lo, hi):
            col = indices[t]
            total += data[t] - mu - other_bias[col] - np.dot(own_factors[row], other_factors[col])
        own_bias[row] = lam * total / (lam * (hi - lo) + gamma)
        # u_m ← (λ Σ v vᵀ + τ I)⁻¹ λ Σ v (r − μ − b_m − c_n), one rank-1 update per rating
        a = np.zeros((n_factors, n_factors))
        b = np.zeros(n_factors)
        for t in range(lo, hi):
            col = indices[t]
            v = other_factors[col]
            for i in range(n_factors):
                for j in range(n_factors):
                    a[i, j] += v[i] * v[j]
            b += v * (data[t] - mu - own_bias[row] - other_bias[col])
        a = lam * a + tau * np.eye(n_factors)
        own_factors[row] = _cholesky_solve(a, lam * b)
