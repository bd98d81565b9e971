"""Slow, obvious NumPy versions of the ALS kernels, for tests to compare against.

Everything here is float64, one row at a time with ``np.linalg.solve``, written to be read
next to the formulas in ``kernels.py``; nothing here is used in training.
"""

from __future__ import annotations

import numpy as np

from movielens_als.sparse import CSR, Ratings


def update_side(
    matrix: CSR,
    offset: float,
    other_bias: np.ndarray,
    other_factors: np.ndarray,
    *,
    lam: float,
    tau: float,
    gamma: float,
    count_scaled: bool,
    prior: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact joint (bias, factors) update of every row of ``matrix`` given the other side.

    [b, u] = (λ Σ x xᵀ + diag(γ, τ_row I))⁻¹ (λ Σ x y + [0, τ_row p]), x = [1, v], y = r − μ − c,
    τ_row = τ·count under count scaling. K = 0 gives the bias-only rule
    b = λ Σ y / (λ|Ω| + γ). Rows without ratings: bias 0, factors p (or 0).
    """
    n_factors = other_factors.shape[1]
    bias = np.zeros(matrix.n_rows)
    factors = np.zeros((matrix.n_rows, n_factors))
    for row in range(matrix.n_rows):
        cols, vals = matrix.row(row)
        if len(cols) == 0:
            if prior is not None:
                factors[row] = prior[row]
            continue
        x = np.hstack([np.ones((len(cols), 1)), other_factors[cols].astype(np.float64)])
        y = vals.astype(np.float64) - offset - other_bias[cols].astype(np.float64)
        tau_row = tau * len(cols) if count_scaled else tau
        system = lam * x.T @ x + np.diag([gamma] + [tau_row] * n_factors)
        rhs = lam * x.T @ y
        if prior is not None:
            rhs[1:] += tau_row * prior[row]
        theta = np.linalg.solve(system, rhs)
        bias[row] = theta[0]
        factors[row] = theta[1:]
    return bias, factors


def predict(
    ratings: Ratings,
    offset: float,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
) -> np.ndarray:
    """μ + b_u + c_i + u·v per rating, leaving out the terms of users/items out of range."""
    out = np.empty(len(ratings))
    for t, (user, item) in enumerate(zip(ratings.user, ratings.item, strict=True)):
        known_user = 0 <= user < len(user_bias)
        known_item = 0 <= item < len(item_bias)
        value = offset
        if known_user:
            value += float(user_bias[user])
        if known_item:
            value += float(item_bias[item])
        if known_user and known_item:
            value += float(
                np.dot(user_factors[user].astype(np.float64), item_factors[item].astype(np.float64))
            )
        out[t] = value
    return out


def squared_error(
    ratings: Ratings,
    offset: float,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
) -> float:
    """Σ (r − r̂)² over ``ratings``."""
    pred = predict(ratings, offset, user_bias, item_bias, user_factors, item_factors)
    return float(np.sum((ratings.rating.astype(np.float64) - pred) ** 2))


def genre_matrix(movie_genres: CSR) -> np.ndarray:
    """Dense A (movies × genres): A_ng = 1/|genres(n)| for each genre g of movie n."""
    dense = np.zeros((movie_genres.n_rows, movie_genres.n_cols))
    for n in range(movie_genres.n_rows):
        genres, _ = movie_genres.row(n)
        if len(genres):
            dense[n, genres] = 1.0 / len(genres)
    return dense


def genre_prior(movie_genres: CSR, genre_factors: np.ndarray) -> np.ndarray:
    """p_n = mean of w_g over movie n's genres (0 with none) = A W."""
    return genre_matrix(movie_genres) @ genre_factors.astype(np.float64)


def genre_update_exact(
    movie_genres: CSR, item_weight: np.ndarray, item_factors: np.ndarray, tau: float, eta: float
) -> np.ndarray:
    """argmin_W τ/2 Σ_n s_n ‖v_n − A_n W‖² + η/2 ‖W‖² by the normal equations.

    (τ AᵀSA + η I) W = τ AᵀSV over the genres some weighted movie carries; others get 0.
    """
    a = genre_matrix(movie_genres)
    s = np.asarray(item_weight, dtype=np.float64)
    ata = a.T @ (s[:, None] * a)
    atv = a.T @ (s[:, None] * item_factors.astype(np.float64))
    active = np.flatnonzero(np.diag(ata) > 0)
    out = np.zeros((movie_genres.n_cols, item_factors.shape[1]))
    if len(active):
        system = tau * ata[np.ix_(active, active)] + eta * np.eye(len(active))
        out[active] = np.linalg.solve(system, tau * atv[active])
    return out


def genre_update_notebook(
    movie_genres: CSR, item_weight: np.ndarray, item_factors: np.ndarray, tau: float, eta: float
) -> np.ndarray:
    """The notebook's w_g = τ Σ_{n∈g} s_n v_n / (τ Σ_{n∈g} s_n + η) (0 when no movie)."""
    out = np.zeros((movie_genres.n_cols, item_factors.shape[1]))
    for g in range(movie_genres.n_cols):
        members = [n for n in range(movie_genres.n_rows) if g in movie_genres.row(n)[0]]
        weight = sum(float(item_weight[n]) for n in members)
        denominator = tau * weight + eta
        if denominator > 0:
            total = sum(
                (float(item_weight[n]) * item_factors[n].astype(np.float64) for n in members),
                np.zeros(item_factors.shape[1]),
            )
            out[g] = tau * total / denominator
    return out


def nll(
    ratings: Ratings,
    offset: float,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    *,
    lam: float,
    tau: float,
    gamma: float,
    eta: float = 0.0,
    user_weight: np.ndarray | None = None,
    item_weight: np.ndarray | None = None,
    prior: np.ndarray | None = None,
    genre_factors: np.ndarray | None = None,
) -> float:
    """λ/2 Σ(r − r̂)² + τ/2 (Σ s_m‖u_m‖² + Σ s_n‖v_n − p_n‖²) + γ/2 (Σb² + Σc²) + η/2 ‖W‖²."""
    u = user_factors.astype(np.float64)
    v = item_factors.astype(np.float64) - (0.0 if prior is None else prior)
    s_user = np.ones(len(u)) if user_weight is None else user_weight
    s_item = np.ones(len(v)) if item_weight is None else item_weight
    value = (
        0.5 * lam * squared_error(ratings, offset, user_bias, item_bias, user_factors, item_factors)
    )
    value += (
        0.5 * tau * (np.sum(s_user * np.sum(u**2, axis=1)) + np.sum(s_item * np.sum(v**2, axis=1)))
    )
    value += (
        0.5
        * gamma
        * (np.sum(user_bias.astype(np.float64) ** 2) + np.sum(item_bias.astype(np.float64) ** 2))
    )
    if genre_factors is not None:
        value += 0.5 * eta * np.sum(genre_factors.astype(np.float64) ** 2)
    return float(value)


def coordinate_row(
    x: np.ndarray,
    y: np.ndarray,
    theta: np.ndarray,
    *,
    lam: float,
    precision: np.ndarray,
    mean: np.ndarray,
    passes: int,
    normals: np.ndarray | None = None,
) -> np.ndarray:
    """Coordinate cycles over θ = [b, u] of λ/2 ‖y − Xθ‖² + ½ Σ_j d_j (θ_j − m_j)², X = [1, V].

    ``precision`` is d = [γ, τ_1 … τ_K] and ``mean`` m = [0, prior]. Each coordinate in turn
    is set to its exact minimiser given the others, (λ x_jᵀ(y − Xθ + x_j θ_j) + d_j m_j) /
    (λ ‖x_j‖² + d_j), or, with ``normals`` ((K+1)·passes standard normals), drawn from the
    Gaussian with that mean and precision (single-site Gibbs). Returns the new θ (float64).
    """
    x = x.astype(np.float64)
    theta = theta.astype(np.float64).copy()
    drawn = 0
    for _ in range(passes):
        for j in range(len(theta)):
            partial = y - x @ theta + x[:, j] * theta[j]  # residual without coordinate j
            coordinate_precision = lam * x[:, j] @ x[:, j] + precision[j]
            theta[j] = (lam * x[:, j] @ partial + precision[j] * mean[j]) / coordinate_precision
            if normals is not None:
                theta[j] += normals[drawn] / np.sqrt(coordinate_precision)
                drawn += 1
    return theta
