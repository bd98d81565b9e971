"""Empty results fail loudly and OS errors are one line: no NaN in a metrics file, no
traceback for a path that cannot be written, nothing half-written."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

import movielens_als.tuning.search as search_module
from movielens_als.atomic import write_json
from movielens_als.config import compose
from movielens_als.errors import DataError
from movielens_als.pipeline.data import run_split
from movielens_als.pipeline.sweep import run_sweep
from movielens_als.pipeline.train import run_training

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_metrics_never_hold_nan_or_infinity(tmp_path, value):
    target = tmp_path / "m.json"
    with pytest.raises(DataError, match=r"models\.als\.test_rmse is not a finite number"):
        write_json(target, {"models": {"als": {"test_rmse": value, "n": 3}}})
    assert not target.exists() and list(tmp_path.iterdir()) == []
    write_json(target, {"test_rmse": 0.8})
    assert json.loads(target.read_text()) == {"test_rmse": 0.8}


def test_training_on_an_empty_test_set_is_one_clear_error(tiny_project):
    tmp_path, overrides = tiny_project
    metrics = run_split(compose("split", [*overrides, "split.train_fraction=0.999999"]))
    assert metrics["n_test"] == 0
    with pytest.raises(DataError, match="the test set is empty"):
        run_training(compose("train", ["model=als", *overrides, "model.iterations=2", "model.K=2"]))
    assert not (tmp_path / "reports/metrics/als.json").exists()


def test_sweep_without_a_completed_trial_is_one_clear_error(tiny_project, monkeypatch):
    tmp_path, overrides = tiny_project

    def always_pruned(*args, **kwargs):
        raise optuna.TrialPruned("pruned by the test")

    monkeypatch.setattr(search_module, "fit", always_pruned)
    with pytest.raises(DataError, match="no completed trial"):
        run_sweep(compose("sweep", [*overrides, "tuning.n_trials=2", "tuning.iterations=2"]))
    assert not (tmp_path / "reports/metrics/sweep_als_notebook.json").exists()


def test_unwritable_output_folder_is_one_line(tmp_path, project_overrides):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the reports folder should be")
    overrides = [
        *project_overrides,
        "dataset=synthetic",
        "dataset.synthetic.preset=tiny",
        f"paths.reports={blocker}",
        "tracking.enabled=false",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "movielens_als.stages.download", *overrides],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=os.environ,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr  # download writes no report
    result = subprocess.run(
        [sys.executable, "-m", "movielens_als.stages.index", *overrides],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=os.environ,
        timeout=300,
    )
    assert result.returncode == 2
    # the steps done before the failure are progress lines; the failure is one line, the last
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert "Traceback" not in result.stderr and errors == lines[-1:], result.stderr
    assert lines[-1].startswith("error: index: ") and str(blocker) in lines[-1]


_HOLD_SCRIPT = """
import sys, time
from movielens_als.atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.mkdir()
    (tmp / "half-written").write_text("x")
    print("holding", flush=True)
    time.sleep(60)
"""


def test_a_killed_writer_leaves_nothing_once_the_target_is_written_again(tmp_path):
    """SIGKILL inside atomic_path leaves its temporary; the next write of the same target
    removes it (the pid in its name is dead), and leaves a live writer's alone."""
    import signal

    target = tmp_path / "out" / "model"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_SCRIPT, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "holding"
    live = list(target.parent.glob(".model.*.tmp"))
    assert len(live) == 1
    write_json(tmp_path / "out" / "model", {"n": 1})  # a live writer's temporary is kept
    assert live[0].exists()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    write_json(target, {"n": 2})
    assert sorted(p.name for p in target.parent.iterdir()) == ["model"]
    assert json.loads(target.read_text()) == {"n": 2}


def test_a_failure_while_publishing_leaves_the_previous_generation_whole(tiny_project, monkeypatch):
    """The model, curve, figures and metrics of a run are renamed into place together: a run
    that fails after fitting (here: drawing a figure) leaves the previous run's files as they
    were — no new model beside old metrics — and no temporaries."""
    import movielens_als.pipeline.train as train_module

    tmp_path, overrides = tiny_project
    stage = ["model=als", *overrides, "model.iterations=2", "model.K=2"]
    run_training(compose("train", stage))
    outputs = [
        tmp_path / "data/models/synthetic/als/model.npz",
        tmp_path / "reports/metrics/als.json",
        tmp_path / "reports/curves/als.csv",
    ]
    before = [p.read_bytes() for p in outputs]

    def broken_figure(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "reports/figures/als"))

    monkeypatch.setattr(
        train_module, "_convergence_figure", lambda *a, **k: _BrokenFigure(broken_figure)
    )
    with pytest.raises(OSError, match="No space left"):
        run_training(compose("train", [*stage, "model.seed=7"]))
    assert [p.read_bytes() for p in outputs] == before
    assert list(tmp_path.rglob("*.tmp")) == []


class _BrokenFigure:
    """A figure whose saving fails (a full disk)."""

    def __init__(self, fail):
        self.fail = fail

    def savefig(self, *args, **kwargs):
        self.fail()
