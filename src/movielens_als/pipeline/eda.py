"""The eda stage: descriptive statistics and the notebook's exploratory figures."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from movielens_als.pipeline.common import numeric_metrics, pick, publish, stage_run
from movielens_als.pipeline.layout import Layout


def run_eda(cfg: DictConfig) -> dict[str, Any]:
    from movielens_als.analysis.eda import compute_eda, eda_summary
    from movielens_als.data.index import load_index
    from movielens_als.figures.eda import eda_figures

    layout = Layout.from_config(cfg)
    with stage_run(cfg, "eda", ["dataset", "eda"]) as tracker:
        data = load_index(layout.index_dir)
        eda = compute_eda(
            data.ratings,
            data.n_users,
            data.n_movies,
            min_count=cfg.eda.min_count,
            sample_block=cfg.eda.sample_block,
            seed=cfg.eda.seed,
        )
        summary = eda_summary(eda)
        publish(
            tracker,
            layout.outputs,
            "eda",
            pick(summary, "density"),
            details=summary,
            figures=eda_figures(eda),
            logged=numeric_metrics(summary),
        )
    return summary
