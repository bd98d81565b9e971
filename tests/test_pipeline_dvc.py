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

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS = ["bias", "als", "genre_als", "bayes_als", "bayes_genre_als"]
TRAIN_STAGES = [f"train@{model}" for model in MODELS]
STAGES = ["download", "index", "split", "eda", *TRAIN_STAGES]
TINY = [
    "dataset=synthetic",
    "dataset.synthetic.preset=tiny",
    "models.bias.iterations=2",
    "models.als.iterations=2",
    "models.als.K=4",
    "models.genre_als.iterations=2",
    "models.genre_als.K=4",
    *(
        f"models.{m}.{k}"
        for m in ("bayes_als", "bayes_genre_als")
        for k in ("K=3", "samples=4", "burn_in=1", "saved_samples=2")
    ),
    "sweep.tuning.n_trials=3",
    "sweep.tuning.iterations=2",
    "sweep.tuning.final_iterations=2",
    "sweep.spaces.notebook.fixed.K=4",
    "sweep.spaces.count.fixed.K=4",
    "kgrid.Ks=[2,4]",
    "kgrid.iterations=2",
    "analysis.min_ratings=2",
]
TUNING_STAGES = [
    "analysis",
    "ranking",
    "crossval",
    "sweep@notebook",
    "sweep@count",
    "kgrid@2",
    "kgrid@4",
    "kgrid_report",
    "tuned@als",
]


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
        shutil.copytree(
            REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    _run(["git", "init", "-q"], root)
    _run(["dvc", "init", "-q"], root)
    shutil.copy(REPO_ROOT / ".dvc" / "config", root / ".dvc" / "config")
    _write_params(root, TINY)
    return root


def _resolved_stages(root: Path) -> dict:
    """dvc.yaml as DVC resolves it against params.yaml: name → stage."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {stage.addressing: stage for stage in repo.index.stages}


def test_every_stage_declares_existing_code_and_its_params():
    stages = _resolved_stages(REPO_ROOT)
    assert list(stages)[: len(STAGES)] == STAGES
    for name, stage in stages.items():
        module = stage.cmd.split()[2]
        assert module.startswith("movielens_als.stages."), name
        assert (REPO_ROOT / "src" / (module.replace(".", "/") + ".py")).is_file(), module
        for dep in stage.deps:
            path = Path(dep.def_path)
            if path.parts[0] == "src":
                assert (REPO_ROOT / path).exists(), f"{name}: {path} does not exist"


def test_dvc_outputs_are_where_the_layout_writes():
    """dvc.yaml spells the paths out; Layout owns them. Every declared output is Layout's."""
    from movielens_als.config import compose
    from movielens_als.pipeline.layout import Layout

    cfg = compose("config")
    layout = Layout.from_config(cfg)
    expected = {
        "download": [layout.raw_dir],
        "index": [layout.index_dir, layout.details_file("index"), layout.metrics_file("index")],
        "split": [layout.split_dir, layout.details_file("split"), layout.metrics_file("split")],
        "eda": [layout.figures_dir("eda"), layout.details_file("eda"), layout.metrics_file("eda")],
        "analysis": [
            layout.figures_dir("analysis"),
            layout.details_file("analysis"),
            layout.metrics_file("analysis"),
        ],
        "ranking": [layout.details_file("ranking"), layout.metrics_dir("ranking")],
        "crossval": [layout.details_file("crossval"), layout.metrics_dir("crossval")],
        "kgrid_report": [layout.figures_dir("kgrid"), layout.metrics_dir("kgrid")],
    }
    for model in [*cfg.models, "als_tuned"]:
        expected["tuned@als" if model == "als_tuned" else f"train@{model}"] = [
            layout.model_dir(model),
            layout.figures_dir(model),
            layout.details_file(model),
            layout.metrics_file(model),
            layout.curve_file(model),
        ]
    for space in cfg.sweep.spaces:
        name = f"sweep_{cfg.sweep.model}_{space}"
        folder = layout.tuning_dir(cfg.sweep.model, space)
        expected[f"sweep@{space}"] = [
            folder / "best_params.json",
            folder / "optuna.db",
            layout.figures_dir(name),
            layout.details_file(name),
            layout.metrics_file(name),
        ]
    for K in cfg.kgrid.Ks:
        expected[f"kgrid@{K}"] = [layout.kgrid_file(K)]
    stages = _resolved_stages(REPO_ROOT)
    assert set(stages) == set(expected)
    for name, stage in stages.items():
        assert sorted(Path(out.def_path) for out in stage.outs) == sorted(expected[name]), name


@pytest.mark.slow
def test_repro_runs_all_then_nothing_then_only_what_changed(project):
    first = _run(["dvc", "repro"], project)
    for stage in STAGES + TUNING_STAGES:
        assert f"Running stage '{stage}'" in first.stdout, stage

    again = _run(["dvc", "repro"], project)
    assert "Running stage" not in again.stdout

    _write_params(project, [*TINY, "models.bias.iterations=3"])
    changed = _run(["dvc", "repro"], project)
    ran = {
        stage for stage in STAGES + TUNING_STAGES if f"Running stage '{stage}'" in changed.stdout
    }
    # the bias model's own stage and the stages that read every model (ranking reads the
    # models folder, crossval the models section) — never another model's stage or a sweep
    assert ran == {"train@bias", "ranking", "crossval"}
    assert json.loads((project / "reports/metrics/bias.json").read_text())["iterations"] == 3


@pytest.mark.slow
def test_metrics_plots_and_mlflow_after_repro(project):
    _run(["dvc", "repro"], project)
    metrics = json.loads(_run(["dvc", "metrics", "show", "--json"], project).stdout)
    flat = json.dumps(metrics)
    for model in MODELS:
        assert f"reports/metrics/{model}.json" in flat
    plots = _run(["dvc", "plots", "show", "--json"], project)
    assert "reports/curves/als.csv" in plots.stdout

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("movielens-als/synthetic")
    runs = client.search_runs([experiment.experiment_id])
    stages_logged = {run.data.tags["stage"] for run in runs}
    assert {"download", "index", "split", "eda", *MODELS} <= stages_logged
    genre_run = next(r for r in runs if r.data.tags["stage"] == "genre_als")
    assert genre_run.data.tags["split_dvc_hash"] != "unknown"
    artifacts = {a.path for a in client.list_artifacts(genre_run.info.run_id)}
    assert "genre_embeddings.pdf" in artifacts
