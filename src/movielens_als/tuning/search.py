"""Tune a model's hyper-parameters on a validation set with Optuna's TPE sampler.

The search sees only the train ratings (minus validation) and the validation ratings: the
test set is not an argument of anything here, so it cannot leak into model selection.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from movielens_als.compute import LOCAL_COMPUTE, Compute
from movielens_als.core.fit import IterationRecord, fit
from movielens_als.core.variant import VariantParams, model_params
from movielens_als.errors import ConfigError
from movielens_als.sparse import CSR, RatingMatrix, Ratings

log = logging.getLogger(__name__)

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@dataclass(frozen=True)
class SearchSpace:
    """Model keys held ``fixed`` and model keys sampled from ``params`` ranges."""

    name: str
    fixed: Mapping[str, Any]
    params: Mapping[str, Mapping[str, Any]]

    @classmethod
    def from_mapping(
        cls, space: Mapping[str, Any], where: str = "search", *, params_type: type[VariantParams]
    ) -> SearchSpace:
        """Check the space against the tuned model's parameters (``params_type``)."""
        known = set(params_type.__dataclass_fields__)
        fixed = dict(space.get("fixed") or {})
        params = {key: dict(value) for key, value in (space.get("params") or {}).items()}
        if not params:
            raise ConfigError(f"{where}.params: the search space samples no parameter")
        for key in [*fixed, *params]:
            if key not in known:
                raise ConfigError(
                    f"{where}: {key!r} is not a key of the {params_type.variant} model ({', '.join(sorted(known))})"
                )
        for key, bounds in params.items():
            low, high = bounds.get("low"), bounds.get("high")
            if (
                not isinstance(low, int | float)
                or not isinstance(high, int | float)
                or not low < high
            ):
                raise ConfigError(
                    f"{where}.params.{key}: needs numbers low < high, got {low!r}, {high!r}"
                )
            if bounds.get("log", False) and low <= 0:
                raise ConfigError(
                    f"{where}.params.{key}: a log-uniform range needs low > 0, got {low!r}"
                )
        return cls(str(space.get("name", "search")), fixed, params)

    def suggest(self, trial: optuna.Trial) -> dict[str, float]:
        return {
            key: trial.suggest_float(
                key, float(b["low"]), float(b["high"]), log=bool(b.get("log", False))
            )
            for key, b in self.params.items()
        }

    def fingerprint(self, **settings: Any) -> str:
        """A short hash of the space and the settings a study's results depend on."""
        blob = json.dumps(
            {"fixed": dict(self.fixed), "params": dict(self.params), **settings},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class TrialOutcome:
    """One trial as the caller sees it (for tracking and progress): params, per-iteration val
    RMSE, state, and where the study stands with it: ``n_finished`` trials finished (complete
    or pruned, this one included, earlier runs' too) and the best complete trial so far
    (``best_value``, ``best_number``; None while there is none)."""

    number: int
    params: dict[str, Any]
    val_rmse: list[float] = field(default_factory=list)
    seconds: float = 0.0
    state: str = "running"
    n_finished: int = 0
    best_value: float | None = None
    best_number: int | None = None


PRUNERS = ("successive_halving", "median", "none")


def make_pruner(
    kind: str,
    *,
    min_resource: int = 2,
    reduction_factor: int = 3,
    startup_trials: int = 5,
    warmup_steps: int = 3,
) -> optuna.pruners.BasePruner | None:
    """The pruner ``tuning.pruner`` names, on the per-iteration validation RMSE.

    ``successive_halving`` (asynchronous successive halving, Li et al. 2020): every trial
    runs ``min_resource`` iterations; at min_resource·rf^k iterations only the best 1/rf of
    the trials that got there go on (rf = ``reduction_factor``), so most trials cost a few
    iterations and the promising ones run to the end. ``median``: stop a trial whose value
    trails the median of earlier trials at the same iteration, after ``startup_trials``
    complete trials and ``warmup_steps`` iterations. ``none``: every trial runs to the end.
    """
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=min_resource, reduction_factor=reduction_factor
        )
    if kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials, n_warmup_steps=warmup_steps
        )
    if kind == "none":
        return None
    raise ConfigError(f"tuning.pruner: must be one of {', '.join(PRUNERS)}; got {kind!r}")


@dataclass(frozen=True)
class TrialJob:
    """What runs one trial, here or on a Dask worker: where its study lives (a storage URL,
    or the name of the ``DaskStorage`` the scheduler hosts), the trial, its full model
    parameters and the pruner."""

    study_name: str
    storage: str
    dask_storage: str | None
    trial_id: int
    number: int
    params: dict[str, Any]
    pruner: optuna.pruners.BasePruner
    report_steps: tuple[int, ...]  # the iterations whose validation RMSE the pruner is given
    run: str  # one run_study call: a process opens the study once per run


def run_trial(
    job: TrialJob, *, train: RatingMatrix, val: Ratings, movie_genres: CSR | None
) -> TrialOutcome:
    """One trial's fit; its validation RMSE goes to the study after every iteration, where
    the pruner compares it with the other trials' (pruning works across workers alike)."""
    study = _study_of(job.study_name, job.storage, job.dask_storage, job.run)
    study.pruner = job.pruner
    trial = optuna.trial.Trial(study, job.trial_id)
    outcome = TrialOutcome(job.number, job.params)
    started = time.perf_counter()

    def report(record: IterationRecord) -> None:
        value = record.eval_rmse["val"]
        outcome.val_rmse.append(value)
        if record.iteration not in job.report_steps:
            return
        trial.report(value, record.iteration)
        if trial.should_prune():
            raise optuna.TrialPruned(f"validation RMSE {value:.4f} at iteration {record.iteration}")

    try:
        fit(
            train,
            model_params(job.params),
            movie_genres=movie_genres,
            evals={"val": val},
            callback=report,
        )
        outcome.state = "complete"
    except optuna.TrialPruned:
        outcome.state = "pruned"
    outcome.seconds = time.perf_counter() - started
    return outcome


def run_study(
    train: RatingMatrix,
    val: Ratings,
    base: VariantParams,
    space: SearchSpace,
    *,
    n_trials: int,
    seed: int,
    storage: str,
    study_name: str,
    movie_genres: CSR | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    on_trial: Callable[[TrialOutcome], None] | None = None,
    compute: Compute = LOCAL_COMPUTE,
) -> optuna.Study:
    """Minimise validation RMSE over ``space``; resume the stored study when it exists.

    ``pruner`` sees every trial's validation RMSE after each iteration (``make_pruner``;
    None: every trial runs to the end). Trials left running by an interrupted run are marked
    failed and do not count; finished and pruned ones do, so a rerun only adds the trials
    still missing. Trials are asked for and told on this process (TPE samples here) and run
    where ``compute`` runs fits: one at a time locally, one per worker on Dask, where the study
    is reached through the scheduler (``optuna_integration.DaskStorage`` over the same
    ``storage``). Returns the study as ``storage`` holds it.
    """
    pruner = pruner or optuna.pruners.NopPruner()
    shared_storage = storage if compute.client is None else dask_storage(compute.client, storage)
    hosted = None if compute.client is None else shared_storage.name
    # an existing study is loaded, not created with load_if_exists: through DaskStorage the
    # scheduler logs the DuplicatedStudyError that load_if_exists catches as an error
    sampler = optuna.samplers.TPESampler(seed=seed)
    if study_name in optuna.get_all_study_names(shared_storage):
        study = optuna.load_study(
            study_name=study_name, storage=shared_storage, sampler=sampler, pruner=pruner
        )
    else:
        study = optuna.create_study(
            storage=shared_storage,
            study_name=study_name,
            direction="minimize",
            sampler=sampler,
            pruner=pruner,
        )
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL)
    # A resumed study continues from a seed of its own, so its next trials do not replay the
    # random start-up draws of the first run. With trials running at once, TPE treats the
    # running ones as poor (constant liar) so that concurrent asks do not pile onto one point.
    study.sampler = optuna.samplers.TPESampler(
        seed=seed + len(study.trials), constant_liar=compute.n_slots > 1
    )
    remaining = n_trials - len(study.get_trials(deepcopy=False, states=FINISHED))
    if remaining < n_trials:
        log.info(
            "study %s: %d of %d trials finished in earlier runs; %d to run",
            study_name,
            n_trials - remaining,
            n_trials,
            max(remaining, 0),
        )
    asked: set[int] = set()
    steps = report_steps(pruner, base.n_iterations)
    run = uuid.uuid4().hex

    def jobs():
        for _ in range(remaining):
            trial = study.ask()
            params = {**base.to_dict(), **dict(space.fixed), **space.suggest(trial)}
            asked.add(trial.number)
            yield TrialJob(
                study_name,
                storage,
                hosted,
                trial._trial_id,
                trial.number,
                params,
                pruner,
                steps,
                run,
            )

    try:
        for job, outcome in compute.map_unordered(
            run_trial, jobs(), train=train, val=val, movie_genres=movie_genres
        ):
            if outcome.state == "complete":
                study.tell(job.number, outcome.val_rmse[-1])
            else:
                study.tell(job.number, state=optuna.trial.TrialState.PRUNED)
            asked.discard(job.number)
            if on_trial is not None:
                _place_in_study(outcome, study)
                on_trial(outcome)
    except BaseException:
        # a failed fit (or an interrupt) ends the sweep; its unfinished trials do not count
        for number in sorted(asked):
            study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        raise
    if compute.client is None:
        return study
    return optuna.load_study(study_name=study_name, storage=storage)


def report_steps(pruner: optuna.pruners.BasePruner, n_iterations: int) -> tuple[int, ...]:
    """The iterations at which a trial reports to the study and asks ``pruner``.

    Each report and question is a round of storage writes and reads (tens of milliseconds on
    SQLite, and through the scheduler on Dask, for a fit of a few hundred), so a trial asks
    only where the pruner can decide: successive halving at its rungs (min_resource·rf^k; it
    decides nothing in between, so its decisions are unchanged), never without a pruner, and
    every iteration otherwise (the median rule compares trials at every step)."""
    every = tuple(range(1, n_iterations + 1))
    if isinstance(pruner, optuna.pruners.NopPruner):
        return ()
    if isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner):
        step = getattr(pruner, "_min_resource", None)
        factor = getattr(pruner, "_reduction_factor", None)
        rate = getattr(pruner, "_min_early_stopping_rate", None)
        if not isinstance(step, int) or not isinstance(factor, int) or rate is None:
            return every  # "auto" min_resource, or another Optuna version: ask at every step
        step *= factor**rate
        rungs = []
        while step <= n_iterations:
            rungs.append(step)
            step *= factor
        return tuple(rungs)
    return every


@functools.lru_cache(maxsize=2)
def _study_of(study_name: str, storage: str, hosted: str | None, run: str) -> optuna.Study:
    """The study a run's trials report to, opened once per run and process (opening an RDB
    storage checks its schema, ~0.1 s; through the scheduler it is several round trips)."""
    source = storage if hosted is None else dask_storage(None, hosted)
    return optuna.load_study(study_name=study_name, storage=source)


def dask_storage(client, storage: str):
    """``storage`` hosted by the Dask scheduler, which every worker reaches (the scheduler's
    machine must see the file of a ``sqlite:///`` URL: the same machine or a shared folder).
    Without ``client`` (on a worker): the hosted storage named ``storage``."""
    import warnings

    from optuna_integration import DaskStorage

    with warnings.catch_warnings():  # experimental since Optuna 3.1; it works as documented
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if client is None:
            return DaskStorage(name=storage, register=False)
        return DaskStorage(storage=storage, client=client)


def _place_in_study(outcome: TrialOutcome, study: optuna.Study) -> None:
    """Fill in ``outcome``'s count of finished trials and the best so far (it is told)."""
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    complete = [
        (t.value, t.number) for t in finished if t.state == optuna.trial.TrialState.COMPLETE
    ]
    outcome.n_finished = len(finished)
    if complete:
        outcome.best_value, outcome.best_number = min(complete)
