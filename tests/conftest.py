"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from _project import TINY_RELEASE, paths_under

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_ARCHIVE = "ml-latest-small.zip"


def shared_datasets_dir() -> Path | None:
    """The offline mirror holding the real ml-latest-small archive, if this machine has one."""
    candidates = []
    if os.environ.get("MOVIELENS_MIRROR"):
        candidates.append(Path(os.environ["MOVIELENS_MIRROR"]))
    candidates.append(REPO_ROOT.parent / "shared" / "datasets")
    for candidate in candidates:
        if (candidate / REAL_ARCHIVE).is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def real_mirror() -> Path:
    """Folder with the real ml-latest-small.zip; skips the test (with the reason) when absent."""
    folder = shared_datasets_dir()
    if folder is None:
        pytest.skip(
            f"real data absent: no {REAL_ARCHIVE} in $MOVIELENS_MIRROR or ../shared/datasets"
        )
    return folder


@pytest.fixture
def project_overrides(tmp_path: Path) -> list[str]:
    """Hydra overrides that send every output of a stage, and MLflow, into ``tmp_path``."""
    return paths_under(tmp_path)


@pytest.fixture
def tiny_project(tmp_path, project_overrides, monkeypatch):
    """A tiny synthetic release downloaded, indexed and split into tmp_path by the stages'
    own ``run`` functions; yields ``(tmp_path, overrides)`` for further stages."""
    from movielens_als.config import compose
    from movielens_als.pipeline.data import run_download, run_index, run_split

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    overrides = [*TINY_RELEASE, *project_overrides]
    run_download(compose("download", overrides))
    run_index(compose("index", overrides))
    run_split(compose("split", overrides))
    return tmp_path, overrides
