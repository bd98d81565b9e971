"""MLflow tracking: one run per stage with params, stepped metrics and artifacts; fail fast."""

from __future__ import annotations

import socket
import time

import pytest
from omegaconf import OmegaConf

from movielens_als.tracking.mlflow_tracker import (
    NullTracker,
    TrackingError,
    flatten_config,
    open_tracker,
)


def _cfg(tmp_path, **tracking):
    base = {
        "dataset": {"name": "synthetic"},
        "tracking": {
            "enabled": True,
            "uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "artifact_root": str(tmp_path / "mlartifacts"),
            "experiment_prefix": "test",
            "timeout_s": 2,
        },
    }
    base["tracking"].update(tracking)
    return OmegaConf.create(base)


def test_flatten_config_dots_nested_keys():
    cfg = OmegaConf.create(
        {"model": {"K": 8, "tau": 0.1}, "dataset": {"name": "x"}, "hydra": {"a": 1}}
    )
    assert flatten_config(cfg) == {"model.K": 8, "model.tau": 0.1, "dataset.name": "x"}


def test_disabled_tracking_is_a_null_tracker(tmp_path):
    tracker = open_tracker(_cfg(tmp_path, enabled=False), "als", {}, {})
    assert type(tracker) is NullTracker
    assert not (tmp_path / "mlflow.db").exists()


def test_run_records_params_steps_and_artifacts(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    artifact = tmp_path / "figure.pdf"
    artifact.write_bytes(b"%PDF-1.4 test")
    cfg = _cfg(tmp_path)
    with open_tracker(cfg, "als", {"model.K": 8}, {"stage": "als"}) as tracker:
        for step, rmse in enumerate([1.0, 0.9, 0.85], start=1):
            tracker.log_metrics({"test_rmse": rmse}, step=step)
        tracker.log_artifacts([artifact])
        run_id = tracker.run_id

    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"model.K": "8"}
    assert run.data.tags["stage"] == "als"
    history = client.get_metric_history(run_id, "test_rmse")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.9), (3, 0.85)]
    assert [a.path for a in client.list_artifacts(run_id)] == ["figure.pdf"]
    assert client.get_experiment(run.info.experiment_id).name == "test/synthetic"


def test_failed_stage_marks_run_failed(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = _cfg(tmp_path)
    with pytest.raises(RuntimeError), open_tracker(cfg, "als", {}, {}) as tracker:
        run_id = tracker.run_id
        raise RuntimeError("boom")
    assert MlflowClient(tracking_uri=cfg.tracking.uri).get_run(run_id).info.status == "FAILED"


def test_unreachable_server_fails_fast_with_one_message(tmp_path, monkeypatch):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    started = time.perf_counter()
    with pytest.raises(TrackingError, match=rf"127\.0\.0\.1:{port} is unreachable"):
        with open_tracker(_cfg(tmp_path), "als", {}, {}):
            pytest.fail("the run must not start")
    assert time.perf_counter() - started < 10
