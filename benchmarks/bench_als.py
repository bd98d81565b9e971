"""Seconds per ALS iteration at ML-32M shape, side by side in one run: this project's solvers,
LensKit's BiasedMF and the notebook's kernel design, on the same data and threads.

    pip install -e .[bench]                                    # LensKit: benchmark-only
    .venv/bin/python benchmarks/bench_als.py                   # ML-32M shape, K = 32 and 64
    .venv/bin/python benchmarks/bench_als.py --preset small --K 32 --iterations 5   # quick

Data: the synthetic generator's ``ml-32m`` preset (200,948 users × 84,432 movies, 32.0M
ratings drawn from a planted low-rank model, so test RMSE means something), split 90/10 at
random (seeded): 28.8M train ratings. Every implementation trains ``--iterations`` sweeps
(every user's row, then every movie's) from its own random start:

* ``cholesky`` / ``cd``: ``movielens_als.core.fit`` with the study's ``als`` settings
  (conf/model/als.yaml: K, λ = 1, τ = 0.15 per rating, γ = 1) and ``solver`` set; seconds are
  the fit's own per-sweep times (the train SSE included, the test RMSE excluded).
* ``lenskit``: ``lenskit.als.BiasedMFScorer`` (Rust kernels, K×K Cholesky per row, biases
  fitted once beforehand), seconds per ``train_epoch()``; its regularisation is LensKit's
  default (0.1 per rating). Skipped with a note when LensKit is not installed.
* ``notebook``: the notebook's kernel design (``notebook_als_baseline.py``) at K = 32 only,
  timed on ``--notebook-repeats`` iterations (it is slow).

The table reports medians over the iterations, the ratios (baseline / ours), and each test
RMSE after the last iteration. Above it: the CPU, the BLAS NumPy and Numba call (the
cholesky solver's Gram products go through it; the cd solver calls no BLAS), and the
thread count. Absolute seconds differ between machines; the ratios are the claim.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numba
import numpy as np
from threadpoolctl import threadpool_info

from movielens_als.config import compose
from movielens_als.core import fit, model_params
from movielens_als.core.fit import single_threaded_blas
from movielens_als.data.synthetic import SyntheticSpec, generate
from movielens_als.sparse import RatingMatrix, Ratings
from notebook_als_baseline import notebook_half_step


def machine_facts() -> list[str]:
    """CPU model and SIMD flags, the BLAS libraries loaded, the thread settings."""
    model, flags = platform.processor() or "?", set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    simd = [f for f in ("avx2", "fma", "avx512f") if f in flags]
    lines = [f"CPU: {model}, {os.cpu_count()} logical cores, SIMD {'/'.join(simd) or 'none'}"]
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            owner = os.path.basename(os.path.dirname(lib.get("filepath", "")))  # numpy.libs, …
            lines.append(
                f"BLAS ({owner}): {lib.get('internal_api')} {lib.get('version')} "
                f"({lib.get('architecture', '?')}, {lib.get('num_threads')} threads by default; "
                f"pinned to 1 per Numba thread inside the kernels)"
            )
    lines.append(
        f"Numba {numba.__version__}: {numba.get_num_threads()} threads "
        f"({numba.config.THREADING_LAYER} layer); NumPy {np.__version__}"
    )
    lines.append(
        "paths: cholesky = gather (prefetched) + sgemm per ≤ 453-rating chunk through SciPy's "
        "BLAS + Numba Cholesky; cd = gather (prefetched, 8 × 8 vector transposes) + Numba "
        "coordinate loops, no BLAS call"
    )
    return lines


def synthetic_split(preset: str, seed: int) -> tuple[RatingMatrix, Ratings, object]:
    """The preset's ratings as indices, 90 % train / 10 % test at random."""
    ratings, _ = generate(SyntheticSpec.preset(preset, seed=seed))
    users, user_index = np.unique(ratings["userId"].to_numpy(), return_inverse=True)
    items, item_index = np.unique(ratings["movieId"].to_numpy(), return_inverse=True)
    values = ratings["rating"].to_numpy(np.float32)
    is_train = np.random.default_rng(seed).random(len(values)) < 0.9
    every = Ratings.from_arrays(user_index, item_index, values)
    train = RatingMatrix.from_ratings(every.subset(is_train), len(users), len(items))
    return train, every.subset(~is_train), (ratings, is_train)


def als_params(n_factors: int, iterations: int, solver: str):
    values = dict(compose("train", ["model=als"]).model)
    values.update(K=n_factors, iterations=iterations, solver=solver)
    return model_params(values)


def bench_ours(train, test, n_factors, iterations, solver) -> dict[str, float]:
    result = fit(train, als_params(n_factors, iterations, solver), evals={"test": test})
    seconds = [record.seconds for record in result.history]
    return {
        "seconds": statistics.median(seconds),
        "rmse": result.history[-1].eval_rmse["test"],
    }


def bench_lenskit(raw, n_factors, iterations, seed) -> dict[str, float] | str:
    try:
        import pandas as pd
        from lenskit.als import BiasedMFScorer
        from lenskit.data import from_interactions_df
        from lenskit.training import TrainingOptions
    except ImportError as error:
        return f"not installed ({error}); pip install -e .[bench]"
    ratings, is_train = raw
    frame = pd.DataFrame(
        {
            "user_id": ratings["userId"].to_numpy(),
            "item_id": ratings["movieId"].to_numpy(),
            "rating": ratings["rating"].to_numpy(np.float32),
        }
    )
    train_frame, test_frame = frame[is_train], frame[~is_train]
    data = from_interactions_df(train_frame)
    scorer = BiasedMFScorer(embedding_size=n_factors, epochs=iterations)
    trainer = scorer.create_trainer(data, TrainingOptions(rng=seed))
    seconds = []
    for _ in range(iterations):
        start = time.perf_counter()
        trainer.train_epoch()
        seconds.append(time.perf_counter() - start)
    trainer.finalize()
    # r̂ = global + user bias + item bias + pᵀq for test pairs whose user and item are known
    user_num = data.users.numbers(test_frame["user_id"].to_numpy(), missing="negative")
    item_num = data.items.numbers(test_frame["item_id"].to_numpy(), missing="negative")
    known = (user_num >= 0) & (item_num >= 0)
    bias = scorer.bias
    predicted = (
        bias.global_bias
        + (bias.user_biases[user_num[known]] if bias.user_biases is not None else 0.0)
        + (bias.item_biases[item_num[known]] if bias.item_biases is not None else 0.0)
        + np.einsum(
            "ij,ij->i",
            scorer.user_embeddings[user_num[known]],
            scorer.item_embeddings[item_num[known]],
        )
    )
    truth = test_frame["rating"].to_numpy(np.float64)[known]
    return {
        "seconds": statistics.median(seconds),
        "rmse": float(np.sqrt(np.mean((predicted - truth) ** 2))),
    }


def bench_notebook(train: RatingMatrix, n_factors: int, repeats: int, seed: int) -> float:
    by_user, by_item = train.by_user, train.by_item
    rng = np.random.default_rng(seed)
    mu = float(np.mean(by_user.data, dtype=np.float64))
    user_bias = np.zeros(by_user.n_rows)
    item_bias = np.zeros(by_item.n_rows)
    user_factors = rng.standard_normal((by_user.n_rows, n_factors)) / np.sqrt(n_factors)
    item_factors = rng.standard_normal((by_item.n_rows, n_factors)) / np.sqrt(n_factors)
    user_data = by_user.data.astype(np.float64)
    item_data = by_item.data.astype(np.float64)

    def iteration() -> None:
        for rows, data, ob, of, b, f in (
            (by_user, user_data, item_bias, item_factors, user_bias, user_factors),
            (by_item, item_data, user_bias, user_factors, item_bias, item_factors),
        ):
            notebook_half_step(rows.indptr, rows.indices, data, mu, ob, of, b, f, 1.0, 0.15, 1.0)

    iteration()  # compile
    times = []
    with single_threaded_blas():
        for _ in range(repeats):
            start = time.perf_counter()
            iteration()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="ml-32m", help="synthetic preset (small, ml-32m)")
    parser.add_argument("--K", type=int, nargs="+", default=[32, 64], help="factor counts")
    parser.add_argument("--iterations", type=int, default=10, help="sweeps per fit")
    parser.add_argument("--notebook-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="Numba threads (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], help="any of: lenskit notebook")
    args = parser.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)
        os.environ["LK_NUM_THREADS"] = str(args.threads)

    for line in machine_facts():
        print(line)
    start = time.perf_counter()
    train, test, raw = synthetic_split(args.preset, args.seed)
    print(
        f"data: synthetic {args.preset}, {train.n_users:,} users × {train.n_items:,} movies, "
        f"{train.nnz:,} train / {len(test):,} test ratings (prepared in "
        f"{time.perf_counter() - start:.0f} s); {args.iterations} iterations per fit"
    )
    tiny_train, tiny_test, _ = synthetic_split("tiny", 0)
    for solver in ("cholesky", "cd"):  # compile or load the kernels before any clock starts
        fit(tiny_train, als_params(2, 1, solver), evals={"test": tiny_test})

    print()
    print("| K | implementation | s / iteration (median) | ours (cd) is × faster | test RMSE |")
    print("|---|---|---|---|---|")
    for n_factors in args.K:
        rows = {}
        for solver in ("cholesky", "cd"):
            rows[solver] = bench_ours(train, test, n_factors, args.iterations, solver)
        if "lenskit" not in args.skip:
            rows["lenskit"] = bench_lenskit(raw, n_factors, args.iterations, args.seed)
        if "notebook" not in args.skip and n_factors == 32:
            rows["notebook"] = {
                "seconds": bench_notebook(train, n_factors, args.notebook_repeats, args.seed),
                "rmse": float("nan"),
            }
        fastest = rows["cd"]["seconds"]
        for name, row in rows.items():
            if isinstance(row, str):
                print(f"| {n_factors} | {name} | {row} | | |")
                continue
            rmse = "—" if np.isnan(row["rmse"]) else f"{row['rmse']:.4f}"
            print(
                f"| {n_factors} | {name} | {row['seconds']:.3f} | "
                f"×{row['seconds'] / fastest:.2f} | {rmse} |",
                flush=True,
            )
        print(
            f"| {n_factors} | cd − cholesky test RMSE | | | "
            f"{rows['cd']['rmse'] - rows['cholesky']['rmse']:+.5f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
