"""Where each stage reads and writes, derived from ``paths.*`` and ``dataset.name``.

dvc.yaml spells out the same paths; tests/test_pipeline_dvc.py checks they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig


@dataclass(frozen=True)
class Layout:
    data: Path
    reports: Path
    dataset: str

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Layout:
        return cls(Path(cfg.paths.data), Path(cfg.paths.reports), str(cfg.dataset.name))

    @property
    def raw_root(self) -> Path:
        return self.data / "raw"

    @property
    def raw_dir(self) -> Path:
        return self.raw_root / self.dataset

    @property
    def index_dir(self) -> Path:
        return self.data / "index" / self.dataset

    @property
    def split_dir(self) -> Path:
        return self.data / "split" / self.dataset

    def model_dir(self, stage: str) -> Path:
        return self.data / "models" / self.dataset / stage

    def metrics_file(self, stage: str) -> Path:
        return self.reports / "metrics" / f"{stage}.json"

    def curve_file(self, stage: str) -> Path:
        return self.reports / "curves" / f"{stage}.csv"

    def figures_dir(self, stage: str) -> Path:
        return self.reports / "figures" / stage
