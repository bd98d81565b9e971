"""MLflow tracking of stage runs (embedded SQLite store by default, or a server)."""

from movielens_als.tracking.mlflow_tracker import NullTracker, StageTracker, open_tracker

__all__ = ["NullTracker", "StageTracker", "open_tracker"]
