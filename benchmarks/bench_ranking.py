"""Time ranking evaluation (``evaluate_ranking``) at MovieLens shapes on synthetic data.

Random factors (K=32 by default) and a random power-law rating pattern of the requested
shape are generated here (seeded), split 90/10 at random into train and test. The batched
Numba evaluator is timed on a random sample of the evaluable users and extrapolated linearly
to all of them (its cost is per user: one score row and one pass over it). In the same run,
a plain NumPy evaluator (mask seen items with -inf, ``np.argpartition``, sort the K) is
timed on a smaller sample as the baseline, beside the generic path (whole score blocks from
a plain score function, then the Numba top-K kernel). The popularity baseline's evaluation
is timed too (no matrix product: top-K selection alone).

    .venv/bin/python benchmarks/bench_ranking.py --shape ml-32m --users 20000
    .venv/bin/python benchmarks/bench_ranking.py --shape ml-latest-small --users 0   # all
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from movielens_als.evaluation.ranking import (
    FactorScorer,
    ItemScorer,
    evaluate_ranking,
    popularity_scores,
)
from movielens_als.sparse import CSR, Ratings

SHAPES = {  # users, items, ratings (ML-32M: 200,948 users, 84,432 rated movies, 32.0M ratings)
    "ml-latest-small": (610, 9_724, 100_836),
    "ml-25m": (162_541, 59_047, 25_000_095),
    "ml-32m": (200_948, 84_432, 32_000_204),
}


def power_law_draws(rng: np.random.Generator, n: int, exponent: float, size: int) -> np.ndarray:
    """``size`` indices in [0, n) with P(rank r) ≈ ∝ r^-exponent, ranks randomly permuted.

    Inverse transform of the continuous density x^-exponent on [1, n + 1] (fast, unlike
    ``rng.choice`` with 84k probabilities).
    """
    uniform = rng.random(size)
    if exponent == 1.0:
        x = (n + 1.0) ** uniform
    else:
        a = 1.0 - exponent
        x = (1.0 + uniform * ((n + 1.0) ** a - 1.0)) ** (1.0 / a)
    ranks = np.minimum(x.astype(np.int64) - 1, n - 1)
    return rng.permutation(n)[ranks]


def power_law_ratings(n_users: int, n_items: int, n_ratings: int, seed: int) -> Ratings:
    """Distinct (user, item) pairs with Zipf-like user activity and item popularity."""
    rng = np.random.default_rng(seed)
    user_of_rank = rng.permutation(n_users)
    item_of_rank = rng.permutation(n_items)
    pairs = np.empty(0, dtype=np.int64)
    while pairs.size < n_ratings:  # draw, drop repeated pairs, top up until enough remain
        n_draw = int(1.3 * (n_ratings - pairs.size)) + 1
        users = user_of_rank[power_law_draws(rng, n_users, 0.8, n_draw)]
        items = item_of_rank[power_law_draws(rng, n_items, 1.0, n_draw)]
        pairs = np.sort(np.concatenate([pairs, users * n_items + items]))
        # sort + neighbour mask: np.unique (hash-based in NumPy 2.4) is ~100× slower here
        pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))]
    pairs = rng.permutation(pairs)[:n_ratings]
    stars = rng.choice(
        np.arange(1, 11) / 2,
        size=pairs.size,
        p=[0.01, 0.03, 0.02, 0.07, 0.05, 0.2, 0.13, 0.27, 0.08, 0.14],
    )
    return Ratings.from_arrays(pairs // n_items, pairs % n_items, stars)


def numpy_baseline(score_fn, train: CSR, test: Ratings, k: int, threshold: float, batch: int):
    """Obvious vectorised NumPy: -inf on seen items, argpartition, sort the K; hit rate@K."""
    positive = test.rating >= threshold
    users = np.flatnonzero(np.bincount(test.user[positive], minlength=train.n_rows))
    pos_pairs = set(zip(test.user[positive].tolist(), test.item[positive].tolist(), strict=True))
    n_hit = 0
    for lo in range(0, users.size, batch):
        batch_users = users[lo : lo + batch]
        scores = np.array(score_fn(batch_users))
        for r, user in enumerate(batch_users):
            scores[r, train.row(user)[0]] = -np.inf
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        part_scores = np.take_along_axis(scores, part, axis=1)
        order = np.lexsort((part, -part_scores), axis=1)
        top = np.take_along_axis(part, order, axis=1)
        n_hit += sum(
            any((int(user), int(item)) in pos_pairs for item in row)
            for user, row in zip(batch_users, top, strict=True)
        )
    return n_hit / max(users.size, 1)


def restrict(test: Ratings, users: np.ndarray) -> Ratings:
    return test.subset(np.isin(test.user, users))


def median_seconds(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="ml-32m")
    parser.add_argument("--users", type=int, default=20_000, help="users to time (0 = all)")
    parser.add_argument("--baseline-users", type=int, default=2_000)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--k", type=int, nargs="+", default=[10])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    n_users, n_items, n_ratings = SHAPES[args.shape]
    start = time.perf_counter()
    ratings = power_law_ratings(n_users, n_items, n_ratings, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    in_test = rng.random(len(ratings)) < 0.1
    train = CSR.from_coo(
        ratings.user[~in_test], ratings.item[~in_test], ratings.rating[~in_test], n_users, n_items
    )
    test = ratings.subset(in_test)
    user_factors = rng.normal(scale=0.3, size=(n_users, args.rank)).astype(args.dtype)
    item_factors = rng.normal(scale=0.3, size=(n_items, args.rank)).astype(args.dtype)
    item_bias = rng.normal(scale=0.3, size=n_items).astype(args.dtype)
    scorer = FactorScorer(user_factors, item_factors, item_bias)
    threshold = 4.0
    eval_users = np.flatnonzero(np.bincount(test.user[test.rating >= threshold], minlength=n_users))
    print(
        f"shape {args.shape}: {n_users:,} users × {n_items:,} items, train {train.nnz:,} / "
        f"test {len(test):,} ratings, K={args.rank} {args.dtype}; {eval_users.size:,} users "
        f"with a positive test rating (generated in {time.perf_counter() - start:.1f} s); "
        f"{numba.get_num_threads()} Numba threads"
    )

    sample = eval_users
    if 0 < args.users < eval_users.size:
        sample = np.sort(rng.choice(eval_users, size=args.users, replace=False))
    sample_test = restrict(test, sample)
    popularity = ItemScorer(popularity_scores(train, threshold))
    for fn in (scorer, popularity, lambda users: scorer(users)):  # JIT compile every path
        evaluate_ranking(fn, train, restrict(test, sample[:8]), ks=args.k)

    def timed(fn, users_test):
        return median_seconds(
            lambda: evaluate_ranking(fn, train, users_test, ks=args.k, batch_size=args.batch_size),
            args.repeats,
        )

    k0 = min(args.k)
    extrapolated = "(measured)" if sample.size == eval_users.size else "(extrapolated linearly)"
    for name, fn in (("FactorScorer (fused GEMM + top-K)", scorer), ("popularity", popularity)):
        seconds, result = timed(fn, sample_test)
        print(
            f"evaluate_ranking, {name}: {sample.size:,} users in {seconds:.3f} s (median of "
            f"{args.repeats}) = {seconds / sample.size * 1e6:.1f} µs/user; hit_rate@{k0} = "
            f"{result[f'hit_rate@{k0}']:.4f}\n  → all {eval_users.size:,} evaluable users: "
            f"{seconds / sample.size * eval_users.size:.2f} s {extrapolated}"
        )

    base_users = sample[: min(args.baseline_users, sample.size)]
    base_test = restrict(test, base_users)
    batch = args.batch_size or max(1, (1 << 28) // (8 * n_items))
    base_seconds, base_hit = median_seconds(
        lambda: numpy_baseline(scorer, train, base_test, k0, threshold, batch), args.repeats
    )
    block_seconds, _ = timed(lambda users: scorer(users), base_test)
    fast_seconds, fast = timed(scorer, base_test)
    assert np.isclose(base_hit, fast[f"hit_rate@{k0}"]), (base_hit, fast[f"hit_rate@{k0}"])
    per_all = eval_users.size / base_users.size
    print(
        f"same {base_users.size:,} users: NumPy baseline (argpartition) {base_seconds:.3f} s, "
        f"score blocks + Numba top-K {block_seconds:.3f} s, FactorScorer {fast_seconds:.3f} s "
        f"→ speed-up ×{base_seconds / fast_seconds:.1f} over the baseline, "
        f"×{block_seconds / fast_seconds:.1f} over blocks (all users, extrapolated: "
        f"{base_seconds * per_all:.0f} s / {block_seconds * per_all:.0f} s / "
        f"{fast_seconds * per_all:.0f} s)"
    )


if __name__ == "__main__":
    main()
