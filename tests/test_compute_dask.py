"""compute=dask: distributed fits bit-identical to local ones, sweeps and K grids on workers,
and the faults a cluster brings (a lost worker, a scheduler that does not answer).

A real ``distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` runs
the workers; one test starts ``dask scheduler`` and two ``dask worker`` processes and stops
them by their process group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import optuna
import pytest

from core_problems import random_genres, random_problem, split_ratings
from movielens_als.compute import check_settings, open_compute
from movielens_als.config import compose
from movielens_als.core.als import VARIANT as ALS_VARIANT
from movielens_als.core.als import ALSParams
from movielens_als.core.fit import fit
from movielens_als.errors import ComputeError, ConfigError, NumericalError
from movielens_als.tuning.search import FINISHED

TWO_WORKERS = {"n_workers": 2, "threads_per_worker": 1}
LOCAL_CLUSTER = {
    "name": "dask",
    "address": None,
    "connect_timeout": 30,
    "local_cluster": TWO_WORKERS,
}
DASK_OVERRIDES = ["compute=dask", "compute.connect_timeout=30"]
SMALL_SWEEP = ["tuning.iterations=4", "tuning.final_iterations=4", "model.K=4", "search.fixed.K=4"]

CASES = {
    "bias": {"variant": "als", "K": 0, "iterations": 3},
    "als cholesky": {"variant": "als", "K": 5, "iterations": 4, "solver": "cholesky"},
    "als cd": {"variant": "als", "K": 5, "iterations": 4, "solver": "cd", "cd_passes": 2},
    "genre als": {"variant": "als", "K": 4, "iterations": 4, "genres": True, "eta": 2.0},
    "bayes": {"variant": "bayes_als", "K": 4, "samples": 6, "burn_in": 2, "saved_samples": 2},
    "bayes cd genres": {
        "variant": "bayes_als",
        "K": 4,
        "samples": 6,
        "burn_in": 2,
        "saved_samples": 2,
        "solver": "cd",
        "genres": True,
    },
}
MODEL_ARRAYS = ("user_bias", "item_bias", "user_factors", "item_factors", "genre_factors")


@pytest.fixture(scope="module")
def cluster():
    with open_compute(LOCAL_CLUSTER) as compute:
        yield compute


@pytest.fixture(scope="module")
def problem():
    train, ratings = random_problem(3, n_users=60, n_items=45, n_ratings=900)
    _, held_out = split_ratings(ratings, seed=1)
    return train, held_out, random_genres(4, 45)


def _same_fit(a, b) -> bool:
    arrays = all(
        (getattr(a.model, name) is None and getattr(b.model, name) is None)
        or np.array_equal(getattr(a.model, name), getattr(b.model, name))
        for name in MODEL_ARRAYS
    )
    curves = [(r.nll, r.train_rmse, r.eval_rmse) for r in a.history] == [
        (r.nll, r.train_rmse, r.eval_rmse) for r in b.history
    ]
    return arrays and curves and a.jittered_rows == b.jittered_rows


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"name": "spark"}, "compute.name"),
        ({**LOCAL_CLUSTER, "address": "127.0.0.1:8786"}, "compute.address"),
        ({**LOCAL_CLUSTER, "connect_timeout": 0}, "compute.connect_timeout"),
        (
            {**LOCAL_CLUSTER, "local_cluster": {"n_workers": 0, "threads_per_worker": 1}},
            "n_workers",
        ),
        (
            {**LOCAL_CLUSTER, "local_cluster": {"n_workers": 2, "threads_per_worker": True}},
            "threads_per_worker",
        ),
    ],
)
def test_compute_settings_are_checked_with_the_key(bad, key):
    with pytest.raises(ConfigError, match=key):
        check_settings(bad)


def test_a_stage_config_with_a_bad_compute_is_refused(tiny_project):
    from movielens_als.pipeline.train import run_training

    _, overrides = tiny_project
    cfg = compose("train", [*overrides, "compute=dask", "compute.local_cluster.n_workers=0"])
    with pytest.raises(ConfigError, match=r"compute\.local_cluster\.n_workers"):
        run_training(cfg)


def test_local_compute_never_imports_dask():
    script = (
        "import sys\n"
        "sys.path.insert(0, 'tests')\n"
        "from core_problems import random_problem\n"
        "from movielens_als.compute import open_compute\n"
        "import movielens_als.pipeline.sweep, movielens_als.pipeline.kgrid, movielens_als.pipeline.train\n"
        "from movielens_als.core.fit import fit\n"
        "train, _ = random_problem(0)\n"
        "with open_compute({'name': 'local'}) as compute:\n"
        "    fit(train, {'K': 3, 'iterations': 2}, executor=compute.executor)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("case", list(CASES))
def test_distributed_fit_is_bit_identical_to_the_local_fit(cluster, problem, case):
    train, held_out, genres = problem
    params = CASES[case]
    movie_genres = genres if params.get("genres") else None
    local = fit(train, params, movie_genres=movie_genres, evals={"test": held_out})
    distributed = fit(
        train,
        params,
        movie_genres=movie_genres,
        evals={"test": held_out},
        executor=cluster.executor,
    )
    assert _same_fit(local, distributed)
    rows = cluster.executor.last
    assert rows.half_steps == 2 * len(local.history)
    assert rows.n_workers == 2  # each worker held a block of users and a block of movies


def test_ratings_are_sent_once_per_fit_and_factors_once_per_half_step(cluster, problem):
    train, _, _ = problem
    K = 5
    sent = []
    for iterations in (1, 3):
        fit(train, {"K": K, "iterations": iterations}, executor=cluster.executor)
        sent.append(cluster.executor.last.bytes_sent)
    rows = cluster.executor.last
    n_workers = 2
    # a user half-step broadcasts the movies' bias and factors to both workers and sends each
    # user once (bias and factors); a movie half-step the same the other way round
    per_side = {
        n_fixed: n_fixed * (K + 1) * 4 * n_workers + n_own * (K + 1) * 4
        for n_fixed, n_own in ((train.n_items, train.n_users), (train.n_users, train.n_items))
    }
    per_iteration = sum(per_side.values())
    assert sent[1] - sent[0] == 2 * per_iteration
    # the ratings (both layouts, each block with its own row pointers) went once
    csr_bytes = sum(
        m.indices.nbytes + m.data.nbytes + (m.n_rows + n_workers) * 8
        for m in (train.by_user, train.by_item)
    )
    assert rows.data_bytes == csr_bytes
    assert sent[0] == csr_bytes + per_iteration


def test_the_worker_list_is_never_the_clients_cache_emptied_by_its_refresh(cluster, problem):
    """The client's periodic refresh stores scheduler info without workers; had a fit read
    that cache (``scheduler_info()``) it would see every worker as lost. Here the refresh
    always lands between the fetch and the read."""
    from distributed.objects import SchedulerInfo

    from movielens_als.compute.dask_rows import worker_threads

    client = cluster.client
    fetch = client._update_scheduler_info

    async def fetch_then_refresh(n_workers=0):
        await fetch(n_workers=n_workers)
        client._scheduler_identity = SchedulerInfo({**client._scheduler_identity, "workers": {}})

    client._update_scheduler_info = fetch_then_refresh
    try:
        assert len(worker_threads(client)) == cluster.n_slots == 2
        train, _, _ = problem
        fit(train, CASES["als cd"], executor=cluster.executor)
    finally:
        del client._update_scheduler_info


def test_a_row_error_on_a_worker_names_the_row_by_its_global_index(cluster):
    train, _ = random_problem(18)
    params = ALSParams(K=3, iterations=1)
    state = ALS_VARIANT.start(params, train, None, 0.0)
    # the last user has one rating, of the movie n_items − 2, and sits in the second block
    state.items.factors[train.n_items - 2, 0] = np.nan
    task = ALS_VARIANT.row_task(params, state, state.users, state.items, sweep=1, compute_sse=False)
    with cluster.executor.open(train, params.K) as rows:
        assert rows.blocks[0][1].start <= train.n_users - 1
        with pytest.raises(NumericalError, match=rf"user index {train.n_users - 1} \(") as info:
            rows.run(state.users, task)
    assert "NaN" in str(info.value)


def test_independent_fits_run_one_per_worker_with_local_results(cluster, problem):
    train, held_out, _ = problem
    jobs = [{"K": K, "iterations": 3} for K in (1, 2, 3, 4)]
    results = dict(
        (job["K"], result)
        for job, result in cluster.map_unordered(_fit_job, jobs, train=train, test=held_out)
    )
    assert sorted(results) == [1, 2, 3, 4]
    for job in jobs:
        assert _same_fit(results[job["K"]], _fit_job(job, train=train, test=held_out))


def _fit_job(params, *, train, test):
    return fit(train, params, evals={} if test is None else {"test": test})


@pytest.mark.timeout(240)  # a lost worker must end the call, never hang it
def test_a_worker_killed_mid_fit_stops_it_with_one_message_and_a_rerun_works(problem):
    big = random_problem(3, n_users=3000, n_items=2000, n_ratings=300_000)[0]
    params = {"K": 48, "iterations": 3}
    with open_compute(LOCAL_CLUSTER) as compute:
        pids = sorted(compute.client.run(os.getpid).values())
        fit(big, {**params, "iterations": 1}, executor=compute.executor)  # compiled on workers

        def kill_during_the_next_half_step(record):
            if record.iteration == 1:
                threading.Timer(0.05, os.kill, (pids[0], signal.SIGKILL)).start()

        # 50 iterations: however fast the machine, the fit is still running when the kill lands
        with pytest.raises(ComputeError, match="nothing was written") as failure:
            fit(
                big,
                {**params, "iterations": 50},
                callback=kill_during_the_next_half_step,
                executor=compute.executor,
            )
        assert "worker" in str(failure.value) and "\n" not in str(failure.value)
        # the nanny restarts the worker; a new fit on the cluster gives the local result
        compute.client.wait_for_workers(2, timeout=60)
        small, _, _ = problem
        assert _same_fit(fit(small, params), fit(small, params, executor=compute.executor))


@pytest.mark.timeout(240)  # a lost worker must end the call, never hang it
def test_a_worker_lost_during_independent_fits_has_its_job_rerun_elsewhere(tmp_path):
    big = random_problem(5, n_users=3000, n_items=2000, n_ratings=300_000)[0]
    jobs = [{"K": K, "iterations": 3} for K in (12, 13, 14, 15)]
    death = tmp_path / "first-attempt-of-K12.pid"
    with open_compute(LOCAL_CLUSTER) as compute:
        first_workers = set(compute.client.run(os.getpid).values())
        results = {
            job["K"]: result
            for job, result in compute.map_unordered(
                _fit_job_whose_first_attempt_kills_its_worker,
                jobs,
                train=big,
                test=None,
                death=str(death),
            )
        }
    # the worker died while running its job, whatever the machine's speed
    assert int(death.read_text()) in first_workers
    assert sorted(results) == [12, 13, 14, 15]
    for job in jobs[:2]:
        assert _same_fit(results[job["K"]], _fit_job(job, train=big, test=None))


def _fit_job_whose_first_attempt_kills_its_worker(params, *, train, test, death):
    """K=12's first attempt records its worker's pid and SIGKILLs that worker mid-job."""
    if params["K"] == 12:
        try:
            descriptor = os.open(death, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            pass  # the rerun, on another worker
        else:
            os.write(descriptor, str(os.getpid()).encode())
            os.close(descriptor)
            os.kill(os.getpid(), signal.SIGKILL)
    return _fit_job(params, train=train, test=test)


def test_a_scheduler_that_does_not_answer_fails_before_any_work():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.perf_counter()
    with pytest.raises(ComputeError, match=rf"no Dask scheduler answers at tcp://127.0.0.1:{port}"):
        with open_compute(
            {**LOCAL_CLUSTER, "address": f"tcp://127.0.0.1:{port}", "connect_timeout": 2}
        ):
            pytest.fail("nothing may run without a scheduler")
    assert time.perf_counter() - started < 30


def test_train_stage_with_an_unreachable_scheduler_writes_nothing(tiny_project):
    from movielens_als.pipeline.train import run_training

    tmp_path, overrides = tiny_project
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "mlruns" not in p.parts)
    cfg = compose(
        "train",
        [
            *overrides,
            "model=als",
            "compute=dask",
            "compute.address=tcp://127.0.0.1:9",
            "compute.connect_timeout=2",
        ],
    )
    with pytest.raises(ComputeError, match="no Dask scheduler answers"):
        run_training(cfg)
    after = sorted(
        p.relative_to(tmp_path)
        for p in tmp_path.rglob("*")
        if p.suffix not in (".db", ".db-journal") and "mlartifacts" not in p.parts
    )
    assert [p for p in after if p.parts[0] in ("reports", "data") and p not in before] == []


def _finished(trials) -> int:
    return sum(t.state in FINISHED for t in trials)


def test_sweep_and_kgrid_on_workers_are_recorded_like_local_ones(tiny_project, monkeypatch):
    from mlflow.tracking import MlflowClient

    from movielens_als.core.variant import model_params
    from movielens_als.pipeline.kgrid import run_kgrid
    from movielens_als.pipeline.sweep import run_sweep

    tmp_path, overrides = tiny_project
    sweep = [*overrides, *SMALL_SWEEP, *DASK_OVERRIDES]
    metrics = run_sweep(compose("sweep", [*sweep, "tuning.n_trials=6"]))
    assert metrics["n_trials"] == 6
    out = tmp_path / "data/tuning/synthetic/als/notebook"
    assert {p.name for p in out.iterdir()} >= {"best_params.json", "optuna.db"}
    storage = f"sqlite:///{out / 'optuna.db'}"
    (name,) = optuna.get_all_study_names(storage)
    study = optuna.load_study(study_name=name, storage=storage)
    finished = [t for t in study.get_trials() if t.state.is_finished()]
    assert len(finished) == 6
    assert {t.state for t in finished} <= {
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
    }
    # what stays fixed: a trial's result for its parameters is the local fit's
    cfg = compose("sweep", sweep)
    from movielens_als.data.index import load_index
    from movielens_als.pipeline.common import split_as_configured

    split, _ = split_as_configured(
        load_index(tmp_path / "data/index/synthetic"), cfg, val_fraction=cfg.tuning.val_fraction
    )
    best = json.loads((out / "best_params.json").read_text())
    complete = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    trial = complete[0]
    params = model_params({**best["params"], **trial.params}).with_iterations(cfg.tuning.iterations)
    local = fit(split.train, params, evals={"val": split.val.to_ratings()})
    assert local.history[-1].eval_rmse["val"] == trial.value
    # one MLflow parent run with a child run per trial, as a local sweep records them
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("movielens-als/synthetic")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags["stage"] == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 6
    # interrupted while trials run on both workers, then resumed: nothing finished is repeated
    import movielens_als.pipeline.sweep as sweep_module

    real_text = sweep_module.trial_text

    def interrupt(outcome):
        raise KeyboardInterrupt  # the user stops the sweep as its first new trial is recorded

    monkeypatch.setattr(sweep_module, "trial_text", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(compose("sweep", [*sweep, "tuning.n_trials=9"]))
    interrupted = optuna.load_study(study_name=name, storage=storage).get_trials()
    assert _finished(interrupted) == 7
    assert not [t for t in interrupted if t.state == optuna.trial.TrialState.RUNNING]
    monkeypatch.setattr(sweep_module, "trial_text", real_text)
    run_sweep(compose("sweep", [*sweep, "tuning.n_trials=9"]))
    after = optuna.load_study(study_name=name, storage=storage).get_trials()
    assert _finished(after) == 9
    kept = [t for t in interrupted if t.state in FINISHED]
    assert [t.params for t in after if t.number in {k.number for k in kept}] == [
        t.params for t in kept
    ]
    assert [t.params for t in after[:6]] == [t.params for t in study.get_trials()[:6]]

    # the K grid: two Ks at once on the workers, each K's file the local run's
    grid = ["kgrid.Ks=[2,3]", "kgrid.iterations=3", "kgrid.search=notebook"]
    distributed = run_kgrid(compose("kgrid", [*overrides, *grid, *DASK_OVERRIDES]))
    files = {K: (tmp_path / f"data/kgrid/synthetic/K{K}.json").read_bytes() for K in (2, 3)}
    local = run_kgrid(compose("kgrid", [*overrides, *grid]))
    assert distributed == local
    assert files == {K: (tmp_path / f"data/kgrid/synthetic/K{K}.json").read_bytes() for K in (2, 3)}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _dask_command(*args: str) -> list[str]:
    executable = Path(sys.executable).with_name("dask")
    if executable.exists():
        return [str(executable), *args]
    found = shutil.which("dask")
    assert found, "the dask command-line tool (installed with distributed) is missing"
    return [found, *args]


def test_a_real_scheduler_and_two_workers_run_a_fit_and_a_sweep(tiny_project):
    from movielens_als.pipeline.sweep import run_sweep
    from movielens_als.pipeline.train import run_training

    tmp_path, overrides = tiny_project
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    started = []
    try:
        started.append(
            subprocess.Popen(
                _dask_command(
                    "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"
                ),
                stdout=(logs / "scheduler.log").open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as one below
            )
        )
        for n in range(2):
            started.append(
                subprocess.Popen(
                    _dask_command(
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--nworkers",
                        "1",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                    ),
                    stdout=(logs / f"worker{n}.log").open("wb"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        on_cluster = [f"compute.address={address}", *DASK_OVERRIDES]
        from movielens_als.compute.dask_rows import connect, worker_threads

        with connect(address, None, 60) as client:
            client.wait_for_workers(2, timeout=60)
            assert list(worker_threads(client).values()) == [1, 1]
        trained = run_training(
            compose(
                "train", [*overrides, "model=als", "model.K=4", "model.iterations=3", *on_cluster]
            )
        )
        local = run_training(
            compose(
                "train",
                [
                    *overrides,
                    "model=als",
                    "model.K=4",
                    "model.iterations=3",
                    "paths.reports=" + str(tmp_path / "local-reports"),
                    "paths.results=" + str(tmp_path / "local-results"),
                ],
            )
        )
        assert trained["test_rmse"] == local["test_rmse"]
        assert (tmp_path / "reports/metrics/als.json").read_bytes() == (
            tmp_path / "local-reports/metrics/als.json"
        ).read_bytes()
        metrics = run_sweep(
            compose("sweep", [*overrides, *SMALL_SWEEP, "tuning.n_trials=6", *on_cluster])
        )
        assert metrics["n_trials"] == 6
    finally:
        for process in started:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=20)
