"""Standard protocols: k seeded folds, ml-100k's own u1…u5 splits, and the cross-validation
stage's mean ± std RMSE, on archives the tests write in the real layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _data_helpers import make_zip
from movielens_als.config import compose
from movielens_als.data.index import load_index
from movielens_als.data.split import split_ratings
from movielens_als.errors import ConfigError, DataError
from movielens_als.pipeline.crossval import run_crossval
from movielens_als.pipeline.data import run_download, run_index, run_split

U_GENRE = "".join(
    f"{g}|{i}\n"
    for i, g in enumerate(
        [
            "unknown",
            "Action",
            "Adventure",
            "Animation",
            "Children's",
            "Comedy",
            "Crime",
            "Documentary",
            "Drama",
            "Fantasy",
            "Film-Noir",
            "Horror",
            "Musical",
            "Mystery",
            "Romance",
            "Sci-Fi",
            "Thriller",
            "War",
            "Western",
        ]
    )
)
FAST = [
    "models.bias.iterations=3",
    "models.als.K=3",
    "models.als.iterations=3",
    "models.genre_als.K=3",
    "models.genre_als.iterations=3",
]


def ml100k_archive(
    seed: int = 0, n_users: int = 30, n_movies: int = 25, n_ratings: int = 400
) -> tuple[bytes, dict]:
    """An ml-100k-layout zip: u.data, u.item, u.genre and a five-fold u1…u5 (.base/.test) over
    u.data's lines, as GroupLens ships them (ua/ub are not written)."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_movies, size=n_ratings, replace=False)
    users, movies = pairs // n_movies + 1, pairs % n_movies + 1
    stars = rng.integers(1, 6, size=n_ratings)
    lines = [
        f"{u}\t{m}\t{r}\t{881250949 + i}\n"
        for i, (u, m, r) in enumerate(zip(users, movies, stars, strict=True))
    ]
    flags = lambda m: "|".join("1" if g == m % 18 + 1 else "0" for g in range(19))  # noqa: E731
    files = {
        "u.data": "".join(lines),
        "u.item": "".join(
            f"{m}|Movie {m} (1995)|01-Jan-1995||http://x|{flags(m)}\n"
            for m in range(1, n_movies + 1)
        ),
        "u.genre": U_GENRE + "\n",
    }
    fold_of = rng.permutation(n_ratings) % 5
    for k in range(5):
        files[f"u{k + 1}.test"] = "".join(
            line for line, f in zip(lines, fold_of, strict=True) if f == k
        )
        files[f"u{k + 1}.base"] = "".join(
            line for line, f in zip(lines, fold_of, strict=True) if f != k
        )
    return make_zip(files, folder="ml-100k"), files


@pytest.fixture
def ml100k_project(tmp_path, project_overrides, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive, files = ml100k_archive()
    (mirror / "ml-100k.zip").write_bytes(archive)
    overrides = ["dataset=ml-100k", f"dataset.mirror={mirror}", *project_overrides]
    run_download(compose("download", overrides))
    run_index(compose("index", overrides))
    return tmp_path, overrides, files


def test_kfold_partitions_the_ratings_into_seeded_folds(tiny_project):
    tmp_path, _ = tiny_project
    data = load_index(tmp_path / "data/index/synthetic")
    n = len(data.ratings)
    tests = [
        split_ratings(data, method="kfold", folds=4, fold=f, seed=3)[0].test.to_ratings()
        for f in range(4)
    ]
    keys = [set(zip(t.user.tolist(), t.item.tolist(), strict=True)) for t in tests]
    assert sum(len(k) for k in keys) == n and len(set().union(*keys)) == n  # disjoint, covering
    assert max(len(k) for k in keys) - min(len(k) for k in keys) <= 1
    again, _ = split_ratings(data, method="kfold", folds=4, fold=2, seed=3)
    assert (
        set(zip(*(again.test.to_ratings().user, again.test.to_ratings().item), strict=True))
        == keys[2]
    )
    other, _ = split_ratings(data, method="kfold", folds=4, fold=2, seed=4)
    assert (
        set(
            zip(
                other.test.to_ratings().user.tolist(),
                other.test.to_ratings().item.tolist(),
                strict=True,
            )
        )
        != keys[2]
    )
    with pytest.raises(ConfigError, match=r"split\.fold: 4 is out of range: folds are 0 … 3"):
        split_ratings(data, method="kfold", folds=4, fold=4)
    with pytest.raises(ConfigError, match=r"split\.folds: 1 is not an integer >= 2"):
        split_ratings(data, method="kfold", folds=1, fold=0)


def test_crossval_stage_over_kfold(tiny_project):
    tmp_path, overrides = tiny_project
    table = run_crossval(compose("crossval", [*overrides, *FAST, "split=kfold", "split.folds=3"]))
    assert table["method"] == "kfold" and table["folds"] == ["0", "1", "2"]
    assert set(table["models"]) == {"bias", "als", "genre_als"}
    for row in table["models"].values():
        values = list(row["rmse"].values())
        assert len(values) == 3 and row["rmse_mean"] == pytest.approx(np.mean(values))
        assert row["rmse_std"] == pytest.approx(np.std(values, ddof=1)) and row["rmse_std"] > 0
    assert json.loads((tmp_path / "reports/details/crossval.json").read_text()) == table
    for name, row in table["models"].items():  # one metrics file per model: a row of a table
        on_disk = json.loads((tmp_path / f"reports/metrics/crossval/{name}.json").read_text())
        assert on_disk == {"test_rmse": row["rmse_mean"], "test_rmse_std": row["rmse_std"]}


def test_predefined_split_is_the_archives_own(ml100k_project):
    _tmp_path, overrides, files = ml100k_project
    metrics = run_split(compose("split", [*overrides, "split=predefined", "split.predefined=u3"]))
    assert metrics["n_test"] == files["u3.test"].count("\n") and metrics["n_train"] == files[
        "u3.base"
    ].count("\n")
    with pytest.raises(
        DataError, match=r"ua\.base"
    ):  # listed by the registry, absent from this archive
        run_split(compose("split", [*overrides, "split=predefined", "split.predefined=ua"]))
    with pytest.raises(ConfigError, match=r"split\.predefined: 'u9' is not a split of ml-100k"):
        run_split(compose("split", [*overrides, "split=predefined", "split.predefined=u9"]))


def test_crossval_over_ml100k_u1_to_u5(ml100k_project, capsys):
    _tmp_path, overrides, _ = ml100k_project
    table = run_crossval(compose("crossval", [*overrides, *FAST, "split=predefined"]))
    assert table["folds"] == ["u1", "u2", "u3", "u4", "u5"]
    print("per-fold test RMSE on a written ml-100k-layout archive:")
    for name, row in table["models"].items():
        print(
            name,
            {k: round(v, 4) for k, v in row["rmse"].items()},
            f"mean {row['rmse_mean']:.4f} ± {row['rmse_std']:.4f}",
        )
    with pytest.raises(ConfigError, match=r"crossval\.predefined.*u9"):
        run_crossval(
            compose(
                "crossval", [*overrides, *FAST, "split=predefined", "crossval.predefined=[u1,u9]"]
            )
        )


def test_predefined_split_of_a_release_without_one_is_an_error(tiny_project):
    _tmp_path, overrides = tiny_project
    with pytest.raises(ConfigError, match="synthetic ships no predefined splits"):
        run_split(compose("split", [*overrides, "split=predefined"]))
    with pytest.raises(ConfigError, match="synthetic ships no predefined splits"):
        run_crossval(compose("crossval", [*overrides, "split=predefined"]))
