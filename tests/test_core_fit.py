"""The training loop: monotone NLL, records, unseen users/movies, determinism, params, files."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from _real_model import shipped_params
from _threads import outputs_at_one_and_two_threads
from core_problems import random_genres, random_problem, random_ratings, split_ratings
from movielens_als.config import compose
from movielens_als.core import (
    ALSParams,
    fit,
    load_model,
    reference,
    rmse,
    save_model,
)
from movielens_als.core.fit import CACHE_LINE_BYTES, init_factors
from movielens_als.core.variant import META_KEYS
from movielens_als.errors import ConfigError, DataError
from movielens_als.sparse import CSR, RatingMatrix, Ratings

# NLL increases smaller than this (relative) are float rounding of an exact minimiser.
NLL_RTOL = 1e-9


def params_for(model: str, **overrides) -> ALSParams:
    """The shipped model of a stage, shrunk to small problems (K = 4, 12 iterations)."""
    values = {"iterations": 12, **overrides}
    if model != "bias":
        values["K"] = overrides.get("K", 4)
    return shipped_params(model, **values)


@pytest.mark.parametrize("model", ["bias", "als", "genre_als"])
@pytest.mark.parametrize("reg_scaling", ["constant", "count"])
def test_nll_never_increases(model, reg_scaling):
    train, _ = random_problem(20, n_users=50, n_items=40, n_ratings=700)
    tau = 0.05 if reg_scaling == "count" else 1.0
    params = params_for(model, reg_scaling=reg_scaling, tau=tau, lam=1.0, gamma=0.5, eta=0.5)
    genres = random_genres(21, train.n_items) if model == "genre_als" else None
    history = fit(train, params, movie_genres=genres).history
    nll = np.array([record.nll for record in history])
    assert np.all(np.isfinite(nll))
    assert np.all(np.diff(nll) <= NLL_RTOL * np.abs(nll[:-1])), np.diff(nll)
    assert nll[-1] < nll[0]


def test_nll_and_rmse_records_match_reference():
    train, ratings = random_problem(22)
    train_part, test_part = split_ratings(ratings, 23)
    train = RatingMatrix.from_ratings(train_part, train.n_users, train.n_items)
    genres = random_genres(24, train.n_items)
    params = params_for("genre_als", iterations=3, reg_scaling="count", K=3)
    seen = []
    result = fit(
        train,
        params,
        movie_genres=genres,
        evals={"test": test_part, "train": train_part},
        callback=seen.append,
    )
    assert seen == result.history
    assert [r.iteration for r in result.history] == [1, 2, 3]
    model = result.model
    last = result.history[-1]
    assert last.seconds > 0
    assert set(last.eval_rmse) == {"test", "train"}
    assert last.eval_rmse["train"] == pytest.approx(last.train_rmse, rel=1e-9)
    assert last.eval_rmse["test"] == pytest.approx(rmse(model, test_part), rel=1e-12)

    user_weight = train.by_user.row_counts().astype(np.float64)
    item_weight = train.by_item.row_counts().astype(np.float64)
    expected = reference.nll(
        train_part,
        model.mu,
        model.user_bias,
        model.item_bias,
        model.user_factors,
        model.item_factors,
        lam=params.lam,
        tau=params.tau,
        gamma=params.gamma,
        eta=params.eta,
        user_weight=user_weight,
        item_weight=item_weight,
        prior=reference.genre_prior(genres, model.genre_factors),
        genre_factors=model.genre_factors,
    )
    assert last.nll == pytest.approx(expected, rel=1e-6)
    sse = reference.squared_error(
        train_part,
        model.mu,
        model.user_bias,
        model.item_bias,
        model.user_factors,
        model.item_factors,
    )
    assert last.train_rmse == pytest.approx(np.sqrt(sse / len(train_part)), rel=1e-9)


@pytest.mark.parametrize("model", ["als", "genre_als"])
def test_fit_follows_the_reference_alternation(model):
    train, _ = random_problem(25)
    params = params_for(model, iterations=3, K=3, reg_scaling="count")
    genres = random_genres(26, train.n_items) if model == "genre_als" else None
    result = fit(train, params, movie_genres=genres)

    count_scaled = True
    mu = float(np.mean(train.by_user.data, dtype=np.float64))
    _, item_factors, genre_factors = init_factors(
        params, train.n_users, train.n_items, None if genres is None else genres.n_cols
    )
    item_factors = item_factors.astype(np.float64)
    item_bias = np.zeros(train.n_items)
    weight = train.by_item.row_counts().astype(np.float64)
    prior = None if genres is None else reference.genre_prior(genres, genre_factors)
    regs = {
        "lam": params.lam,
        "tau": params.tau,
        "gamma": params.gamma,
        "count_scaled": count_scaled,
    }
    for _ in range(params.iterations):
        user_bias, user_factors = reference.update_side(
            train.by_user, mu, item_bias, item_factors, **regs
        )
        item_bias, item_factors = reference.update_side(
            train.by_item, mu, user_bias, user_factors, prior=prior, **regs
        )
        if genres is not None:
            genre_factors = reference.genre_update_exact(
                genres, weight, item_factors, params.tau, params.eta
            )
            prior = reference.genre_prior(genres, genre_factors)
    got = result.model
    scale = np.abs(item_factors).max()
    np.testing.assert_allclose(got.item_factors, item_factors, rtol=1e-3, atol=1e-3 * scale)
    np.testing.assert_allclose(
        got.user_factors, user_factors, rtol=1e-3, atol=1e-3 * np.abs(user_factors).max()
    )
    np.testing.assert_allclose(got.user_bias, user_bias, rtol=1e-3, atol=1e-4)
    if genres is not None:
        np.testing.assert_allclose(
            got.genre_factors, genre_factors, rtol=1e-3, atol=1e-3 * np.abs(genre_factors).max()
        )


def test_unseen_and_cold_users_and_movies():
    ratings, n_users, n_items = random_ratings(27)
    # the test set holds: a user without train ratings, a movie without train ratings, and a
    # user and a movie beyond the index (both unknown to the model)
    cold_user, cold_item = n_users - 2, n_items - 1
    test = Ratings.from_arrays(
        [cold_user, 0, n_users + 3, 1], [0, cold_item, 2, n_items + 5], [4.0, 3.0, 5.0, 2.0]
    )
    train = RatingMatrix.from_ratings(ratings, n_users, n_items)
    genres = random_genres(28, n_items)
    for movie_genres in (None, genres):
        result = fit(
            train,
            params_for("als", iterations=2, K=3, genres=movie_genres is not None),
            movie_genres=movie_genres,
            evals={"test": test},
        )
        model = result.model
        assert model.user_bias[cold_user] == 0 and np.all(model.user_factors[cold_user] == 0)
        assert model.item_bias[cold_item] == 0
        if movie_genres is None:
            assert np.all(model.item_factors[cold_item] == 0)
        else:
            prior = reference.genre_prior(genres, model.genre_factors)[cold_item]
            np.testing.assert_allclose(model.item_factors[cold_item], prior, rtol=1e-6, atol=1e-7)
        pred = model.predict(test.user, test.item)
        assert pred[0] == pytest.approx(model.mu + model.item_bias[0])  # μ + c_n
        assert pred[2] == pytest.approx(model.mu + model.item_bias[2])
        assert pred[3] == pytest.approx(model.mu + model.user_bias[1])
        assert np.isfinite(result.history[-1].eval_rmse["test"])
        assert result.eval_coverage["test"] == {
            "n_ratings": 4,
            "n_unseen_user": 2,
            "n_unseen_item": 2,
            "n_both_seen": 0,
            "fraction_both_seen": 0.0,
        }


def test_zero_init_gives_the_bias_only_model():
    train, _ = random_problem(29)
    bias_only = fit(train, params_for("bias", iterations=5)).model
    zero_factors = fit(train, replace(params_for("bias", iterations=5), K=3, tau=0.1)).model
    assert np.all(zero_factors.user_factors == 0) and np.all(zero_factors.item_factors == 0)
    np.testing.assert_allclose(zero_factors.item_bias, bias_only.item_bias, rtol=1e-5, atol=1e-6)


def test_center_false_drops_the_mean():
    train, ratings = random_problem(30)
    result = fit(train, params_for("als", iterations=2, center=False))
    assert result.model.mu == 0.0
    centred = fit(train, params_for("als", iterations=2))
    assert centred.model.mu == pytest.approx(float(np.mean(ratings.rating, dtype=np.float64)))


def test_same_seed_same_model_other_seed_differs():
    train, _ = random_problem(31)
    first = fit(train, params_for("als", iterations=2, seed=5)).model
    second = fit(train, params_for("als", iterations=2, seed=5)).model
    other = fit(train, params_for("als", iterations=2, seed=6)).model
    assert np.array_equal(first.user_factors, second.user_factors)
    assert not np.array_equal(first.user_factors, other.user_factors)


@pytest.mark.parametrize("init", ["normal", "zeros"])
def test_initial_factors_are_cache_line_aligned_and_seeded(init):
    params = params_for("als", init=init, seed=3)
    user_factors, item_factors, _ = init_factors(params, 37, 29, None)
    for factors, n_rows in ((user_factors, 37), (item_factors, 29)):
        assert factors.ctypes.data % CACHE_LINE_BYTES == 0
        assert factors.flags.c_contiguous and factors.dtype == np.float32
        assert factors.shape == (n_rows, params.K)
    if init == "normal":
        rng = np.random.default_rng(3)
        expected = rng.normal(0.0, 1.0 / np.sqrt(params.K), size=(37, params.K))
        assert np.array_equal(user_factors, expected.astype(np.float32))
    else:
        assert not user_factors.any() and not item_factors.any()


_DETERMINISM_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    import numba
    sys.path.insert(0, {tests!r})
    from core_problems import random_genres, random_problem
    from movielens_als.core import ALSParams, fit
    train, ratings = random_problem(32, n_users=400, n_items=300, n_ratings=9000)
    digest = hashlib.sha256()
    records = []
    for genres in (None, random_genres(33, train.n_items)):
        for scaling in ("constant", "count"):
            params = ALSParams(K=6, iterations=3, tau=0.05 if scaling == "count" else 1.0,
                               reg_scaling=scaling, seed=7, genres=genres is not None)
            result = fit(train, params, movie_genres=genres, evals={{"all": ratings}})
            model = result.model
            for array in (model.user_bias, model.item_bias, model.user_factors, model.item_factors):
                digest.update(array.tobytes())
            records += [(r.nll, r.train_rmse, r.eval_rmse["all"]) for r in result.history]
    print(json.dumps({{"threads": numba.get_num_threads(), "digest": digest.hexdigest(),
                      "records": [[float.hex(x) for x in r] for r in records]}}))
    """
)


def test_bit_identical_with_one_and_two_threads():
    script = _DETERMINISM_SCRIPT.format(tests=str(Path(__file__).resolve().parent))
    outputs = outputs_at_one_and_two_threads(script)
    assert outputs[0]["digest"] == outputs[1]["digest"]
    assert outputs[0]["records"] == outputs[1]["records"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("K", -1),
        ("K", 2.5),
        ("lam", -0.1),
        ("tau", float("nan")),
        ("gamma", "big"),
        ("eta", float("inf")),
        ("iterations", 0),
        ("seed", -3),
        ("center", "yes"),
        ("reg_scaling", "per_rating"),
        ("genre_update", "approx"),
        ("init", "uniform"),
    ],
)
def test_invalid_params_name_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"model\.{field}"):
        ALSParams(**{field: value})


def test_params_from_mapping():
    for stage in ("bias", "als", "genre_als"):
        values = dict(compose("train", [f"model={stage}"]).model)
        as_dict = ALSParams.from_mapping(values).to_dict()
        assert as_dict == {
            k: v for k, v in values.items() if k not in META_KEYS or k == "variant"
        }, stage
    with pytest.raises(ConfigError, match=r"unknown model key.*rank"):
        ALSParams.from_mapping({"rank": 3})
    assert isinstance(ALSParams.from_mapping({"lam": 1}).lam, float)


def test_bad_training_input():
    train, ratings = random_problem(34)
    with pytest.raises(ConfigError, match=r"model\.genres.*K ≥ 1"):
        params_for("bias", genres=True)
    with pytest.raises(ConfigError, match="needs the movie–genre matrix"):
        fit(train, params_for("genre_als"))
    with pytest.raises(DataError, match="movie_genres has 3 rows"):
        fit(train, params_for("genre_als"), movie_genres=random_genres(1, 3))
    bad = Ratings(ratings.user, ratings.item, ratings.rating.copy())
    bad.rating[5] = np.nan
    with pytest.raises(DataError, match=rf"user {bad.user[5]}, movie {bad.item[5]} is not finite"):
        fit(RatingMatrix.from_ratings(bad, train.n_users, train.n_items), params_for("als"))
    empty = Ratings.from_arrays([], [], [])
    with pytest.raises(DataError, match="no ratings"):
        fit(RatingMatrix.from_ratings(empty, 3, 3), params_for("als"))
    with pytest.raises(DataError, match=r"eval set 'test'.*negative user"):
        fit(train, params_for("als"), evals={"test": Ratings.from_arrays([-1], [0], [3.0])})


def test_save_and_load_roundtrip(tmp_path):
    train, _ = random_problem(35)
    genres = random_genres(36, train.n_items)
    model = fit(train, params_for("genre_als", iterations=2), movie_genres=genres).model
    save_model(model, tmp_path / "model")
    assert {p.name for p in tmp_path.iterdir()} == {"model.npz", "model.json"}
    loaded = load_model(tmp_path / "model")
    assert loaded.params == model.params and loaded.mu == model.mu
    for name in ("user_bias", "item_bias", "user_factors", "item_factors", "genre_factors"):
        assert np.array_equal(getattr(loaded, name), getattr(model, name)), name
    users, items = np.arange(5), np.arange(5)
    assert np.array_equal(loaded.predict(users, items), model.predict(users, items))

    bias_model = fit(train, params_for("bias", iterations=1)).model
    save_model(bias_model, tmp_path / "bias.npz")
    assert load_model(tmp_path / "bias").genre_factors is None

    meta = json.loads((tmp_path / "model.json").read_text())
    meta["n_users"] += 1
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="user_bias has shape"):
        load_model(tmp_path / "model")
    with pytest.raises(DataError, match="missing"):
        load_model(tmp_path / "absent")


def test_movie_genres_csr_shape_is_checked_against_the_index():
    train, _ = random_problem(37)
    genres = CSR.from_coo(np.array([0]), np.array([0]), np.ones(1), train.n_items, 2)
    result = fit(train, params_for("genre_als", iterations=1, K=2), movie_genres=genres)
    assert result.model.genre_factors.shape == (2, 2)
    assert np.all(result.model.genre_factors[1] == 0)  # a genre no movie carries
