"""Evaluation of fitted models beyond RMSE (which ``movielens_als.core.rmse`` provides).

- ``ranking``: top-K ranking metrics (Recall, NDCG, MRR, hit rate, coverage, popularity of
  the recommendations) against a popularity baseline, batched over users.
"""

from movielens_als.evaluation.ranking import (
    FactorScorer,
    ItemScorer,
    ScoreFn,
    evaluate_ranking,
    evaluate_rankings,
    popularity_scores,
    ranking_table,
)

__all__ = [
    "FactorScorer",
    "ItemScorer",
    "ScoreFn",
    "evaluate_ranking",
    "evaluate_rankings",
    "popularity_scores",
    "ranking_table",
]
