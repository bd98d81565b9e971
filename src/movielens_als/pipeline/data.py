"""The data stages: download → index → split."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from movielens_als.pipeline.common import (
    log_summary,
    numeric_metrics,
    pick,
    publish,
    split_as_configured,
    stage_run,
)
from movielens_als.pipeline.layout import Layout
from movielens_als.progress import Step


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
        log_summary(release.name, {"files": len(files), "bytes": metrics["bytes"]}, [folder])
    return metrics


def run_index(cfg: DictConfig) -> dict[str, Any]:
    """Parse the release and write contiguous-index arrays plus ``index.json``."""
    from movielens_als.data.index import build_index, save_index
    from movielens_als.data.parse import read_movies, read_ratings
    from movielens_als.data.registry import get_release

    layout = Layout.from_config(cfg)
    release = get_release(cfg.dataset.name)
    with stage_run(cfg, "index", ["dataset"]) as tracker:
        with Step(f"read {release.ratings_file}") as step:
            ratings = read_ratings(release, layout.raw_dir)
            step.result = f"{len(ratings):,} ratings"
        with Step(f"read {release.movies_file}") as step:
            movies = read_movies(release, layout.raw_dir)
            step.result = f"{len(movies):,} movies"
        with Step("map ids, drop duplicates") as step:
            data, metrics = build_index(ratings, movies, release)
            step.result = (
                f"{data.n_users:,} users × {data.n_movies:,} movies, "
                f"{metrics['n_duplicates_dropped']:,} duplicates dropped"
            )
        with Step(f"write {layout.outputs.index_dir}"):
            save_index(data, layout.outputs.index_dir)
        publish(
            tracker,
            layout.outputs,
            "index",
            pick(metrics, "n_ratings", "n_users", "n_movies"),
            details=metrics,
            logged=numeric_metrics(metrics),
            written=[layout.outputs.index_dir],
        )
    return metrics


def run_split(cfg: DictConfig) -> dict[str, Any]:
    """Split the indexed ratings into train/test (and validation) in both CSR layouts."""
    from movielens_als.data.index import load_index
    from movielens_als.data.split import save_split

    layout = Layout.from_config(cfg)
    with stage_run(cfg, "split", ["dataset", "split"]) as tracker:
        with Step(f"read {layout.index_dir}") as step:
            data = load_index(layout.index_dir)
            step.result = f"{len(data.ratings):,} ratings"
        with Step(f"split ({cfg.split.method})"):
            split, metrics = split_as_configured(data, cfg)
        with Step(f"write {layout.outputs.split_dir}"):
            save_split(split, layout.outputs.split_dir)
        publish(
            tracker,
            layout.outputs,
            "split",
            pick(metrics, "n_train", "n_test"),
            details=metrics,
            logged=numeric_metrics(metrics),
            written=[layout.outputs.split_dir],
        )
    return metrics
