"""Where the stages' fits run: the ``compute`` config group.

``compute: local`` (the default) runs every fit in this process and never imports Dask.
``compute: dask`` connects to a Dask scheduler (``address``) or starts a ``LocalCluster``
(``local_cluster``) for the run; then a single fit's half-steps run on row blocks the workers
hold (``compute.dask_rows``, bit-identical to a local fit), and independent fits (sweep
trials, the K grid's Ks) run concurrently, one per worker (``Compute.map_unordered``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from movielens_als.core.rows import LOCAL, RowExecutor
from movielens_als.errors import ComputeError, ConfigError

log = logging.getLogger(__name__)

COMPUTE_KINDS = ("local", "dask")
ADDRESS_SCHEMES = ("tcp://", "tls://", "inproc://", "ucx://")


def check_settings(compute: Mapping[str, Any]) -> None:
    """The ``compute`` section's rules (the one owner); ConfigError naming the key."""
    kind = compute.get("name")
    if kind not in COMPUTE_KINDS:
        raise ConfigError(f"compute.name: must be one of {', '.join(COMPUTE_KINDS)}; got {kind!r}")
    if kind == "local":
        return
    address = compute.get("address")
    if address is not None and (
        not isinstance(address, str) or not address.startswith(ADDRESS_SCHEMES)
    ):
        raise ConfigError(
            f"compute.address: must be a scheduler address such as tcp://127.0.0.1:8786, "
            f"or null to start compute.local_cluster; got {address!r}"
        )
    timeout = compute.get("connect_timeout")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigError(
            f"compute.connect_timeout: must be a number of seconds > 0, got {timeout!r}"
        )
    cluster = compute.get("local_cluster")
    if address is None:
        if not isinstance(cluster, Mapping):
            raise ConfigError("compute.local_cluster: missing (n_workers, threads_per_worker)")
        for key in ("n_workers", "threads_per_worker"):
            value = cluster.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"compute.local_cluster.{key}: must be an integer ≥ 1, got {value!r}"
                )


@dataclass
class Compute:
    """What ``open_compute`` opened: where half-steps of a single fit run (``executor``) and
    where independent fits run (``map_unordered``)."""

    kind: str
    executor: RowExecutor
    client: Any = None  # distributed.Client under compute=dask

    @property
    def n_slots(self) -> int:
        """How many independent fits run at once: one per Dask worker, 1 locally."""
        if self.client is None:
            return 1
        from movielens_als.compute.dask_rows import worker_threads

        return max(1, len(worker_threads(self.client)))

    def map_unordered(
        self, function: Callable[..., Any], jobs: Iterable[Any], **shared: Any
    ) -> Iterator[tuple[Any, Any]]:
        """(job, function(job, **shared)) for every job, as they finish; locally in order."""
        if self.client is None:
            for job in jobs:
                yield job, function(job, **shared)
            return
        from movielens_als.compute.dask_jobs import map_on_workers

        yield from map_on_workers(self.client, function, jobs, shared)


LOCAL_COMPUTE = Compute("local", LOCAL)


@contextlib.contextmanager
def open_compute(compute: Mapping[str, Any] | None) -> Iterator[Compute]:
    """The compute a stage's ``compute`` section names (None: local)."""
    if compute is None or compute.get("name", "local") == "local":
        yield LOCAL_COMPUTE
        return
    check_settings(compute)
    from movielens_als.compute.dask_rows import DaskExecutor, connect

    with connect(
        compute.get("address"), compute.get("local_cluster"), float(compute["connect_timeout"])
    ) as client:
        yield Compute("dask", DaskExecutor(client), client)


__all__ = [
    "COMPUTE_KINDS",
    "LOCAL_COMPUTE",
    "Compute",
    "ComputeError",
    "check_settings",
    "open_compute",
]
