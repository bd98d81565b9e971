"""The stages that use trained models: the notebook's factor analyses, the validation fits the
ranking chooses its popularity prior's weight with, and the ranking metrics."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from omegaconf import DictConfig, OmegaConf

from movielens_als.atomic import dump_json, read_json
from movielens_als.errors import DataError
from movielens_als.pipeline.common import (
    fit_progress,
    publish,
    split_as_configured,
    stage_compute,
    stage_run,
)
from movielens_als.pipeline.layout import Layout
from movielens_als.progress import Progress
from movielens_als.tracking.mlflow_tracker import flatten_config

log = logging.getLogger(__name__)

CARVEOUT_FILE = "carveout.json"  # beside a validation fit's model: the carve-out it was fitted on


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


def carveout_settings(cfg: DictConfig) -> dict[str, Any]:
    """The settings the validation carve-out of train depends on, by config key."""
    return {
        "dataset.name": str(cfg.dataset.name),
        "split": OmegaConf.to_container(cfg.split, resolve=True),
        "ranking.val_fraction": float(cfg.ranking.val_fraction),
    }


def run_validation_fit(cfg: DictConfig) -> dict[str, Any]:
    """Refit the trained model ``validation_fit.model`` (its own hyper-parameters, read from the
    saved model) on train minus the validation carve-out, the data the ranking stage chooses
    that model's popularity-prior weight on, and save it. The trained model has seen the
    validation ratings, so it cannot choose the weight itself; a stage of its own fits this
    once per model, and the ranking can rerun (other K cut-offs, weights, samples) without."""
    from movielens_als.core.fit import fit
    from movielens_als.core.model import load_model, save_model
    from movielens_als.data.index import load_index

    layout = Layout.from_config(cfg)
    stage = str(cfg.validation_fit.model)
    output = f"{stage}_validation_fit"
    with (
        stage_run(
            cfg, "validation_fit", ["dataset", "split", "ranking", "validation_fit"], output=output
        ) as tracker,
        stage_compute(cfg) as compute,
    ):
        trained = load_model(layout.model_dir(stage) / "model")
        params = trained.params
        tracker.log_params({f"model.{k}": v for k, v in params.to_dict().items()})
        index = load_index(layout.index_dir)
        carveout, _ = split_as_configured(index, cfg, val_fraction=cfg.ranking.val_fraction)
        if carveout.val.nnz == 0:
            raise DataError(
                f"ranking.val_fraction={cfg.ranking.val_fraction}: the validation carve-out is "
                "empty, so no prior weight can be chosen on it"
            )

        def log_iteration(record) -> None:
            tracker.log_metrics(
                {
                    "nll": record.nll,
                    "train_rmse": record.train_rmse,
                    "val_rmse": record.eval_rmse["val"],
                    **record.extra,
                    "seconds": record.seconds,
                },
                step=record.iteration,
            )

        started = time.perf_counter()
        evals = {"val": carveout.val.to_ratings()}
        with fit_progress(params, then=log_iteration) as callback:
            result = fit(
                carveout.train,
                params,
                movie_genres=index.movie_genres if params.uses_genres else None,
                evals=evals,
                callback=callback,
                executor=compute.executor,
            )
        fit_seconds = time.perf_counter() - started
        last = result.history[-1]
        metrics = {"val_rmse": last.eval_rmse["val"], "train_rmse": last.train_rmse}
        if result.model.K != params.K:  # a model averaging several draws: score what was saved
            from movielens_als.core.model import rmse

            metrics["saved_model_val_rmse"] = rmse(result.model, evals["val"])
        fitted_on = {
            **carveout_settings(cfg),
            "n_train": int(carveout.train.nnz),
            "n_val": int(carveout.val.nnz),
        }
        details = {
            "model": stage,
            "params": params.to_dict(),
            "carveout": fitted_on,
            "iterations": len(result.history),
        }
        target = layout.outputs.validation_fit_dir(stage)

        def write_fit(folder) -> None:
            folder.mkdir(parents=True)
            save_model(result.model, folder / "model")
            dump_json(folder / CARVEOUT_FILE, fitted_on, name=target / CARVEOUT_FILE)

        publish(
            tracker,
            layout.outputs,
            output,
            metrics,
            details=details,
            timings={"fit_seconds": fit_seconds},
            writers={target: write_fit},
        )
    return {**metrics, **details}


def load_validation_fit(layout: Layout, stage: str, trained, cfg: DictConfig):
    """The validation fit of trained model ``stage`` and the carve-out it was fitted on (its
    ``carveout.json``); a DataError naming the first difference when it is missing or was
    fitted with other hyper-parameters than the trained model or on another carve-out than this
    run's settings give."""
    from movielens_als.core.model import load_model

    folder = layout.validation_fit_dir(stage)
    rerun = (
        f"run `python -m movielens_als.stages.validation_fit validation_fit.model={stage}` "
        "with this run's dataset, split.*, ranking.val_fraction and paths.* first "
        "(`dvc repro` does)"
    )
    if not (folder / CARVEOUT_FILE).is_file():
        raise DataError(
            f"{folder}: no validation fit of {stage!r} to choose its prior weight; {rerun}"
        )
    fitted = load_model(folder / "model")
    fitted_on = read_json(folder / CARVEOUT_FILE)
    trained_file = layout.model_dir(stage) / "model.json"
    checks = [
        (
            flatten_config({"params": trained.params.to_dict()}),
            trained_file,
            fitted.params.to_dict(),
            "params",
        ),
        (flatten_config(carveout_settings(cfg)), "this run", fitted_on, ""),
    ]
    for wanted, source, found, prefix in checks:
        found = flatten_config({prefix: found} if prefix else found)
        for key, value in wanted.items():
            if found.get(key) != value:
                raise DataError(
                    f"{folder}: fitted with {key}={found.get(key)!r}, but {source} has "
                    f"{value!r}; {rerun}"
                )
    return fitted, fitted_on


def check_carveout_counts(folder, fitted_on: dict[str, Any], carveout) -> None:
    """The fit's carve-out has the size of this run's (the same settings on other data do not)."""
    for part, matrix in (("train", carveout.train), ("val", carveout.val)):
        if fitted_on.get(f"n_{part}") != matrix.nnz:
            raise DataError(
                f"{folder}: fitted on a carve-out with {fitted_on.get(f'n_{part}')} {part} "
                f"ratings, but this run's has {matrix.nnz} (other data); rerun validation_fit"
            )


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

    with stage_run(cfg, "ranking", ["dataset", "split", "ranking"]) as tracker:
        split = load_split(layout.split_dir)
        log_counts = popularity_log_counts(split.train.by_user)
        models = {stage: load_model(layout.model_dir(stage) / "model") for stage in options.models}
        # every model's validation fit is checked before any work that needs it
        fits = (
            {
                stage: load_validation_fit(layout, stage, model, cfg)
                for stage, model in models.items()
            }
            if options.prior_weights
            else {}
        )
        tuning_split = None
        if fits:
            tuning_split, _ = split_as_configured(
                load_index(layout.index_dir), cfg, val_fraction=options.val_fraction
            )
        scorers: dict[str, Any] = {}
        priors: dict[str, Any] = {}
        for stage, model in models.items():
            scorers[stage] = model_scorer(model)
            if tuning_split is not None:
                fitted, fitted_on = fits[stage]
                check_carveout_counts(layout.validation_fit_dir(stage), fitted_on, tuning_split)
                log.info("%s: choosing its popularity prior's weight on validation", stage)
                weight, validation = choose_prior_weight(
                    fitted,
                    tuning_split.train,
                    sampled(tuning_split.val.to_ratings()),
                    list(options.prior_weights),
                    k=ks[-1],
                    threshold=float(options.threshold),
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
