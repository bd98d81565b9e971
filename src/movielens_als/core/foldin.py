"""Fold a new user into a fitted model without refitting (the notebook's "dummy user").

The model's variant decides how: for ALS the user's (b, u) is the exact minimiser of the NLL
over that user alone with every movie's (c_n, v_n) fixed — the same block update a full refit
applies to each user, run by the same kernel on a one-row matrix, so folding in an existing
user's train ratings reproduces that user's row after a user half-step.
"""

from __future__ import annotations

import numpy as np

from movielens_als.core.model import FactorModel
from movielens_als.core.variant import variant_of


def fold_in_user(
    model: FactorModel, items: np.ndarray, ratings: np.ndarray
) -> tuple[float, np.ndarray]:
    """Bias and factors (float32, shape (model.K,)) of a user who rated ``items`` (movie
    indices) with ``ratings``; an empty list gives the prior's (0, 0 for ALS)."""
    return variant_of(model.params).fold_in(model, items, ratings)
