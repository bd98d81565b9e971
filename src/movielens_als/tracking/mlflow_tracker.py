"""One MLflow run per stage execution.

The tracker is opened *before* any expensive work, so an unreachable tracking server fails
the stage at once with one clear message instead of crashing after training.
"""

from __future__ import annotations

import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from movielens_als.atomic import process_alive, stops_deferred
from movielens_als.errors import ConfigError, MovieLensError


class TrackingError(MovieLensError):
    """The tracking store cannot be reached or written."""


class NullTracker:
    """Stands in when tracking is disabled: every call is accepted and ignored."""

    run_id: str | None = None
    active = False  # whether calls reach a run (callers skip work whose result only MLflow uses)

    def __enter__(self) -> NullTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        return None

    def log_metric_series(self, series: Mapping[str, Sequence[float]], first_step: int = 1) -> None:
        return None

    def log_artifacts(self, paths: Iterable[str | Path], root: str | Path | None = None) -> None:
        return None

    def set_tags(self, tags: Mapping[str, str]) -> None:
        return None

    def log_model(self, recommender: Any) -> None:
        return None

    def log_config(self, cfg: DictConfig) -> None:
        return None


class StageTracker(NullTracker):
    """An MLflow run for one stage: params, tags, per-iteration metrics and artifacts."""

    active = True

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        artifact_root: str | Path | None = None,
        timeout_s: float = 10.0,
        nested: bool = False,
        label: str | None = None,
    ) -> None:
        """``label`` (a multirun job's number and swept values) follows the run's name."""
        self.uri = uri
        self.experiment = experiment
        self.label = label
        self.run_name = self._named(run_name)
        self.params = dict(params)
        self.tags = dict(tags)
        self.artifact_root = artifact_root
        self.timeout_s = timeout_s
        self.nested = nested
        self.run_id = None
        self._run = None

    def __enter__(self) -> StageTracker:
        import mlflow

        check_reachable(self.uri, self.timeout_s)
        mlflow.set_tracking_uri(self.uri)
        experiment_id = ensure_experiment(self.uri, self.experiment, self.artifact_root)
        if not self.nested:
            mark_orphaned_runs(self.uri, experiment_id)
        tags = {**self.tags, HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
        self._run = mlflow.start_run(
            experiment_id=experiment_id, run_name=self.run_name, tags=tags, nested=self.nested
        )
        self.run_id = self._run.info.run_id
        _log_params(self.params)
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        import mlflow

        status = "FINISHED" if exc_type is None else "FAILED"
        try:
            mlflow.end_run(status=status)
        except Exception:
            if exc_type is None:
                raise
            # unwinding from an error or an interrupt that may have left the fluent session
            # unusable: close the run through a fresh client (a run still left RUNNING is
            # marked KILLED by the next run, see mark_orphaned_runs)
            try:
                from mlflow.tracking import MlflowClient

                MlflowClient(self.uri).set_terminated(self.run_id, status=status)
            except Exception:
                pass

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import mlflow

        values = {k: float(v) for k, v in metrics.items() if v is not None}
        with stops_deferred():  # a store write is not cut in half by Ctrl-C or SIGTERM
            mlflow.log_metrics(values, step=step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params known only once the run is open (e.g. a tuned model's values). A key the
        run logged already must keep its value (MLflow params are immutable)."""
        _log_params(params)

    def log_metric_series(self, series: Mapping[str, Sequence[float]], first_step: int = 1) -> None:
        """Log whole per-step series in one request (one store commit, not one per step)."""
        import mlflow
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, step)
            for key, values in series.items()
            for step, value in enumerate(values, start=first_step)
        ]
        with stops_deferred():
            mlflow.tracking.MlflowClient(self.uri).log_batch(self.run_id, metrics=metrics)

    def log_artifacts(self, paths: Iterable[str | Path], root: str | Path | None = None) -> None:
        """Log files and folders; under ``root`` they keep their folders relative to it
        (``metrics/als.json``, ``details/als.json``, ``figures/als/….png``), else they go to
        the top (a folder as its name)."""
        import mlflow

        for path in paths:
            path = Path(path)
            folder = None
            if root is not None and path.is_relative_to(root):
                relative = path.relative_to(root)
                folder = relative.parent.as_posix() if relative.parent != Path() else None
            if path.is_dir():
                name = path.name if folder is None else f"{folder}/{path.name}"
                mlflow.log_artifacts(str(path), artifact_path=name)
            elif path.is_file():
                mlflow.log_artifact(str(path), artifact_path=folder)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        import mlflow

        tags = dict(tags)
        if RUN_NAME_TAG in tags:
            tags[RUN_NAME_TAG] = self._named(tags[RUN_NAME_TAG])
        with stops_deferred():
            mlflow.set_tags(tags)

    def _named(self, name: str) -> str:
        return f"{name} {self.label}" if self.label else name

    def log_model(self, recommender: Any) -> None:
        """``recommender`` (an ``api.Recommender``) as the pyfunc model ``model`` of this run,
        loadable as ``runs:/<run_id>/model``."""
        from movielens_als.tracking.pyfunc import log_recommender

        log_recommender(recommender, name=MODEL_NAME)

    def log_config(self, cfg: DictConfig) -> None:
        """The config the stage ran with, interpolations resolved, as ``config.yaml``."""
        import mlflow

        mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), CONFIG_ARTIFACT)


MODEL_NAME = "model"  # runs:/<run_id>/model
CONFIG_ARTIFACT = "config.yaml"
HOST_TAG = "movielens_als.host"
RUN_NAME_TAG = "mlflow.runName"  # setting it renames the run in the UI
PID_TAG = "movielens_als.pid"


def mark_orphaned_runs(uri: str, experiment_id: str) -> list[str]:
    """Runs left RUNNING by a process of this host that no longer exists (a SIGKILL, a power
    cut) are marked KILLED; a live process's runs are left alone. Returns their ids."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    host = socket.gethostname()
    orphans = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'"):
        pid = run.data.tags.get(PID_TAG, "")
        if run.data.tags.get(HOST_TAG) != host or not pid.isdigit() or process_alive(int(pid)):
            continue
        client.set_terminated(run.info.run_id, status="KILLED")
        orphans.append(run.info.run_id)
    return orphans


def tracking_uri(cfg: DictConfig) -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else ``tracking.uri`` from the config."""
    return os.environ.get("MLFLOW_TRACKING_URI") or str(cfg.tracking.uri)


def open_tracker(
    cfg: DictConfig,
    stage: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    nested: bool = False,
) -> NullTracker:
    """The tracker a stage logs to: a StageTracker, or a NullTracker when disabled."""
    if not cfg.tracking.enabled:
        return NullTracker()
    uri = tracking_uri(cfg)
    return StageTracker(
        uri=uri,
        experiment=experiment_name(cfg),
        run_name=stage,
        params=params,
        tags=tags,
        artifact_root=_artifact_root(uri, cfg),
        timeout_s=float(cfg.tracking.timeout_s),
        nested=nested,
        label=cfg.tracking.get("run_label"),
    )


def prepare_store(cfg: DictConfig) -> str:
    """Check the store answers and create the dataset's experiment; returns its id."""
    uri = tracking_uri(cfg)
    check_reachable(uri, float(cfg.tracking.timeout_s))
    return ensure_experiment(uri, experiment_name(cfg), _artifact_root(uri, cfg))


def experiment_name(cfg: DictConfig) -> str:
    """One experiment per dataset, so the UI compares runs on the same data."""
    return f"{cfg.tracking.experiment_prefix}/{cfg.dataset.name}"


def _artifact_root(uri: str, cfg: DictConfig) -> str | None:
    """Embedded stores keep artifacts under ``tracking.artifact_root``; servers decide."""
    return (
        None
        if uri.startswith(("http://", "https://", "databricks"))
        else str(cfg.tracking.artifact_root)
    )


def check_reachable(uri: str, timeout_s: float) -> None:
    """Fail fast, before any training, when a tracking server does not answer."""
    if uri.startswith(("http://", "https://")):
        health = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(health, timeout=timeout_s) as response:
                response.read()
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise TrackingError(
                f"MLflow tracking server {uri} is unreachable ({exc}); start it, point "
                "MLFLOW_TRACKING_URI elsewhere, or run with tracking.enabled=false"
            ) from exc
    elif uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.parent.exists():
            raise TrackingError(f"tracking.uri: folder of the SQLite store {db} does not exist")
    elif not uri.startswith(("file:", "databricks", "postgresql", "mysql", "mssql")):
        if "://" in uri:
            raise ConfigError(f"tracking.uri: unsupported MLflow tracking URI {uri!r}")


def ensure_experiment(uri: str, name: str, artifact_root: str | Path | None) -> str:
    """Create the experiment once (artifacts under ``artifact_root`` for embedded stores)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if artifact_root is not None:
        location = (Path(artifact_root).resolve() / name.replace("/", "_")).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # another job created it concurrently (multirun)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def flatten_config(
    cfg: DictConfig | Mapping[str, Any], skip: Iterable[str] = ("hydra",)
) -> dict[str, Any]:
    """``{"model.K": 32, ...}`` from a (resolved) config, for MLflow params."""
    container = (
        OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    )
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if not prefix and key in skip:
                    continue
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            flat[prefix] = node

    walk(container, "")
    return flat


def _log_params(params: Mapping[str, Any]) -> None:
    import mlflow

    items = [(k, "null" if v is None else str(v)) for k, v in params.items()]
    for start in range(0, len(items), 100):  # MLflow caps a batch at 100 params
        with stops_deferred():
            mlflow.log_params(dict(items[start : start + 100]))
