"""Independent fits (sweep trials, the K grid's Ks) on Dask workers, one at a time per worker.

Each worker runs one job at a time with all its threads given to Numba (``run_job``): two fits
in one worker process would share its Numba thread pool, which the default ``workqueue``
threading layer does not allow. The data every job reads is scattered to every worker once.
A job is pulled from ``jobs`` only when a worker is free: a sweep asks Optuna for a worker's
next trial as soon as its last one finishes, then tells that result while the new trial runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from movielens_als.compute.dask_rows import cluster_errors, worker_threads
from movielens_als.errors import ComputeError

_NO_JOB = object()


def map_on_workers(
    client, function: Callable[..., Any], jobs: Iterable[Any], shared: Mapping[str, Any]
) -> Iterator[tuple[Any, Any]]:
    """(job, function(job, **shared)) as each finishes. A job's own error is re-raised as it
    is; a lost cluster (or a job that killed its workers) becomes a ComputeError."""
    from distributed import as_completed

    workers = list(worker_threads(client))
    pending = iter(jobs)
    running: dict[Any, tuple[Any, str]] = {}
    try:
        shared_futures = {
            name: client.scatter(value, broadcast=True, hash=False)
            for name, value in shared.items()
        }

        def submit(worker: str):
            job = next(pending, _NO_JOB)
            if job is _NO_JOB:
                return None
            future = client.submit(
                run_job,
                function,
                job,
                workers=[worker],
                allow_other_workers=True,  # a lost worker's job is rerun on another
                pure=False,
                **shared_futures,
            )
            running[future] = (job, worker)
            return future

        finished = as_completed(
            [f for f in map(submit, workers) if f is not None], loop=client.loop
        )
        for future in finished:
            job, worker = running.pop(future)
            result = future.result()
            # the freed worker gets its next job before this result is handed back, so it
            # does not wait while the caller records it (a sweep's tell and MLflow run)
            following = submit(worker)
            if following is not None:
                finished.add(following)
            yield job, result
    except cluster_errors() as exc:
        raise ComputeError(
            f"compute: the Dask cluster failed while running jobs ({type(exc).__name__}: {exc})"
        ) from None
    finally:
        for future in running:
            future.cancel()


def run_job(function: Callable[..., Any], job: Any, **shared: Any) -> Any:
    """On a worker: ``function(job, **shared)`` with the worker's threads given to Numba."""
    import distributed
    import numba

    threads = distributed.get_worker().state.nthreads
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    return function(job, **shared)
