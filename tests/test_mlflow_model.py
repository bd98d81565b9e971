"""Every training run logs its resolved config and the model as an MLflow pyfunc: loaded from
``runs:/<id>/model``, or served by a real ``mlflow models serve``, it predicts what the
library predicts from the pipeline's own outputs, unknown ids included."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from _servers import free_port, running_server
from movielens_als import load_trained
from movielens_als.config import compose
from movielens_als.errors import DataError
from movielens_als.pipeline.train import run_training

MODEL = "als"
K = 4


@pytest.fixture
def trained(tiny_project):
    """The tiny project after one ALS training run: ``(tmp_path, run_id, recommender)``, the
    Recommender read back from the stage's outputs on disk."""
    tmp_path, overrides = tiny_project
    run_training(
        compose("train", [f"model={MODEL}", *overrides, "model.iterations=3", f"model.K={K}"])
    )
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("movielens-als/synthetic")
    (run,) = client.search_runs([experiment.experiment_id], f"tags.stage = '{MODEL}'")
    recommender = load_trained(MODEL, project_dir=tmp_path, dataset="synthetic")
    return tmp_path, run.info.run_id, recommender


def _pairs(recommender) -> pd.DataFrame:
    """Known pairs, a movie and a user the model never saw (scored from the terms that exist)."""
    unknown = int(max(recommender.user_ids.max(), recommender.movie_ids.max())) + 1
    users = recommender.user_ids
    movies = recommender.movie_ids
    return pd.DataFrame(
        {
            "userId": [users[0], users[-1], users[1], unknown],
            "movieId": [movies[0], movies[-1], unknown, movies[2]],
        }
    )


def test_run_logs_a_pyfunc_that_predicts_like_the_library(trained):
    tmp_path, run_id, recommender = trained
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")  # runs:/ resolves there
    pairs = _pairs(recommender)
    expected = recommender.predict(pairs)
    assert expected[2] == pytest.approx(
        recommender.model.mu + recommender.model.user_bias[1], rel=1e-6
    )  # the unknown movie falls back to μ + the user's bias

    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    predicted = np.asarray(loaded.predict(pairs), dtype=np.float64)
    np.testing.assert_allclose(predicted, expected, rtol=0, atol=1e-12)
    assert loaded.metadata.get_input_schema().input_names() == ["userId", "movieId"]

    with pytest.raises(MlflowException, match="movieId"):  # MLflow's schema check names it
        loaded.predict(pairs[["userId"]])
    with pytest.raises(DataError, match="lacks column\\(s\\) movieId"):  # so does the wrapper
        loaded.unwrap_python_model().predict(None, pairs[["userId"]])

    config = yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml"))
    assert config["model"]["name"] == MODEL and config["model"]["K"] == K == recommender.model.K
    assert config["dataset"]["name"] == "synthetic"


@pytest.mark.slow
def test_mlflow_models_serve_answers_like_the_library(trained):
    tmp_path, run_id, recommender = trained
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    venv_bin = Path(sys.executable).parent
    mlflow_cli = venv_bin / "mlflow"  # the venv's, not one on PATH
    assert mlflow_cli.is_file()
    command = [
        str(mlflow_cli),
        "models",
        "serve",
        "-m",
        f"runs:/{run_id}/model",
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        # the server execs `uvicorn` by name: the venv's, as in an activated venv
        "PATH": os.pathsep.join([str(venv_bin), os.environ.get("PATH", "")]),
    }
    pairs = _pairs(recommender).iloc[1:3]  # a known pair and an unknown movie
    body = {"dataframe_split": {"columns": list(pairs.columns), "data": pairs.to_numpy().tolist()}}
    with running_server(command, f"{base}/ping", tmp_path / "serve.log", env=env):
        request = urllib.request.Request(
            f"{base}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = json.loads(response.read())["predictions"]
    np.testing.assert_allclose(predictions, recommender.predict(pairs), rtol=0, atol=1e-12)
