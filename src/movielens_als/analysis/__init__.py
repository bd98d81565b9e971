"""Descriptive statistics over rating sets and fitted factors (no plotting, no I/O).

- ``eda``: the exploratory analysis of a rating set (distributions, degrees, sparsity,
  per-movie mean/variance relations) gathered in an ``EdaData`` and summarised for JSON;
- ``genre``: 2-D projections, cosine similarities and extreme pairs of genre factors.
"""

from movielens_als.analysis.eda import (
    BinnedTrend,
    EdaData,
    binned_trend,
    compute_eda,
    eda_summary,
    spearman_rho,
)
from movielens_als.analysis.genre import (
    GenreData,
    analyse_genres,
    cosine_similarity_matrix,
    extreme_pairs,
    genre_summary,
    project_2d,
)

__all__ = [
    "BinnedTrend",
    "EdaData",
    "GenreData",
    "analyse_genres",
    "binned_trend",
    "compute_eda",
    "cosine_similarity_matrix",
    "eda_summary",
    "extreme_pairs",
    "genre_summary",
    "project_2d",
    "spearman_rho",
]
