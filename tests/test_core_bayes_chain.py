"""How long a Gibbs chain runs: the Monte-Carlo error rule and the store of saved draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core_problems import random_problem
from movielens_als.core import bayes_als, fit
from movielens_als.core.bayes_als import (
    MIN_KEPT_FOR_MCSE,
    BayesALSParams,
    SavedDraws,
    batch_means_mcse,
    probe_pairs,
)
from movielens_als.core.model import rmse


def reference_mcse(draws: np.ndarray) -> float:
    """Batch means written out: b = ⌊√n⌋ draws per batch over the latest ⌊n/b⌋·b draws."""
    n = len(draws)
    b = math.floor(math.sqrt(n))
    a = n // b
    used = draws[n - a * b :]
    errors = []
    for column in used.T.astype(np.float64):
        means = [column[i * b : (i + 1) * b].mean() for i in range(a)]
        grand = sum(means) / a
        variance = b * sum((m - grand) ** 2 for m in means) / (a - 1)
        errors.append(variance / (a * b))
    return math.sqrt(sum(errors) / len(errors))


@pytest.mark.parametrize("n", [4, 9, 50, 77])
def test_batch_means_match_the_written_out_reference(n):
    draws = np.random.default_rng(n).normal(size=(n, 7)).astype(np.float32)
    assert batch_means_mcse(draws) == pytest.approx(reference_mcse(draws), rel=1e-12)


def test_batch_means_find_the_error_of_independent_and_correlated_chains():
    rng = np.random.default_rng(5)
    n, columns = 400, 3000
    independent = rng.normal(size=(n, columns))
    assert batch_means_mcse(independent) == pytest.approx(1 / math.sqrt(n), rel=0.1)
    # AR(1) with ρ = 0.8: long-run variance (1 + ρ)/(1 − ρ) = 9 times the marginal one
    rho = 0.8
    chain = np.empty((n, columns))
    chain[0] = rng.normal(size=columns)
    noise = rng.normal(scale=math.sqrt(1 - rho**2), size=(n, columns))
    for t in range(1, n):
        chain[t] = rho * chain[t - 1] + noise[t]
    expected = math.sqrt(9 / n)
    # batches of 20 draws under-read a correlated chain's variance by ~ 2ρ/((1−ρ)² b) ≈ 10 %
    assert 0.8 * expected < batch_means_mcse(chain) < 1.05 * expected
    # a drift of 1 under the noise spreads the 20 batch means by 1/12 more variance, so the
    # long-run variance reads 1 + 20/12 and the error √(8/3) ≈ 1.6 times the stationary one
    drifting = independent + np.linspace(0, 1, n)[:, None]
    assert batch_means_mcse(drifting) == pytest.approx(math.sqrt((1 + 20 / 12) / n), rel=0.1)


def test_batch_means_refuse_fewer_than_two_batches():
    with pytest.raises(ValueError, match="2 batches"):
        batch_means_mcse(np.zeros((1, 2)))


def reference_held(n: int, capacity: int) -> list[int]:
    """The store's rule written out: offer draws 1..n; whenever more than ``capacity`` are
    held, drop the earliest of those (never the newest) whose removal leaves the shortest gap."""
    held: list[int] = []
    for sweep in range(1, n + 1):
        held.append(sweep)
        if len(held) > capacity:
            best = None
            for i in range(len(held) - 1):
                before = held[i - 1] if i > 0 else 0
                gap = held[i + 1] - before
                if best is None or gap < best[0]:
                    best = (gap, i)
            held.pop(best[1])
    return held


@pytest.mark.parametrize("capacity", [1, 2, 3, 4, 16])
def test_saved_draws_spread_over_the_chain_whatever_its_length(capacity):
    store = SavedDraws(capacity)
    for n in range(1, 400):
        store.add(n, {"n": np.array(n)})
        held = store.kept_indices
        assert held == reference_held(n, capacity), n
        assert [int(d["n"]) for d in store.draws] == held
        # always full once it can be, the newest draw among them, in order
        assert len(held) == min(n, capacity) and held[-1] == n and held == sorted(set(held))
        if n >= 4 * capacity:  # no gap (from 0) longer than twice the even spacing
            gaps = np.diff([0, *held])
            assert gaps.max() <= 2 * n / capacity, (n, held)


def test_saved_draws_at_the_default_study_length_beat_a_halved_stride():
    # the default study keeps 275 draws with S = 16: all 16 held, none crowded together
    held = reference_held(275, 16)
    assert len(held) == 16 and held[-1] == 275
    assert np.diff([0, *held]).min() >= 275 / 16 / 2


def test_probe_pairs_are_training_ratings_fixed_by_the_seed():
    train, _ = random_problem(3, n_users=40, n_items=30, n_ratings=500)
    users, items = probe_pairs(train, seed=7)
    assert len(users) == train.nnz  # fewer ratings than PROBE_PAIRS: all of them
    rated = {(u, int(i)) for u in range(train.n_users) for i in train.by_user.row(u)[0]}
    assert set(zip(users.tolist(), items.tolist(), strict=True)) == rated
    big, _ = random_problem(4, n_users=300, n_items=200, n_ratings=30_000)
    first, again = probe_pairs(big, seed=7), probe_pairs(big, seed=7)
    other = probe_pairs(big, seed=8)
    assert len(first[0]) == bayes_als.PROBE_PAIRS
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])
    for u, i in zip(first[0][:200], first[1][:200], strict=True):
        assert i in big.by_user.row(int(u))[0]


def _chain(tolerance: float, samples: int = 120):
    train, ratings = random_problem(11, n_users=60, n_items=40, n_ratings=900)
    params = BayesALSParams(
        K=2, samples=samples, burn_in=5, saved_samples=4, mcse_tolerance=tolerance, seed=3
    )
    return fit(train, params, evals={"all": ratings}), ratings


def test_the_rule_stops_the_chain_at_the_first_sweep_within_tolerance():
    full, ratings = _chain(0.0)
    errors = [r.extra.get("mcse") for r in full.history]
    # the error is estimated once MIN_KEPT_FOR_MCSE draws are kept, and reported per sweep
    assert errors[: 5 + MIN_KEPT_FOR_MCSE - 1] == [None] * (5 + MIN_KEPT_FOR_MCSE - 1)
    known = [e for e in errors if e is not None]
    assert len(known) == 120 - 5 - MIN_KEPT_FOR_MCSE + 1 and all(e > 0 for e in known)
    assert known[-1] < known[0]  # more draws, smaller error
    tolerance = float(np.median(known))
    stopped, _ = _chain(tolerance)
    expected_stop = next(r.iteration for r in full.history if r.extra.get("mcse", 1e9) <= tolerance)
    assert len(stopped.history) == expected_stop < 120
    # stopping changes no draw: the stopped chain's records are the full chain's first ones
    for a, b in zip(stopped.history, full.history, strict=False):
        assert (a.nll, a.train_rmse, a.eval_rmse, a.extra) == (
            b.nll,
            b.train_rmse,
            b.eval_rmse,
            b.extra,
        )
    # the saved model averages 4 of the kept draws, side by side
    assert stopped.model.K == 2 * 4
    assert rmse(stopped.model, ratings) == pytest.approx(
        stopped.history[-1].eval_rmse["all"], abs=0.05
    )


def test_a_tolerance_the_chain_cannot_reach_runs_every_sample():
    result, _ = _chain(1e-9, samples=70)
    assert len(result.history) == 70
    assert result.history[-1].extra["mcse"] > 1e-9
