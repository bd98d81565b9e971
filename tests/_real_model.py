"""One ALS model fitted on the real ml-latest-small, shared by the "using the model" tests.

Fitted once per test session (about 3 s) through the data layer and the core with the
shipped ``als`` defaults on the notebook's random 90/10 split.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

from movielens_als.core import DEFAULTS, ALSParams, FactorModel, fit
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


@functools.cache
def real_model(mirror: Path) -> RealModel:
    release = get_release("ml-latest-small")
    with tempfile.TemporaryDirectory() as raw:
        folder = fetch_release(release.name, raw, mirror=mirror, progress=False)
        data, _ = build_index(read_ratings(release, folder), read_movies(release, folder), release)
    split, _ = split_ratings(data, method="random", train_fraction=0.9, seed=42)
    model = fit(split.train, ALSParams(**DEFAULTS["als"])).model
    return RealModel(data, split, model)
