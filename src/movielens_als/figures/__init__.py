"""Plot functions: each takes computed data and returns a matplotlib ``Figure``.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot state, nothing is
shown); the calling stage saves them as PDF under the names in ``EDA_FIGURE_NAMES`` /
``GENRE_FIGURE_NAMES`` (convergence figures are named by the stage, one per model).
"""

from movielens_als.figures.convergence import convergence_figure, history_frame
from movielens_als.figures.eda import (
    EDA_FIGURE_NAMES,
    average_ratings_per_user_figure,
    eda_figures,
    frequency_vs_degree_figure,
    mean_vs_count_figure,
    rating_distribution_figure,
    sparsity_figure,
    variance_vs_count_figure,
    variance_vs_mean_rating_figure,
)
from movielens_als.figures.genre import (
    GENRE_FIGURE_NAMES,
    genre_embeddings_figure,
    genre_figures,
    genre_similarity_figure,
)

__all__ = [
    "EDA_FIGURE_NAMES",
    "GENRE_FIGURE_NAMES",
    "average_ratings_per_user_figure",
    "convergence_figure",
    "eda_figures",
    "frequency_vs_degree_figure",
    "genre_embeddings_figure",
    "genre_figures",
    "genre_similarity_figure",
    "history_frame",
    "mean_vs_count_figure",
    "rating_distribution_figure",
    "sparsity_figure",
    "variance_vs_count_figure",
    "variance_vs_mean_rating_figure",
]
