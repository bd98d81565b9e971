"""Bayesian ALS (Gibbs) beside myFM on ml-latest-small, and the cost of one Gibbs sample
against one ALS iteration at ML-32M shape — both measured in the same run.

    .venv/bin/pip install -e '.[bench]'                      # myFM (benchmark-only extra)
    .venv/bin/python benchmarks/bench_bayes.py               # accuracy on the notebook split + speed
    .venv/bin/python benchmarks/bench_bayes.py --skip-speed  # accuracy only
    .venv/bin/python benchmarks/bench_bayes.py --ratings 2000000 --skip-accuracy  # quick speed check

Accuracy: the shipped ``bayes_als`` and ``bayes_genre_als`` configs (hyper-parameters chosen on
the validation carve-out of train, see conf/model/) and the shipped ALS models, against myFM's
Bayesian FM (rank 32, 300 samples, one-hot user and movie, and for the genre row the movie's
genres as extra features, no tuning), all on the notebook's split of the real archive
(``$MOVIELENS_MIRROR`` or ../shared/datasets). Printed: test RMSE of the posterior mean, wall
seconds, seconds per sample. Speed: one ALS iteration (exact Cholesky) and one Gibbs sample on
the same random power-law matrix of ML-32M shape (benchmarks/bench_als.py's generator), K = 32,
both through the one generic loop ``core.fit.fit``; the median of ``--repeats`` sweeps each,
and the ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np
from threadpoolctl import threadpool_info

from movielens_als.core import fit, model_params
from movielens_als.sparse import RatingMatrix

REPO = Path(__file__).resolve().parents[1]


def machine_facts() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = ", ".join(
        f"{i.get('internal_api')} {i.get('version')} ({i.get('threading_layer')}, "
        f"{i.get('architecture')}, {i.get('num_threads')} threads)"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    )
    return f"CPU: {cpu}; {os.cpu_count()} cores; Numba threads {numba.get_num_threads()}; BLAS: {blas or 'none'}"


def shipped(name: str, **overrides):
    from movielens_als.config import compose

    return model_params({**compose("train", [f"model={name}"]).model, **overrides})


def real_split():
    import tempfile

    from movielens_als.data.download import fetch_release
    from movielens_als.data.index import build_index
    from movielens_als.data.parse import read_movies, read_ratings
    from movielens_als.data.registry import get_release
    from movielens_als.data.split import split_ratings

    mirror = Path(os.environ.get("MOVIELENS_MIRROR", REPO.parent / "shared" / "datasets"))
    release = get_release("ml-latest-small")
    with tempfile.TemporaryDirectory() as raw:
        folder = fetch_release(release.name, raw, mirror=mirror, progress=False)
        data, _ = build_index(read_ratings(release, folder), read_movies(release, folder), release)
    split, _ = split_ratings(data, method="random", train_fraction=0.9, seed=42)
    return data, split


def ours(name: str, data, split) -> tuple[float, float, int]:
    params = shipped(name)
    test = split.test.to_ratings()
    started = time.perf_counter()
    result = fit(split.train, params, movie_genres=data.movie_genres, evals={"test": test})
    return result.history[-1].eval_rmse["test"], time.perf_counter() - started, params.n_iterations


def myfm_rmse(
    data, split, *, genres: bool, rank: int = 32, samples: int = 300
) -> tuple[float, float]:
    import myfm
    import scipy.sparse as sp

    def features(ratings):
        n = len(ratings)
        rows = np.arange(n)
        user = sp.csr_matrix((np.ones(n), (rows, ratings.user)), shape=(n, split.train.n_users))
        item = sp.csr_matrix((np.ones(n), (rows, ratings.item)), shape=(n, split.train.n_items))
        blocks = [user, item]
        if genres:
            g = data.movie_genres
            dense = sp.csr_matrix(
                (g.data.astype(np.float64), g.indices, g.indptr), shape=(g.n_rows, g.n_cols)
            )
            counts = np.maximum(np.diff(g.indptr), 1)
            # each movie's genres averaged (A_n, as in our genre prior)
            blocks.append(
                sp.csr_matrix(dense[ratings.item].multiply(1.0 / counts[ratings.item][:, None]))
            )
        return sp.hstack(blocks).tocsr()

    train, test = split.train.to_ratings(), split.test.to_ratings()
    started = time.perf_counter()
    model = myfm.MyFMRegressor(rank=rank, random_seed=42)
    model.fit(
        features(train),
        train.rating.astype(np.float64),
        n_iter=samples,
        n_kept_samples=samples - 25,
        callback=lambda *_: False,
    )  # a callback instead of its progress bar
    prediction = model.predict(features(test))
    seconds = time.perf_counter() - started
    return float(np.sqrt(np.mean((prediction - test.rating) ** 2))), seconds


def accuracy() -> None:
    data, split = real_split()
    print(
        f"ml-latest-small, notebook split: {split.train.nnz:,} train / {split.test.nnz:,} test ratings"
    )
    print(f"{'model':<34} {'test RMSE':>9} {'seconds':>8} {'s/sweep':>8}")
    for name in ("als", "genre_als", "bayes_als", "bayes_genre_als"):
        value, seconds, sweeps = ours(name, data, split)
        print(
            f"{'movielens-als ' + name:<34} {value:9.4f} {seconds:8.1f} {seconds / sweeps:8.3f}",
            flush=True,
        )
    try:
        import myfm  # noqa: F401
    except ImportError:
        print("myFM not installed (pip install -e '.[bench]'): baseline skipped")
        return
    for genres in (False, True):
        value, seconds = myfm_rmse(data, split, genres=genres)
        label = "myFM rank 32, 300 samples" + (" + genres" if genres else "")
        print(f"{label:<34} {value:9.4f} {seconds:8.1f} {seconds / 300:8.3f}", flush=True)


def speed(n_ratings: int, repeats: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_als import ML32M_ITEMS, ML32M_USERS, power_law_ratings

    by_user, by_item = power_law_ratings(ML32M_USERS, ML32M_ITEMS, n_ratings, seed=0)
    train = RatingMatrix(by_user, by_item)
    print(
        f"ML-32M shape: {train.n_users:,} users × {train.n_items:,} movies, {train.nnz:,} ratings, K = 32"
    )
    sweeps = repeats + 1  # the first sweep also pays the JIT warm-up of anything new: dropped
    als = fit(train, shipped("als", iterations=sweeps)).history[1:]
    gibbs = fit(train, shipped("bayes_als", samples=sweeps, burn_in=0, saved_samples=1)).history[1:]
    als_s = statistics.median(r.seconds for r in als)
    gibbs_s = statistics.median(r.seconds for r in gibbs)
    print(f"ALS iteration (exact Cholesky): median {als_s:.3f} s over {len(als)}")
    print(f"Gibbs sample:                   median {gibbs_s:.3f} s over {len(gibbs)}")
    print(f"ratio Gibbs / ALS: {gibbs_s / als_s:.2f}× (target ≤ 1.3×)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ratings", type=int, default=20_000_000, help="ratings of the ML-32M-shape matrix"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed sweeps per method at ML-32M shape"
    )
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    print(machine_facts())
    if not args.skip_accuracy:
        accuracy()
    if not args.skip_speed:
        speed(args.ratings, args.repeats)


if __name__ == "__main__":
    main()
