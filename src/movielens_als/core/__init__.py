"""The shared Numba core: one generic training loop over model variants.

``fit`` trains the variant its parameters name (``core.variant``: ``als`` — bias-only, full
and genre-prior ALS — and ``bayes_als``, Gibbs sampling of the same model), ``fold_in_user``
adds a user to a fitted model, ``rmse`` scores a rating set (unseen users/movies predicted
from the terms that exist). Shared kernels live in ``kernels``, their slow NumPy
counterparts in ``reference``; a variant's own kernels live in its module.
"""

from movielens_als.core.als import ALSParams
from movielens_als.core.fit import FitResult, IterationRecord, fit
from movielens_als.core.foldin import fold_in_user
from movielens_als.core.model import FactorModel, load_model, rmse, save_model
from movielens_als.core.variant import VariantParams, model_params, variant_of

__all__ = [
    "ALSParams",
    "FactorModel",
    "FitResult",
    "IterationRecord",
    "VariantParams",
    "fit",
    "fold_in_user",
    "load_model",
    "model_params",
    "rmse",
    "save_model",
    "variant_of",
]
