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
    "validation_fit@als",
    "validation_fit@genre_als",
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
    shutil.copytree(REPO_ROOT / ".dvc" / "plots", root / ".dvc" / "plots")
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


def _source_of(module: str) -> Path | None:
    """The file of a ``movielens_als`` module, relative to the repository (None if none)."""
    base = Path("src", *module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if (REPO_ROOT / candidate).is_file():
            return candidate
    return None


def _imported_sources(module: str) -> set[Path]:
    """The files of ``module`` and of every ``movielens_als`` module it imports, transitively
    (read from the source with ``ast``, so nothing is imported)."""
    import ast

    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or not name.startswith("movielens_als") or _source_of(name) is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run first
        for node in ast.walk(ast.parse((REPO_ROOT / _source_of(name)).read_text())):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                todo.append(node.module)
                todo += [f"{node.module}.{alias.name}" for alias in node.names]
    return {_source_of(name) for name in seen}


def test_every_stage_depends_on_the_core_code_it_runs():
    """A stage that computes with the core lists every core module it imports: one missing a
    module would not rerun when that module's numerics change (train@bayes_als once missed
    core/als.py, whose row matrix it samples from). Variants are imported by name, so a train
    stage's roots include its variant's module."""
    import yaml

    core = Path("src/movielens_als/core")
    models = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["models"]
    for name, stage in _resolved_stages(REPO_ROOT).items():
        roots = [stage.cmd.split()[2]]
        if "train.model=" in stage.cmd:
            model = stage.cmd.split("train.model=")[1].split()[0]
            roots.append(f"movielens_als.core.{models[model]['variant']}")
        sources = set().union(*(_imported_sources(root) for root in roots))
        declared = [Path(dep.def_path) for dep in stage.deps]
        if not any(dep == core or core in dep.parents for dep in declared):
            continue  # the data stages reach the core only through plumbing (tracking, config)
        for source in sorted(path for path in sources if core in path.parents):
            assert any(source == dep or dep in source.parents for dep in declared), (
                f"{name} imports {source} but its deps in dvc.yaml do not list it"
            )


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
            layout.figures_dir(name),
            layout.details_file(name),
            layout.metrics_file(name),
        ]
    for K in cfg.kgrid.Ks:
        expected[f"kgrid@{K}"] = [layout.kgrid_file(K)]
    for model in cfg.ranking.models:
        expected[f"validation_fit@{model}"] = [
            layout.validation_fit_dir(model),
            layout.details_file(f"{model}_validation_fit"),
            layout.metrics_file(f"{model}_validation_fit"),
        ]
    stages = _resolved_stages(REPO_ROOT)
    assert set(stages) == set(expected)
    for name, stage in stages.items():
        assert sorted(Path(out.def_path) for out in stage.outs) == sorted(expected[name]), name


GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
# What a rerun may change: wall-clock times (never a DVC output) and the stores.
NOT_COMPARED = ("reports/timings/", "mlflow.db", "mlartifacts/", "optuna.db", "outputs/")


def _hashes(project: Path) -> dict[str, str]:
    """md5 of every file the pipeline wrote (data/, reports/) and of dvc.lock."""
    import hashlib

    files = [
        project / "dvc.lock",
        *(project / "data").rglob("*"),
        *(project / "reports").rglob("*"),
    ]
    return {
        path.relative_to(project).as_posix(): hashlib.md5(path.read_bytes()).hexdigest()
        for path in files
        if path.is_file()
        and not any(part in path.relative_to(project).as_posix() for part in NOT_COMPARED)
    }


def _values(node, path: str, key: str) -> list[float]:
    """Every value of metric ``key`` of file ``path`` anywhere in DVC's JSON output."""
    found = []
    if isinstance(node, dict):
        for name, child in node.items():
            if name == path and isinstance(child, dict):
                data = child.get("data", child)
                if isinstance(data, dict) and key in data:
                    found.append(data[key])
            found += _values(child, path, key)
    elif isinstance(node, list):
        for child in node:
            found += _values(child, path, key)
    return found


def test_the_rmse_plot_shows_every_training_stage():
    """dvc.yaml's top-level plot lists the curves one by one (DVC takes no folder there)."""
    import yaml

    from movielens_als.config import compose
    from movielens_als.pipeline.layout import Layout

    cfg = compose("config")
    layout = Layout.from_config(cfg)
    (plot,) = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["plots"]
    series = plot["test_rmse"]["y"]
    expected = [layout.curve_file(name) for name in [*cfg.models, "als_tuned"]]
    assert sorted(Path(p) for p in series) == sorted(expected)
    assert set(series.values()) == {"test_rmse"}
    assert (REPO_ROOT / ".dvc/plots" / f"{plot['test_rmse']['template']}.json").is_file()


@pytest.mark.slow
def test_repro_runs_all_then_nothing_then_only_what_changed(project):
    first = _run(["dvc", "repro"], project)
    for stage in STAGES + TUNING_STAGES:
        assert f"Running stage '{stage}'" in first.stdout, stage

    again = _run(["dvc", "repro"], project)
    assert "Running stage" not in again.stdout

    # what git holds of a run: the metrics and curves DVC compares, never figures or data
    _run(["git", "add", "-A"], project)
    _run([*GIT, "commit", "-qm", "baseline"], project)
    tracked = _run(["git", "ls-files"], project).stdout.split()
    assert "reports/metrics/als.json" in tracked and "reports/curves/als.csv" in tracked
    assert "reports/metrics/ranking/als.json" in tracked
    assert not [f for f in tracked if f.startswith(("data/", "reports/figures", "reports/details"))]

    # every stage again on the same inputs: byte-identical outputs, dvc.lock unchanged
    before = _hashes(project)
    _run(["dvc", "repro", "--force"], project)
    assert _hashes(project) == before
    assert _run(["git", "status", "--porcelain"], project).stdout == ""

    def stages_run_after(overrides: list[str]) -> set[str]:
        _write_params(project, [*TINY, *overrides])
        changed = _run(["dvc", "repro"], project)
        return {s for s in STAGES + TUNING_STAGES if f"Running stage '{s}'" in changed.stdout}

    # the bias model's own stage and the stages that read every model (ranking reads the
    # models folder, crossval the models section) — never another model's stage, a sweep or
    # a validation fit (bias is not among ranking.models)
    assert stages_run_after(["models.bias.iterations=3"]) == {"train@bias", "ranking", "crossval"}
    details = json.loads((project / "reports/details/bias.json").read_text())
    assert details["iterations"] == 3
    # a ranking setting reruns the ranking alone: the validation fits it reads are kept
    assert stages_run_after(["models.bias.iterations=3", "ranking.ks=[3,5]"]) == {"ranking"}
    assert "ndcg@5" in (project / "reports/metrics/ranking/als.json").read_text()  # largest k
    # a ranked model's retrain reruns its own validation fit, not the other model's
    ran = stages_run_after(["models.bias.iterations=3", "models.als.iterations=3"])
    assert {"train@als", "validation_fit@als", "ranking"} <= ran
    assert not ran & {"train@genre_als", "validation_fit@genre_als", "train@bias"}
    _write_params(project, TINY)
    _run(["dvc", "repro"], project)
    assert _run(["git", "status", "--porcelain"], project).stdout == ""


@pytest.mark.slow
def test_experiments_are_compared_by_dvc(project):
    """dvc exp run -S, then exp show / metrics diff / params diff / plots diff hold both
    revisions' values, and the experiment's values survive make repro's params check."""
    _run(["dvc", "repro"], project)
    if _run(["git", "status", "--porcelain"], project).stdout:
        _run(["git", "add", "-A"], project)
        _run([*GIT, "commit", "-qm", "baseline"], project)
    baseline = json.loads((project / "reports/metrics/als.json").read_text())["test_rmse"]
    # with Hydra composition on, -S is a Hydra override of conf/: params.yaml is rewritten as
    # conf/ + the overrides, so the tiny study's own overrides are given again
    settings = [arg for override in [*TINY, "models.als.K=6"] for arg in ("-S", override)]
    _run(["dvc", "exp", "run", *settings, "-n", "als-k6"], project)
    experiment = json.loads((project / "reports/metrics/als.json").read_text())["test_rmse"]
    assert experiment != baseline

    shown = json.loads(_run(["dvc", "exp", "show", "--json"], project).stdout)
    values = _values(shown, "reports/metrics/als.json", "test_rmse")
    assert baseline in values and experiment in values

    diff = json.loads(_run(["dvc", "metrics", "diff", "--json"], project).stdout)
    change = diff["reports/metrics/als.json"]["test_rmse"]
    assert change["old"] == baseline and change["new"] == experiment
    params = json.loads(_run(["dvc", "params", "diff", "--json"], project).stdout)
    K = params["params.yaml"]["models.als.K"]
    assert (K["old"], K["new"]) == (4, 6)

    plots = json.loads(_run(["dvc", "plots", "diff", "HEAD", "--json"], project).stdout)
    assert not plots.get("errors"), plots["errors"]
    (rmse_plot,) = plots["data"]["test_rmse"]
    assert {"HEAD", "workspace"} <= set(rmse_plot["revisions"])

    # the experiment's params.yaml is conf/ + its override: make repro's check keeps it
    check = _run([sys.executable, "-m", "movielens_als.config.params", "--check"], project)
    assert "models.als.K=6" in check.stdout
    _run(["dvc", "exp", "apply", "als-k6"], project)
    assert "Running stage" not in _run(["dvc", "repro"], project).stdout
    assert json.loads((project / "reports/metrics/als.json").read_text())["test_rmse"] == experiment


@pytest.mark.slow
def test_dvc_metrics_show_fits_a_terminal(project):
    _run(["dvc", "repro"], project)
    table = _run(["dvc", "metrics", "show"], project).stdout
    assert max(len(line) for line in table.splitlines()) <= 250, table.splitlines()[0]


@pytest.mark.slow
def test_metrics_plots_and_mlflow_after_repro(project):
    _run(["dvc", "repro"], project)
    metrics = json.loads(_run(["dvc", "metrics", "show", "--json"], project).stdout)
    flat = json.dumps(metrics)
    for model in MODELS:
        assert f"reports/metrics/{model}.json" in flat
    plots = json.loads(_run(["dvc", "plots", "show", "--json"], project).stdout)
    assert not plots.get("errors"), plots["errors"]
    assert {"test_rmse", "reports/curves/als.csv"} <= set(plots["data"])

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("movielens-als/synthetic")
    runs = client.search_runs([experiment.experiment_id])
    stages_logged = {run.data.tags["stage"] for run in runs}
    assert {"download", "index", "split", "eda", *MODELS} <= stages_logged
    genre_run = next(r for r in runs if r.data.tags["stage"] == "genre_als")
    assert genre_run.data.tags["split_dvc_hash"] != "unknown"
    artifacts = {a.path for a in client.list_artifacts(genre_run.info.run_id, "figures/genre_als")}
    assert "figures/genre_als/genre_embeddings.png" in artifacts
