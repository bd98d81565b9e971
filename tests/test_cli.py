"""The ``movielens-als`` console script over a model the pipeline trained."""

from __future__ import annotations

import json

import pytest

from movielens_als.cli import main
from movielens_als.config import compose
from movielens_als.data.index import load_index
from movielens_als.data.split import load_split
from movielens_als.pipeline.data import run_download, run_index, run_split
from movielens_als.pipeline.train import run_training


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    overrides = [
        "dataset=synthetic",
        "dataset.synthetic.preset=tiny",
        "tracking.enabled=false",
        f"paths.data={root / 'data'}",
        f"paths.results={root / 'data'}",
        f"paths.reports={root / 'reports'}",
    ]
    for stage, run in (("download", run_download), ("index", run_index), ("split", run_split)):
        run(compose(stage, overrides))
    run_training(compose("train", ["model=als", *overrides, "model.K=4", "model.iterations=3"]))
    run_training(
        compose(
            "train",
            [
                "model=bayes_genre_als",
                *overrides,
                "model.K=3",
                "model.samples=4",
                "model.burn_in=1",
                "model.saved_samples=2",
            ],
        )
    )
    index = load_index(root / "data/index/synthetic")
    counts = load_split(root / "data/split/synthetic").train.by_item.row_counts()
    return root, index, counts


def _cli(root, *args):
    return main([*args, "--dataset", "synthetic", "--data", str(root / "data"), "--json"])


def test_recommend_lists_unrated_popular_movies(trained, capsys):
    root, index, counts = trained
    rated = index.titles[int(counts.argmax())]
    assert _cli(root, "recommend", "--rate", f"{rated}=5", "-n", "5", "--min-ratings", "3") == 0
    result = json.loads(capsys.readouterr().out)
    listed = result["recommendations"]
    assert len(listed) == 5
    assert all(r["title"] != rated for r in listed)
    assert all(r["n_ratings"] >= 3 for r in listed)
    assert [r["score"] for r in listed] == sorted((r["score"] for r in listed), reverse=True)


def test_bayesian_model_recommends_and_finds_similar_movies(trained, capsys):
    """The Gibbs model's fold-in (per saved draw) and its stacked factors serve the CLI too."""
    root, index, counts = trained
    top = int(counts.argmax())
    assert (
        _cli(
            root,
            "recommend",
            "--model",
            "bayes_genre_als",
            "--rate",
            f"{index.titles[top]}=5",
            "-n",
            "4",
            "--min-ratings",
            "2",
        )
        == 0
    )
    listed = json.loads(capsys.readouterr().out)["recommendations"]
    assert len(listed) == 4 and all(r["title"] != index.titles[top] for r in listed)
    assert (
        _cli(
            root,
            "similar",
            str(int(index.movie_ids[top])),
            "--model",
            "bayes_genre_als",
            "-n",
            "3",
            "--min-ratings",
            "1",
        )
        == 0
    )
    assert len(json.loads(capsys.readouterr().out)["similar"]) == 3


def test_similar_lists_movies(trained, capsys):
    root, index, counts = trained
    movie_id = int(index.movie_ids[int(counts.argmax())])
    assert _cli(root, "similar", str(movie_id), "-n", "3", "--min-ratings", "1") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["movie"]["movie_id"] == movie_id
    assert len(result["similar"]) == 3 and all(r["movie_id"] != movie_id for r in result["similar"])


def test_text_output_is_a_table(trained, capsys):
    root, index, counts = trained
    rated = index.titles[int(counts.argmax())]
    assert (
        main(
            [
                "recommend",
                "--rate",
                f"{rated}=4",
                "-n",
                "2",
                "--min-ratings",
                "1",
                "--dataset",
                "synthetic",
                "--data",
                str(root / "data"),
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Top 2 for a user who rated:")
    assert len(lines) == 2 + 2 + 1  # header, column names, two movies, footer


@pytest.mark.parametrize(
    ("spec", "message"),
    [("no such movie at all=4", "no movie title contains"), ("{title}=9", "off the scale")],
)
def test_bad_requests_are_one_clear_error(trained, capsys, spec, message):
    root, index, _ = trained
    assert _cli(root, "recommend", "--rate", spec.format(title=index.titles[0])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_missing_model_names_the_file(trained, capsys):
    root, _, _ = trained
    assert _cli(root, "similar", "1", "--model", "genre_als") == 2
    err = capsys.readouterr().err
    assert "no trained model 'genre_als'" in err and "(trained: als, bayes_genre_als)" in err


def test_version_and_project_found_from_a_subfolder(trained, capsys, monkeypatch):
    from movielens_als import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert (
        exit_info.value.code == 0
        and capsys.readouterr().out.strip() == f"movielens-als {__version__}"
    )
    root, index, counts = trained
    (root / "dvc.yaml").write_text("stages: {}\n")
    nested = root / "reports" / "deep"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)  # the enclosing project is found by walking up to dvc.yaml
    movie_id = int(index.movie_ids[int(counts.argmax())])
    assert (
        main(
            [
                "similar",
                str(movie_id),
                "--dataset",
                "synthetic",
                "-n",
                "2",
                "--min-ratings",
                "1",
                "--json",
            ]
        )
        == 0
    )
    assert len(json.loads(capsys.readouterr().out)["similar"]) == 2
