"""EDA figures: each returns a Figure that saves to PDF, with the expected labels and titles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from movielens_als.analysis.eda import EdaData, compute_eda
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
from movielens_als.sparse import Ratings


def ratings_with_popularity(seed: int, n_users: int, n_items: int, n_ratings: int) -> Ratings:
    """Zipf-like movie popularity and half-star ratings, as in MovieLens."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    item = rng.choice(n_items, size=n_ratings, p=popularity / popularity.sum())
    user = rng.integers(0, n_users, size=n_ratings)
    cells = np.unique(user.astype(np.int64) * n_items + item)
    user, item = np.divmod(cells, n_items)
    quality = rng.normal(3.4, 0.6, size=n_items)
    rating = np.clip(np.round(2 * (quality[item] + rng.normal(0, 0.9, len(item)))) / 2, 0.5, 5)
    return Ratings.from_arrays(user, item, rating)


@pytest.fixture(scope="module")
def eda() -> EdaData:
    ratings = ratings_with_popularity(0, n_users=300, n_items=800, n_ratings=12_000)
    return compute_eda(ratings, 300, 800, sample_block=100, seed=5)


def save_pdf(fig: Figure, path: Path) -> bytes:
    assert isinstance(fig, Figure)
    fig.savefig(path)
    data = path.read_bytes()
    assert data.startswith(b"%PDF")
    return data


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


def test_eda_figures_cover_every_file_name(eda, tmp_path):
    figures = eda_figures(eda)
    assert tuple(figures) == EDA_FIGURE_NAMES
    assert len(set(EDA_FIGURE_NAMES)) == 7
    for name, fig in figures.items():
        save_pdf(fig, tmp_path / name)
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel(), f"{name}: unlabelled axis"
            assert ax.get_title() or fig.get_suptitle(), f"{name}: untitled"


def test_rating_distribution(eda, tmp_path):
    fig = rating_distribution_figure(eda)
    save_pdf(fig, tmp_path / "r.pdf")
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == len(eda.rating_values)
    centres = [b.get_x() + b.get_width() / 2 for b in bars]
    np.testing.assert_allclose(centres, eda.rating_values)
    np.testing.assert_allclose([b.get_height() for b in bars], eda.rating_counts)
    labels = [t.get_text() for t in ax.texts]
    share = eda.rating_counts / eda.n_ratings
    assert labels == [f"{100 * s:.1f} %" for s in share]
    assert f"{eda.n_ratings:,} ratings" in ax.get_title()
    assert ax.get_xlabel() == "Rating (stars)"
    assert ax.get_ylabel() == "Number of ratings"
    fractions = rating_distribution_figure(eda, fractions=True).axes[0]
    assert fractions.get_ylabel() == "Fraction of ratings"
    assert sum(b.get_height() for b in fractions.patches) == pytest.approx(1.0)


def test_average_ratings_per_user(eda, tmp_path):
    fig = average_ratings_per_user_figure(eda)
    save_pdf(fig, tmp_path / "u.pdf")
    ax = fig.axes[0]
    rated = eda.user_counts > 0
    assert sum(p.get_height() for p in ax.patches) == rated.sum()
    texts = legend_texts(ax)
    assert any(f"{np.mean(eda.user_means[rated]):.3f}" in t for t in texts)
    assert any(f"{eda.mean_rating:.3f}" in t for t in texts)
    assert "users" in ax.get_ylabel().lower()


def test_frequency_vs_degree_is_log_log_per_series(eda, tmp_path):
    fig = frequency_vs_degree_figure(eda)
    save_pdf(fig, tmp_path / "f.pdf")
    users, movies = fig.axes
    for ax, values, freq in (
        (users, eda.user_degree_values, eda.user_degree_frequency),
        (movies, eda.item_degree_values, eda.item_degree_frequency),
    ):
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        offsets = ax.collections[0].get_offsets()
        np.testing.assert_array_equal(offsets[:, 0], values)
        np.testing.assert_array_equal(offsets[:, 1], freq)
    assert "users" in users.get_ylabel() and "movies" in movies.get_ylabel()


def test_sparsity_title_has_full_matrix_sparsity(eda, tmp_path):
    fig = sparsity_figure(eda)
    save_pdf(fig, tmp_path / "s.pdf")
    ax = fig.axes[0]
    title = ax.get_title()
    assert f"{100 * eda.sparsity:.2f} %" in title
    assert f"{eda.n_ratings:,}" in title
    assert "100 × 100 sample block" in title
    image = ax.get_images()[0].get_array()
    np.testing.assert_array_equal(np.asarray(image), ~np.isnan(eda.block_ratings))
    assert "random (seed 5)" in ax.get_xlabel()


def test_variance_vs_count_reports_spearman(eda, tmp_path):
    fig = variance_vs_count_figure(eda)
    data = save_pdf(fig, tmp_path / "v.pdf")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    rho = f"{eda.spearman_variance_vs_count:+.3f}"
    assert f"Spearman ρ = {rho}" in ax.get_title()
    assert any(f"Spearman ρ = {rho}" in t for t in legend_texts(ax))
    scatter = next(c for c in ax.collections if isinstance(c, PathCollection))
    assert scatter.get_rasterized()
    assert len(scatter.get_offsets()) == eda.variance_mask.sum()
    assert "stars²" in ax.get_ylabel()
    assert len(data) < 300_000


def test_mean_vs_count(eda, tmp_path):
    fig = mean_vs_count_figure(eda)
    save_pdf(fig, tmp_path / "m.pdf")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    scatter = next(c for c in ax.collections if isinstance(c, PathCollection))
    assert len(scatter.get_offsets()) == np.count_nonzero(eda.item_counts > 0)
    assert scatter.get_rasterized()
    assert any("Spearman" in t for t in legend_texts(ax))


def test_variance_vs_mean_rating_marks_the_peak(eda, tmp_path):
    fig = variance_vs_mean_rating_figure(eda)
    save_pdf(fig, tmp_path / "vm.pdf")
    ax = fig.axes[0]
    assert eda.peak_bin >= 0
    peak_line = next(line for line in ax.get_lines() if line.get_marker() == "*")
    np.testing.assert_allclose(peak_line.get_xydata(), [[eda.peak_mean_rating, eda.peak_variance]])
    assert any(t.startswith("peak: smoothed variance") for t in legend_texts(ax))
    vertical = [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert vertical == list(eda.region_edges)


def test_degenerate_data_still_draws(tmp_path):
    # One rating value, every movie rated once: no variances, no peak, no Spearman ρ.
    ratings = Ratings.from_arrays(np.arange(6), np.arange(6), np.full(6, 4.0))
    eda = compute_eda(ratings, 6, 8)
    figures = eda_figures(eda)
    for name, fig in figures.items():
        save_pdf(fig, tmp_path / name)
    title = figures["variance_vs_count.pdf"].axes[0].get_title()
    assert "Spearman ρ = undefined" in title
    assert not any(
        line.get_marker() == "*"
        for line in figures["variance_vs_mean_rating.pdf"].axes[0].get_lines()
    )


def test_large_scatter_pdf_stays_small(tmp_path):
    ratings = ratings_with_popularity(1, n_users=2_000, n_items=40_000, n_ratings=150_000)
    eda = compute_eda(ratings, 2_000, 40_000)
    assert eda.variance_mask.sum() > 10_000
    for make in (variance_vs_count_figure, mean_vs_count_figure, variance_vs_mean_rating_figure):
        data = save_pdf(make(eda), tmp_path / "big.pdf")
        assert len(data) < 1_000_000, make.__name__
