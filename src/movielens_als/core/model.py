"""The fitted factor model every variant produces, its predictions and its files.

A model predicts r̂ = μ + b_m + c_n + u_mᵀ v_n. Variants whose prediction is an average of
several factor draws (Bayesian ALS) store them side by side, scaled by 1/√S, so that the one
dot product is the average of the draws' dot products and every consumer (ranking, similar
movies, analyses) works unchanged. Typed parameters come from the variant (``core.variant``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from movielens_als.atomic import load_npz, read_json, save_npz, write_json
from movielens_als.core import kernels
from movielens_als.core.variant import VariantParams, model_params
from movielens_als.errors import DataError
from movielens_als.sparse import Ratings

MODEL_FORMAT = 2  # 2: params carry their variant; variant arrays ("x_" + name)
EXTRA_PREFIX = "x_"


@dataclass
class FactorModel:
    """A fitted model: r̂ = μ + b_m + c_n + u_mᵀ v_n (μ = 0 when ``params.center`` is false).

    Arrays are float32: user_bias (n_users,), item_bias (n_items,), user_factors
    (n_users, K), item_factors (n_items, K), genre_factors (G, K) for genre models else None.
    K here is the stored width (``params.K`` times the draws a Bayesian model averages).
    ``extras`` holds a variant's own arrays (e.g. the hyper-parameter draws its fold-in uses).
    """

    mu: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    genre_factors: np.ndarray | None
    params: VariantParams
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.user_bias)

    @property
    def n_items(self) -> int:
        return len(self.item_bias)

    @property
    def K(self) -> int:
        return self.user_factors.shape[1]

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings (float64) of (user, item) index pairs.

        Indices outside the model (a user or movie it never saw) contribute no terms: the
        prediction falls back to μ plus the bias that exists.
        """
        users = np.ascontiguousarray(users, dtype=np.int64)
        items = np.ascontiguousarray(items, dtype=np.int64)
        if users.shape != items.shape or users.ndim != 1:
            raise ValueError(
                f"users and items must be 1-d arrays of equal length, got {users.shape} and {items.shape}"
            )
        out = np.empty(len(users), dtype=np.float64)
        kernels.predict_pairs(
            users,
            items,
            float(self.mu),
            self.user_bias,
            self.item_bias,
            self.user_factors,
            self.item_factors,
            out,
        )
        return out


def rmse(model: FactorModel, ratings: Ratings) -> float:
    """Root-mean-square error of ``model`` on ``ratings`` (NaN only when ratings is empty).

    Ratings of users or movies without train data are predicted from the terms that exist
    (μ and the known bias; see ``FactorModel.predict``).
    """
    return rmse_of(model.predict(ratings.user, ratings.item), ratings)


def rmse_of(predictions: np.ndarray, ratings: Ratings) -> float:
    """Root-mean-square error of ``predictions`` against ``ratings`` (NaN when empty)."""
    if len(ratings) == 0:
        return float("nan")
    errors = ratings.rating.astype(np.float64) - predictions
    return float(np.sqrt(np.sum(errors * errors) / len(errors)))


def _base_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".npz", ".json") else path


def save_model(model: FactorModel, path: str | Path) -> None:
    """Write ``<path>.npz`` (arrays) and ``<path>.json`` (μ, params, shapes), atomically each."""
    base = _base_path(path)
    arrays = {
        "user_bias": model.user_bias,
        "item_bias": model.item_bias,
        "user_factors": model.user_factors,
        "item_factors": model.item_factors,
    }
    if model.genre_factors is not None:
        arrays["genre_factors"] = model.genre_factors
    arrays.update({EXTRA_PREFIX + name: values for name, values in model.extras.items()})
    save_npz(base.with_name(base.name + ".npz"), **arrays)
    write_json(
        base.with_name(base.name + ".json"),
        {
            "format": MODEL_FORMAT,
            "mu": float(model.mu),
            "n_users": model.n_users,
            "n_items": model.n_items,
            "K": model.K,
            "n_genres": None if model.genre_factors is None else len(model.genre_factors),
            "params": model.params.to_dict(),
        },
    )


def load_model(path: str | Path) -> FactorModel:
    """Read a model written by ``save_model``; DataError naming the file when inconsistent."""
    base = _base_path(path)
    json_path = base.with_name(base.name + ".json")
    npz_path = base.with_name(base.name + ".npz")
    for file in (json_path, npz_path):
        if not file.is_file():
            raise DataError(f"{file}: model file missing")
    meta = read_json(json_path)
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise DataError(f"{json_path}: not a model file of format {MODEL_FORMAT}")
    missing_keys = {"params", "n_users", "n_items", "K", "n_genres", "mu"} - set(meta)
    if missing_keys:
        raise DataError(f"{json_path}: missing {', '.join(sorted(missing_keys))}")
    params = model_params(meta["params"])
    arrays = load_npz(npz_path)
    required = ("user_bias", "item_bias", "user_factors", "item_factors")
    missing = [name for name in required if name not in arrays]
    if missing:
        raise DataError(f"{npz_path}: missing arrays {', '.join(missing)}")
    expected = {
        "user_bias": (meta["n_users"],),
        "item_bias": (meta["n_items"],),
        "user_factors": (meta["n_users"], meta["K"]),
        "item_factors": (meta["n_items"], meta["K"]),
    }
    if meta["n_genres"] is not None:
        expected["genre_factors"] = (meta["n_genres"], meta["K"])
    for name, shape in expected.items():
        if name not in arrays or arrays[name].shape != tuple(shape):
            found = arrays[name].shape if name in arrays else "absent"
            raise DataError(
                f"{npz_path}: array {name} has shape {found}, {json_path} says {tuple(shape)}"
            )
    return FactorModel(
        mu=float(meta["mu"]),
        user_bias=arrays["user_bias"],
        item_bias=arrays["item_bias"],
        user_factors=arrays["user_factors"],
        item_factors=arrays["item_factors"],
        genre_factors=arrays.get("genre_factors"),
        params=params,
        extras={k[len(EXTRA_PREFIX) :]: v for k, v in arrays.items() if k.startswith(EXTRA_PREFIX)},
    )
