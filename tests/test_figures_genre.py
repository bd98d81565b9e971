"""Genre figures: labelled embedding map (raw, PCA, K = 1) and the similarity heatmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from movielens_als.analysis.genre import analyse_genres
from movielens_als.errors import DataError
from movielens_als.figures.genre import (
    GENRE_FIGURE_NAMES,
    genre_embeddings_figure,
    genre_figures,
    genre_similarity_figure,
)

GENRES = [
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
]  # fmt: skip


def save_pdf(fig: Figure, path: Path) -> None:
    assert isinstance(fig, Figure)
    fig.savefig(path)
    assert path.read_bytes().startswith(b"%PDF")


def factors(n_factors: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(len(GENRES), n_factors))


def test_pca_embedding_has_variance_in_axis_labels(tmp_path):
    genres = analyse_genres(factors(10), GENRES)
    fig = genre_embeddings_figure(genres.coords, genres.names, genres.explained_variance_ratio)
    save_pdf(fig, tmp_path / "genre_embeddings.pdf")
    ax = fig.axes[0]
    ratio = genres.explained_variance_ratio
    assert ax.get_xlabel() == f"PC1 ({100 * ratio[0]:.1f} % of variance)"
    assert ax.get_ylabel() == f"PC2 ({100 * ratio[1]:.1f} % of variance)"
    assert sorted(t.get_text() for t in ax.texts) == sorted(GENRES)
    positions = {t.get_text(): t.xy for t in ax.texts}
    for name, xy in zip(GENRES, genres.coords, strict=True):
        np.testing.assert_allclose(positions[name], xy)
    assert "principal components" in ax.get_title()


def test_k2_embedding_plots_raw_factors(tmp_path):
    W = factors(2)
    genres = analyse_genres(W, GENRES)
    fig = genre_embeddings_figure(genres.coords, genres.names, genres.explained_variance_ratio)
    save_pdf(fig, tmp_path / "k2.pdf")
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Factor 1", "Factor 2")
    np.testing.assert_allclose(ax.collections[0].get_offsets(), W)
    assert "raw factors" in ax.get_title()


def test_k1_embedding_is_a_sorted_dot_plot(tmp_path):
    W = factors(1)
    genres = analyse_genres(W, GENRES)
    fig = genre_embeddings_figure(genres.coords, genres.names)
    save_pdf(fig, tmp_path / "k1.pdf")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [GENRES[i] for i in np.argsort(W[:, 0])]
    assert "K = 1" in ax.get_xlabel()


def test_similarity_heatmap(tmp_path):
    genres = analyse_genres(factors(6), GENRES)
    fig = genre_similarity_figure(genres.similarity, genres.names)
    save_pdf(fig, tmp_path / "genre_cosine_similarity.pdf")
    ax, colourbar = fig.axes
    assert colourbar.get_ylabel() == "Cosine similarity"
    image = ax.get_images()[0]
    np.testing.assert_allclose(np.asarray(image.get_array()), genres.similarity)
    assert image.get_clim() == (-1.0, 1.0)
    assert [t.get_text() for t in ax.get_xticklabels()] == GENRES
    assert [t.get_text() for t in ax.get_yticklabels()] == GENRES
    assert len(ax.texts) == len(GENRES) ** 2  # values written in the cells
    assert (
        len(genre_similarity_figure(genres.similarity, genres.names, annotate=False).axes[0].texts)
        == 0
    )


def test_similarity_heatmap_with_undefined_cells(tmp_path):
    W = factors(3)[:4]
    W[2] = 0.0
    genres = analyse_genres(W, GENRES[:4])
    fig = genre_similarity_figure(genres.similarity, genres.names)
    save_pdf(fig, tmp_path / "nan.pdf")
    assert len(fig.axes[0].texts) == 9  # the zero genre's row and column stay blank


def test_genre_figures_cover_every_file_name(tmp_path):
    figures = genre_figures(analyse_genres(factors(4), GENRES))
    assert tuple(figures) == GENRE_FIGURE_NAMES
    for name, fig in figures.items():
        save_pdf(fig, tmp_path / name)


def test_mismatched_inputs_raise_data_error():
    with pytest.raises(DataError, match="3 genre names"):
        genre_embeddings_figure(np.zeros((4, 2)), ["a", "b", "c"])
    with pytest.raises(DataError, match="1 or 2 coordinates"):
        genre_embeddings_figure(np.zeros((3, 3)), ["a", "b", "c"])
    with pytest.raises(DataError, match="for 2 genre names"):
        genre_similarity_figure(np.eye(3), ["a", "b"])
