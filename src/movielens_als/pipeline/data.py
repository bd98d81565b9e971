"""The data stages: download → index → split."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from movielens_als.pipeline.common import (
    numeric_metrics,
    pick,
    publish,
    split_as_configured,
    stage_run,
)
from movielens_als.pipeline.layout import Layout


def run_download(cfg: DictConfig) -> dict[str, Any]:
    """Fetch (or generate, for ``synthetic``) the release into ``data/raw/<name>/``."""
    from movielens_als.data.download import fetch_release
    from movielens_als.data.registry import get_release
    from movielens_als.data.synthetic import SyntheticSpec, write_release

    layout = Layout.from_config(cfg)
    release = get_release(cfg.dataset.name)
    with stage_run(cfg, "download", ["dataset"]) as tracker:
        if release.fmt == "synthetic":
            spec = SyntheticSpec.preset(
                cfg.dataset.synthetic.preset, seed=cfg.dataset.synthetic.seed
            )
            folder = write_release(spec, layout.outputs.raw_dir)
        else:
            # dataset.mirror wins; fetch_release falls back to $MOVIELENS_MIRROR, then GroupLens
            folder = fetch_release(
                release.name,
                layout.outputs.raw_root,
                mirror=cfg.dataset.get("mirror"),
                allow_http=bool(cfg.dataset.get("allow_http", False)),
                max_unpacked_bytes=cfg.dataset.get("max_unpacked_bytes"),
                max_compression_ratio=cfg.dataset.get("max_compression_ratio"),
            )
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        metrics = {
            "dataset": release.name,
            "files": {p.relative_to(folder).as_posix(): p.stat().st_size for p in files},
            "bytes": sum(p.stat().st_size for p in files),
        }
        tracker.log_metrics({"bytes": metrics["bytes"]})
    return metrics


def run_index(cfg: DictConfig) -> dict[str, Any]:
    """Parse the release and write contiguous-index arrays plus ``index.json``."""
    from movielens_als.data.index import build_index, save_index
    from movielens_als.data.parse import read_movies, read_ratings
    from movielens_als.data.registry import get_release

    layout = Layout.from_config(cfg)
    release = get_release(cfg.dataset.name)
    with stage_run(cfg, "index", ["dataset"]) as tracker:
        ratings = read_ratings(release, layout.raw_dir)
        movies = read_movies(release, layout.raw_dir)
        data, metrics = build_index(ratings, movies, release)
        save_index(data, layout.outputs.index_dir)
        publish(
            tracker,
            layout.outputs,
            "index",
            pick(metrics, "n_ratings", "n_users", "n_movies"),
            details=metrics,
            logged=numeric_metrics(metrics),
        )
    return metrics


def run_split(cfg: DictConfig) -> dict[str, Any]:
    """Split the indexed ratings into train/test (and validation) in both CSR layouts."""
    from movielens_als.data.index import load_index
    from movielens_als.data.split import save_split

    layout = Layout.from_config(cfg)
    with stage_run(cfg, "split", ["dataset", "split"]) as tracker:
        data = load_index(layout.index_dir)
        split, metrics = split_as_configured(data, cfg)
        save_split(split, layout.outputs.split_dir)
        publish(
            tracker,
            layout.outputs,
            "split",
            pick(metrics, "n_train", "n_test"),
            details=metrics,
            logged=numeric_metrics(metrics),
        )
    return metrics
