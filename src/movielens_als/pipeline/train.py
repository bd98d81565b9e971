"""The train stage, one entry point for every model variant: fit the configured model on the
split, write the model, the per-sweep curve, the metrics JSON and the figures, and log it all
to MLflow. Which variant fits it, and whether it needs the genres, the model's parameters say.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from movielens_als.errors import DataError
from movielens_als.pipeline.common import (
    fit_progress,
    publish,
    stage_compute,
    stage_run,
    stage_view,
    with_model,
)
from movielens_als.pipeline.layout import Layout
from movielens_als.pipeline.sweep import load_best_params


def model_settings(model_cfg: DictConfig, tuned: dict[str, Any] | None = None):
    """Typed parameters of a ``model`` config section (keys as in conf/model/*.yaml), with the
    keys a sweep tuned taken from its result when ``tuned`` is given."""
    from movielens_als.core.variant import model_params

    values = OmegaConf.to_container(model_cfg, resolve=True)
    if tuned is not None:
        values.update({key: tuned["params"][key] for key in tuned["tuned_keys"]})
    return model_params(values)


def run_training(cfg: DictConfig) -> dict[str, Any]:
    """Fit the configured model on train, score every sweep on test (and validation)."""
    from movielens_als.core.fit import fit
    from movielens_als.core.model import save_model
    from movielens_als.core.variant import variant_of
    from movielens_als.data.split import load_split

    cfg = with_model(stage_view(cfg, "train"))
    layout = Layout.from_config(cfg)
    name = str(cfg.model.name)
    tuned_space = cfg.get("tuned")
    # A model trained with a sweep's parameters is written under its own name (<name>_tuned).
    output = f"{name}_tuned" if tuned_space else name
    with stage_run(cfg, "train", ["dataset", "split", "tuned"], output=output) as tracker:
        tuned = load_best_params(layout, tuned_space, model=name) if tuned_space else None
        params = model_settings(cfg.model, tuned)
        variant = variant_of(params)
        # what the fitted model actually uses (a tuned run's values come from the sweep)
        tracker.log_params(
            {"model.name": name, **{f"model.{k}": v for k, v in params.to_dict().items()}}
        )
        tracker.set_tags(run_tags(output, params, tuned))
        split = load_split(layout.split_dir)
        index = None
        if params.uses_genres:
            from movielens_als.data.index import load_index

            index = load_index(layout.index_dir)
        if split.test.nnz == 0:
            raise DataError(
                f"{layout.split_dir}: the test set is empty, so nothing can be scored; "
                "change split.* (or the release has too few ratings)"
            )
        evals = {"test": split.test.to_ratings()}
        if split.val.nnz:
            evals["val"] = split.val.to_ratings()

        rows: list[dict[str, float]] = []
        seconds: list[float] = []

        def record_iteration(record) -> None:
            row = {
                "iteration": record.iteration,
                "nll": record.nll,
                "train_rmse": record.train_rmse,
            }
            row.update({f"{key}_rmse": value for key, value in record.eval_rmse.items()})
            row.update(record.extra)
            rows.append(row)
            seconds.append(record.seconds)
            tracker.log_metrics(
                {**{k: v for k, v in row.items() if k != "iteration"}, "seconds": record.seconds},
                step=record.iteration,
            )

        started = time.perf_counter()
        with stage_compute(cfg) as compute, fit_progress(params, then=record_iteration) as callback:
            result = fit(
                split.train,
                params,
                movie_genres=None if index is None else index.movie_genres,
                evals=evals,
                callback=callback,
                executor=compute.executor,
            )
        fit_seconds = time.perf_counter() - started

        # the curve holds quality only: per-iteration seconds differ on every run (MLflow has them)
        curve = pd.DataFrame(rows)
        last = rows[-1]
        metrics: dict[str, float] = {
            "test_rmse": last["test_rmse"],
            "train_rmse": last["train_rmse"],
        }
        if "val_rmse" in last:
            metrics["val_rmse"] = last["val_rmse"]
        if result.model.K != params.K:  # a model averaging several draws: score what was saved
            from movielens_als.core.model import rmse

            metrics["saved_model_test_rmse"] = rmse(result.model, evals["test"])
        details: dict[str, Any] = {
            "model": {"name": name, **params.to_dict()},
            **({"tuned": _tuned_source(tuned)} if tuned else {}),
            "nll": last["nll"],
            "iterations": len(rows),
            "n_train": int(split.train.nnz),
            "n_test": int(split.test.nnz),
            "eval_coverage": result.eval_coverage,
        }
        title = f"{cfg.model.get('title', name)} — {cfg.dataset.name}"
        figures = {
            str(cfg.model.get("figure", f"{name}_convergence.pdf")): _convergence_figure(
                curve, title, variant.step_label, variant.objective_label
            )
        }
        if result.model.genre_factors is not None:
            genre_figures, genre_stats = _genre_outputs(
                result.model.genre_factors, index.genre_names
            )
            figures.update(genre_figures)
            details["genres"] = genre_stats

        def write_model(folder) -> None:
            folder.mkdir(parents=True)
            save_model(result.model, folder / "model")

        # the model, its curve, figures, metrics and details appear together (write all, rename all)
        publish(
            tracker,
            layout.outputs,
            output,
            metrics,
            details=details,
            timings={
                "fit_seconds": fit_seconds,
                "seconds_per_iteration": float(np.median(seconds)),
            },
            figures=figures,
            curve=curve,
            writers={layout.outputs.model_dir(output): write_model},
            # per-iteration keys already hold their final value as their last step
            logged={k: v for k, v in metrics.items() if k not in curve.columns},
        )
        from movielens_als.api import Recommender
        from movielens_als.data.index import load_index

        # MLflow gets the model as a pyfunc on raw ids (the index's maps) and the resolved config
        if tracker.active:  # (the index is read for its id maps only when there is a run)
            index = index or load_index(layout.index_dir)
            tracker.log_model(Recommender.from_index(result.model, index, split.train, name=output))
            tracker.log_config(cfg)
    return {**metrics, **details}


def run_tags(output: str, params, tuned: dict[str, Any] | None) -> dict[str, str]:
    """The run's name in the MLflow UI (``als K=32``) and, for a tuned model, where its values
    came from."""
    tags = {"mlflow.runName": f"{output} K={params.K}"}
    if tuned:
        source = _tuned_source(tuned)
        tags.update({f"tuned.{key}": str(value) for key, value in source.items()})
    return tags


def _tuned_source(tuned: dict[str, Any]) -> dict[str, Any]:
    """Which sweep a tuned model's values came from: its search space, Optuna study and store,
    and the validation RMSE it was chosen by."""
    return {
        "search": tuned["search"],
        "study": tuned.get("study"),
        "storage": tuned.get("storage"),
        "val_rmse": tuned["val_rmse"],
        "keys": ",".join(tuned["tuned_keys"]),
    }


def _convergence_figure(curve: pd.DataFrame, title: str, step: str, objective: str):
    from movielens_als.figures.convergence import convergence_figure

    return convergence_figure(curve, title, step=step, objective=objective)


def _genre_outputs(genre_factors, genre_names):
    from movielens_als.analysis.genre import analyse_genres, genre_summary
    from movielens_als.figures.genre import genre_figures

    genres = analyse_genres(genre_factors, genre_names)
    return genre_figures(genres), genre_summary(genres)
