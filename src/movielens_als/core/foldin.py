"""Fold a new user into a fitted model without refitting (the notebook's "dummy user").

The user's (b, u) is the exact minimiser of the NLL over that user alone with every movie's
(c_n, v_n) fixed — the same block update a full refit applies to each user, run by the same
kernel on a one-row matrix, so folding in an existing user's train ratings reproduces that
user's row after a user half-step.
"""

from __future__ import annotations

import numpy as np

from movielens_als.core.fit import row_schedule, update_rows
from movielens_als.core.model import FactorModel
from movielens_als.errors import DataError
from movielens_als.sparse import CSR


def fold_in_user(
    model: FactorModel, items: np.ndarray, ratings: np.ndarray
) -> tuple[float, np.ndarray]:
    """Bias and factors (float32, shape (K,)) of a user who rated ``items`` with ``ratings``.

    [b, u] = (λ Σ x xᵀ + diag(γ, τ_u I))⁻¹ λ Σ x (r − μ − c_n), x = [1, v_n], with
    τ_u = τ·(number of ratings) under count scaling. An empty list gives (0, 0).
    """
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

    params = model.params
    one_user = CSR(
        np.array([0, len(items)], dtype=np.int64),
        np.ascontiguousarray(items, dtype=np.int32),
        np.ascontiguousarray(ratings, dtype=np.float32),
        model.n_items,
    )
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
        count_scaled=params.reg_scaling == "count",
        schedule=row_schedule(one_user.row_counts(), model.K, n_blocks=1) if model.K else None,
        side="fold-in user",
    )
    return float(bias[0]), factors[0]
