"""The sweep stage: tune on a validation carve-out of train, then retrain the best parameters
on train + validation and score them once on test."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from movielens_als.atomic import dump_json
from movielens_als.config.validate import validate
from movielens_als.errors import ConfigError, DataError
from movielens_als.pipeline.common import (
    fit_progress,
    publish,
    split_as_configured,
    stage_compute,
    stage_run,
    stage_view,
    with_model,
)
from movielens_als.pipeline.layout import Layout
from movielens_als.progress import Progress
from movielens_als.sparse import RatingMatrix, Ratings
from movielens_als.tracking.mlflow_tracker import open_tracker

log = logging.getLogger(__name__)

BEST_PARAMS = "best_params.json"
STUDY_DB = "optuna.db"


def sweep_view(cfg: DictConfig) -> DictConfig:
    """params.yaml holds every space under ``sweep.spaces`` (the DVC command names one) and
    every model under ``models`` (``sweep.model`` names the tuned one)."""
    cfg = with_model(stage_view(cfg, "sweep"))
    if "search" not in cfg:
        if "space" not in cfg or cfg.space not in cfg.spaces:
            known = ", ".join(cfg.get("spaces", {}))
            raise ConfigError(
                f"space: name the search space to run (one of {known}), e.g. +space=count"
            )
        if cfg.spaces[cfg.space].get("name") != cfg.space:
            raise ConfigError(
                f"sweep.spaces.{cfg.space}.name: must equal its key {cfg.space!r} (it names the output folder)"
            )
        with open_dict(cfg):
            cfg.search = cfg.spaces[cfg.space]
    return cfg


def load_best_params(layout: Layout, search: str, model: str) -> dict[str, Any]:
    """The sweep's result for ``model`` in one search space, or for ``best``: the space whose
    best trial has the lowest validation RMSE (a choice made on validation, never on test)."""
    if search == "best":
        paths = sorted((layout.tuning_root / model).glob(f"*/{BEST_PARAMS}"))
        if not paths:
            raise DataError(
                f"{layout.tuning_root / model}: no tuned parameters for {model} yet; run its sweep first "
                f"(dvc repro sweep, or python -m movielens_als.stages.sweep model={model})"
            )
        return min(
            (_read_best_params(path) for path in paths), key=lambda result: result["val_rmse"]
        )
    path = layout.tuning_dir(model, search) / BEST_PARAMS
    if not path.is_file():
        raise DataError(
            f"{path}: no tuned parameters for {model} in search space {search!r}; run the sweep first "
            f"(python -m movielens_als.stages.sweep model={model} search={search})"
        )
    return _read_best_params(path)


def _read_best_params(path) -> dict[str, Any]:
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); rerun the sweep") from exc
    missing = {"search", "val_rmse", "tuned_keys", "params"} - set(result)
    if missing:
        raise DataError(
            f"{path}: missing {', '.join(sorted(missing))}; written by an older version? rerun the sweep"
        )
    return result


def run_sweep(cfg: DictConfig) -> dict[str, Any]:
    import optuna

    from movielens_als.core.fit import fit
    from movielens_als.data.index import load_index
    from movielens_als.pipeline.train import model_settings
    from movielens_als.tuning.search import SearchSpace, make_pruner, run_study

    cfg = sweep_view(cfg)
    validate(cfg, "sweep")  # before anything is built from the config
    tuning = cfg.tuning
    tuned_model = str(cfg.model.name)
    base = model_settings(cfg.model).with_iterations(tuning.iterations)
    # the space's ranges, plus those the model adds for its own keys (the genre model's η)
    space_cfg = OmegaConf.to_container(cfg.search, resolve=True)
    extra = OmegaConf.to_container(cfg.model.get("tune") or DictConfig({}), resolve=True)
    space_cfg["params"] = {**(space_cfg.get("params") or {}), **extra}
    space = SearchSpace.from_mapping(space_cfg, params_type=type(base))
    layout = Layout.from_config(cfg)
    out_dir = layout.outputs.tuning_dir(tuned_model, space.name)
    metrics_name = f"sweep_{tuned_model}_{space.name}"  # reports/…/sweep_<model>_<space>
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    run_name = f"sweep {tuned_model} {space.name}"
    with (
        stage_run(
            cfg, "sweep", ["dataset", "split", "model", "search", "tuning"], run_name=run_name
        ) as parent,
        stage_compute(cfg) as compute,
    ):
        data = load_index(layout.index_dir)
        split, _ = split_as_configured(data, cfg, val_fraction=tuning.val_fraction)
        genres = data.movie_genres if base.uses_genres else None

        def track_trial(outcome) -> None:
            tags = {
                "stage": "sweep-trial",
                "dataset": str(cfg.dataset.name),
                "state": outcome.state,
                "trial": str(outcome.number),
                "search": space.name,
                "model": tuned_model,
            }
            with open_tracker(
                cfg, f"{run_name} #{outcome.number}", outcome.params, tags, nested=True
            ) as child:
                child.log_metric_series({"val_rmse": outcome.val_rmse})
                child.log_metrics({"seconds": outcome.seconds})

        out_dir.mkdir(parents=True, exist_ok=True)
        # What a trial's result depends on (a changed value starts a new study in the same file);
        # the trial count is not part of it, so raising tuning.n_trials extends the study.
        pruner_settings = {
            "min_resource": tuning.pruner_min_resource,
            "reduction_factor": tuning.pruner_reduction_factor,
            "startup_trials": tuning.pruner_startup_trials,
            "warmup_steps": tuning.pruner_warmup_steps,
        }
        settings = {
            "model": {**base.to_dict(), **dict(space.fixed)},
            "pruner": {"kind": tuning.pruner, **pruner_settings},
            "val_fraction": tuning.val_fraction,
            "seed": tuning.seed,
            "split": OmegaConf.to_container(cfg.split),
            "genres": genres is not None,
            "dataset": str(cfg.dataset.name),
        }
        study_name = f"{space.name}-{space.fingerprint(**settings)}"
        with Progress("trial", tuning.n_trials) as trial_progress:

            def on_trial(outcome) -> None:
                track_trial(outcome)
                trial_progress.update(outcome.n_finished, trial_text(outcome))

            study = run_study(
                split.train,
                split.val.to_ratings(),
                base,
                space,
                n_trials=tuning.n_trials,
                seed=tuning.seed,
                storage=f"sqlite:///{(out_dir / STUDY_DB).resolve()}",
                study_name=study_name,
                movie_genres=genres,
                pruner=make_pruner(tuning.pruner, **pruner_settings),
                on_trial=on_trial,
                compute=compute,
            )

        if not any(
            t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)
        ):
            raise DataError(
                f"{out_dir / STUDY_DB}: the sweep has no completed trial (all pruned or failed); "
                "raise tuning.n_trials, or prune less (tuning.pruner)"
            )
        best_params = base.replace(**dict(space.fixed), **study.best_params).with_iterations(
            tuning.final_iterations
        )
        best = best_params.to_dict()
        # The test set is used once: the best parameters refit on all of train (train ∪ val).
        full_train = _union(split.train, split.val)
        log.info(
            "best trial #%d (val_rmse=%.4f); refitting it on train + validation",
            study.best_trial.number,
            study.best_value,
        )
        with fit_progress(best_params) as callback:
            final = fit(
                full_train,
                best_params,
                movie_genres=genres,
                evals={"test": split.test.to_ratings()},
                callback=callback,
                executor=compute.executor,
            )
        trials = study.get_trials(deepcopy=False)
        states = [t.state for t in trials]
        metrics = {
            "val_rmse": float(study.best_value),
            "test_rmse": float(final.history[-1].eval_rmse["test"]),
            "train_rmse": float(final.history[-1].train_rmse),
            "n_trials": len(
                [
                    s
                    for s in states
                    if s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
                ]
            ),
        }
        details = {
            "model": tuned_model,
            "search": space.name,
            "study": study_name,
            "best_params": {key: best[key] for key in [*space.params, *space.fixed]},
            "n_pruned": states.count(optuna.trial.TrialState.PRUNED),
            "n_failed": states.count(optuna.trial.TrialState.FAIL),
            "final_iterations": tuning.final_iterations,
        }
        best_file = {
            "model": tuned_model,
            "search": space.name,
            "study": study_name,
            "storage": (layout.tuning_dir(tuned_model, space.name) / STUDY_DB).as_posix(),
            "val_rmse": float(study.best_value),
            "tuned_keys": [*space.params, *space.fixed],
            "params": best,
        }
        parent.log_params({f"best.{key}": value for key, value in details["best_params"].items()})
        publish(
            parent,
            layout.outputs,
            metrics_name,
            metrics,
            details=details,
            figures=_tuning_figures(study, space),
            writers={out_dir / BEST_PARAMS: lambda tmp: dump_json(tmp, best_file)},
            artifacts=[out_dir / BEST_PARAMS],
            logged={**metrics, "n_pruned": details["n_pruned"], "n_failed": details["n_failed"]},
        )
    return {**metrics, **details}


def trial_text(outcome) -> str:
    """One sweep trial as its progress line shows it (a ``TrialOutcome``): its number, its
    last validation RMSE, whether it was pruned, the best so far, its seconds."""
    value = f"val_rmse={outcome.val_rmse[-1]:.4f}" if outcome.val_rmse else "no val_rmse"
    state = outcome.state
    if state == "pruned":
        state = f"pruned at iteration {len(outcome.val_rmse)}"
    best = (
        "best: none yet"
        if outcome.best_value is None
        else f"best={outcome.best_value:.4f} (#{outcome.best_number})"
    )
    return f"#{outcome.number}  {value}  {state}  {best}  {outcome.seconds:.2f} s"


def _union(a: RatingMatrix, b: RatingMatrix) -> RatingMatrix:
    ra, rb = a.to_ratings(), b.to_ratings()
    merged = Ratings(
        np.concatenate([ra.user, rb.user]),
        np.concatenate([ra.item, rb.item]),
        np.concatenate([ra.rating, rb.rating]),
    )
    return RatingMatrix.from_ratings(merged, a.n_users, a.n_items)


def _tuning_figures(study, space) -> dict:
    import optuna

    from movielens_als.figures.tuning import importance_figure, optimisation_history_figure

    complete = [
        t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE
    ]
    numbers = np.array([t.number for t in complete])
    values = np.array([t.value for t in complete])
    figures = {
        "optimization_history.pdf": optimisation_history_figure(
            numbers, values, title=f"Sweep ({space.name} space)"
        )
    }
    if len(complete) >= 2 and len(space.params) >= 2:
        importances = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
        )
        figures["param_importances.pdf"] = importance_figure(
            importances, title=f"Hyper-parameter importance ({space.name})"
        )
    return figures
