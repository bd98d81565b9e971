"""A single fit on a Dask cluster: each worker holds a block of users and a block of movies.

``DaskRows`` cuts both sides of the train matrix into one contiguous block of rows per worker
(about equal ratings each) and scatters each block to its worker once per fit, with the
block's work schedule. A half-step then sends the fixed side's bias and factors once (to one
worker, which the others fetch them from) and each block's current rows to its worker, runs the
variant's row function (``core.rows.RowTask``, the same Numba kernel a local fit runs) on every
block at once, and writes the returned rows back. A row's result does not depend on its block,
so the factors are bit-identical to a local fit's; the driver keeps everything the sweep-level
steps need (genre embeddings, hyper-parameter draws, the objective).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from movielens_als.core.rows import RowTask, balanced_bounds, row_block
from movielens_als.core.variant import Side
from movielens_als.errors import ComputeError
from movielens_als.sparse import CSR, RatingMatrix

log = logging.getLogger(__name__)


@contextlib.contextmanager
def connect(address: str | None, local_cluster: Any, timeout: float) -> Iterator[Any]:
    """A ``distributed.Client`` of the scheduler at ``address``, or of a LocalCluster started
    from ``local_cluster`` (n_workers, threads_per_worker) and stopped on exit. ComputeError,
    before any work, when no scheduler answers or it has no worker within ``timeout`` s."""
    import distributed

    # Dask logs every connection, retirement and closed comm at INFO (with tracebacks for
    # comms closed at shutdown); a stage shows warnings and errors of its own only
    dask_logger = logging.getLogger("distributed")
    level = dask_logger.level
    dask_logger.setLevel(max(level, logging.WARNING))
    cluster = client = None
    try:
        if address is None:
            cluster = distributed.LocalCluster(
                n_workers=int(local_cluster["n_workers"]),
                threads_per_worker=int(local_cluster["threads_per_worker"]),
                processes=True,
                dashboard_address=":0",  # any free port: never clash with another cluster
                silence_logs=logging.ERROR,
            )
            address = cluster.scheduler_address
        try:
            client = distributed.Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ComputeError(
                f"compute.address: no Dask scheduler answers at {address} within {timeout:g} s "
                f"({type(exc).__name__}); start one with `dask scheduler`, or set "
                "compute.address=null to start a local cluster"
            ) from None
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise ComputeError(
                f"compute.address: the Dask scheduler at {address} has no worker after "
                f"{timeout:g} s; start one with `dask worker {address}`"
            ) from None
        log.info("compute: Dask scheduler %s, %d workers", address, len(worker_threads(client)))
        yield client
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        dask_logger.setLevel(level)


def cluster_errors() -> tuple[type[BaseException], ...]:
    """What Dask raises when workers, data or the scheduler are lost (not a job's own error)."""
    import asyncio
    import concurrent.futures

    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    return (
        KilledWorker,
        CommClosedError,
        asyncio.CancelledError,
        concurrent.futures.CancelledError,
        OSError,
        TimeoutError,
    )


def worker_threads(client) -> dict[str, int]:
    """Address → thread count of every worker the scheduler knows, in address order."""
    # asked of the scheduler itself: ``client.scheduler_info()`` returns the client's cached
    # copy, which the client's periodic refresh can replace with one listing no workers between
    # the fetch and the read (a fit then reported a worker lost that was not)
    workers = client.sync(client.scheduler.identity, n_workers=-1)["workers"]
    return {address: int(info["nthreads"]) for address, info in sorted(workers.items())}


@dataclass
class RowBlock:
    """Rows ``start:stop`` of one side: their CSR and schedule (held by one worker)."""

    side: str
    start: int
    stop: int
    matrix: CSR
    schedule: Any


@dataclass
class Arrays:
    """Named arrays scattered as one object (a plain dict would scatter as one key each)."""

    arrays: dict[str, np.ndarray]


@dataclass
class _Placed:
    worker: str
    start: int
    stop: int
    block: Any  # the Future of the worker's RowBlock


class DaskExecutor:
    """A ``core.rows.RowExecutor`` whose half-steps run on the workers of ``client``."""

    def __init__(self, client) -> None:
        self.client = client
        self.last: DaskRows | None = None  # the most recent fit's runner (its byte counts)

    @contextlib.contextmanager
    def open(self, train: RatingMatrix, n_factors: int) -> Iterator[DaskRows]:
        rows = DaskRows(self.client, train, n_factors)
        self.last = rows
        try:
            yield rows
        finally:
            rows.release()


class DaskRows:
    """One fit's row blocks on the workers; ``run`` is one distributed half-step."""

    def __init__(self, client, train: RatingMatrix, n_factors: int) -> None:
        from movielens_als.core.fit import BLOCKS_PER_THREAD, row_schedule

        self.client = client
        self.threads = worker_threads(client)
        if not self.threads:
            raise ComputeError("compute: the Dask cluster has no workers")
        self.bytes_sent = 0  # factors and rows sent to workers, over the fit
        self.bytes_received = 0  # rows and per-row errors sent back
        self.half_steps = 0
        self.blocks: list[list[_Placed]] = []
        workers = list(self.threads)
        self.n_workers = len(workers)
        for name, matrix in (("user", train.by_user), ("movie", train.by_item)):
            counts = matrix.row_counts()
            placed = []
            for (start, stop), worker in zip(
                balanced_bounds(counts, len(workers)), workers, strict=True
            ):
                block = row_block(matrix, start, stop)
                schedule = (
                    row_schedule(
                        counts[start:stop], n_factors, BLOCKS_PER_THREAD * self.threads[worker]
                    )
                    if n_factors
                    else None
                )
                future = client.scatter(
                    RowBlock(name, start, stop, block, schedule), workers=[worker], hash=False
                )
                self.bytes_sent += block.indptr.nbytes + block.indices.nbytes + block.data.nbytes
                placed.append(_Placed(worker, start, stop, future))
            self.blocks.append(placed)
        self.data_bytes = self.bytes_sent  # the ratings, sent once

    def run(self, side: Side, task: RowTask) -> tuple[np.ndarray, int]:
        client = self.client
        placed = self.blocks[side.index]
        try:
            lost = sorted({b.worker for b in placed} - set(worker_threads(client)))
            if lost:
                raise ComputeError(
                    f"compute: Dask worker {lost[0]} left during the fit, and with it the block "
                    f"of {side.name}s it held; the fit stopped and nothing was written (rerun it)"
                )
            # the fixed side goes to one worker; the others fetch it from a worker that has it
            # when their block's task starts (Dask's dependency transfer). Not
            # scatter(broadcast=True): its replication loops for ever when a worker dies during
            # it (dask/distributed#5704), where a lost transfer fails the task at once
            shared = client.scatter(Arrays(task.shared), workers=[placed[0].worker], hash=False)
            futures = []
            for block in placed:
                rows = {
                    name: values[block.start : block.stop] for name, values in task.rows.items()
                }
                rows_future = client.scatter(Arrays(rows), workers=[block.worker], hash=False)
                futures.append(
                    client.submit(
                        run_block,
                        block.block,
                        shared,
                        rows_future,
                        task.function,
                        task.writes,
                        task.settings,
                        workers=[block.worker],
                        # if the worker is lost its block goes too, and the task fails at once
                        # (a strict restriction would wait for that worker for ever)
                        allow_other_workers=True,
                        pure=False,
                    )
                )
                self.bytes_sent += sum(v.nbytes for v in rows.values())
            self.bytes_sent += sum(v.nbytes for v in task.shared.values()) * len(placed)
            results = client.gather(futures)
        except (*cluster_errors(), KeyError) as exc:  # KeyError: the scheduler lost a worker
            raise ComputeError(
                f"compute: a Dask worker was lost during the {side.name} half-step "
                f"({type(exc).__name__}: {exc}); the fit stopped and nothing was written. "
                "Each worker holds its block of rows for the whole fit, so a lost worker ends "
                "it: rerun"
            ) from None
        row_sse = np.empty(side.n_rows, dtype=np.float64)
        jittered = 0
        for block, (written, block_sse, block_jittered) in zip(placed, results, strict=True):
            for name, values in written.items():
                task.rows[name][block.start : block.stop] = values
                self.bytes_received += values.nbytes
            row_sse[block.start : block.stop] = block_sse
            self.bytes_received += block_sse.nbytes
            jittered += block_jittered
        self.half_steps += 1
        return row_sse, jittered

    def release(self) -> None:
        for placed in self.blocks:
            for block in placed:
                block.block.release()
        self.blocks = []


def run_block(block: RowBlock, shared: Arrays, rows: Arrays, function, writes, settings):
    """On a worker: the row function over its block, with as many Numba threads as the worker
    has Dask threads (each worker runs one block at a time)."""
    import distributed
    import numba

    from movielens_als.core.fit import cache_aligned

    threads = distributed.get_worker().state.nthreads
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    # received arrays can be read-only views of network buffers: own aligned copies, as a
    # local fit holds them
    arrays = {name: cache_aligned(values) for name, values in shared.arrays.items()}
    own = {name: cache_aligned(values) for name, values in rows.arrays.items()}
    row_sse, jittered = function(block.matrix, block.schedule, block.start, own, arrays, **settings)
    return {name: own[name] for name in writes}, row_sse, jittered
