"""Every stage, run through its library ``run(cfg)`` on a tiny synthetic release in tmp_path,
with the real composed config and MLflow pointed at tmp_path."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from movielens_als.config import compose
from movielens_als.errors import ConfigError, DataError
from movielens_als.pipeline.data import run_split
from movielens_als.pipeline.eda import run_eda
from movielens_als.pipeline.train import run_training

FAST_MODEL = ["model.iterations=3", "model.K=4"]
GIBBS_MODEL = ["model.K=3", "model.samples=3", "model.burn_in=1", "model.saved_samples=2"]
EDA_FIGURES = {
    "rating_distribution.pdf",
    "average_ratings_per_user.pdf",
    "frequency_vs_degree.pdf",
    "sparsity_visualization.pdf",
    "variance_vs_count.pdf",
    "mean_vs_count.pdf",
    "variance_vs_mean_rating.pdf",
}
TRAIN_METRIC_KEYS = {
    "train_rmse",
    "test_rmse",
    "nll",
    "iterations",
    "model",
}


def _runs(tmp_path, stage):
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("movielens-als/synthetic")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.stage = '{stage}'")
    return client, runs


def test_data_stages_write_outputs_and_metrics(tiny_project):
    tmp_path, _ = tiny_project
    index = json.loads((tmp_path / "reports/metrics/index.json").read_text())
    split = json.loads((tmp_path / "reports/metrics/split.json").read_text())
    # metrics files hold the headline numbers only; the details hold the rest
    assert set(index) == {"n_ratings", "n_users", "n_movies"}
    assert set(split) == {"n_train", "n_test"}
    assert split["n_train"] + split["n_test"] == index["n_ratings"]
    details = json.loads((tmp_path / "reports/details/index.json").read_text())
    assert details["dataset"] == "synthetic" and "sparsity" in details
    assert (tmp_path / "data/raw/synthetic/ratings.csv").is_file()
    for stage in ("download", "index", "split"):
        _, runs = _runs(tmp_path, stage)
        assert len(runs) == 1, stage
        assert runs[0].data.params["dataset.name"] == "synthetic"


def test_eda_stage_writes_every_figure(tiny_project):
    tmp_path, overrides = tiny_project
    summary = run_eda(compose("eda", overrides))
    figures = {p.name for p in (tmp_path / "reports/figures/eda").iterdir()}
    assert figures == EDA_FIGURES | {name.replace(".pdf", ".png") for name in EDA_FIGURES}
    for name in EDA_FIGURES:
        pdf = (tmp_path / "reports/figures/eda" / name).read_bytes()
        assert pdf.startswith(b"%PDF") and b"/CreationDate" not in pdf
        png = (tmp_path / "reports/figures/eda" / name.replace(".pdf", ".png")).read_bytes()
        assert png.startswith(b"\x89PNG")
    assert json.loads((tmp_path / "reports/details/eda.json").read_text()) == json.loads(
        json.dumps(summary)
    )
    assert json.loads((tmp_path / "reports/metrics/eda.json").read_text()) == {
        "density": summary["density"]
    }
    client, runs = _runs(tmp_path, "eda")
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"metrics", "details", "figures"} <= artifacts
    logged = {a.path for a in client.list_artifacts(runs[0].info.run_id, "figures/eda")}
    assert {f"figures/eda/{name}" for name in EDA_FIGURES} <= logged


@pytest.mark.parametrize(
    ("stage", "figures"),
    [
        ("bias", {"bias_only_convergence.pdf"}),
        ("als", {"all_latent_factors_convergence.pdf"}),
        (
            "genre_als",
            {
                "genre_integration_convergence.pdf",
                "genre_embeddings.pdf",
                "genre_cosine_similarity.pdf",
            },
        ),
        ("bayes_als", {"bayes_als_convergence.pdf"}),
        (
            "bayes_genre_als",
            {
                "bayes_genre_als_convergence.pdf",
                "genre_embeddings.pdf",
                "genre_cosine_similarity.pdf",
            },
        ),
    ],
)
def test_training_stage_outputs_and_mlflow_run(tiny_project, stage, figures):
    tmp_path, overrides = tiny_project
    sweeps_key = "samples" if stage.startswith("bayes") else "iterations"
    model_overrides = {
        "bias": ["model.iterations=3"],
        "bayes_als": GIBBS_MODEL,
        "bayes_genre_als": GIBBS_MODEL,
    }.get(stage, FAST_MODEL)
    metrics = run_training(compose("train", [f"model={stage}", *overrides, *model_overrides]))

    assert TRAIN_METRIC_KEYS <= set(metrics)
    assert metrics["iterations"] == 3
    assert np.isfinite(metrics["test_rmse"]) and metrics["test_rmse"] < 1.5
    on_disk = json.loads((tmp_path / f"reports/metrics/{stage}.json").read_text())
    assert on_disk["test_rmse"] == metrics["test_rmse"]
    assert all(isinstance(value, float) for value in on_disk.values())
    details = json.loads((tmp_path / f"reports/details/{stage}.json").read_text())
    assert details["model"]["name"] == stage and details["iterations"] == 3
    timings = json.loads((tmp_path / f"reports/timings/{stage}.json").read_text())
    assert set(timings) == {"fit_seconds", "seconds_per_iteration"}

    curve = pd.read_csv(tmp_path / f"reports/curves/{stage}.csv")
    sampled = (
        ["noise_precision", "user_factor_precision", "movie_factor_precision"]
        if sweeps_key == "samples"
        else []
    )
    assert list(curve.columns) == [
        "iteration",
        "nll",
        "train_rmse",
        "test_rmse",
        *sampled,
    ]
    assert curve["iteration"].tolist() == [1, 2, 3]
    if sweeps_key == "iterations":  # exact block updates never raise the NLL; draws may
        assert (np.diff(curve["nll"]) <= 1e-6 * curve["nll"].abs().max()).all()
    else:  # the saved model averages the kept draws side by side
        assert metrics["saved_model_test_rmse"] < 1.5

    pngs = {name.replace(".pdf", ".png") for name in figures}
    assert {p.name for p in (tmp_path / "reports/figures" / stage).iterdir()} == figures | pngs
    model_dir = tmp_path / "data/models/synthetic" / stage
    assert {p.name for p in model_dir.iterdir()} == {"model.npz", "model.json"}
    with np.load(model_dir / "model.npz", allow_pickle=False) as npz:
        assert npz["user_bias"].ndim == 1

    client, runs = _runs(tmp_path, stage)
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params[f"model.{sweeps_key}"] == "3"
    assert run.data.params["model.name"] == stage
    assert run.info.run_name == f"{stage} K={metrics['model']['K']}"
    assert run.data.tags["git_commit"]
    assert client.get_metric_history(run.info.run_id, "seconds")  # timings live in MLflow
    history = client.get_metric_history(run.info.run_id, "test_rmse")
    assert [m.step for m in history] == [1, 2, 3]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics", "details", "curves", "figures", "timings"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, f"figures/{stage}")} >= {
        f"figures/{stage}/{name}" for name in figures | pngs
    }
    if "genre" in stage:
        assert {"closest_pairs", "farthest_pairs"} <= set(metrics["genres"])


def test_validation_split_is_scored_every_iteration(tiny_project):
    tmp_path, overrides = tiny_project
    run_split(compose("split", [*overrides, "split.val_fraction=0.1"]))
    metrics = run_training(compose("train", ["model=als", *overrides, *FAST_MODEL]))
    curve = pd.read_csv(tmp_path / "reports/curves/als.csv")
    assert list(curve.columns) == [
        "iteration",
        "nll",
        "train_rmse",
        "test_rmse",
        "val_rmse",
    ]
    assert np.isfinite(metrics["val_rmse"])


def test_params_yaml_layout_runs_the_same_stage(tiny_project):
    """DVC runs stages with params.yaml, which holds every model under models.<name> and names
    the one to train with train.model."""
    _, overrides = tiny_project
    cfg = compose(
        "config", [*overrides, "models.als.K=3", "models.als.iterations=2", "train.model=als"]
    )
    metrics = run_training(cfg)
    assert metrics["model"]["K"] == 3 and metrics["iterations"] == 2
    with pytest.raises(ConfigError, match=r"train\.model|model: name the model"):
        run_training(compose("config", overrides))


def test_analysis_and_ranking_stages(tiny_project, caplog):
    from movielens_als.core.fit import fit
    from movielens_als.core.model import load_model
    from movielens_als.data.index import load_index
    from movielens_als.evaluation.prior import choose_prior_weight
    from movielens_als.pipeline.common import split_as_configured
    from movielens_als.pipeline.use import run_analysis, run_ranking, run_validation_fit

    tmp_path, overrides = tiny_project
    for stage in ("als", "genre_als"):
        run_training(compose("train", [f"model={stage}", *overrides, *FAST_MODEL]))
    with pytest.raises(
        DataError, match=r"validation_fits/synthetic/als: no validation fit of 'als'"
    ):
        run_ranking(compose("ranking", overrides))
    for stage in ("als", "genre_als"):
        fitted = run_validation_fit(
            compose("validation_fit", [*overrides, f"validation_fit.model={stage}"])
        )
        assert (
            fitted["model"] == stage
            and fitted["carveout"]["n_val"] > 0
            and fitted["iterations"] == 3
        )
        assert set(
            json.loads((tmp_path / f"reports/metrics/{stage}_validation_fit.json").read_text())
        ) == {"val_rmse", "train_rmse"}
        timings = json.loads(
            (tmp_path / f"reports/timings/{stage}_validation_fit.json").read_text()
        )
        assert timings["fit_seconds"] > 0
    # the validation fit is the trained model's hyper-parameters fitted on the carve-out's train
    cfg = compose("ranking", overrides)
    carveout, _ = split_as_configured(
        load_index(tmp_path / "data/index/synthetic"), cfg, val_fraction=cfg.ranking.val_fraction
    )
    trained = load_model(tmp_path / "data/models/synthetic/als/model")
    refit = fit(carveout.train, trained.params).model
    saved = load_model(tmp_path / "data/validation_fits/synthetic/als/model")
    np.testing.assert_array_equal(saved.user_factors, refit.user_factors)
    np.testing.assert_array_equal(saved.item_bias, refit.item_bias)
    _, runs = _runs(tmp_path, "als_validation_fit")
    assert len(runs) == 1 and "val_rmse" in runs[0].data.metrics
    summary = run_analysis(compose("analysis", [*overrides, "analysis.min_ratings=2"]))
    assert summary["model"] == "als"
    figures = {p.name for p in (tmp_path / "reports/figures/analysis").iterdir()}
    assert "variance_vs_norm_by_tier.pdf" in figures and len(figures) == 10
    assert json.loads((tmp_path / "reports/details/analysis.json").read_text())["model"] == "als"
    assert set(json.loads((tmp_path / "reports/metrics/analysis.json").read_text())) == {
        "spearman_rho"
    }

    with caplog.at_level(logging.INFO, logger="movielens_als"):
        table = run_ranking(compose("ranking", [*overrides, "ranking.ks=[5,10]"]))
    # no terminal: a few progress lines between batches, the last at 100 %, then the summary
    ranked = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ranking ")]
    # every scorer ranks each batch in turn: 5 lists per user (2 models, 2 with prior, popularity)
    assert re.fullmatch(r"ranking 100% \((\d+)/\1 user lists\)", ranked[-2])
    assert int(ranked[-2].split("(")[1].split("/")[0]) % 5 == 0
    assert ranked[-1].startswith("ranking ndcg@10: als=")
    assert set(table) == {
        "als",
        "genre_als",
        "als+prior",
        "genre_als+prior",
        "popularity",
        "popularity_prior",
    }
    priors = table.pop("popularity_prior")
    for stage in ("als", "genre_als"):
        chosen = priors[stage]
        assert chosen["val_ndcg@10"][f"{chosen['weight']:g}"] == max(chosen["val_ndcg@10"].values())
    # the weight is chosen with the saved validation fit (tiny: every validation user ranked)
    assert (chosen["weight"], chosen["val_ndcg@10"]) == choose_prior_weight(
        load_model(tmp_path / "data/validation_fits/synthetic/genre_als/model"),
        carveout.train,
        carveout.val.to_ratings(),
        list(cfg.ranking.prior_weights),
        k=10,
    )
    for row in table.values():
        assert {"ndcg@5", "ndcg@10", "recall@10", "mrr@10", "hit_rate@10", "coverage@10"} <= set(
            row
        )
        assert 0 <= row["ndcg@10"] <= 1
    assert set(json.loads((tmp_path / "reports/details/ranking.json").read_text())) == {
        *table,
        "popularity_prior",
    }
    rows = {
        p.stem: json.loads(p.read_text()) for p in (tmp_path / "reports/metrics/ranking").iterdir()
    }
    assert set(rows) == set(table)
    for name, row in rows.items():
        assert row == {key: table[name][key] for key in ("ndcg@10", "recall@10")}
    _, runs = _runs(tmp_path, "ranking")
    assert {"als.ndcg_at_10", "als_prior.ndcg_at_10"} <= set(runs[0].data.metrics)

    # a validation fit of other hyper-parameters or another carve-out is refused, naming the key
    with pytest.raises(
        DataError, match=r"fitted with ranking.val_fraction=0.1, but this run has 0.2; run `python"
    ):
        run_ranking(compose("ranking", [*overrides, "ranking.val_fraction=0.2"]))
    carveout_file = tmp_path / "data/validation_fits/synthetic/genre_als/carveout.json"
    fitted_on = json.loads(carveout_file.read_text())
    carveout_file.write_text(json.dumps({**fitted_on, "n_val": fitted_on["n_val"] + 1}))
    with pytest.raises(
        DataError, match=rf"genre_als: fitted on a carve-out with {fitted_on['n_val'] + 1} val"
    ):
        run_ranking(compose("ranking", overrides))
    run_training(compose("train", ["model=als", *overrides, "model.iterations=2", "model.K=4"]))
    with pytest.raises(
        DataError,
        match=r"fitted with params.iterations=3, but .*als/model.json has 2; .*validation_fit.model=als",
    ):
        run_ranking(compose("ranking", overrides))
    with pytest.raises(ConfigError, match=r"validation_fit.model: name the trained model"):
        run_validation_fit(compose("config", overrides))
    with pytest.raises(
        DataError, match=r"ranking.val_fraction=1e-05: the validation carve-out is empty"
    ):
        run_validation_fit(
            compose(
                "validation_fit",
                [*overrides, "validation_fit.model=als", "ranking.val_fraction=0.00001"],
            )
        )
