"""Genre-factor figures: a 2-D map of the genre embeddings and their cosine-similarity heatmap."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from movielens_als.analysis.genre import GenreData
from movielens_als.errors import DataError
from movielens_als.figures._layout import new_figure

GENRE_FIGURE_NAMES: tuple[str, ...] = ("genre_embeddings.pdf", "genre_cosine_similarity.pdf")


def _axis_label(axis: int, explained_variance_ratio: np.ndarray | None) -> str:
    if explained_variance_ratio is None:
        return f"Factor {axis + 1}"
    ratio = float(explained_variance_ratio[axis])
    share = f"{100 * ratio:.1f} % of variance" if np.isfinite(ratio) else "no variance"
    return f"PC{axis + 1} ({share})"


def genre_embeddings_figure(
    coords: np.ndarray,
    names: Sequence[str],
    explained_variance_ratio: np.ndarray | None = None,
    *,
    title: str = "Genre embeddings",
) -> Figure:
    """Each genre as a labelled point: raw factors (ratio ``None``) or PCA scores with each
    component's explained variance in its axis label. One-column ``coords`` (K = 1) are shown
    as a dot plot sorted by the factor value.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] not in (1, 2) or coords.shape[0] != len(names):
        raise DataError(
            f"genre_embeddings_figure: coords of shape {coords.shape} do not match "
            f"{len(names)} genre names with 1 or 2 coordinates each"
        )
    if coords.shape[1] == 1:
        order = np.argsort(coords[:, 0], kind="stable")
        fig = new_figure(6.4, max(3.0, 0.28 * len(names) + 1.2))
        ax = fig.add_subplot()
        ax.scatter(coords[order, 0], np.arange(len(order)), color="tab:blue", zorder=3)
        ax.set_yticks(np.arange(len(order)), [names[i] for i in order], fontsize=8)
        ax.axvline(0.0, color="grey", linewidth=0.8)
        ax.set_xlabel("Factor 1 (K = 1: the only factor)")
        ax.set_ylabel("Genre")
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(title)
        return fig

    fig = new_figure(7.0, 6.0)
    ax = fig.add_subplot()
    ax.axhline(0.0, color="grey", linewidth=0.6, zorder=1)
    ax.axvline(0.0, color="grey", linewidth=0.6, zorder=1)
    ax.scatter(coords[:, 0], coords[:, 1], color="tab:blue", s=28, zorder=3)
    for (x, y), name in zip(coords, names, strict=True):
        ax.annotate(name, (x, y), xytext=(4, 3), textcoords="offset points", fontsize=8, zorder=4)
    ax.margins(0.15)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(_axis_label(0, explained_variance_ratio))
    ax.set_ylabel(_axis_label(1, explained_variance_ratio))
    how = "raw factors" if explained_variance_ratio is None else "first two principal components"
    ax.set_title(f"{title} ({len(names)} genres, {how})")
    ax.grid(alpha=0.3)
    return fig


def genre_similarity_figure(
    similarity: np.ndarray,
    names: Sequence[str],
    *,
    title: str = "Cosine similarity of genre embeddings",
    annotate: bool | None = None,
) -> Figure:
    """G × G heatmap on a diverging scale fixed to [-1, 1]; undefined cells are grey.

    ``annotate`` writes each value in its cell (default: when G ≤ 20).
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    n = len(names)
    if similarity.shape != (n, n):
        raise DataError(
            f"genre_similarity_figure: similarity of shape {similarity.shape} for {n} genre names"
        )
    side = float(np.clip(0.38 * n + 2.8, 5.0, 13.0))
    fig = new_figure(side + 1.0, side)
    ax = fig.add_subplot()
    cmap = colormaps["RdBu_r"].with_extremes(bad="lightgrey")
    image = ax.imshow(
        np.ma.masked_invalid(similarity), cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest"
    )
    ax.set_xticks(np.arange(n), names, rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(np.arange(n), names, fontsize=8)
    ax.set_xlabel("Genre")
    ax.set_ylabel("Genre")
    if annotate is None:
        annotate = n <= 20
    if annotate:
        for i in range(n):
            for j in range(n):
                value = similarity[i, j]
                if np.isfinite(value):
                    ax.text(
                        j,
                        i,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=5.5,
                        color="white" if abs(value) > 0.6 else "black",
                    )
    colourbar = fig.colorbar(image, ax=ax, shrink=0.8)
    colourbar.set_label("Cosine similarity")
    ax.set_title(title)
    return fig


def genre_figures(genres: GenreData) -> dict[str, Figure]:
    """Both genre figures, keyed by the PDF file name the stage saves them under."""
    return {
        "genre_embeddings.pdf": genre_embeddings_figure(
            genres.coords, genres.names, genres.explained_variance_ratio
        ),
        "genre_cosine_similarity.pdf": genre_similarity_figure(genres.similarity, genres.names),
    }
