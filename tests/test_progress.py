"""Long work shows progress: a tqdm bar on a terminal and log lines elsewhere; a stage ends
with a summary line."""

from __future__ import annotations

import io
import json
import logging
import re

from movielens_als.progress import Progress, StageFormatter


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
