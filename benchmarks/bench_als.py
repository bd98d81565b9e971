"""Seconds per full ALS iteration at ML-32M shape: the core's kernels vs the notebook design.

    .venv/bin/python benchmarks/bench_als.py                       # 28.8M ratings, K = 32
    .venv/bin/python benchmarks/bench_als.py --ratings 20000000 --K 32 64 128 --repeats 5
    .venv/bin/python benchmarks/bench_als.py --ratings 2000000 --repeats 2   # quick

A random power-law rating matrix is generated with NumPy (200,948 users with ≥ 20 ratings
and a heavy tail; 84,432 movies with Zipf-like popularity, randomly permuted; duplicates
removed). One iteration = every user's (b, u) then every movie's (c, v), biases included
(the core also computes the exact train SSE in the movie pass). The baseline reproduces the
notebook's kernel design (notebook_als_baseline.py) and is timed in the same run; the printed
ratio is baseline median / core median. Gram GFLOP/s counts the upper triangle of the
(K+2)×(K+2) augmented Gram matrix ([1, v, y]) per rating and side: n·(K+2)(K+3) flops,
timed on a gather + Gram-only pass of the same kernels.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np
from numba import njit, prange

from movielens_als.core import kernels
from movielens_als.core.als import update_rows
from movielens_als.core.fit import cache_aligned, row_schedule, single_threaded_blas
from movielens_als.sparse import CSR
from notebook_als_baseline import notebook_half_step

ML32M_USERS = 200_948
ML32M_ITEMS = 84_432


def power_law_ratings(n_users: int, n_items: int, n_ratings: int, seed: int) -> tuple[CSR, CSR]:
    """A user-major and a movie-major CSR of about ``n_ratings`` distinct random ratings."""
    rng = np.random.default_rng(seed)
    activity = 20.0 * (1.0 + rng.pareto(1.2, n_users))  # every user ≥ 20, heavy tail
    popularity = (np.arange(n_items) + 30.0) ** -1.0  # Zipf-like, top movie ≈ 0.4 %
    cdf = np.cumsum(rng.permutation(popularity))
    cdf /= cdf[-1]
    wanted = n_ratings
    for _ in range(3):  # duplicates are dropped, so top up towards the requested count
        counts = np.clip(np.round(activity * (wanted / activity.sum())), 1, n_items // 4)
        users = np.repeat(np.arange(n_users, dtype=np.int64), counts.astype(np.int64))
        items = np.minimum(np.searchsorted(cdf, rng.random(len(users))), n_items - 1)
        keys = users * n_items + items
        keys.sort()
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
        if len(keys) >= 0.99 * n_ratings:
            break
        wanted = int(wanted * n_ratings / len(keys))
    users, items = keys // n_items, keys % n_items
    ratings = rng.integers(1, 11, size=len(keys)).astype(np.float32) / 2.0
    user_major = CSR.from_coo(users, items, ratings, n_users, n_items)
    return user_major, user_major.transpose()


@njit(cache=True, parallel=True)
def gather_and_gram(indptr, indices, data, offset, other_bias, other_factors, row_order, block_ptr):
    """The core's gather + Gram build alone (no solve), for the GFLOP/s figure."""
    n_factors = other_factors.shape[1]
    chunk_size = kernels.gram_chunk(n_factors)
    checksum = np.zeros(len(block_ptr) - 1)
    for block in prange(len(block_ptr) - 1):
        first, last = block_ptr[block], block_ptr[block + 1]
        capacity = 0
        for pos in range(first, last):
            row = row_order[pos]
            capacity = max(capacity, indptr[row + 1] - indptr[row])
        design, gram, _, _, _, _ = kernels.new_row_scratch(n_factors, capacity)
        for pos in range(first, last):
            row = row_order[pos]
            lo, hi = indptr[row], indptr[row + 1]
            for start in range(0, hi - lo, chunk_size):
                stop = min(start + chunk_size, hi - lo)
                for t in range(start, stop):
                    col = indices[lo + t]
                    z = design[t]
                    z[0] = np.float32(1.0)
                    for k in range(n_factors):
                        z[1 + k] = other_factors[col, k]
                    z[n_factors + 1] = np.float32(data[lo + t] - offset - other_bias[col])
                chunk = design[start:stop]
                np.dot(chunk.T, chunk, gram)
                checksum[block] += gram[0, n_factors + 1]
    return checksum.sum()


def time_runs(run, repeats: int) -> tuple[float, float]:
    """Median and minimum wall time of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def bench_core(
    by_user: CSR, by_item: CSR, n_factors: int, repeats: int, seed: int
) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    mu = float(np.mean(by_user.data, dtype=np.float64))
    user_bias = np.zeros(by_user.n_rows, dtype=np.float32)
    item_bias = np.zeros(by_item.n_rows, dtype=np.float32)
    # aligned like fit.init_factors allocates them
    user_factors = cache_aligned(
        (rng.standard_normal((by_user.n_rows, n_factors)) / np.sqrt(n_factors)).astype(np.float32)
    )
    item_factors = cache_aligned(
        (rng.standard_normal((by_item.n_rows, n_factors)) / np.sqrt(n_factors)).astype(np.float32)
    )
    user_schedule = row_schedule(by_user.row_counts(), n_factors)
    item_schedule = row_schedule(by_item.row_counts(), n_factors)
    regs = {"lam": 1.0, "tau": 0.05, "gamma": 1.0, "count_scaled": True}

    def iteration() -> None:
        update_rows(
            by_user,
            mu,
            item_bias,
            item_factors,
            user_bias,
            user_factors,
            schedule=user_schedule,
            **regs,
        )
        update_rows(
            by_item,
            mu,
            user_bias,
            user_factors,
            item_bias,
            item_factors,
            schedule=item_schedule,
            compute_sse=True,
            **regs,
        )

    def gram_only() -> None:
        with single_threaded_blas():
            gather_and_gram(
                by_user.indptr,
                by_user.indices,
                by_user.data,
                mu,
                item_bias,
                item_factors,
                user_schedule.order,
                user_schedule.block_ptr,
            )
            gather_and_gram(
                by_item.indptr,
                by_item.indices,
                by_item.data,
                mu,
                user_bias,
                user_factors,
                item_schedule.order,
                item_schedule.block_ptr,
            )

    iteration()  # compile / warm caches
    gram_only()
    dim = n_factors + 2
    gram_flops = 2 * by_user.nnz * dim * (dim + 1)  # upper triangle, both sides
    iteration_s, iteration_min = time_runs(iteration, repeats)
    gram_s, _ = time_runs(gram_only, repeats)
    return {
        "iteration_s": iteration_s,
        "iteration_min": iteration_min,
        "gram_s": gram_s,
        "gram_gflops": gram_flops / gram_s / 1e9,
    }


def bench_notebook(
    by_user: CSR, by_item: CSR, n_factors: int, repeats: int, seed: int
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    mu = float(np.mean(by_user.data, dtype=np.float64))
    user_bias = np.zeros(by_user.n_rows)
    item_bias = np.zeros(by_item.n_rows)
    user_factors = rng.standard_normal((by_user.n_rows, n_factors)) / np.sqrt(n_factors)
    item_factors = rng.standard_normal((by_item.n_rows, n_factors)) / np.sqrt(n_factors)
    user_data = by_user.data.astype(np.float64)
    item_data = by_item.data.astype(np.float64)

    def iteration() -> None:
        notebook_half_step(
            by_user.indptr,
            by_user.indices,
            user_data,
            mu,
            item_bias,
            item_factors,
            user_bias,
            user_factors,
            1.0,
            0.05,
            1.0,
        )
        notebook_half_step(
            by_item.indptr,
            by_item.indices,
            item_data,
            mu,
            user_bias,
            user_factors,
            item_bias,
            item_factors,
            1.0,
            0.05,
            1.0,
        )

    iteration()
    return time_runs(iteration, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=28_800_000, help="train ratings to generate")
    parser.add_argument("--users", type=int, default=ML32M_USERS)
    parser.add_argument("--items", type=int, default=ML32M_ITEMS)
    parser.add_argument("--K", type=int, nargs="+", default=[32], help="factor counts to time")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed iterations per measurement (median)"
    )
    parser.add_argument(
        "--baseline-K",
        type=int,
        nargs="*",
        default=None,
        help="K values to time the notebook baseline at (default: 32 if requested)",
    )
    parser.add_argument("--threads", type=int, default=None, help="Numba threads (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)
    baseline_ks = args.baseline_K if args.baseline_K is not None else [k for k in args.K if k == 32]

    start = time.perf_counter()
    by_user, by_item = power_law_ratings(args.users, args.items, args.ratings, args.seed)
    counts = by_item.row_counts()
    print(
        f"data: {by_user.n_rows:,} users × {by_item.n_rows:,} movies, {by_user.nnz:,} ratings "
        f"(max per user {by_user.row_counts().max():,}, per movie {counts.max():,}); "
        f"generated in {time.perf_counter() - start:.1f} s; Numba threads {numba.get_num_threads()}, "
        f"layer {numba.threading_layer() if False else numba.config.THREADING_LAYER}, repeats {args.repeats}"
    )
    for n_factors in args.K:
        core = bench_core(by_user, by_item, n_factors, args.repeats, args.seed)
        line = (
            f"K={n_factors:4d}  core median {core['iteration_s']:7.3f} s/iteration "
            f"(min {core['iteration_min']:.3f})  gather+Gram {core['gram_s']:.3f} s "
            f"= {core['gram_gflops']:.1f} GFLOP/s"
        )
        if n_factors in baseline_ks:
            notebook, notebook_min = bench_notebook(
                by_user, by_item, n_factors, args.repeats, args.seed
            )
            line += (
                f"  | notebook design median {notebook:7.3f} s (min {notebook_min:.3f})"
                f"  speed-up ×{notebook / core['iteration_s']:.1f}"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()
