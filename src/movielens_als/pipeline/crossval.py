"""The cross-validation stage: every model of ``crossval.models`` fitted on every fold of the
configured split, test RMSE reported as mean ± std over folds (what Surprise's
``cross_validate`` and LensKit's crossfold report). Folds: ``kfold`` — 0 … folds−1;
``predefined`` — ``crossval.predefined`` (ml-100k's u1…u5 by default); ``random``/``temporal`` —
the one configured split."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from omegaconf import DictConfig

from movielens_als.errors import ConfigError
from movielens_als.pipeline.common import (
    fit_progress,
    publish,
    split_as_configured,
    stage_compute,
    stage_run,
)
from movielens_als.pipeline.layout import Layout

log = logging.getLogger(__name__)


def folds_of(cfg: DictConfig) -> list[Any]:
    """The folds the configured split method defines (None: the single configured split)."""
    method = cfg.split.method
    if method == "kfold":
        return list(range(int(cfg.split.folds)))
    if method == "predefined":
        from movielens_als.data.registry import get_release

        names = list(cfg.crossval.predefined)
        shipped = get_release(cfg.dataset.name).predefined_splits
        if not shipped:
            raise ConfigError(
                f"split.method: predefined: {cfg.dataset.name} ships no predefined splits (ml-100k does)"
            )
        unknown = [n for n in names if n not in shipped]
        if unknown or not names:
            raise ConfigError(
                f"crossval.predefined: {unknown or names!r}: {cfg.dataset.name} ships {', '.join(shipped)}"
            )
        return names
    return [None]


def run_crossval(cfg: DictConfig) -> dict[str, Any]:
    from movielens_als.core.fit import fit
    from movielens_als.data.index import load_index
    from movielens_als.pipeline.train import model_settings

    layout = Layout.from_config(cfg)
    names = list(cfg.crossval.models)
    if not names:
        raise ConfigError("crossval.models: name at least one model (e.g. als)")
    missing = [n for n in names if n not in cfg.get("models", {})]
    if missing:
        raise ConfigError(
            f"crossval.models: {', '.join(missing)} not among the configured models "
            f"({', '.join(cfg.get('models', {}))})"
        )
    with (
        stage_run(cfg, "crossval", ["dataset", "split", "crossval"]) as tracker,
        stage_compute(cfg) as compute,
    ):
        params = {name: model_settings(cfg.models[name]) for name in names}
        data = load_index(layout.index_dir)
        folds = folds_of(cfg)
        rmse: dict[str, list[float]] = {name: [] for name in names}
        for position, fold in enumerate(folds):
            split, _ = split_as_configured(data, cfg, fold=fold)
            if split.test.nnz == 0:
                raise ConfigError(f"split: fold {fold!r} has an empty test set")
            test = split.test.to_ratings()
            for name in names:
                with fit_progress(params[name]) as callback:
                    result = fit(
                        split.train,
                        params[name],
                        movie_genres=data.movie_genres,
                        evals={"test": test},
                        callback=callback,
                        executor=compute.executor,
                    )
                value = float(result.history[-1].eval_rmse["test"])
                rmse[name].append(value)
                tracker.log_metrics({f"{name}.fold_rmse": value}, step=position)
                log.info(
                    "fold %d/%d (%s), %s: test_rmse=%.4f",
                    position + 1,
                    len(folds),
                    "the split" if fold is None else fold,
                    name,
                    value,
                )
        labels = ["split" if f is None else str(f) for f in folds]
        table = {
            "method": str(cfg.split.method),
            "folds": labels,
            "models": {
                name: {
                    "rmse_mean": float(np.mean(values)),
                    "rmse_std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                    "rmse": dict(zip(labels, values, strict=True)),
                }
                for name, values in rmse.items()
            },
        }
        logged = {
            f"{name}.{key}": row[key]
            for name, row in table["models"].items()
            for key in ("rmse_mean", "rmse_std")
        }
        # one metrics file per model (test RMSE mean over the folds, and its spread), so that
        # `dvc metrics show` puts them in the train stages' test_rmse column
        rows = {
            name: {"test_rmse": row["rmse_mean"], "test_rmse_std": row["rmse_std"]}
            for name, row in table["models"].items()
        }
        publish(tracker, layout.outputs, "crossval", metric_rows=rows, details=table, logged=logged)
    return table
