"""The stage entry points as a user runs them: ``python -m movielens_als.stages.<name>``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _stage(
    name: str, *overrides: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", f"movielens_als.stages.{name}", *overrides],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=full_env,
        timeout=300,
    )


def test_negative_regulariser_is_one_clear_error(tmp_path, project_overrides):
    result = _stage("train", "model=als", "model.tau=-0.5", *project_overrides)
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines()[-1]
        == "error: train: model.tau must be a finite number ≥ 0, got -0.5"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "reports").exists()


def test_gibbs_burn_in_past_the_samples_is_one_clear_error(tmp_path, project_overrides):
    result = _stage("train", "model=bayes_als", "model.burn_in=300", *project_overrides)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("error: train: model.burn_in must be < model.samples")
        and "Traceback" not in result.stderr
    )
    assert not (tmp_path / "reports").exists()


def test_unknown_model_name_lists_the_known_ones(tmp_path, project_overrides):
    result = _stage("train", "model=nosuch", *project_overrides)
    assert result.returncode != 0
    assert "nosuch" in result.stderr and "bayes_als" in result.stderr


def test_unknown_dataset_is_an_error(tmp_path, project_overrides):
    result = _stage("download", "dataset=ml-99m", *project_overrides)
    assert result.returncode != 0
    assert "ml-99m" in result.stderr and "ml-latest-small" in result.stderr


def test_unreachable_tracking_server_fails_before_training(tmp_path, project_overrides):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = _stage(
        "train",
        "model=bias",
        *project_overrides,
        env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"},
    )
    assert result.returncode == 2
    assert f"127.0.0.1:{port} is unreachable" in result.stderr
    assert not (tmp_path / "reports").exists()
