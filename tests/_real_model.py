"""The real ml-latest-small through the data layer (the notebook's split), and one ALS model
fitted on it with the shipped defaults, shared by the slow real-data tests.

Both are built once per test session (a few seconds).
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

from movielens_als.config import compose
from movielens_als.core import FactorModel, VariantParams, fit, model_params
from movielens_als.data.download import fetch_release
from movielens_als.data.index import IndexedData, build_index
from movielens_als.data.parse import read_movies, read_ratings
from movielens_als.data.registry import get_release
from movielens_als.data.split import Split, split_ratings


@dataclass(frozen=True)
class RealModel:
    data: IndexedData
    split: Split
    model: FactorModel


def shipped_params(model: str, **overrides) -> VariantParams:
    """A shipped model: ``conf/model/<model>.yaml`` as the train stage composes it."""
    values = {**compose("train", [f"model={model}"]).model, **overrides}
    return model_params(values)


@functools.cache
def real_split(mirror: Path) -> tuple[IndexedData, Split]:
    """The indexed archive and the notebook's split (file order, RandomState(42) < 0.9)."""
    release = get_release("ml-latest-small")
    with tempfile.TemporaryDirectory() as raw:
        folder = fetch_release(release.name, raw, mirror=mirror, progress=False)
        data, _ = build_index(read_ratings(release, folder), read_movies(release, folder), release)
    split, _ = split_ratings(data, method="random", train_fraction=0.9, seed=42)
    return data, split


@functools.cache
def real_model(mirror: Path) -> RealModel:
    data, split = real_split(mirror)
    return RealModel(data, split, fit(split.train, shipped_params("als")).model)
