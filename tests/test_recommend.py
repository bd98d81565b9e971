"""Recommendations for a new user and similar movies on a planted two-cluster model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _real_model import real_model
from movielens_als.core.als import ALSParams
from movielens_als.core.model import FactorModel
from movielens_als.errors import UsageError
from movielens_als.recommend import (
    MovieCatalogue,
    parse_rating_spec,
    parse_user_ratings,
    recommend_new_user,
    similar_movies,
    top_movies,
)

HALF_STARS = (0.5, 5.0, 0.5)
# Cluster A (indices 0-9) points along +e1, cluster B (10-19) along -e1.
CLUSTER_A = [
    "Toy Story (1995)",
    "Toy Story 2 (1999)",
    "Toy Story 3 (2010)",
    "Finding Nemo (2003)",
    "Up (2009)",
    "Cars (2006)",
    "Monsters, Inc. (2001)",
    "Ratatouille (2007)",
    "WALL·E (2008)",
    "Coco (2017)",
]
CLUSTER_B = [
    "Heat (1995)",
    "Alien (1979)",
    "Aliens (1986)",
    "Se7en (1995)",
    "Fargo (1996)",
    "Emma (1996)",
    "Emma (1996)",
    "Casino (1995)",
    "Psycho (1960)",
    "Jaws (1975)",
]
TITLES = CLUSTER_A + CLUSTER_B
MOVIE_IDS = np.arange(1, 21) * 10  # raw ids 10, 20, …, 200
IN_A = np.arange(20) < 10


def planted_model(seed: int = 0, rank: int = 3) -> FactorModel:
    rng = np.random.default_rng(seed)
    direction = np.where(IN_A, 1.0, -1.0)
    item_factors = np.zeros((20, rank))
    item_factors[:, 0] = 2.0 * direction
    item_factors[:, 1:] = rng.normal(scale=0.1, size=(20, rank - 1))
    return FactorModel(
        mu=3.5,
        user_bias=np.zeros(1, np.float32),
        item_bias=rng.normal(scale=0.05, size=20).astype(np.float32),
        user_factors=np.zeros((1, rank), np.float32),
        item_factors=item_factors.astype(np.float32),
        genre_factors=None,
        params=ALSParams(K=rank, lam=1.0, tau=0.5, gamma=1.0, reg_scaling="constant"),
    )


def catalogue(counts=None) -> MovieCatalogue:
    counts = np.full(20, 500) if counts is None else np.asarray(counts)
    return MovieCatalogue(TITLES, MOVIE_IDS, counts)


def reference_fold_in(model: FactorModel, items, ratings):
    """argmin λ Σ (r − μ − b − c_n − uᵀv_n)² + τ‖u‖² + γ b² as one ridge solve for [b, u]."""
    p = model.params
    x = np.hstack([np.ones((len(items), 1)), model.item_factors[items].astype(np.float64)])
    target = np.asarray(ratings, np.float64) - model.mu - model.item_bias[items]
    penalty = np.diag([p.gamma] + [p.tau] * model.K)
    solution = np.linalg.solve(p.lam * x.T @ x + penalty, p.lam * x.T @ target)
    return float(solution[0]), solution[1:]


def test_fold_in_user_who_loves_cluster_a_gets_cluster_a_first():
    model = planted_model()
    result = recommend_new_user(
        model,
        catalogue(),
        ["Toy Story (1995)=5", "cars=5", "Heat (1995)=1", "alien (1979)=1.5"],
        rating_scale=HALF_STARS,
        n=10,
        min_ratings=100,
    )
    recommended = [entry["title"] for entry in result["recommendations"]]
    rated = {"Toy Story (1995)", "Cars (2006)", "Heat (1995)", "Alien (1979)"}
    assert not rated & set(recommended)
    assert set(recommended[:8]) == set(CLUSTER_A) - rated  # all of A before any of B
    scores = [entry["score"] for entry in result["recommendations"]]
    assert scores == sorted(scores, reverse=True)
    assert [entry["rank"] for entry in result["recommendations"]] == list(range(1, 11))
    json.dumps(result)  # JSON-able for the CLI's --json output


def test_recommendation_scores_are_predictions_of_the_reference_fold_in():
    model = planted_model(seed=3)
    specs = ["10=4", "Up (2009)=4.5", "Psycho=2"]
    items, ratings = parse_user_ratings(specs, catalogue(), HALF_STARS)
    bias, factors = reference_fold_in(model, items, ratings)
    expected = model.mu + bias + model.item_bias + model.item_factors.astype(np.float64) @ factors
    result = recommend_new_user(
        model, catalogue(), specs, rating_scale=HALF_STARS, n=20, min_ratings=0
    )
    assert result["user_bias"] == pytest.approx(bias, abs=1e-4)
    for entry in result["recommendations"]:
        index = MOVIE_IDS.tolist().index(entry["movie_id"])
        assert entry["title"] == TITLES[index]
        assert entry["score"] == pytest.approx(expected[index], abs=1e-4)
    assert len(result["recommendations"]) == 17  # 20 movies − 3 rated


def test_fold_in_callable_can_be_swapped():
    model = planted_model()
    result = recommend_new_user(
        model,
        catalogue(),
        ["Jaws=5"],
        rating_scale=HALF_STARS,
        n=3,
        min_ratings=0,
        fold_in=reference_fold_in,
    )
    assert all(not IN_A[TITLES.index(e["title"])] for e in result["recommendations"])


def test_popularity_filter_and_exclusions():
    counts = np.full(20, 500)
    counts[[1, 2]] = 99  # Toy Story 2 and 3: too few ratings to be listed
    result = recommend_new_user(
        planted_model(),
        catalogue(counts),
        ["Toy Story (1995)=5"],
        rating_scale=HALF_STARS,
        n=5,
        min_ratings=100,
    )
    titles = [e["title"] for e in result["recommendations"]]
    assert "Toy Story 2 (1999)" not in titles and "Toy Story 3 (2010)" not in titles
    assert len(titles) == 5 and all(t in CLUSTER_A for t in titles)
    assert all(e["n_ratings"] >= 100 for e in result["recommendations"])


def test_similar_returns_own_cluster_first_and_excludes_the_movie():
    model = planted_model(seed=5)
    result = similar_movies(model.item_factors, catalogue(), "finding nemo", n=12, min_ratings=100)
    assert result["movie"]["title"] == "Finding Nemo (2003)"
    titles = [e["title"] for e in result["similar"]]
    assert "Finding Nemo (2003)" not in titles
    assert set(titles[:9]) == set(CLUSTER_A) - {"Finding Nemo (2003)"}
    assert all(e["cosine"] < 0 for e in result["similar"][9:])
    v = model.item_factors.astype(np.float64)
    expected = v @ v[3] / (np.linalg.norm(v, axis=1) * np.linalg.norm(v[3]))
    first = result["similar"][0]
    assert first["cosine"] == pytest.approx(expected[TITLES.index(first["title"])])


def test_similar_needs_factors():
    cat = catalogue()
    with pytest.raises(UsageError, match="bias-only"):
        similar_movies(np.zeros((20, 0)), cat, "Heat (1995)")
    factors = planted_model().item_factors.copy()
    factors[0] = 0.0
    with pytest.raises(UsageError, match="all-zero"):
        similar_movies(factors, cat, "Toy Story (1995)")


def test_every_movie_filtered_out_is_a_clear_error():
    with pytest.raises(UsageError, match="at least 1000 training ratings"):
        top_movies(np.arange(20.0), catalogue(), min_ratings=1000)


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ("toy story (1995)", 0),  # exact title, case-insensitive, though a substring of none else
        ("TOY STORY 2", 1),  # unique substring
        ("  nemo ", 3),
        ("Alien (1979)", 11),  # exact wins over "Aliens (1986)"
        ("40", 3),  # a pure integer is a raw movie id
        ("WALL·E", 8),
    ],
)
def test_title_resolution(query, index):
    assert catalogue().resolve(query) == index


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("Toy Story", r"'Toy Story' is ambiguous: 3 movies contain it"),
        ("emma (1996)", r"2 movies have exactly this title(.|\n)*Emma \(1996\) \[id 160\]"),
        ("Zzyzx", r"no movie title contains 'Zzyzx'"),
        ("Toy Stroy (1995)", r"did you mean: 'Toy Story \(1995\)'"),
        ("999", r"movie id 999 is not in the model"),
        ("   ", r"empty movie name"),
    ],
)
def test_title_resolution_errors(query, message):
    with pytest.raises(UsageError, match=message):
        catalogue().resolve(query)


def test_ambiguous_message_lists_at_most_ten_candidates_most_rated_first():
    counts = np.arange(20) * 10
    with pytest.raises(UsageError) as info:
        catalogue(counts).resolve("(19")  # every title from the 1900s: 12 movies
    text = str(info.value)
    listed = [line.strip() for line in text.splitlines() if line.startswith("  ") and "[id" in line]
    assert len(listed) == 10 and "… and 2 more" in text
    assert listed[0] == "Jaws (1975) [id 200]"  # most rated first


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "Heat (1995)=6",
            r"rating 6 for 'Heat \(1995\)' is off the scale: ratings go from 0.5 to 5 in steps of 0.5",
        ),
        ("Heat (1995)=0", "off the scale"),
        ("Heat (1995)=4.25", "off the scale"),
        ("Heat (1995)=nan", "off the scale"),
        ("Heat (1995)=great", r"'great' is not a number"),
        ("Heat (1995)", r"not of the form <title or movie id>=<rating>"),
        ("=4", r"not of the form"),
    ],
)
def test_rating_spec_errors(spec, message):
    with pytest.raises(UsageError, match=message):
        parse_user_ratings([spec], catalogue(), HALF_STARS)


def test_rating_specs_parse_and_reject_duplicates():
    assert parse_rating_spec("Kill=Bill (2003)=4.5") == ("Kill=Bill (2003)", 4.5)
    items, ratings = parse_user_ratings(["heat (1995)=4", "30= 0.5"], catalogue(), HALF_STARS)
    assert items.tolist() == [10, 2] and ratings.tolist() == [4.0, 0.5]
    with pytest.raises(UsageError, match="rated twice"):
        parse_user_ratings(["Heat (1995)=4", "110=3"], catalogue(), HALF_STARS)
    with pytest.raises(UsageError, match="at least one rating"):
        parse_user_ratings([], catalogue(), HALF_STARS)


ANIMATED = {
    "Toy Story 2 (1999)", "Toy Story 3 (2010)", "Finding Nemo (2003)", "Incredibles, The (2004)",
    "Aladdin (1992)", "Lion King, The (1994)", "Monsters, Inc. (2001)", "Bug's Life, A (1998)",
    "Shrek (2001)", "Up (2009)", "Ratatouille (2007)", "WALL·E (2008)", "Chicken Run (2000)",
    "Beauty and the Beast (1991)", "Shrek 2 (2004)", "Ice Age (2002)",
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.realdata
def test_real_data_titles_recommendations_and_similar_movies(real_mirror):
    real = real_model(real_mirror)
    cat = MovieCatalogue(
        real.data.titles, real.data.movie_ids, real.split.train.by_item.row_counts()
    )
    matrix = cat.resolve("Matrix, The (1999)")
    assert cat.resolve("2571") == matrix == cat.resolve("matrix, the (1999)")
    with pytest.raises(UsageError, match=r"(?s)2 movies contain it.*Animatrix, The \(2003\)"):
        cat.resolve("Matrix, The")

    specs = ["Toy Story (1995)=5", "Finding Nemo=5", "Shrek (2001)=4.5", "Saw (2004)=1"]
    result = recommend_new_user(
        real.model, cat, specs, rating_scale=real.data.rating_scale, n=10, min_ratings=100
    )
    recommended = result["recommendations"]
    assert len(recommended) == 10
    assert {e["title"] for e in result["ratings"]}.isdisjoint(e["title"] for e in recommended)
    assert all(e["n_ratings"] >= 100 for e in recommended)
    assert [e["score"] for e in recommended] == sorted(
        (e["score"] for e in recommended), reverse=True
    )

    similar = similar_movies(real.model.item_factors, cat, "Toy Story (1995)", n=10, min_ratings=50)
    titles = {e["title"] for e in similar["similar"]}
    assert len(titles & ANIMATED) >= 3, titles  # quality band: its neighbours are animations
