"""The fault suite: every stage, on the tiny synthetic release, stopped where stopping changes
what is left on disk — the numbered points of ``atomic.fault_point``: temporaries reserved,
temporaries written, each rename into place (also inside a temporary being written, and after
the last rename, before the MLflow run closes).

SIGKILL at a point, then a rerun: the rerun succeeds, its outputs are the bytes of an
uninterrupted run, no temporary is left anywhere under the project and no MLflow run stays
RUNNING. SIGTERM at a point: exit 130 with one line on stderr, no temporary, the run FAILED.
Either way no output file is ever torn: each is the one from before the stage or the new one.

By default each stage is stopped at one point of each kind, drawn with a fixed seed (about
2.5 minutes on two idle cores); the tests marked slow stop it at every point (about 20). The
uninterrupted runs go on in one thread while the cases run two at a time in others, each case
in a copy of the project as the stage finds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import queue
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from _project import TINY_RELEASE, paths_under
from _stage_processes import Finished, StageServer
from movielens_als.atomic import FAULT_AT_ENV, FAULT_LOG_ENV, FAULT_SIGNAL_ENV
from movielens_als.pipeline.sweep import STUDY_DB
from movielens_als.tracking.mlflow_tracker import PID_TAG

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED = 14  # draws the default suite's stop points
CASE_WORKERS = 2  # cases run at once (beside the uninterrupted runs): the machine has 2 cores

# Every stage in pipeline order, as (module, overrides), with settings small enough for the
# whole chain to run in under a minute; each stage reads what the ones before it wrote.
STAGES: dict[str, tuple[str, list[str]]] = {
    "download": ("download", []),
    "index": ("index", []),
    "split": ("split", []),
    "eda": ("eda", []),
    "train_als": ("train", ["model=als", "model.K=4", "model.iterations=3"]),
    "train_bayes_als": (
        "train",
        [
            "model=bayes_als",
            "model.K=3",
            "model.samples=4",
            "model.burn_in=1",
            "model.saved_samples=2",
        ],
    ),
    "analysis": ("analysis", ["analysis.model=als", "analysis.min_ratings=2"]),
    "validation_fit": ("validation_fit", ["validation_fit.model=als", "ranking.models=[als]"]),
    "ranking": ("ranking", ["ranking.models=[als]"]),
    "sweep": (
        "sweep",
        [
            "model=als",
            "search=notebook",
            "search.fixed.K=4",
            "tuning.n_trials=3",
            "tuning.iterations=2",
            "tuning.final_iterations=2",
        ],
    ),
    "kgrid": ("kgrid", ["kgrid.Ks=[2,4]", "kgrid.iterations=2", "kgrid.search=notebook"]),
    "kgrid_report": ("kgrid_report", ["kgrid.Ks=[2,4]", "kgrid.search=notebook"]),
    "crossval": (
        "crossval",
        [
            "split=kfold",
            "split.folds=2",
            "crossval.models=[bias,als]",
            "models.bias.iterations=2",
            "models.als.K=4",
            "models.als.iterations=2",
        ],
    ),
}


@dataclass(frozen=True)
class Point:
    number: int  # MOVIELENS_ALS_FAULT_AT
    event: str  # reserved | written | renamed i/n
    targets: tuple[str, ...]

    def __str__(self) -> str:
        return f"point {self.number} ({self.event} {', '.join(self.targets)})"


@dataclass(frozen=True)
class Prepared:
    """A stage with the project as it finds it and what an uninterrupted run makes of it."""

    name: str
    before: Path  # a copy of the project folder before the stage ran
    before_digests: dict[str, str]
    after_digests: dict[str, str]  # after the uninterrupted run
    after_studies: dict[str, list]  # the Optuna trials the uninterrupted run left
    points: list[Point]  # the uninterrupted run's fault points, in order
    stderr: str  # what the uninterrupted run printed there


class Pipeline:
    """The chain of uninterrupted runs, each stage's started once a test needs it (one
    thread, in order), and the cases run against it (``CASE_WORKERS`` threads), each in a
    fresh copy of the project as its stage finds it.

    Every project sends MLflow's artifacts to one folder beside them: the store records that
    folder's absolute path, so a copied project must find it where the original had it.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.artifacts = folder / "mlartifacts"
        self.snapshots = folder / "snapshots"  # <stage>: the project after its uninterrupted run
        self.scratch = folder / "scratch"  # fault logs, children's output and TMPDIR
        self.scratch.mkdir()
        shutil.copytree(REPO_ROOT / "conf", self.snapshots / "empty" / "conf")
        # one hash seed per server, so that a rerun (a case server) and the uninterrupted run
        # it is compared with (the chain's) never share one
        self.chain_server = StageServer(self.scratch / "chain", hash_seed=0)
        self.servers: queue.Queue[StageServer] = queue.Queue()
        for seed in range(1, CASE_WORKERS + 1):
            # the chain is what every case waits for: cases get the CPU it leaves
            server = StageServer(self.scratch / f"cases-{seed}", hash_seed=seed, niceness=10)
            self.servers.put(server)
        self.chain = ThreadPoolExecutor(1, thread_name_prefix="chain")
        self.cases = ThreadPoolExecutor(CASE_WORKERS, thread_name_prefix="case")
        self.prepared: dict[str, Future[Prepared]] = {}
        self.results: dict[tuple, Future[None]] = {}
        self.projects = itertools.count(1)

    def stage(self, name: str) -> Future[Prepared]:
        """The stage prepared: every stage before it run uninterrupted, then it."""
        names = list(STAGES)
        for earlier in names[: names.index(name) + 1]:
            if earlier not in self.prepared:  # the chain's one thread runs them in this order
                self.prepared[earlier] = self.chain.submit(self._prepare, earlier)
        return self.prepared[name]

    def _prepare(self, name: str) -> Prepared:
        names = list(STAGES)
        previous = names[names.index(name) - 1] if names.index(name) else None
        if previous:
            self.prepared[previous].result()  # done (the chain runs in order); raises if failed
        before = self.snapshots / (previous or "empty")
        root = self.folder / "chain"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(before, root)
        log = self.scratch / f"{name}.points"
        finished = self.run(self.chain_server, root, name, {FAULT_LOG_ENV: str(log)})
        assert finished.returncode == 0, f"{name}: the uninterrupted run failed\n{finished.stderr}"
        shutil.copytree(root, self.snapshots / name)
        return Prepared(
            name,
            before,
            digests(before),
            digests(root),
            studies(root),
            read_points(log),
            finished.stderr,
        )

    def run(
        self,
        server: StageServer,
        root: Path,
        name: str,
        env: dict[str, str] | None = None,
    ) -> Finished:
        """Stage ``name`` in project ``root``."""
        return server.run(
            STAGES[name][0],
            self.overrides(name),
            cwd=root,
            # MLflow's own temporaries (a model being logged) go to TMPDIR, not the project
            env={"TMPDIR": str(self.scratch), **(env or {})},
        )

    def overrides(self, name: str) -> list[str]:
        # Paths relative to the project folder, as DVC gives them: an output that records a
        # path (best_params.json names its study store) is then the same in every copy.
        return [*TINY_RELEASE, *paths_under(Path(), self.artifacts), *STAGES[name][1]]

    def case(self, check: Callable, name: str, point: int | None = None) -> Future[None]:
        """``check(pipeline, server, project, prepared, point)`` for stage ``name`` at point
        number ``point`` (None: the one drawn for ``check``), started now, run once."""
        key = (check.__name__, name, point)
        if key not in self.results:
            prepared = self.stage(name)
            self.results[key] = self.cases.submit(self._case, check, prepared, point)
        return self.results[key]

    def _case(self, check: Callable, prepared_future: Future[Prepared], number: int | None):
        prepared = prepared_future.result()
        point = (
            drawn_point(prepared, check.__name__) if number is None else prepared.points[number - 1]
        )
        project = self.folder / "cases" / f"{next(self.projects)}-{prepared.name}"
        shutil.copytree(prepared.before, project)
        server = self.servers.get()
        try:
            check(self, server, project, prepared, point)
        finally:
            self.servers.put(server)
        shutil.rmtree(project)  # kept when the check failed, to look at

    def close(self) -> None:
        for executor in (self.cases, self.chain):
            executor.shutdown(wait=True, cancel_futures=True)
        self.chain_server.close()
        while not self.servers.empty():
            self.servers.get().close()


@pytest.fixture(scope="module")
def pipeline(request, tmp_path_factory) -> Iterator[Pipeline]:
    pipeline = Pipeline(tmp_path_factory.mktemp("faults"))
    try:
        for item in request.session.items:
            if item.module is request.module and item.originalname in DRAWN_CASES:
                pipeline.case(DRAWN_CASES[item.originalname], item.callspec.params["name"])
        yield pipeline
    finally:
        pipeline.close()


def read_points(log: Path) -> list[Point]:
    points = []
    for line in log.read_text(encoding="utf-8").splitlines():
        number, event, targets = line.split("\t")
        points.append(Point(int(number), event, tuple(targets.split(", "))))
    assert [p.number for p in points] == list(range(1, len(points) + 1))
    return points


def _compared(path: Path, root: Path) -> bool:
    relative = path.relative_to(root)
    if relative.parts[:2] == ("reports", "timings"):
        return False  # wall-clock seconds: different on every run, never a DVC output
    if relative.name.startswith(STUDY_DB):
        # The Optuna study store: it keeps trial timestamps and durations, and survives a
        # killed sweep on purpose (the rerun resumes the study). What the study found is
        # compared through its trials (``studies``) and through the sweep's outputs.
        return False
    return not any(part.endswith(".tmp") for part in relative.parts)  # debris is checked apart


def digests(root: Path) -> dict[str, str]:
    """md5 of every output file under the project's data/ and reports/ (see ``_compared``)."""
    return {
        path.relative_to(root).as_posix(): hashlib.md5(path.read_bytes()).hexdigest()
        for top in ("data", "reports")
        for path in sorted((root / top).rglob("*"))
        if path.is_file() and _compared(path, root)
    }


def debris(root: Path) -> list[str]:
    """Temporaries anywhere under the project: ``atomic_paths``' ``.<name>.<pid>.….tmp`` (files
    or folders) and SQLite rollback journals (a store write cut short)."""
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.name.endswith((".tmp", "-journal", "-wal"))
    )


def studies(root: Path) -> dict[str, list]:
    """Per Optuna store under data/, per study: each trial's number, state, params, values."""
    import optuna

    found = {}
    for store in sorted((root / "data").rglob(STUDY_DB)):
        storage = optuna.storages.RDBStorage(f"sqlite:///{store}")
        for summary in optuna.get_all_study_summaries(storage):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            found[f"{store.relative_to(root)}:{summary.study_name}"] = [
                (t.number, t.state.name, t.params, t.value, t.intermediate_values)
                for t in study.get_trials(deepcopy=False)
            ]
        storage.engine.dispose()
    return found


def run_statuses(root: Path) -> list[tuple[str, str]]:
    """``(pid, status)`` of every MLflow run in the project's store, read with sqlite3: an
    MlflowClient keeps a pooled engine, and its open file, per store for the life of this
    process, and every case has its own store."""
    with contextlib.closing(sqlite3.connect(root / "mlflow.db")) as db:
        rows = db.execute(
            "SELECT tags.value, runs.status FROM runs "
            "LEFT JOIN tags ON tags.run_uuid = runs.run_uuid AND tags.key = ?",
            (PID_TAG,),
        ).fetchall()
    return [(pid or "", status) for pid, status in rows]


def torn(root: Path, prepared: Prepared) -> dict[str, str]:
    """Output files whose bytes are neither those from before the stage nor those it writes:
    a stop must leave each file whole, old or new."""
    return {
        path: digest
        for path, digest in digests(root).items()
        if digest not in (prepared.before_digests.get(path), prepared.after_digests.get(path))
    }


def differences(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    return sorted(
        path for path in expected.keys() | actual.keys() if expected.get(path) != actual.get(path)
    )


def renamed_together(prepared: Prepared, point: Point) -> list[str]:
    """The targets ``atomic_paths`` renames together with the one renamed at ``point``
    (none unless it is a rename): a stop the stage handles must let them all be renamed."""
    rename = re.fullmatch(r"renamed (\d+)/(\d+)", point.event)
    if rename is None:
        return []
    i, n = map(int, rename.groups())
    first = point.number - i  # index in ``points`` of the block's first rename
    return [target for p in prepared.points[first : first + n] for target in p.targets]


def untimed(line: str) -> str:
    """A log line without the date and time MLflow's logger starts it with, and without the
    seconds a progress line reports (``… test_rmse=0.8270  0.01 s``)."""
    line = re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ", "", line)
    return re.sub(r"\s*\b\d+(\.\d+)? s\b", "", line)


def drawn_point(prepared: Prepared, check: str) -> Point:
    """The point a default test stops the stage at: drawn per stage and per check."""
    check_key = int.from_bytes(hashlib.md5(check.encode()).digest()[:4], "little")
    rng = np.random.default_rng([SEED, list(STAGES).index(prepared.name), check_key])
    return prepared.points[int(rng.integers(len(prepared.points)))]


def check_kill_and_rerun(
    pipeline: Pipeline, server: StageServer, root: Path, prepared: Prepared, point: Point
) -> None:
    killed = pipeline.run(server, root, prepared.name, {FAULT_AT_ENV: str(point.number)})
    where = f"{prepared.name} killed at {point}"
    assert killed.returncode == -signal.SIGKILL, (
        f"{where}: exit {killed.returncode}\n{killed.stderr}"
    )
    assert torn(root, prepared) == {}, f"{where}: half-written outputs"

    rerun = pipeline.run(server, root, prepared.name)
    assert rerun.returncode == 0, f"{where}: the rerun failed\n{rerun.stderr}"
    assert differences(prepared.after_digests, digests(root)) == [], (
        f"{where}: the rerun's outputs differ from an uninterrupted run's"
    )
    assert debris(root) == [], f"{where}: temporaries left after the rerun"
    statuses = run_statuses(root)
    assert [s for _, s in statuses if s == "RUNNING"] == [], f"{where}: {statuses}"
    assert "KILLED" in {s for pid, s in statuses if pid == str(killed.pid)}, (
        f"{where}: the killed run was not marked KILLED: {statuses}"
    )
    assert studies(root) == prepared.after_studies, f"{where}: the resumed study differs"


def check_sigterm(
    pipeline: Pipeline, server: StageServer, root: Path, prepared: Prepared, point: Point
) -> None:
    stopped = pipeline.run(
        server,
        root,
        prepared.name,
        {FAULT_AT_ENV: str(point.number), FAULT_SIGNAL_ENV: "TERM"},
    )
    where = f"{prepared.name} sent SIGTERM at {point}"
    stage = STAGES[prepared.name][0]
    assert stopped.returncode == 130, f"{where}: exit {stopped.returncode}\n{stopped.stderr}"
    *before_stop, last = stopped.stderr.strip().splitlines()
    assert last.startswith(f"error: {stage}: interrupted; "), f"{where}: {last}"
    # the stop adds that one line: anything before it, an uninterrupted run prints too
    assert set(map(untimed, before_stop)) <= set(map(untimed, prepared.stderr.splitlines())), (
        f"{where}: more than one line for the stop:\n{stopped.stderr}"
    )
    assert debris(root) == [], f"{where}: temporaries left"
    assert torn(root, prepared) == {}, f"{where}: half-written outputs"
    now = digests(root)
    together = renamed_together(prepared, point)
    unfinished = [
        path
        for path, digest in prepared.after_digests.items()
        if any(path == t or path.startswith(f"{t}/") for t in together) and now.get(path) != digest
    ]
    assert unfinished == [], f"{where}: a publish stopped half-way, not renamed: {unfinished}"
    statuses = {s for pid, s in run_statuses(root) if pid == str(stopped.pid)}
    assert "RUNNING" not in statuses and "FAILED" in statuses, f"{where}: runs {statuses}"


def check_fresh_interpreter(
    pipeline: Pipeline, server: StageServer, root: Path, prepared: Prepared, point: Point
) -> None:
    """The stage as ``python -m`` runs it (no server: ``server`` and ``point`` are unused)
    writes the bytes the chain's forked child wrote."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    name, module = prepared.name, STAGES[prepared.name][0]
    result = subprocess.run(
        [sys.executable, "-m", f"movielens_als.stages.{module}", *pipeline.overrides(name)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert differences(prepared.after_digests, digests(root)) == []
    assert debris(root) == []


def test_fault_points_are_numbered_per_block_and_rename(tmp_path, monkeypatch):
    from movielens_als import atomic

    monkeypatch.setattr(atomic, "_fault_points_passed", 0)
    monkeypatch.delenv(FAULT_LOG_ENV, raising=False)
    monkeypatch.delenv(FAULT_AT_ENV, raising=False)
    atomic.write_json(tmp_path / "unset.json", {})
    assert atomic._fault_points_passed == 0  # inert without the variables

    log = tmp_path / "points"
    monkeypatch.setenv(FAULT_LOG_ENV, str(log))
    with atomic.atomic_paths(tmp_path / "a.json", tmp_path / "b") as (a, b):
        a.write_text("{}")
        b.mkdir()
        atomic.write_json(b / "inner.json", {})  # a block inside a temporary
    assert [(p.number, p.event) for p in read_points(log)] == [
        (1, "reserved"),
        (2, "reserved"),
        (3, "written"),
        (4, "renamed 1/1"),
        (5, "written"),
        (6, "renamed 1/2"),
        (7, "renamed 2/2"),
    ]
    assert read_points(log)[5].targets == (str(tmp_path / "a.json"),)


class Stopped(Exception):
    pass


def _stop(signum, frame):
    raise Stopped


def test_sigterm_between_two_renames_waits_for_the_second(tmp_path, monkeypatch):
    from movielens_als import atomic

    monkeypatch.setattr(atomic, "_fault_points_passed", 0)
    monkeypatch.setenv(FAULT_AT_ENV, "3")  # reserved, written, renamed 1/2: SIGTERM here
    monkeypatch.setenv(FAULT_SIGNAL_ENV, "TERM")
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        with pytest.raises(Stopped), atomic.atomic_paths(first, second) as (a, b):
            a.write_text("new")
            b.write_text("new")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert first.read_text() == second.read_text() == "new"
    assert signal.getsignal(signal.SIGTERM) is previous


@pytest.mark.parametrize("name", list(STAGES))
def test_a_stage_killed_at_a_drawn_point_reruns_to_the_same_bytes(pipeline, name):
    pipeline.case(check_kill_and_rerun, name).result()


@pytest.mark.parametrize("name", list(STAGES))
def test_sigterm_at_a_drawn_point_stops_a_stage_cleanly(pipeline, name):
    pipeline.case(check_sigterm, name).result()


@pytest.mark.parametrize("name", ["train_als"])
def test_python_m_writes_what_the_forked_stage_wrote(pipeline, name):
    pipeline.case(check_fresh_interpreter, name).result()


# The default tests' cases, started as soon as the module's fixture exists so that they run
# while earlier tests wait for theirs: test name → the check it runs.
DRAWN_CASES: dict[str, Callable] = {
    test_a_stage_killed_at_a_drawn_point_reruns_to_the_same_bytes.__name__: check_kill_and_rerun,
    test_sigterm_at_a_drawn_point_stops_a_stage_cleanly.__name__: check_sigterm,
    test_python_m_writes_what_the_forked_stage_wrote.__name__: check_fresh_interpreter,
}


def every_point(pipeline: Pipeline, check: Callable, name: str) -> None:
    prepared = pipeline.stage(name).result()
    cases = [pipeline.case(check, name, point.number) for point in prepared.points]
    failures = [str(case.exception()) for case in cases if case.exception() is not None]
    assert failures == [], "\n\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STAGES))
def test_a_stage_killed_at_every_point_reruns_to_the_same_bytes(pipeline, name):
    every_point(pipeline, check_kill_and_rerun, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STAGES))
def test_sigterm_at_every_point_stops_a_stage_cleanly(pipeline, name):
    every_point(pipeline, check_sigterm, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STAGES))
def test_python_m_writes_what_the_forked_stage_wrote_for_every_stage(pipeline, name):
    pipeline.case(check_fresh_interpreter, name).result()
