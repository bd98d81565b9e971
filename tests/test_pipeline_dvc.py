"""The DVC pipeline end to end in a throw-away copy of the project, on a tiny synthetic release:
dvc repro runs every stage, a second repro runs nothing, one changed key reruns only the stage
that reads it, and metrics/plots/MLflow hold what the stages produced."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGES = ["download", "index", "split", "eda", "bias", "als", "genre_als"]
TINY = [
    "dataset=synthetic",
    "dataset.synthetic.preset=tiny",
    "bias.model.iterations=2",
    "als.model.iterations=2",
    "als.model.K=4",
    "genre_als.model.iterations=2",
    "genre_als.model.K=4",
    "sweep.tuning.n_trials=3",
    "sweep.tuning.iterations=2",
    "sweep.tuning.final_iterations=2",
    "sweep.model.K=4",
    "sweep.spaces.notebook.fixed.K=4",
    "sweep.spaces.count.fixed.K=4",
    "kgrid.Ks=[2,4]",
    "kgrid.iterations=2",
    "analysis.min_ratings=2",
]
TUNING_STAGES = ["analysis", "ranking", "sweep@notebook", "sweep@count", "kgrid@2", "kgrid@4", "kgrid_report", "tuned@als"]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _write_params(project: Path, overrides: list[str]) -> None:
    _run([sys.executable, "-m", "movielens_als.config.params", *overrides], project)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO_ROOT / name, root / name)
    for folder in ("conf", "src"):
        shutil.copytree(REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    _run(["git", "init", "-q"], root)
    _run(["dvc", "init", "-q"], root)
    shutil.copy(REPO_ROOT / ".dvc" / "config", root / ".dvc" / "config")
    _write_params(root, TINY)
    return root


def test_every_stage_declares_existing_code_and_its_params():
    pipeline = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    assert list(pipeline)[: len(STAGES)] == STAGES
    for name, stage in pipeline.items():
        items = stage.get("foreach", [None]) if isinstance(stage.get("foreach"), list) else [None]
        stage = stage.get("do", stage)  # foreach stages
        module = stage["cmd"].split()[2]
        for item in items:
            resolved = module.replace("${item}", str(item))
            assert resolved.startswith("movielens_als.stages."), name
            assert (REPO_ROOT / "src" / (resolved.replace(".", "/") + ".py")).is_file(), resolved
        for dep in stage.get("deps", []):
            if dep.startswith("src/"):
                assert (REPO_ROOT / dep).exists(), f"{name}: {dep} does not exist"


@pytest.mark.slow
def test_repro_runs_all_then_nothing_then_only_what_changed(project):
    first = _run(["dvc", "repro"], project)
    for stage in STAGES + TUNING_STAGES:
        assert f"Running stage '{stage}'" in first.stdout, stage

    again = _run(["dvc", "repro"], project)
    assert "Running stage" not in again.stdout

    _write_params(project, [*TINY, "als.model.K=3"])
    changed = _run(["dvc", "repro"], project)
    ran = {stage for stage in STAGES + TUNING_STAGES if f"Running stage '{stage}'" in changed.stdout}
    # als itself, the stages that use its model, and its tuned twin, which reads als.model
    assert ran == {"als", "analysis", "ranking", "tuned@als"}
    assert json.loads((project / "reports/metrics/als.json").read_text())["model"]["K"] == 3


@pytest.mark.slow
def test_metrics_plots_and_mlflow_after_repro(project):
    _run(["dvc", "repro"], project)
    metrics = json.loads(_run(["dvc", "metrics", "show", "--json"], project).stdout)
    flat = json.dumps(metrics)
    for stage in ("bias", "als", "genre_als"):
        assert f"reports/metrics/{stage}.json" in flat
    plots = _run(["dvc", "plots", "show", "--json"], project)
    assert "reports/curves/als.csv" in plots.stdout

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("movielens-als/synthetic")
    runs = client.search_runs([experiment.experiment_id])
    stages_logged = {run.data.tags["stage"] for run in runs}
    assert set(STAGES) <= stages_logged
    genre_run = next(r for r in runs if r.data.tags["stage"] == "genre_als")
    assert genre_run.data.tags["split_dvc_hash"] != "unknown"
    artifacts = {a.path for a in client.list_artifacts(genre_run.info.run_id)}
    assert "genre_embeddings.pdf" in artifacts
