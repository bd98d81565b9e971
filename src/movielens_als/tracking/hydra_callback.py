"""Hydra callback: create the MLflow store and experiment once, before a multirun's jobs.

Jobs of a parallel launcher would otherwise race to create the SQLite schema. (With
Hydra's default launcher the jobs run one after another; for truly parallel jobs on many
machines, point MLFLOW_TRACKING_URI at an ``mlflow server`` instead of a SQLite file.)
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class PrepareTrackingStore(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from movielens_als.tracking.mlflow_tracker import prepare_store

        if "tracking" in config and config.tracking.enabled:
            prepare_store(config)
