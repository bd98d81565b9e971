"""Descriptive statistics of the genre factor matrix ``W`` (G genres × K factors) of genre ALS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from movielens_als.errors import DataError


def _as_factor_matrix(W: np.ndarray, where: str) -> np.ndarray:
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] < 1 or W.shape[1] < 1:
        raise DataError(
            f"{where}: genre factors must be a G × K matrix with G ≥ 1 and K ≥ 1 "
            f"(a bias-only model has none), got shape {W.shape}"
        )
    if not np.all(np.isfinite(W)):
        row = int(np.flatnonzero(~np.all(np.isfinite(W), axis=1))[0])
        raise DataError(f"{where}: genre factor row {row} holds non-finite values")
    return W


def project_2d(W: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Genre coordinates for a 2-D picture, and the explained variance ratio of each axis.

    K ≤ 2: the factors themselves (shape (G, K)) and ``None`` — no projection happened.
    K > 2: the scores on the first two principal components of the genre-centred factors,
    shape (G, 2), and each component's share of the total variance (length 2; NaN when all
    genres coincide). Component signs are fixed so each component's largest-magnitude
    loading is positive, which makes the picture reproducible across SVD implementations.
    """
    W = _as_factor_matrix(W, "project_2d")
    n_genres, n_factors = W.shape
    if n_factors <= 2:
        return W.copy(), None
    centred = W - W.mean(axis=0)
    left, singular, right_t = np.linalg.svd(centred, full_matrices=False)
    n_components = min(2, len(singular))
    coords = np.zeros((n_genres, 2))
    for c in range(n_components):
        sign = 1.0 if right_t[c, np.argmax(np.abs(right_t[c]))] >= 0 else -1.0
        coords[:, c] = sign * left[:, c] * singular[c]
    total = float(np.sum(singular**2))
    ratio = np.zeros(2)
    if total > 0:
        ratio[:n_components] = singular[:n_components] ** 2 / total
    else:
        ratio[:] = np.nan
    return coords, ratio


def cosine_similarity_matrix(W: np.ndarray) -> np.ndarray:
    """G × G cosine similarities of the genre factor rows, in [-1, 1] with a unit diagonal.

    A genre whose factor vector is zero has no direction: its row and column are NaN.
    """
    W = _as_factor_matrix(W, "cosine_similarity_matrix")
    norms = np.linalg.norm(W, axis=1)
    nonzero = norms > 0
    unit = np.zeros_like(W)
    unit[nonzero] = W[nonzero] / norms[nonzero, None]
    similarity = np.clip(unit @ unit.T, -1.0, 1.0)
    similarity[~nonzero, :] = np.nan
    similarity[:, ~nonzero] = np.nan
    diagonal = np.arange(len(W))
    similarity[diagonal[nonzero], diagonal[nonzero]] = 1.0
    return similarity


def extreme_pairs(sim: np.ndarray, names: Sequence[str], n: int = 5) -> dict[str, list[dict]]:
    """The ``n`` most and least similar distinct genre pairs (pairs with NaN similarity skipped).

    Returns ``{"closest": [...], "farthest": [...]}``, each entry
    ``{"genre_a", "genre_b", "cosine_similarity"}`` with ``genre_a`` before ``genre_b`` in
    ``names``; ties are broken by that order so the result is deterministic.
    """
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise DataError(f"extreme_pairs: similarity must be a square matrix, got shape {sim.shape}")
    if len(names) != sim.shape[0]:
        raise DataError(
            f"extreme_pairs: {len(names)} genre names for a {sim.shape[0]} × {sim.shape[0]} "
            "similarity matrix"
        )
    if n < 0:
        raise ValueError(f"extreme_pairs: n must be ≥ 0, got {n}")
    first, second = np.triu_indices(sim.shape[0], k=1)
    values = sim[first, second]
    keep = np.isfinite(values)
    first, second, values = first[keep], second[keep], values[keep]

    def entries(order: np.ndarray) -> list[dict]:
        return [
            {
                "genre_a": str(names[first[p]]),
                "genre_b": str(names[second[p]]),
                "cosine_similarity": float(values[p]),
            }
            for p in order[:n]
        ]

    # np.lexsort sorts by the last key first; (first, second) break ties by name order.
    closest = np.lexsort((second, first, -values))
    farthest = np.lexsort((second, first, values))
    return {"closest": entries(closest), "farthest": entries(farthest)}


@dataclass(frozen=True)
class GenreData:
    """What the genre figures and ``genre_als.json`` need."""

    names: tuple[str, ...]
    n_factors: int
    coords: np.ndarray  # (G, min(K, 2))
    explained_variance_ratio: np.ndarray | None  # (2,) for a PCA projection, else None
    similarity: np.ndarray  # (G, G)


def analyse_genres(W: np.ndarray, names: Sequence[str]) -> GenreData:
    """Project ``W`` to 2-D and compute its genre cosine similarities."""
    W = _as_factor_matrix(W, "analyse_genres")
    if len(names) != W.shape[0]:
        raise DataError(
            f"analyse_genres: {len(names)} genre names for {W.shape[0]} genre factor rows"
        )
    coords, ratio = project_2d(W)
    return GenreData(
        names=tuple(str(name) for name in names),
        n_factors=W.shape[1],
        coords=coords,
        explained_variance_ratio=ratio,
        similarity=cosine_similarity_matrix(W),
    )


def genre_summary(genres: GenreData, n_pairs: int = 5) -> dict[str, Any]:
    """The JSON-ready statistics dict (``genre_als.json``)."""
    ratio = genres.explained_variance_ratio
    pairs = extreme_pairs(genres.similarity, genres.names, n=n_pairs)
    return {
        "n_genres": len(genres.names),
        "n_factors": genres.n_factors,
        "projection": "pca" if ratio is not None else "raw_factors",
        "explained_variance_ratio": (
            None if ratio is None else [float(r) if np.isfinite(r) else None for r in ratio]
        ),
        "closest_pairs": pairs["closest"],
        "farthest_pairs": pairs["farthest"],
    }
