"""The sweep, the K grid and Hydra multirun on a tiny synthetic release."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

import movielens_als.tuning.search as search_module
from movielens_als.config import compose
from movielens_als.data.index import load_index
from movielens_als.data.split import split_ratings
from movielens_als.errors import ConfigError
from movielens_als.pipeline.kgrid import run_kgrid, run_kgrid_report
from movielens_als.pipeline.sweep import run_sweep

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL_SWEEP = ["tuning.iterations=3", "tuning.final_iterations=3", "model.K=4", "search.fixed.K=4"]


def _study(tmp_path, space="notebook"):
    storage = f"sqlite:///{tmp_path / 'data/tuning/synthetic/als' / space / 'optuna.db'}"
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def _pairs(matrix):
    ratings = matrix.to_ratings()
    return set(zip(ratings.user.tolist(), ratings.item.tolist(), strict=True))


def test_sweep_never_sees_test_and_writes_outputs(tiny_project, monkeypatch):
    tmp_path, overrides = tiny_project
    cfg = compose("sweep", [*overrides, *SMALL_SWEEP, "tuning.n_trials=4"])
    data = load_index(tmp_path / "data/index/synthetic")
    split, _ = split_ratings(data, val_fraction=cfg.tuning.val_fraction, seed=cfg.split.seed)
    test_pairs = _pairs(split.test)

    calls = []
    real_fit = search_module.fit

    def spy(train, params, **kwargs):
        calls.append((set(kwargs["evals"]), _pairs(train), kwargs["evals"]["val"]))
        return real_fit(train, params, **kwargs)

    monkeypatch.setattr(search_module, "fit", spy)
    metrics = run_sweep(cfg)

    assert len(calls) == 4
    for eval_names, train_pairs, val in calls:
        assert eval_names == {"val"}
        assert not train_pairs & test_pairs
        assert not set(zip(val.user.tolist(), val.item.tolist(), strict=True)) & test_pairs

    assert {"best_params", "val_rmse", "test_rmse", "n_trials", "n_pruned"} <= set(metrics)
    assert metrics["n_trials"] == 4 and np.isfinite(metrics["test_rmse"])
    on_disk = json.loads((tmp_path / "reports/metrics/sweep_als_notebook.json").read_text())
    assert on_disk == {
        key: metrics[key] for key in ("val_rmse", "test_rmse", "train_rmse", "n_trials")
    }
    details = json.loads((tmp_path / "reports/details/sweep_als_notebook.json").read_text())
    assert details["best_params"] == metrics["best_params"]
    best = json.loads(
        (tmp_path / "data/tuning/synthetic/als/notebook/best_params.json").read_text()
    )
    assert best["params"]["lam"] == metrics["best_params"]["lam"]
    figures = {p.name for p in (tmp_path / "reports/figures/sweep_als_notebook").iterdir()}
    assert figures == {
        "optimization_history.pdf",
        "optimization_history.png",
        "param_importances.pdf",
        "param_importances.png",
    }

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("movielens-als/synthetic")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags["stage"] == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4
    for child in children:
        assert {"lam", "tau", "gamma"} <= set(child.data.params)
        history = client.get_metric_history(child.info.run_id, "val_rmse")
        assert [m.step for m in history] == list(range(1, len(history) + 1)) and history


def test_interrupted_sweep_resumes_without_repeating_trials(tiny_project, monkeypatch):
    tmp_path, overrides = tiny_project
    cfg = compose("sweep", [*overrides, *SMALL_SWEEP, "tuning.n_trials=4", "tuning.pruner=none"])
    real_fit = search_module.fit
    calls = []

    def interrupted(train, params, **kwargs):
        calls.append(params)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user stops the sweep during its third trial
        return real_fit(train, params, **kwargs)

    monkeypatch.setattr(search_module, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg)
    before = _study(tmp_path).get_trials()
    done = [t for t in before if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2

    calls.clear()
    monkeypatch.setattr(
        search_module, "fit", lambda *a, **k: (calls.append(a[1]), real_fit(*a, **k))[1]
    )
    metrics = run_sweep(cfg)
    assert len(calls) == 2  # only the two missing trials ran
    after = _study(tmp_path).get_trials()
    assert [t.params for t in after[:2]] == [t.params for t in done]
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in after) == 4
    assert metrics["n_trials"] == 4


def test_genre_sweep_tunes_eta(tiny_project):
    """The genre model adds its own range (η, conf/model/genre_als.yaml ``tune``) to the space."""
    tmp_path, overrides = tiny_project
    metrics = run_sweep(
        compose("sweep", [*overrides, *SMALL_SWEEP, "model=genre_als", "tuning.n_trials=3"])
    )
    assert metrics["model"] == "genre_als" and "eta" in metrics["best_params"]
    storage = f"sqlite:///{tmp_path / 'data/tuning/synthetic/genre_als/notebook/optuna.db'}"
    (name,) = optuna.get_all_study_names(storage)
    trials = optuna.load_study(study_name=name, storage=storage).trials
    etas = {t.params["eta"] for t in trials}
    assert len(etas) == 3 and all(1.0 <= eta <= 200.0 for eta in etas)
    best = json.loads(
        (tmp_path / "data/tuning/synthetic/genre_als/notebook/best_params.json").read_text()
    )
    assert "eta" in best["tuned_keys"] and best["params"]["genres"] is True
    assert (tmp_path / "reports/metrics/sweep_genre_als_notebook.json").is_file()


def test_sweep_refuses_to_tune_without_validation(tiny_project):
    _, overrides = tiny_project
    with pytest.raises(ConfigError, match=r"tuning\.val_fraction"):
        run_sweep(compose("sweep", [*overrides, *SMALL_SWEEP, "tuning.val_fraction=0"]))


def test_kgrid_writes_one_result_per_k_and_a_report(tiny_project):
    tmp_path, overrides = tiny_project
    run_sweep(compose("sweep", [*overrides, *SMALL_SWEEP, "tuning.n_trials=2"]))
    grid = [*overrides, "kgrid.Ks=[2,3]", "kgrid.iterations=2"]
    results = run_kgrid(compose("kgrid", grid))
    assert set(results) == {"2", "3"}
    for K in (2, 3):
        entry = json.loads((tmp_path / f"data/kgrid/synthetic/K{K}.json").read_text())
        assert entry["K"] == K and entry["params"]["K"] == K
    run_kgrid(compose("kgrid", [*grid, "kgrid.K=3"]))  # one K alone, as DVC runs it
    table = run_kgrid_report(compose("kgrid", grid))
    assert set(table) == {"K2", "K3"}
    for K in (2, 3):  # a table: one metrics file per K, sharing the train stages' columns
        row = json.loads((tmp_path / f"reports/metrics/kgrid/K{K}.json").read_text())
        assert row == table[f"K{K}"] and set(row) == {"train_rmse", "test_rmse"}
    assert (tmp_path / "reports/figures/kgrid/rmse_vs_K.pdf").read_bytes().startswith(b"%PDF")


@pytest.mark.slow
def test_concurrent_multiruns_never_share_a_folder(tiny_project):
    """Three multiruns started at once (the same second) with Hydra's default folders: every
    job writes its own folder, one MLflow run per job, named after its swept values."""
    tmp_path, overrides = tiny_project
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MOVIELENS_ALS_CONF"] = str(REPO_ROOT / "conf")
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "movielens_als.stages.train",
                "-m",
                "model=als",
                f"model.K={2 + 2 * n},{3 + 2 * n}",
                "model.iterations=2",
                *overrides,
            ],
            cwd=tmp_path,  # Hydra's folders (outputs/multirun/…) are relative to it
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("movielens-als/synthetic")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.stage = 'als'")
    assert sorted(int(r.data.params["model.K"]) for r in runs) == [2, 3, 4, 5, 6, 7]
    for run in runs:  # "als K=4 #0 model.K=4"
        K = run.data.params["model.K"]
        assert run.info.run_name.startswith(f"als K={K} #") and f"model.K={K}" in run.info.run_name
    # never over the pipeline's outputs; every job its own folder, each with its own model
    assert not (tmp_path / "reports/metrics/als.json").exists()
    jobs = sorted((tmp_path / "outputs/multirun").glob("*/*/[0-9]"))
    assert len(jobs) == 6 and len({job.parent for job in jobs}) == 3
    Ks = sorted(
        json.loads((job / "data/models/synthetic/als/model.json").read_text())["K"] for job in jobs
    )
    assert Ks == [2, 3, 4, 5, 6, 7]
    for job in jobs:
        assert (job / "reports/metrics/als.json").is_file()


def test_training_with_tuned_parameters_writes_its_own_outputs(tiny_project):
    from movielens_als.pipeline.train import run_training

    tmp_path, overrides = tiny_project
    sweep = run_sweep(compose("sweep", [*overrides, *SMALL_SWEEP, "tuning.n_trials=2"]))
    metrics = run_training(
        compose("train", ["model=als", *overrides, "model.iterations=2", "tuned=best"])
    )
    for key, value in sweep["best_params"].items():
        assert metrics["model"][key] == value
    assert metrics["tuned"]["search"] == "notebook"
    assert (tmp_path / "data/models/synthetic/als_tuned/model.npz").is_file()
    assert (tmp_path / "reports/metrics/als_tuned.json").is_file()
    assert not (tmp_path / "reports/metrics/als.json").exists()

    # MLflow tells the truth: the tuned run logs the values the model used, not conf/'s, and
    # names the study they came from
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("movielens-als/synthetic")
    (run,) = client.search_runs([experiment.experiment_id], "tags.stage = 'als_tuned'")
    configured = compose("train", ["model=als", *overrides]).model
    for key, value in sweep["best_params"].items():
        assert run.data.params[f"model.{key}"] == str(value)
    assert float(run.data.params["model.lam"]) != configured.lam  # conf/'s value is not logged
    assert run.data.tags["tuned.search"] == "notebook"
    assert run.data.tags["tuned.study"] == sweep["study"]
    assert run.data.tags["tuned.storage"].endswith("tuning/synthetic/als/notebook/optuna.db")
    assert run.info.run_name == f"als_tuned K={metrics['model']['K']}"
