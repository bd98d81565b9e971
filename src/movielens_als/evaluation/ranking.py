"""Top-K ranking evaluation of a rating predictor on held-out ratings.

Protocol (the same for every model, so rows of one table compare):

- *Positives* of user m are m's test ratings with ``rating >= threshold`` (4.0 by default).
  Users with test ratings but no positive are skipped and counted
  (``n_users_without_positives``); users without test ratings are not considered.
- *Candidates* of user m are all items m did not rate in train. Test ratings below the
  threshold are not "seen": those items stay candidates and count as misses when recommended.
  A positive that also appears in m's train row (duplicate pair) can never be recommended
  but still counts in #positives.
- The top-K list orders candidates by score, highest first; **ties are broken by item index,
  lower first**, so results are deterministic. A user with fewer than K candidates gets a
  shorter list (the missing slots are misses). NaN scores raise ``NumericalError``.

Per-user metrics at cut-off K, with ``hit_i`` = 1 when the item at rank i (1-based) is a
positive (binary relevance) and ``P`` = #positives of the user:

- ``recall@K = Σ_{i≤K} hit_i / P`` (the standard definition; it cannot reach 1 when P > K);
- ``ndcg@K = DCG@K / IDCG@K`` with ``DCG@K = Σ_{i≤K} hit_i / log2(i + 1)`` and the ideal
  ``IDCG@K = Σ_{i≤min(P, K)} 1 / log2(i + 1)``;
- ``mrr@K = 1 / rank of the first positive`` when it is within K, else 0;
- ``hit_rate@K = 1`` when at least one positive is within K, else 0.

These are averaged over evaluated users. Two list-level figures describe what is
recommended: ``coverage@K`` = distinct items in any evaluated user's top-K / number of items,
and ``mean_popularity@K`` = mean number of train ratings of the recommended items (over all
filled slots of all evaluated users' top-K lists).

Computation: users are processed in batches; each user's top-K among unseen items is
selected in one pass over its score row with a K-slot insertion list (no sort), skipping
64-item chunks that hold nothing above the current K-th score with one vectorised test.
A ``FactorScorer`` computes ``U_tile Vᵀ + c`` for 16 users at a time inside each Numba
thread and ranks the tile while it is in cache, so memory stays at a few MiB per thread
whatever the number of users and items; an ``ItemScorer`` (popularity) ranks one shared
row; any other ``ScoreFn`` hands over a dense ``(batch, n_items)`` block. ``evaluate_rankings``
ranks several score functions in one pass over the users, and ``FactorScorer``s that differ
only in their item bias (``with_item_bias``: a model with and without a popularity prior, or
the candidate prior weights) share one product per tile: at ML-32M shape the ranking stage's
five validation weights took 9 s where one weight alone had taken about 6.5 s
(the stage's log before and after this change). On a 2-core
machine, a full pass at ML-32M shape (200k users × 84k items, K=32) takes about 35 s
(``benchmarks/bench_ranking.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from numba import njit, prange

from movielens_als.core.fit import single_threaded_blas
from movielens_als.errors import ConfigError, NumericalError
from movielens_als.sparse import CSR, INDEX_DTYPE, INDPTR_DTYPE, Ratings

ScoreFn = Callable[[np.ndarray], np.ndarray]
"""Maps user indices (int array of length B) to a ``(B, n_items)`` array of scores.

A higher score means "recommend earlier". The returned block is only read, and only until
the next call, so a score function may return a broadcast view (``ItemScorer`` does).
A score function that also has a method ``top_k_unseen(users, seen_indptr, seen_indices,
k) -> (top, n_nan)`` (``FactorScorer``, ``ItemScorer``) is asked for the top-K lists
directly."""

SCORE_BLOCK_BYTES = 1 << 28  # 256 MiB: default size of one batch's score block
CHUNK = 64  # items tested at once by the vectorised skip test of the top-K selection
FACTOR_TILE = 16  # users whose scores one thread computes (one GEMM) and ranks at a time


class FactorScorer:
    """Scores of a factor model, ``s_mn = u_mᵀ v_n + c_n``, and their top-K lists.

    The global mean μ and the user bias b_m are left out: they add the same constant to every
    item of a user and so do not change that user's ranking. Works for K = 0 (bias-only
    models rank by ``c_n``). Called with user indices it returns their score block;
    ``top_k_unseen`` ranks without ever holding more than one tile of
    ``FACTOR_TILE × n_items`` scores per thread (each thread runs its own GEMM).
    """

    def __init__(
        self,
        user_factors: np.ndarray,
        item_factors: np.ndarray,
        item_bias: np.ndarray | None = None,
    ) -> None:
        user_factors = np.asarray(user_factors)
        item_factors = np.asarray(item_factors)
        if user_factors.ndim != 2 or item_factors.ndim != 2:
            raise ValueError("user_factors and item_factors must be 2-D (rows, K)")
        if user_factors.shape[1] != item_factors.shape[1]:
            raise ValueError(
                f"user_factors has K={user_factors.shape[1]} but item_factors has "
                f"K={item_factors.shape[1]}"
            )
        n_items = item_factors.shape[0]
        item_bias = np.zeros(n_items) if item_bias is None else np.asarray(item_bias)
        if item_bias.shape != (n_items,):
            raise ValueError(f"item_bias has shape {item_bias.shape}, expected ({n_items},)")
        dtype = np.result_type(user_factors.dtype, item_factors.dtype, item_bias.dtype, np.float32)
        self.user_factors = np.ascontiguousarray(user_factors, dtype=dtype)
        self.item_factors_t = np.ascontiguousarray(item_factors.T, dtype=dtype)
        self.item_bias = np.ascontiguousarray(item_bias, dtype=dtype)

    @property
    def n_items(self) -> int:
        return self.item_bias.size

    def with_item_bias(self, item_bias: np.ndarray) -> FactorScorer:
        """The scores ``u_mᵀ v_n + item_bias_n`` over the same factor arrays (not copied; the
        bias is taken in this scorer's dtype). Scorers that share factors are ranked together
        by ``evaluate_rankings``: one product per user tile, one selection per bias."""
        item_bias = np.asarray(item_bias)
        if item_bias.shape != self.item_bias.shape:
            raise ValueError(
                f"item_bias has shape {item_bias.shape}, expected {self.item_bias.shape}"
            )
        scorer = object.__new__(FactorScorer)
        scorer.user_factors = self.user_factors
        scorer.item_factors_t = self.item_factors_t
        scorer.item_bias = np.ascontiguousarray(item_bias, dtype=self.item_bias.dtype)
        return scorer

    def shares_factors_with(self, other: object) -> bool:
        """Whether ``other`` is a ``FactorScorer`` over the very same factor arrays."""
        return (
            isinstance(other, FactorScorer)
            and other.user_factors is self.user_factors
            and other.item_factors_t is self.item_factors_t
        )

    def __call__(self, users: np.ndarray) -> np.ndarray:
        """Score block of ``users``: bit for bit the tiles ``top_k_unseen`` ranks."""
        users = np.ascontiguousarray(users, dtype=INDEX_DTYPE)
        if self.user_factors.shape[1] == 0:
            return np.tile(self.item_bias, (users.size, 1))
        return factor_scores(
            self.user_factors, self.item_factors_t, self.item_bias, users, FACTOR_TILE
        )

    def top_k_unseen(
        self, users: np.ndarray, seen_indptr: np.ndarray, seen_indices: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``top_k_unseen(self(users), users, seen_indptr, seen_indices, k)``, tile by tile."""
        users = np.ascontiguousarray(users, dtype=INDEX_DTYPE)
        top, n_nan = shared_factor_top_k_unseen([self], users, seen_indptr, seen_indices, k)
        return top[0], n_nan[0]


def shared_factor_top_k_unseen(
    scorers: Sequence[FactorScorer],
    users: np.ndarray,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Every scorer's ``top_k_unseen`` (stacked: ``(len(scorers), users, k)`` and the NaN
    counts) for scorers over the same factor arrays, which differ only in their item bias."""
    first = scorers[0]
    if not all(first.shares_factors_with(other) for other in scorers):
        raise ValueError("the scorers must share their factor arrays (FactorScorer.with_item_bias)")
    users = np.ascontiguousarray(users, dtype=INDEX_DTYPE)
    biases = np.stack([scorer.item_bias for scorer in scorers])
    if first.user_factors.shape[1] == 0:  # bias-only: every user gets the same scores
        tops = [shared_top_k_unseen(bias, users, seen_indptr, seen_indices, k) for bias in biases]
        return np.stack([top for top, _ in tops]), np.stack([n_nan for _, n_nan in tops])
    return factor_top_k_unseen(
        first.user_factors,
        first.item_factors_t,
        biases,
        users,
        seen_indptr,
        seen_indices,
        k,
        FACTOR_TILE,
    )


class ItemScorer:
    """The same item scores for every user (e.g. ``popularity_scores``), ranked per user."""

    def __init__(self, item_scores: np.ndarray) -> None:
        item_scores = np.ascontiguousarray(item_scores)
        if item_scores.ndim != 1:
            raise ValueError("item_scores must be 1-D (one score per item)")
        self.item_scores = item_scores

    def __call__(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores, (len(users), self.item_scores.size))

    def top_k_unseen(
        self, users: np.ndarray, seen_indptr: np.ndarray, seen_indices: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``top_k_unseen(self(users), users, seen_indptr, seen_indices, k)`` from one row."""
        users = np.ascontiguousarray(users, dtype=INDEX_DTYPE)
        return shared_top_k_unseen(self.item_scores, users, seen_indptr, seen_indices, k)


def popularity_scores(train_by_user: CSR, threshold: float = 4.0) -> np.ndarray:
    """Popularity baseline: number of positive (``rating >= threshold``) train ratings per item.

    Items with equal counts are ranked by index (the evaluation's tie rule); seen items are
    excluded by the evaluation, as for any model.
    """
    positive = train_by_user.data >= threshold
    return np.bincount(train_by_user.indices[positive], minlength=train_by_user.n_cols).astype(
        np.float64
    )


@njit(cache=True)
def _any_above(row: np.ndarray, lo: int, hi: int, bar: float) -> bool:
    """Whether some ``row[lo:hi]`` exceeds ``bar`` or is NaN.

    No early exit, so that LLVM turns the loop into vector compares (one instruction per
    8 float32 / 4 float64 scores).
    """
    found = False
    for i in range(lo, hi):
        found |= not row[i] <= bar
    return found


@njit(cache=True)
def _top_k_row(row: np.ndarray, seen: np.ndarray, top: np.ndarray) -> int:
    """Fill ``top`` (length k, preset to -1) with the best items of ``row`` not in ``seen``.

    ``seen`` is sorted. Order: score descending, ties by item index ascending (items are
    visited in ascending index and a newcomer only displaces a strictly lower score).
    Returns the number of NaN scores met (NaN items are never ranked).
    """
    k = top.size
    n_items = row.size
    kept = np.empty(k, dtype=row.dtype)  # kept[0] ≥ kept[1] ≥ … (scores of top)
    worst = kept[0]  # kept[k - 1] once the list is full: the bar a newcomer must beat
    n_kept = 0
    n_nan = 0
    next_seen = 0  # first entry of ``seen`` not below the current item
    for lo in range(0, n_items, CHUNK):
        hi = min(lo + CHUNK, n_items)
        # With the list full, a chunk holding nothing above the bar (and no NaN) cannot
        # change it: most chunks end here after one vectorised test.
        if n_kept == k and not _any_above(row, lo, hi, worst):
            continue
        while next_seen < seen.size and seen[next_seen] < lo:
            next_seen += 1
        for item in range(lo, hi):
            if next_seen < seen.size and seen[next_seen] == item:
                while next_seen < seen.size and seen[next_seen] == item:
                    next_seen += 1  # also steps over a pair repeated in train
                continue
            x = row[item]
            if x != x:
                n_nan += 1
                continue
            if n_kept == k:
                if not x > worst:
                    continue
                pos = k - 1
            else:
                pos = n_kept
                n_kept += 1
            while pos > 0 and kept[pos - 1] < x:
                kept[pos] = kept[pos - 1]
                top[pos] = top[pos - 1]
                pos -= 1
            kept[pos] = x
            top[pos] = item
            worst = kept[k - 1]
    return n_nan


@njit(parallel=True, cache=True)
def top_k_unseen(
    scores: np.ndarray,
    users: np.ndarray,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Row r's top-``k`` item indices (see ``_top_k_row``) among items not in train row
    ``users[r]``; slots beyond the number of candidates hold -1. Also returns the number of
    NaN scores met per row."""
    n_rows = scores.shape[0]
    top = np.full((n_rows, k), -1, dtype=np.int32)
    n_nan = np.zeros(n_rows, dtype=np.int64)
    for r in prange(n_rows):
        user = users[r]
        seen = np.sort(seen_indices[seen_indptr[user] : seen_indptr[user + 1]])
        n_nan[r] = _top_k_row(scores[r], seen, top[r])
    return top, n_nan


@njit(parallel=True, cache=True)
def shared_top_k_unseen(
    item_scores: np.ndarray,
    users: np.ndarray,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``top_k_unseen`` when every user has the same scores ``item_scores`` (1-D)."""
    n_rows = users.size
    top = np.full((n_rows, k), -1, dtype=np.int32)
    n_nan = np.zeros(n_rows, dtype=np.int64)
    for r in prange(n_rows):
        user = users[r]
        seen = np.sort(seen_indices[seen_indptr[user] : seen_indptr[user + 1]])
        n_nan[r] = _top_k_row(item_scores, seen, top[r])
    return top, n_nan


@njit(cache=True)
def _tile_product(
    user_factors: np.ndarray, item_factors_t: np.ndarray, tile_users: np.ndarray
) -> np.ndarray:
    """``U[tile_users] Vᵀ`` as one GEMM (the unit both factor kernels share)."""
    tile_factors = np.empty((tile_users.size, user_factors.shape[1]), dtype=user_factors.dtype)
    for i in range(tile_users.size):
        tile_factors[i] = user_factors[tile_users[i]]
    return np.dot(tile_factors, item_factors_t)


@njit(parallel=True, cache=True)
def factor_scores(
    user_factors: np.ndarray,
    item_factors_t: np.ndarray,
    item_bias: np.ndarray,
    users: np.ndarray,
    tile: int,
) -> np.ndarray:
    """The dense score block ``U[users] Vᵀ + c``, computed as ``factor_top_k_unseen`` does."""
    scores = np.empty((users.size, item_factors_t.shape[1]), dtype=item_factors_t.dtype)
    for t in prange((users.size + tile - 1) // tile):
        lo = t * tile
        hi = min(lo + tile, users.size)
        product = _tile_product(user_factors, item_factors_t, users[lo:hi])
        for i in range(hi - lo):
            for item in range(item_bias.size):
                scores[lo + i, item] = product[i, item] + item_bias[item]  # s_mn = u_mᵀ v_n + c_n
    return scores


@njit(parallel=True, cache=True)
def factor_top_k_unseen(
    user_factors: np.ndarray,
    item_factors_t: np.ndarray,
    item_biases: np.ndarray,
    users: np.ndarray,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    k: int,
    tile: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``top_k_unseen`` of the scores ``U[users] Vᵀ + c_b`` for each bias row ``c_b`` of
    ``item_biases``, computed ``tile`` users at a time: ``(n_biases, users, k)`` lists and
    the NaN counts.

    Each thread multiplies its tile of user factors by ``Vᵀ`` (one GEMM; BLAS should run
    single-threaded) into a private ``tile × n_items`` block, and ranks each user's row plus
    each bias while the block is still in cache.
    """
    n_biases, n_items = item_biases.shape
    n_rows = users.size
    top = np.full((n_biases, n_rows, k), -1, dtype=np.int32)
    n_nan = np.zeros((n_biases, n_rows), dtype=np.int64)
    for t in prange((n_rows + tile - 1) // tile):
        lo = t * tile
        hi = min(lo + tile, n_rows)
        product = _tile_product(user_factors, item_factors_t, users[lo:hi])
        row = np.empty(n_items, dtype=product.dtype)
        for i in range(hi - lo):
            user = users[lo + i]
            seen = np.sort(seen_indices[seen_indptr[user] : seen_indptr[user + 1]])
            for b in range(n_biases):
                bias = item_biases[b]
                for item in range(n_items):
                    row[item] = product[i, item] + bias[item]  # s_mn = u_mᵀ v_n + c_n
                n_nan[b, lo + i] = _top_k_row(row, seen, top[b, lo + i])
    return top, n_nan


@njit(cache=True)  # serial: k binary searches per user cost less than waking threads
def positive_hits(
    top: np.ndarray, users: np.ndarray, pos_indptr: np.ndarray, pos_indices: np.ndarray
) -> np.ndarray:
    """``hits[r, j]`` = item ``top[r, j]`` is a positive of user ``users[r]``.

    ``pos_indices`` must be sorted within each row; -1 slots are never hits.
    """
    n_rows, k = top.shape
    hits = np.zeros((n_rows, k), dtype=np.bool_)
    for r in range(n_rows):
        user = users[r]
        positives = pos_indices[pos_indptr[user] : pos_indptr[user + 1]]
        for j in range(k):
            item = top[r, j]
            if item < 0:
                continue
            at = np.searchsorted(positives, item)
            hits[r, j] = at < positives.size and positives[at] == item
    return hits


def sample_users(ratings: Ratings, max_users: int | None, seed: int) -> Ratings:
    """The ratings of at most ``max_users`` distinct users of ``ratings``, drawn uniformly
    without replacement with ``default_rng(seed)`` (all of them when there are no more, or
    when ``max_users`` is None).

    A top-K mean over 20,000 random users has a standard error of about σ/141 (σ ≤ 0.5 for
    these per-user metrics, so ≤ 0.004), while ranking all 200k users of ML-32M costs ten
    times as much; the evaluated count is reported as ``n_users_evaluated``.
    """
    users = np.unique(ratings.user)
    if max_users is None or users.size <= max_users:
        return ratings
    chosen = np.random.default_rng(seed).choice(users, size=int(max_users), replace=False)
    return ratings.subset(np.isin(ratings.user, chosen))


def _sorted_csr(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> CSR:
    """CSR pattern (data = 1) with column indices sorted within each row."""
    order = np.lexsort((cols, rows))
    indptr = np.zeros(n_rows + 1, dtype=INDPTR_DTYPE)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    indices = np.ascontiguousarray(cols[order], dtype=INDEX_DTYPE)
    return CSR(indptr, indices, np.ones(indices.size, dtype=np.float32), n_cols)


def _validate_ks(ks: Sequence[int] | int) -> tuple[int, ...]:
    values = (ks,) if isinstance(ks, int | np.integer) else tuple(ks)
    if not values:
        raise ConfigError("ks: give at least one cut-off K")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ConfigError(f"ks: every cut-off must be an integer ≥ 1, got {k!r}")
    return tuple(sorted({int(k) for k in values}))


def _score_groups(score_fns: Mapping[str, ScoreFn]) -> list[list[str]]:
    """The names in ranking order, grouped: ``FactorScorer``s over the same factor arrays
    form one group (ranked by one kernel call), every other score function its own."""
    groups: list[list[str]] = []
    for name, fn in score_fns.items():
        for group in groups:
            if isinstance(fn, FactorScorer) and fn.shares_factors_with(score_fns[group[0]]):
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


def _top_k_lists(
    fns: Sequence[ScoreFn], users: np.ndarray, train_by_user: CSR, k: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(top, n_nan)`` of each of ``fns`` (one ``_score_groups`` group) for ``users``."""
    seen = (train_by_user.indptr, train_by_user.indices)
    if isinstance(fns[0], FactorScorer):
        top, n_nan = shared_factor_top_k_unseen(fns, users, *seen, k)
        return list(zip(top, n_nan, strict=True))
    (score_fn,) = fns
    if hasattr(score_fn, "top_k_unseen"):
        return [score_fn.top_k_unseen(users, *seen, k)]
    scores = score_fn(users)
    if scores.shape != (users.size, train_by_user.n_cols):
        raise ValueError(
            f"score_fn returned shape {scores.shape}, expected {(users.size, train_by_user.n_cols)}"
        )
    return [top_k_unseen(scores, users, *seen, k)]


class _MetricSums:
    """One score function's running sums of the per-user metrics over the ranked batches."""

    def __init__(self, ks: tuple[int, ...], item_counts: np.ndarray) -> None:
        self.ks = ks
        self.item_counts = item_counts
        self.discount = 1.0 / np.log2(np.arange(2, ks[-1] + 2))
        # ideal_dcg[j] = Σ_{i≤j} discount
        self.ideal_dcg = np.concatenate(([0.0], np.cumsum(self.discount)))
        self.sums = {name: dict.fromkeys(ks, 0.0) for name in ("recall", "ndcg", "mrr", "hit_rate")}
        self.covered = {k: np.zeros(item_counts.size, dtype=bool) for k in ks}
        self.popularity_sum = dict.fromkeys(ks, 0.0)
        self.filled_slots = dict.fromkeys(ks, 0)

    def add(self, top: np.ndarray, users: np.ndarray, positives: CSR, n_pos: np.ndarray) -> None:
        """Add the top-K lists ``top`` of ``users`` (rows of ``positives``, with ``n_pos``
        positives each)."""
        k_max = self.ks[-1]
        hits = positive_hits(top, users, positives.indptr, positives.indices)
        hits_cum = np.cumsum(hits, axis=1)
        dcg_cum = np.cumsum(hits * self.discount, axis=1)
        first_hit = np.where(hits.any(axis=1), hits.argmax(axis=1), k_max)  # 0-based rank
        filled = top >= 0
        sums = self.sums
        for k in self.ks:
            n_hits = hits_cum[:, k - 1]
            sums["recall"][k] += float(np.sum(n_hits / n_pos))
            sums["ndcg"][k] += float(
                np.sum(dcg_cum[:, k - 1] / self.ideal_dcg[np.minimum(n_pos, k)])
            )
            sums["mrr"][k] += float(np.sum(np.where(first_hit < k, 1.0 / (first_hit + 1), 0.0)))
            sums["hit_rate"][k] += float(np.count_nonzero(n_hits))
            recommended = top[:, :k][filled[:, :k]]
            self.covered[k][recommended] = True
            self.popularity_sum[k] += float(self.item_counts[recommended].sum())
            self.filled_slots[k] += recommended.size

    def metrics(self, n_eval: int) -> dict[str, float]:
        """The means over the ``n_eval`` ranked users and the list-level figures."""
        n_items = self.item_counts.size
        result: dict[str, float] = {}
        for k in self.ks:
            for name, per_k in self.sums.items():
                result[f"{name}@{k}"] = per_k[k] / n_eval if n_eval else float("nan")
            result[f"coverage@{k}"] = (
                float(self.covered[k].sum()) / n_items if n_items else float("nan")
            )
            result[f"mean_popularity@{k}"] = (
                self.popularity_sum[k] / self.filled_slots[k]
                if self.filled_slots[k]
                else float("nan")
            )
        return result


def evaluate_ranking(
    score_fn: ScoreFn,
    train_by_user: CSR,
    test: Ratings,
    *,
    ks: Sequence[int] | int = (10,),
    threshold: float = 4.0,
    batch_size: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> dict[str, float | int]:
    """Ranking metrics of ``score_fn`` on ``test`` (see the module docstring for definitions).

    Args:
        score_fn: user indices → ``(B, n_items)`` scores: a ``FactorScorer``, an
            ``ItemScorer``, or any callable with that contract (see ``ScoreFn``).
        train_by_user: train ratings, rows = users, columns = items; its items are excluded
            from the user's candidates and its rating counts define item popularity.
        test: held-out ratings (indices in the same user/item space).
        ks: cut-offs K (one or several); every metric is reported at each.
        threshold: test ratings ``>= threshold`` are positives.
        batch_size: users ranked per batch; the default keeps a score block of a plain
            ``ScoreFn`` near 256 MiB (a ``FactorScorer`` holds only small tiles).
        on_batch: called after each batch with (users ranked so far, users to rank), e.g.
            to show progress (the ranking itself runs in Numba, which cannot call back).

    Returns:
        ``{"recall@K", "ndcg@K", "mrr@K", "hit_rate@K", "coverage@K", "mean_popularity@K"``
        for each K, ``"n_users_evaluated", "n_users_without_positives", "n_items",
        "threshold"}``. Means over zero users are NaN.
    """
    return evaluate_rankings(
        {"": score_fn},
        train_by_user,
        test,
        ks=ks,
        threshold=threshold,
        batch_size=batch_size,
        on_batch=on_batch,
    )[""]


def evaluate_rankings(
    score_fns: Mapping[str, ScoreFn],
    train_by_user: CSR,
    test: Ratings,
    *,
    ks: Sequence[int] | int = (10,),
    threshold: float = 4.0,
    batch_size: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> dict[str, dict[str, float | int]]:
    """``{name: evaluate_ranking(fn, ...)}`` for each score function, with the same results,
    in one pass over the users: each batch is ranked by every function in turn, and
    ``FactorScorer``s over the same factor arrays (``FactorScorer.with_item_bias``, e.g. a
    model with and without a popularity prior, or several prior weights) share one factor
    product per user tile. ``on_batch`` gets (users ranked so far, users to rank)."""
    ks = _validate_ks(ks)
    k_max = ks[-1]
    n_users, n_items = train_by_user.n_rows, train_by_user.n_cols
    if len(test) and (test.user.max() >= n_users or test.item.max() >= n_items):
        raise ValueError(
            f"test indices exceed the train matrix shape ({n_users} users × {n_items} items)"
        )
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch_size: must be ≥ 1, got {batch_size}")

    positive = test.rating >= threshold
    positives = _sorted_csr(test.user[positive], test.item[positive], n_users, n_items)
    n_users_with_test = np.count_nonzero(np.bincount(test.user, minlength=n_users))
    n_positives = positives.row_counts()
    eval_users = np.flatnonzero(n_positives > 0).astype(INDEX_DTYPE)
    n_eval = eval_users.size
    if batch_size is None:
        batch_size = max(1, SCORE_BLOCK_BYTES // (8 * max(n_items, 1)))

    item_counts = np.bincount(train_by_user.indices, minlength=n_items)
    sums = {name: _MetricSums(ks, item_counts) for name in score_fns}
    groups = _score_groups(score_fns)

    # Numba threads rank while BLAS multiplies; a multi-threaded BLAS inside them (or
    # spinning beside them) would oversubscribe the cores.
    with single_threaded_blas():
        for lo in range(0, n_eval, batch_size):
            users = eval_users[lo : lo + batch_size]
            n_pos = n_positives[users]
            for names in groups:
                lists = _top_k_lists(
                    [score_fns[name] for name in names], users, train_by_user, k_max
                )
                for name, (top, n_nan) in zip(names, lists, strict=True):
                    if n_nan.any():
                        bad = int(users[np.flatnonzero(n_nan)[0]])
                        raise NumericalError(
                            f"{name + ': ' if name else ''}ranking scores contain "
                            f"{int(n_nan.sum())} NaN values (first at user index {bad}); the "
                            "model's factors or biases are not finite"
                        )
                    sums[name].add(top, users, positives, n_pos)
            if on_batch is not None:
                on_batch(lo + users.size, n_eval)

    counts = {
        "n_users_evaluated": int(n_eval),
        "n_users_without_positives": int(n_users_with_test - n_eval),
        "n_items": int(n_items),
        "threshold": float(threshold),
    }
    return {name: {**sums[name].metrics(n_eval), **counts} for name in score_fns}


def ranking_table(
    score_fns: Mapping[str, ScoreFn],
    train_by_user: CSR,
    test: Ratings,
    *,
    ks: Sequence[int] | int = (10,),
    threshold: float = 4.0,
    batch_size: int | None = None,
    popularity_baseline: str | None = "popularity",
    on_batch: Callable[[int, int], None] | None = None,
) -> dict[str, dict[str, float | int]]:
    """``{model name: evaluate_ranking(...)}`` for each score function, same protocol, in
    one pass (``evaluate_rankings``).

    With ``popularity_baseline`` set (the default), a row of that name is added for the
    popularity baseline (``popularity_scores`` of ``train_by_user`` at ``threshold``).
    ``on_batch`` is called after each batch with (user lists ranked so far over the whole
    table, user lists to rank over the table).
    """
    fns = dict(score_fns)
    if popularity_baseline is not None:
        if popularity_baseline in fns:
            raise ValueError(f"model name {popularity_baseline!r} is reserved for the baseline")
        fns[popularity_baseline] = ItemScorer(popularity_scores(train_by_user, threshold))

    def batch_done(done: int, total: int) -> None:
        on_batch(len(fns) * done, len(fns) * total)  # every model ranks the same users

    return evaluate_rankings(
        fns,
        train_by_user,
        test,
        ks=ks,
        threshold=threshold,
        batch_size=batch_size,
        on_batch=None if on_batch is None else batch_done,
    )
