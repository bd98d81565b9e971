"""The K grid: the tuned model trained for each number of factors K, then one report."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import numpy as np
from omegaconf import DictConfig

from movielens_als.atomic import write_json
from movielens_als.errors import DataError
from movielens_als.pipeline.common import (
    fit_progress,
    log_summary,
    numeric_metrics,
    publish,
    stage_compute,
    stage_run,
)
from movielens_als.pipeline.layout import Layout
from movielens_als.pipeline.sweep import load_best_params


def run_kgrid(cfg: DictConfig) -> dict[str, Any]:
    """Train the tuned model once per K (``kgrid.K``, or every K of ``kgrid.Ks``).

    Under ``compute=dask`` several Ks fit at once, one per worker, and a single K is one
    distributed fit; every K's result is the same either way."""
    from movielens_als.core.variant import model_params
    from movielens_als.data.split import load_split

    grid = cfg.kgrid
    Ks = [int(grid.K)] if grid.K is not None else [int(k) for k in grid.Ks]
    layout = Layout.from_config(cfg)
    tuned = load_best_params(layout, grid.search, model=str(grid.model))
    split = load_split(layout.split_dir)
    grid_params = [
        model_params({**tuned["params"], "K": K}).with_iterations(int(grid.iterations)) for K in Ks
    ]
    genres = None
    if any(params.uses_genres for params in grid_params):
        from movielens_als.data.index import load_index

        genres = load_index(layout.index_dir).movie_genres
    data = {"train": split.train, "movie_genres": genres, "test": split.test.to_ratings()}
    results: dict[str, Any] = {}
    with stage_compute(cfg) as compute:
        if compute.n_slots > 1 and len(Ks) > 1:
            fitted = compute.map_unordered(fit_at_k, grid_params, **data)
        else:
            fitted = (
                (params, fit_at_k(params, **data, executor=compute.executor, progress=True))
                for params in grid_params
            )
        for params, result in fitted:
            results[str(params.K)] = _record(cfg, layout, tuned, params, result)
    return {str(K): results[str(K)] for K in Ks}


def fit_at_k(params, *, train, movie_genres, test, executor=None, progress: bool = False):
    """One K's fit, scored on test after every iteration (a job of ``Compute.map_unordered``)."""
    from movielens_als.core.fit import fit

    with contextlib.ExitStack() as stack:
        callback = stack.enter_context(fit_progress(params)) if progress else None
        return fit(
            train,
            params,
            movie_genres=movie_genres,
            evals={"test": test},
            callback=callback,
            executor=executor,
        )


def _record(cfg: DictConfig, layout: Layout, tuned, params, result) -> dict[str, Any]:
    """One K's file, MLflow run (its curve logged per iteration) and summary line."""
    grid = cfg.kgrid
    K = params.K
    with stage_run(cfg, "kgrid", ["dataset", "split", "kgrid"], run_name=f"kgrid K={K}") as tracker:
        tracker.set_tags({"K": str(K), "search": tuned["search"]})
        tracker.log_metrics({"K": K})
        for record in result.history:
            tracker.log_metrics(
                {
                    "train_rmse": record.train_rmse,
                    "test_rmse": record.eval_rmse["test"],
                    "nll": record.nll,
                },
                step=record.iteration,
            )
        last = result.history[-1]
        entry = {
            "K": K,
            "train_rmse": float(last.train_rmse),
            "test_rmse": float(last.eval_rmse["test"]),
            "iterations": len(result.history),
            "model": str(grid.model),
            "params": params.to_dict(),
        }
        write_json(layout.outputs.kgrid_file(K), entry)
        tracker.log_params({f"model.{k}": v for k, v in params.to_dict().items()})
        # seconds go to MLflow only: the K file is a DVC output and must not change on rerun
        seconds = float(np.median([r.seconds for r in result.history]))
        tracker.log_metrics({**numeric_metrics(entry), "seconds_per_iteration": seconds})
        tracker.log_artifacts([layout.outputs.kgrid_file(K)])
        log_summary(
            f"kgrid K={K}",
            {key: entry[key] for key in ("test_rmse", "train_rmse")},
            [layout.outputs.kgrid_file(K)],
        )
    return entry


def run_kgrid_report(cfg: DictConfig) -> dict[str, Any]:
    """Collect every K's result into ``kgrid.json`` and draw RMSE against K."""
    from movielens_als.figures.tuning import rmse_vs_k_figure

    layout = Layout.from_config(cfg)
    with stage_run(cfg, "kgrid_report", ["dataset", "kgrid"]) as tracker:
        table: dict[str, Any] = {}
        for K in sorted(int(k) for k in cfg.kgrid.Ks):
            path = layout.kgrid_file(K)
            if not path.is_file():
                raise DataError(f"{path}: no result for K={K}; run the kgrid stage for it first")
            entry = json.loads(path.read_text())
            table[f"K{K}"] = {key: entry[key] for key in ("test_rmse", "train_rmse")}
        ks = np.array([int(k[1:]) for k in table])
        figure = rmse_vs_k_figure(
            ks,
            np.array([v["train_rmse"] for v in table.values()]),
            np.array([v["test_rmse"] for v in table.values()]),
            title=f"RMSE against K — {cfg.dataset.name} (tuned: {cfg.kgrid.search})",
        )
        # descriptive only: which K scored lowest on test (nothing is selected with it)
        lowest = min(table, key=lambda k: table[k]["test_rmse"])
        publish(
            tracker,
            layout.outputs,
            "kgrid",
            metric_rows=table,
            figures={"rmse_vs_K.pdf": figure},
            logged={
                "lowest_test_rmse_K": int(lowest[1:]),
                "lowest_test_rmse": table[lowest]["test_rmse"],
            },
        )
    return table
