"""Where each stage reads and writes, derived from ``paths.*`` and ``dataset.name``.

dvc.yaml spells out the same paths for the default config (``paths.data`` = ``paths.results``
= ``data``, ``paths.reports`` = ``reports``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig


@dataclass(frozen=True)
class Layout:
    data: Path  # inputs and data products: raw/, index/, split/
    results: Path  # what training and tuning write: models/, validation_fits/, tuning/, kgrid/
    reports: Path  # metrics/, curves/, figures/
    dataset: str
    output_root: Path | None = None  # set for a multirun job: everything it writes goes here

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Layout:
        outputs = cfg.paths.get("outputs")
        return cls(
            Path(cfg.paths.data),
            Path(cfg.paths.results),
            Path(cfg.paths.reports),
            str(cfg.dataset.name),
            Path(outputs) if outputs else None,
        )

    @property
    def outputs(self) -> Layout:
        """Where this run writes: the pipeline's own folders, or, for a multirun job, the same
        tree under the job's folder (reads still come from the pipeline's folders)."""
        if self.output_root is None:
            return self
        root = self.output_root
        return Layout(root / "data", root / "data", root / "reports", self.dataset)

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
        return self.results / "models" / self.dataset / stage

    def validation_fit_dir(self, stage: str) -> Path:
        """Trained model ``stage`` refitted on train minus the ranking's validation carve-out."""
        return self.results / "validation_fits" / self.dataset / stage

    @property
    def tuning_root(self) -> Path:
        return self.results / "tuning" / self.dataset

    def tuning_dir(self, model: str, space: str) -> Path:
        """One study per tuned model (als, genre_als) and search space."""
        return self.tuning_root / model / space

    def kgrid_file(self, K: int) -> Path:
        return self.results / "kgrid" / self.dataset / f"K{K}.json"

    def metrics_file(self, stage: str) -> Path:
        """Git-tracked, compared by ``dvc metrics``: numbers only."""
        return self.reports / "metrics" / f"{stage}.json"

    def metrics_dir(self, stage: str) -> Path:
        """A stage whose metrics are a table (one file per row: model, scorer), so that
        ``dvc metrics show`` shares the columns between rows."""
        return self.reports / "metrics" / stage

    def details_file(self, stage: str) -> Path:
        """Everything else a stage reports (lists, names, its resolved model): cached by DVC."""
        return self.reports / "details" / f"{stage}.json"

    def timings_file(self, stage: str) -> Path:
        """Wall-clock times: never a DVC output (they differ on every run), MLflow has them."""
        return self.reports / "timings" / f"{stage}.json"

    def curve_file(self, stage: str) -> Path:
        return self.reports / "curves" / f"{stage}.csv"

    def figures_dir(self, stage: str) -> Path:
        return self.reports / "figures" / stage
