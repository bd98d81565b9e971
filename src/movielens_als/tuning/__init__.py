"""Hyper-parameter search with Optuna, called directly (no Hydra sweeper plugin)."""

from movielens_als.tuning.search import SearchSpace, TrialOutcome, run_study

__all__ = ["SearchSpace", "TrialOutcome", "run_study"]
