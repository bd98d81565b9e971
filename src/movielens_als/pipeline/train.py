"""The training stages (bias → als → genre_als): fit on the split, write the model, the
per-iteration curve, the metrics JSON and the figures, and log it all to MLflow."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from movielens_als.atomic import atomic_path, write_json
from movielens_als.pipeline.common import numeric_metrics, save_figures, stage_run, stage_view
from movielens_als.pipeline.layout import Layout
from movielens_als.pipeline.sweep import load_best_params

CONVERGENCE_FIGURES = {
    "bias": ("bias_only_convergence.pdf", "Bias-only ALS"),
    "als": ("all_latent_factors_convergence.pdf", "ALS with biases and latent factors"),
    "genre_als": ("genre_integration_convergence.pdf", "ALS with genre priors"),
}


def als_params(model_cfg: DictConfig, tuned: dict[str, Any] | None = None):
    """``ALSParams`` from a ``model`` config section (keys named as in conf/model/*.yaml),
    with the keys a sweep tuned taken from its result when ``tuned`` is given."""
    from movielens_als.core.model import ALSParams

    values = OmegaConf.to_container(model_cfg, resolve=True)
    if tuned is not None:
        values.update({key: tuned["params"][key] for key in tuned["tuned_keys"]})
    return ALSParams.from_mapping(values)


def run_training(cfg: DictConfig, stage: str) -> dict[str, Any]:
    """Fit the stage's model on train, score every iteration on test (and validation)."""
    from movielens_als.core.fit import fit
    from movielens_als.core.model import save_model
    from movielens_als.data.split import load_split

    cfg = stage_view(cfg, stage)
    layout = Layout.from_config(cfg)
    tuned_space = cfg.get("tuned")
    # A model trained with a sweep's parameters is written under its own name (<stage>_tuned).
    output = f"{stage}_tuned" if tuned_space else stage
    with stage_run(cfg, stage, ["dataset", "split", "model", "tuned"], run_name=output) as tracker:
        tuned = load_best_params(layout, tuned_space, model=stage) if tuned_space else None
        params = als_params(cfg.model, tuned)
        split = load_split(layout.split_dir)
        movie_genres, genre_names = None, None
        if stage == "genre_als":
            from movielens_als.data.index import load_index

            index = load_index(layout.index_dir)
            movie_genres, genre_names = index.movie_genres, index.genre_names
        evals = {"test": split.test.to_ratings()}
        if split.val.nnz:
            evals["val"] = split.val.to_ratings()

        rows: list[dict[str, float]] = []

        def record_iteration(record) -> None:
            row = {"iteration": record.iteration, "nll": record.nll, "train_rmse": record.train_rmse}
            row.update({f"{name}_rmse": value for name, value in record.eval_rmse.items()})
            row["seconds"] = record.seconds
            rows.append(row)
            tracker.log_metrics({k: v for k, v in row.items() if k != "iteration"}, step=record.iteration)

        started = time.perf_counter()
        result = fit(split.train, params, movie_genres=movie_genres, evals=evals, callback=record_iteration)
        fit_seconds = time.perf_counter() - started

        curve = pd.DataFrame(rows)
        with atomic_path(layout.outputs.curve_file(output)) as tmp:
            curve.to_csv(tmp, index=False)
        with atomic_path(layout.outputs.model_dir(output)) as tmp:
            tmp.mkdir(parents=True)
            save_model(result.model, tmp / "model")

        last = rows[-1]
        metrics: dict[str, Any] = {
            "train_rmse": last["train_rmse"],
            "test_rmse": last.get("test_rmse"),
            **({"val_rmse": last["val_rmse"]} if "val_rmse" in last else {}),
            "nll": last["nll"],
            "iterations": len(rows),
            "seconds_per_iteration": float(curve["seconds"].median()),
            "fit_seconds": fit_seconds,
            "n_train": int(split.train.nnz),
            "n_test": int(split.test.nnz),
            "eval_coverage": result.eval_coverage,
            "model": params.to_dict(),
            **({"tuned": {"search": tuned["search"], "val_rmse": tuned["val_rmse"]}} if tuned else {}),
        }
        file_name, title = CONVERGENCE_FIGURES[stage]
        figures = {file_name: _convergence_figure(curve, f"{title} — {cfg.dataset.name}")}
        if stage == "genre_als":
            genre_figures, genre_stats = _genre_outputs(result.model.genre_factors, genre_names)
            figures.update(genre_figures)
            metrics["genres"] = genre_stats
        figure_paths = save_figures(figures, layout.outputs.figures_dir(output))
        write_json(layout.outputs.metrics_file(output), metrics)

        # Per-iteration keys already hold their final value as the last step.
        tracker.log_metrics({k: v for k, v in numeric_metrics(metrics).items() if k not in curve.columns})
        tracker.log_artifacts([layout.outputs.metrics_file(output), layout.outputs.curve_file(output), *figure_paths])
    return metrics


def _convergence_figure(curve: pd.DataFrame, title: str):
    from movielens_als.figures.convergence import convergence_figure

    return convergence_figure(curve, title)


def _genre_outputs(genre_factors, genre_names):
    from movielens_als.analysis.genre import analyse_genres, genre_summary
    from movielens_als.figures.genre import genre_figures

    genres = analyse_genres(genre_factors, genre_names)
    return genre_figures(genres), genre_summary(genres)
