"""The stages that use trained models: the notebook's factor analyses and ranking metrics."""

from __future__ import annotations

import logging
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

from movielens_als.pipeline.common import (
    fit_progress,
    publish,
    split_as_configured,
    stage_compute,
    stage_run,
)
from movielens_als.pipeline.layout import Layout
from movielens_als.progress import Progress

log = logging.getLogger(__name__)


def run_analysis(cfg: DictConfig) -> dict[str, Any]:
    """Factor norms, rating variance and their correlations, overall and per count tier."""
    from movielens_als.analysis.factors import factor_analysis, factor_summary
    from movielens_als.core.model import load_model
    from movielens_als.data.index import load_index
    from movielens_als.data.split import load_split
    from movielens_als.figures.factors import factor_figures

    layout = Layout.from_config(cfg)
    options = cfg.analysis
    with stage_run(cfg, "analysis", ["dataset", "analysis"]) as tracker:
        model = load_model(layout.model_dir(options.model) / "model")
        index = load_index(layout.index_dir)
        split = load_split(layout.split_dir)
        pca_ids = (
            OmegaConf.to_container(options.pca_movie_ids)
            if options.pca_movie_ids is not None
            else None
        )
        analysis = factor_analysis(
            model.item_factors,
            model.item_bias,
            split.train.by_item,
            index.titles,
            index.movie_ids,
            min_ratings=options.min_ratings,
            top_n=options.top_n,
            tier_edges=list(options.tier_edges),
            n_histograms=options.n_histograms,
            rating_scale=index.rating_scale,
            pca_movie_ids=pca_ids,
        )
        summary = {"model": options.model, **factor_summary(analysis)}
        overall = summary.get("variance_vs_norm", {})
        publish(
            tracker,
            layout.outputs,
            "analysis",
            {key: overall[key] for key in ("spearman_rho",) if key in overall},
            details=summary,
            figures=factor_figures(analysis),
            logged={
                f"variance_vs_norm_{k}": v for k, v in overall.items() if isinstance(v, int | float)
            },
        )
    return summary


def run_ranking(cfg: DictConfig) -> dict[str, Any]:
    """Top-K metrics of each trained model, of each with a validation-weighted popularity
    prior, and of the popularity baseline, in one table."""
    from movielens_als.core.model import load_model
    from movielens_als.data.index import load_index
    from movielens_als.data.split import load_split
    from movielens_als.evaluation.prior import (
        choose_prior_weight,
        model_scorer,
        popularity_log_counts,
        prior_scorer,
    )
    from movielens_als.evaluation.ranking import ranking_table, sample_users

    layout = Layout.from_config(cfg)
    options = cfg.ranking
    ks = sorted(int(k) for k in options.ks)
    max_users = None if options.max_users is None else int(options.max_users)

    def sampled(ratings):
        return sample_users(ratings, max_users, int(options.seed))

    with (
        stage_run(cfg, "ranking", ["dataset", "split", "ranking"]) as tracker,
        stage_compute(cfg) as compute,
    ):
        split = load_split(layout.split_dir)
        log_counts = popularity_log_counts(split.train.by_user)
        tuning_split = index = None
        if options.prior_weights:
            index = load_index(layout.index_dir)
            tuning_split, _ = split_as_configured(index, cfg, val_fraction=options.val_fraction)
        scorers: dict[str, Any] = {}
        priors: dict[str, Any] = {}
        for stage in options.models:
            model = load_model(layout.model_dir(stage) / "model")
            scorers[stage] = model_scorer(model)
            if tuning_split is not None:
                log.info("%s: choosing its popularity prior's weight on validation", stage)
                with fit_progress(model.params) as refit_progress:
                    weight, validation = choose_prior_weight(
                        model,
                        tuning_split.train,
                        sampled(tuning_split.val.to_ratings()),
                        list(options.prior_weights),
                        k=ks[-1],
                        threshold=float(options.threshold),
                        movie_genres=index.movie_genres if model.params.uses_genres else None,
                        callback=refit_progress,
                        executor=compute.executor,
                    )
                scorers[f"{stage}+prior"] = prior_scorer(scorers[stage], log_counts, weight)
                priors[stage] = {"weight": weight, f"val_ndcg@{ks[-1]}": validation}
        with Progress("ranking", None, unit="user lists", lines=10) as ranked:
            table: dict[str, Any] = ranking_table(
                scorers,
                split.train.by_user,
                sampled(split.test.to_ratings()),
                ks=ks,
                threshold=float(options.threshold),
                on_batch=lambda done, total: ranked.update(done, total=total),
            )
        if priors:
            table["popularity_prior"] = priors
        logged = {
            _metric_key(f"{name}.{metric}"): value
            for name, row in table.items()
            for metric, value in row.items()
            if isinstance(value, int | float)
        }
        # one metrics file per scorer with its headline numbers at the largest K (the whole
        # table, every K and the prior weights, is in the details)
        k = ks[-1]
        headline = (f"ndcg@{k}", f"recall@{k}")
        rows = {
            name: {key: row[key] for key in headline}
            for name, row in table.items()
            if name != "popularity_prior"
        }
        publish(tracker, layout.outputs, "ranking", metric_rows=rows, details=table, logged=logged)
    return table


def _metric_key(name: str) -> str:
    """An MLflow-safe metric name: ``als+prior.ndcg@10`` → ``als_prior.ndcg_at_10``."""
    return re.sub(r"[^\w\-. :/]", "_", name.replace("@", "_at_"))
