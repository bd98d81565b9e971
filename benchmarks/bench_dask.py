"""compute=dask against compute=local, in one run on this machine: a single fit's seconds per
iteration, the bytes it sends and the workers' peak memory, and a sweep's trials per minute.

    .venv/bin/python benchmarks/bench_dask.py                        # both parts
    .venv/bin/python benchmarks/bench_dask.py --skip sweep --iterations 3

Part 1, a single fit at ML-32M shape (the synthetic ``ml-32m`` preset split 90/10 at random,
28.8M train ratings, ``conf/model/als.yaml`` at ``--K``, ``solver: auto`` = cd): the same fit
locally (all Numba threads in this process), on ``LocalCluster(2 workers × 1 thread)`` and on
``LocalCluster(1 × 2)``. Reported: the median seconds per iteration and its ratio to local,
whether the factors are bit-identical to the local fit's, the ratings sent once per fit,
the factor bytes sent and received per iteration (``DaskRows`` counts them from the arrays
it ships), and each worker's peak RSS.

Part 2, a sweep: the pipeline's own sweep stage (``run_sweep``, the ``notebook`` space, 50
trials, successive-halving pruning) on ml-latest-small from the mirror
(``MOVIELENS_MIRROR`` or ../shared/datasets), once locally and once with
``compute=dask`` on ``LocalCluster(2 × 1)``, each in a fresh folder. Reported: wall time, trials
per minute and their ratio, pruned trials, and the best validation RMSE of each.

On 2 cores a distributed fit cannot be faster than a local one; the claims are the overhead
ratio and the trial throughput ratio, printed with the machine's facts.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_als import als_params, machine_facts, synthetic_split
from movielens_als.compute import open_compute
from movielens_als.core.fit import fit

CLUSTERS = {"2 workers × 1 thread": (2, 1), "1 worker × 2 threads": (1, 2)}


def peak_rss_mib() -> float:
    """This process's peak resident memory, VmHWM (run on each worker through ``client.run``;
    ``getrusage``'s maxrss would report the driver's, inherited across the fork and exec that
    start a worker)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def single_fit(preset: str, n_factors: int, iterations: int, seed: int) -> list[str]:
    started = time.perf_counter()
    train, _, _ = synthetic_split(preset, seed)
    print(f"data: {preset}, {train.nnz:,} train ratings ({time.perf_counter() - started:.0f} s)")
    params = als_params(n_factors, iterations, "auto")
    local = fit(train, params)
    local_seconds = statistics.median(r.seconds for r in local.history)
    rows = [
        "| run | s / iteration | × local | bit-identical | ratings sent once | "
        "factors sent / iteration | received / iteration | peak RSS per worker |",
        "|---|---|---|---|---|---|---|---|",
        f"| local (K={params.K}, {local.model.params.solver}) | {local_seconds:.3f} | 1.00 | — | — | — | — | — |",
    ]
    for label, (n_workers, threads) in CLUSTERS.items():
        spec = {
            "name": "dask",
            "address": None,
            "connect_timeout": 60,
            "local_cluster": {"n_workers": n_workers, "threads_per_worker": threads},
        }
        with open_compute(spec) as compute:
            fit(train, params.with_iterations(1), executor=compute.executor)  # compile on workers
            result = fit(train, params, executor=compute.executor)
            runner = compute.executor.last
            peaks = compute.client.run(peak_rss_mib)
        seconds = statistics.median(r.seconds for r in result.history)
        same = all(
            np.array_equal(getattr(local.model, name), getattr(result.model, name))
            for name in ("user_bias", "item_bias", "user_factors", "item_factors")
        )
        per_iteration_sent = (runner.bytes_sent - runner.data_bytes) / iterations
        per_iteration_received = runner.bytes_received / iterations
        rows.append(
            f"| {label} | {seconds:.3f} | {seconds / local_seconds:.2f} | {same} | "
            f"{runner.data_bytes / 2**20:,.0f} MiB | {per_iteration_sent / 2**20:,.1f} MiB | "
            f"{per_iteration_received / 2**20:,.1f} MiB | "
            f"{', '.join(f'{p:,.0f} MiB' for p in sorted(peaks.values()))} |"
        )
        print(rows[-1], flush=True)
    threads = os.cpu_count() or 1
    seconds_per_rating = local_seconds * threads / (2 * train.nnz)
    rows += [
        "",
        f"one thread, one rating, one half-step: {seconds_per_rating * 1e9:.1f} ns at "
        f"K={params.K}; driver peak RSS {peak_rss_mib():,.0f} MiB",
        "",
        *simulate(seconds_per_rating, params.K),
    ]
    return rows


# The problem docs/scaling.md plans for, and the hardware it assumes.
PLAN = {"ratings": 1_000_000_000, "users": 10_000_000, "movies": 1_000_000, "K": 64}
THREADS_PER_WORKER = 8
NETWORK_BYTES_PER_S = 1.25e9  # 10 Gbit/s per machine, each way


def simulate(seconds_per_rating: float, measured_K: int, workers=(8, 32, 128)) -> list[str]:
    """Seconds per iteration of the ``PLAN`` problem, from the local fit's measured cost.

    ``seconds_per_rating`` is one thread's time per rating per half-step at ``measured_K``;
    the gather and the coordinate loops are linear in K, so it scales by K / measured_K. Two
    designs, each link at ``NETWORK_BYTES_PER_S``:

    (a) this project's: per half-step the driver sends the fixed side once, the workers fetch
        it from each other in ⌈log₂ W⌉ rounds at best (holders doubling), and the driver gathers
        every updated row;
    (b) block-to-block shipping as in Spark MLlib: each worker sends each other block only the
        rows it needs, all links at once, and nothing passes the driver. With ratings spread at
        random a block of movies needs the rows of 1 − (1 − 1/W)^(ratings per user) of all users.
    """
    p = PLAN
    row_bytes = (p["K"] + 1) * 4
    cost = seconds_per_rating * p["K"] / measured_K
    rows = [
        f"| workers (× {THREADS_PER_WORKER} threads) | compute s | (a) network s | "
        "(a) iteration s | (b) network s | (b) iteration s | ratings / worker | "
        "(a) factors / worker |",
        "|---|---|---|---|---|---|---|---|",
    ]
    user_bytes, movie_bytes = p["users"] * row_bytes, p["movies"] * row_bytes
    per_user, per_movie = p["ratings"] / p["users"], p["ratings"] / p["movies"]
    for w in workers:
        compute = 2 * p["ratings"] * cost / (w * THREADS_PER_WORKER)
        rounds = 1 + math.ceil(math.log2(w))
        broadcast = (rounds * (user_bytes + movie_bytes) + user_bytes + movie_bytes) / (
            NETWORK_BYTES_PER_S
        )
        # (b): a movie block receives its share of user rows, a user block its movie rows
        needed = user_bytes * (1 - (1 - 1 / w) ** per_user) + movie_bytes * (
            1 - (1 - 1 / w) ** per_movie
        )
        block = needed / NETWORK_BYTES_PER_S
        ratings_memory = p["ratings"] * 16 / w / 2**30  # both layouts, int32 index + float32
        factors_memory = (user_bytes + movie_bytes) / 2**30  # (a): the whole fixed side arrives
        rows.append(
            f"| {w} | {compute:.2f} | {broadcast:.1f} | {compute + broadcast:.1f} | "
            f"{block:.2f} | {compute + block:.2f} | {ratings_memory:.2f} GiB | "
            f"{factors_memory:.2f} GiB |"
        )
    return rows


def sweep(n_trials: int) -> list[str]:
    from movielens_als.config import compose
    from movielens_als.pipeline.data import run_download, run_index, run_split
    from movielens_als.pipeline.sweep import run_sweep

    mirror = os.environ.get("MOVIELENS_MIRROR") or str(
        Path(__file__).resolve().parents[2] / "shared/datasets"
    )
    os.environ["MOVIELENS_MIRROR"] = mirror
    rows = [
        "| sweep (ml-latest-small, notebook space) | wall s | trials / min | × local | pruned | best val RMSE |",
        "|---|---|---|---|---|---|",
    ]
    local_rate = None
    for label, extra in (
        ("local", []),
        ("LocalCluster 2 × 1", ["compute=dask", "compute.connect_timeout=60"]),
    ):
        with tempfile.TemporaryDirectory(prefix="bench-dask-") as folder:
            root = Path(folder)
            os.environ.pop("MLFLOW_TRACKING_URI", None)  # a stage run leaves its store here
            overrides = [
                f"paths.data={root / 'data'}",
                f"paths.results={root / 'data'}",
                f"paths.reports={root / 'reports'}",
                f"tracking.uri=sqlite:///{root / 'mlflow.db'}",
                f"tracking.artifact_root={root / 'mlartifacts'}",
            ]
            run_download(compose("download", overrides))
            run_index(compose("index", overrides))
            run_split(compose("split", overrides))
            started = time.perf_counter()
            metrics = run_sweep(
                compose("sweep", [*overrides, *extra, f"tuning.n_trials={n_trials}"])
            )
            wall = time.perf_counter() - started
        rate = metrics["n_trials"] / wall * 60
        local_rate = local_rate or rate
        rows.append(
            f"| {label} | {wall:.1f} | {rate:.1f} | {rate / local_rate:.2f} | "
            f"{metrics['n_pruned']} | {metrics['val_rmse']:.4f} |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="ml-32m")
    parser.add_argument("--K", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], help="any of: fit sweep")
    args = parser.parse_args()
    for line in machine_facts():
        print(line)
    tables = []
    if "fit" not in args.skip:
        tables.append(single_fit(args.preset, args.K, args.iterations, args.seed))
    if "sweep" not in args.skip:
        tables.append(sweep(args.trials))
    print()
    for table in tables:
        print("\n".join(table), end="\n\n")


if __name__ == "__main__":
    main()
