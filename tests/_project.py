"""Where a test's stages run: the tiny synthetic release and overrides that keep every output
(and MLflow) inside one folder."""

from __future__ import annotations

from pathlib import Path

TINY_RELEASE = ["dataset=synthetic", "dataset.synthetic.preset=tiny"]


def paths_under(root: Path, artifacts: Path | None = None) -> list[str]:
    """Hydra overrides that send every output of a stage, and MLflow, into ``root`` (MLflow's
    artifacts into ``artifacts`` when given)."""
    return [
        f"paths.data={root / 'data'}",
        f"paths.results={root / 'data'}",
        f"paths.reports={root / 'reports'}",
        f"tracking.uri=sqlite:///{root / 'mlflow.db'}",
        f"tracking.artifact_root={artifacts or root / 'mlartifacts'}",
    ]
