"""The shared Numba ALS core: bias-only, full ALS and genre-prior ALS over CSR ratings.

``fit`` trains, ``fold_in_user`` adds a user to a fitted model, ``rmse`` scores a rating set
(unseen users/movies predicted from the terms that exist). Kernels live in ``kernels``, their
slow NumPy counterparts in ``reference``.
"""

from movielens_als.core.fit import FitResult, IterationRecord, fit
from movielens_als.core.foldin import fold_in_user
from movielens_als.core.model import (
    ALSParams,
    FactorModel,
    load_model,
    rmse,
    save_model,
)

__all__ = [
    "ALSParams",
    "FactorModel",
    "FitResult",
    "IterationRecord",
    "fit",
    "fold_in_user",
    "load_model",
    "rmse",
    "save_model",
]
