"""Long work shows progress: a line per training iteration and per sweep trial, a summary line
at the end of every stage, a tqdm bar on a terminal and a few log lines elsewhere."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from movielens_als.evaluation.ranking import ranking_table
from movielens_als.progress import Progress, StageFormatter
from movielens_als.sparse import CSR, Ratings

REPO_ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"-?\d+(?:\.\d+)?(?:e[+-]\d+)?"


def _stage(name: str, overrides: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run a stage as a user does, with stderr a pipe (not a terminal)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            f"movielens_als.stages.{name}",
            *overrides,
            f"hydra.run.dir={tmp_path / 'hydra' / name}",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result


def _assert_quiet_and_line_oriented(result: subprocess.CompletedProcess, tmp_path: Path) -> None:
    assert "\r" not in result.stderr  # no bar drawn into a pipe
    assert result.stdout == ""  # stdout is left to what a command prints as its result
    assert not list((tmp_path / "hydra").rglob("*.log"))  # no log file in the run dir


def test_training_logs_each_iteration_and_ends_with_its_summary(tiny_project):
    tmp_path, overrides = tiny_project
    result = _stage("train", [*overrides, "model=als", "model.iterations=3"], tmp_path)
    _assert_quiet_and_line_oriented(result, tmp_path)
    lines = result.stderr.strip().splitlines()
    iteration = re.compile(
        rf"\[train\] iteration (\d)/3  nll=({NUMBER})  train_rmse=(\d\.\d{{4}})  "
        rf"test_rmse=(\d\.\d{{4}})  (\d+\.\d\d) s"
    )
    matches = [iteration.fullmatch(line) for line in lines]
    assert [int(m.group(1)) for m in matches if m] == [1, 2, 3], result.stderr
    with open(tmp_path / "reports/curves/als.csv", newline="") as fh:
        curve = list(csv.DictReader(fh))
    # each line shows the numbers the curve holds for its iteration
    for match, row in zip(filter(None, matches), curve, strict=True):
        assert float(match.group(2)) == pytest.approx(float(row["nll"]), rel=1e-5)
        assert float(match.group(3)) == pytest.approx(float(row["train_rmse"]), abs=5e-5)
        assert float(match.group(4)) == pytest.approx(float(row["test_rmse"]), abs=5e-5)
    metrics = json.loads((tmp_path / "reports/metrics/als.json").read_text())
    summary = lines[-1]
    assert summary.startswith(f"[train] als: test_rmse={metrics['test_rmse']:.4f}"), summary
    assert summary.endswith(
        f"→ {tmp_path / 'reports/metrics/als.json'}, {tmp_path / 'data/models/synthetic/als'}"
    ), summary
    # nothing else: MLflow, which logged the run and the model, kept its INFO lines to itself
    assert len(lines) == 4, result.stderr


def test_sweep_logs_each_trial_with_the_best_so_far(tiny_project):
    tmp_path, overrides = tiny_project
    tuning = [
        "tuning.n_trials=6",
        "tuning.iterations=3",
        "tuning.final_iterations=2",
        "tuning.pruner=median",
        "tuning.pruner_startup_trials=2",
        "tuning.pruner_warmup_steps=1",
    ]
    result = _stage("sweep", [*overrides, *tuning, "tracking.enabled=false"], tmp_path)
    _assert_quiet_and_line_oriented(result, tmp_path)
    lines = result.stderr.strip().splitlines()
    trial = re.compile(
        rf"\[sweep\] trial (\d)/6  #(\d+)  val_rmse=({NUMBER})  (complete|pruned at iteration \d)"
        rf"  best=({NUMBER}) \(#(\d+)\)  \d+\.\d\d s"
    )
    matches = [m for m in map(trial.fullmatch, lines) if m]
    assert [int(m.group(1)) for m in matches] == [1, 2, 3, 4, 5, 6], result.stderr
    # the states are Optuna's, and the best so far is the running minimum of complete trials
    db = tmp_path / "data/tuning/synthetic/als/notebook/optuna.db"
    with sqlite3.connect(db) as connection:
        states = dict(connection.execute("SELECT number, state FROM trials").fetchall())
    best = float("inf")
    for match in matches:
        number, value, state = int(match.group(2)), float(match.group(3)), match.group(4)
        assert states[number] == ("COMPLETE" if state == "complete" else "PRUNED")
        if state == "complete":
            best = min(best, value)
        assert float(match.group(5)) == pytest.approx(best, abs=5e-5)
    metrics = json.loads((tmp_path / "reports/metrics/sweep_als_notebook.json").read_text())
    assert metrics["val_rmse"] == pytest.approx(best, abs=5e-5)
    summary = lines[-1]
    assert summary.startswith(f"[sweep] sweep_als_notebook: val_rmse={metrics['val_rmse']:.4f}")
    assert str(tmp_path / "reports/metrics/sweep_als_notebook.json") in summary


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_tqdm_bar_above_which_steps_are_logged(caplog):
    terminal = _Terminal()
    with caplog.at_level(logging.INFO), Progress("iteration", 3, stream=terminal) as progress:
        for done in (1, 2, 3):
            progress.update(done, f"rmse={1 / done:.2f}")
        assert progress.bar.n == 3
    # tqdm drew its bar (redrawn at most every 0.1 s) and cleared it on closing
    assert terminal.getvalue().startswith("\riteration:   0%|")
    assert terminal.getvalue().endswith("\r")
    # the steps are lines of their own as well (printed above the bar while it is drawn)
    assert [r.getMessage() for r in caplog.records] == [
        "iteration 1/3  rmse=1.00",
        "iteration 2/3  rmse=0.50",
        "iteration 3/3  rmse=0.33",
    ]


def test_counted_work_is_a_bar_on_a_terminal_and_ten_lines_elsewhere(caplog):
    terminal = _Terminal()
    with caplog.at_level(logging.INFO):
        with Progress("ranking", 1000, unit="users", lines=10, stream=terminal) as on_terminal:
            for done in range(1, 1001):
                on_terminal.update(done, "als")
            assert on_terminal.bar.n == 1000 and on_terminal.bar.postfix == "als"
        assert caplog.records == [] and terminal.getvalue().startswith("\rranking:   0%|")
        with Progress("ranking", 1000, unit="users", lines=10, stream=io.StringIO()) as piped:
            for done in range(1, 1001):
                piped.update(done, "als")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 10
    assert messages[0] == "ranking  10% (100/1,000 users)  als"
    assert messages[-1] == "ranking 100% (1,000/1,000 users)  als"


def test_stage_lines_are_brief_and_tell_warnings_apart():
    formatter = StageFormatter("index")

    def record(level: int) -> logging.LogRecord:
        return logging.LogRecord("movielens_als.x", level, __file__, 1, "3 dropped", (), None)

    assert formatter.format(record(logging.INFO)) == "[index] 3 dropped"
    assert formatter.format(record(logging.WARNING)) == "[index] warning: 3 dropped"


def test_ranking_reports_its_progress_over_the_whole_table():
    rng = np.random.default_rng(0)
    n_users, n_items = 10, 30
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.4)
    ratings = rng.choice(np.arange(1, 11) / 2, size=users.size) + 0.0
    in_test = rng.random(users.size) < 0.5
    train = CSR.from_coo(users[~in_test], items[~in_test], ratings[~in_test], n_users, n_items)
    test = Ratings.from_arrays(users[in_test], items[in_test], np.full(in_test.sum(), 5.0))
    scores = rng.normal(size=(n_users, n_items))
    calls = []
    ranking_table(
        {"a": lambda u: scores[u], "b": lambda u: -scores[u]},
        train,
        test,
        batch_size=4,
        on_batch=lambda done, total: calls.append((done, total)),
    )
    n_eval = len(np.unique(test.user))
    # all three (a, b and the popularity baseline) rank each batch of 4 users in turn
    assert calls == [(3 * done, 3 * n_eval) for done in [*range(4, n_eval, 4), n_eval]]


def test_index_logs_its_steps_and_ends_with_its_summary(
    tmp_path, project_overrides, caplog, monkeypatch
):
    from movielens_als.config import compose
    from movielens_als.pipeline.data import run_download, run_index

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    overrides = [
        "dataset=synthetic",
        "dataset.synthetic.preset=tiny",
        *project_overrides,
        "tracking.enabled=false",
    ]
    run_download(compose("download", overrides))
    with caplog.at_level(logging.INFO, logger="movielens_als"):
        run_index(compose("index", overrides))
    messages = [r.getMessage() for r in caplog.records]
    metrics = json.loads((tmp_path / "reports/metrics/index.json").read_text())
    index_dir = tmp_path / "data/index/synthetic"
    steps = [
        rf"read ratings\.csv: {metrics['n_ratings']:,} ratings",
        r"read movies\.csv: [\d,]+ movies",
        rf"map ids, drop duplicates: {metrics['n_users']:,} users × {metrics['n_movies']:,} movies, "
        r"0 duplicates dropped",
        rf"write {re.escape(str(index_dir))}",
    ]
    assert len(messages) == len(steps) + 1, messages
    for pattern, message in zip(steps, messages, strict=False):
        assert re.fullmatch(rf"{pattern} \(\d+\.\d\d s\)", message), message
    numbers = "  ".join(f"{key}={value:,}" for key, value in metrics.items())
    assert messages[-1] == (
        f"index: {numbers} → {tmp_path / 'reports/metrics/index.json'}, {index_dir}"
    )
