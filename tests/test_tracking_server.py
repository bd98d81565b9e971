"""A real ``mlflow server`` on 127.0.0.1 over a SQLite store: a stage runs against it through
MLFLOW_TRACKING_URI, and its REST API serves the run, per-iteration metrics and PDFs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from _servers import free_port, running_server
from movielens_als.config import compose
from movielens_als.pipeline.data import run_download, run_index, run_split

REPO_ROOT = Path(__file__).resolve().parents[1]


def _get(base: str, endpoint: str, **query: str) -> dict:
    url = f"{base}{endpoint}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _post(base: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{base}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination",
        str(tmp_path / "server-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with running_server(command, f"{base}/health", tmp_path / "server.log"):
        yield base


@pytest.mark.slow
def test_stage_logs_to_a_real_server(tmp_path, project_overrides, mlflow_server, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    overrides = ["dataset=synthetic", "dataset.synthetic.preset=tiny", *project_overrides]
    offline = [*overrides, "tracking.enabled=false"]
    run_download(compose("download", offline))
    run_index(compose("index", offline))
    run_split(compose("split", offline))

    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "movielens_als.stages.train",
            "model=bias",
            *overrides,
            "model.iterations=4",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr

    experiment = _get(
        mlflow_server,
        "/api/2.0/mlflow/experiments/get-by-name",
        experiment_name="movielens-als/synthetic",
    )
    runs = _post(
        mlflow_server,
        "/api/2.0/mlflow/runs/search",
        {"experiment_ids": [experiment["experiment"]["experiment_id"]]},
    )["runs"]
    assert len(runs) == 1
    run_id = runs[0]["info"]["run_id"]
    assert runs[0]["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in runs[0]["data"]["params"]}
    assert params["model.iterations"] == "4" and params["model.K"] == "0"

    history = _get(
        mlflow_server, "/api/2.0/mlflow/metrics/get-history", run_id=run_id, metric_key="test_rmse"
    )
    assert [m["step"] for m in history["metrics"]] == [1, 2, 3, 4]

    listed = _get(mlflow_server, "/api/2.0/mlflow/artifacts/list", run_id=run_id)
    assert {"metrics", "details", "curves", "figures"} <= {f["path"] for f in listed["files"]}
    figure = "figures/bias/bias_only_convergence.pdf"
    listed = _get(
        mlflow_server, "/api/2.0/mlflow/artifacts/list", run_id=run_id, path="figures/bias"
    )
    assert figure in {f["path"] for f in listed["files"]}
    url = f"{mlflow_server}/get-artifact?{urllib.parse.urlencode({'path': figure, 'run_uuid': run_id})}"
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read(5) == b"%PDF-"
