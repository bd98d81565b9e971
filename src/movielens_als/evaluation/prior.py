"""A popularity prior for ranking with an explicit-feedback model, weighted on validation.

A model fitted to rating *values* ranks by how much a user would like a movie, not by how
likely the user is to watch and rate it; under the top-K protocol (rank every unrated movie)
that loses to plain popularity, because which movies get rated is far from random. Adding
``w · log(1 + n_n)`` (n_n: the movie's training ratings) to every score, with ``w`` chosen on
a validation carve-out of train — never on test — supplies the missing "will it be rated"
signal while keeping the model's personal ordering among movies of similar popularity.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from movielens_als.core.model import FactorModel
from movielens_als.evaluation.ranking import FactorScorer, evaluate_rankings
from movielens_als.sparse import CSR, RatingMatrix, Ratings

log = logging.getLogger(__name__)


def popularity_log_counts(train_by_user: CSR) -> np.ndarray:
    """``log(1 + n_n)``: each movie's number of training ratings, log-damped."""
    return np.log1p(np.bincount(train_by_user.indices, minlength=train_by_user.n_cols)).astype(
        np.float64
    )


def prior_scorer(scorer: FactorScorer, log_counts: np.ndarray, weight: float) -> FactorScorer:
    """``scorer``'s ranking scores ``u_mᵀ v_n + c_n`` plus ``weight · log(1 + n_n)``, over the
    same factor arrays (so both are ranked with one factor product)."""
    return scorer.with_item_bias(scorer.item_bias + weight * log_counts)


def model_scorer(model: FactorModel) -> FactorScorer:
    """The ranking scores of ``model``: ``u_mᵀ v_n + c_n``."""
    return FactorScorer(model.user_factors, model.item_factors, model.item_bias)


def choose_prior_weight(
    validation_model: FactorModel,
    train: RatingMatrix,
    val: Ratings,
    weights: Sequence[float],
    *,
    k: int = 10,
    threshold: float = 4.0,
) -> tuple[float, dict[str, float]]:
    """The weight with the best NDCG@k on ``val`` for ``validation_model`` — a model fitted on
    ``train`` (train minus the validation carve-out; the ``validation_fit`` stage fits it with
    the ranked model's hyper-parameters) — and every weight's validation NDCG@k. Every weight
    is ranked in one pass over the validation users."""
    log_counts = popularity_log_counts(train.by_user)
    plain = model_scorer(validation_model)
    scorers = {f"{float(w):g}": prior_scorer(plain, log_counts, float(w)) for w in weights}
    table = evaluate_rankings(scorers, train.by_user, val, ks=(k,), threshold=threshold)
    scores = {}
    for key in scorers:
        scores[key] = float(table[key][f"ndcg@{k}"])
        log.info("prior weight %s: validation ndcg@%d=%.4f", key, k, scores[key])
    best = max(scores, key=lambda w: (scores[w], -float(w)))  # ties: the smaller weight
    return float(best), scores
