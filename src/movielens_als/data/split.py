"""Split indexed ratings into train, test and (optionally) validation sets.

Methods:

- ``random`` (the notebook's rule, reproduced exactly): with
  ``rs = numpy.random.RandomState(seed)``, rating ``i`` (file order) goes to train when
  ``rs.rand(n)[i] < train_fraction``, to test otherwise.
- ``temporal``: each user's ``n_test_per_user`` latest ratings by timestamp go to test
  (equal timestamps: the later in the file counts as later); a user with at most that many
  ratings has all of them in test.

- ``kfold``: ``RandomState(seed).permutation(n)`` deals the ratings (file order) into
  ``folds`` folds of near-equal size (rating at permuted position p is in fold p mod k); fold
  ``fold`` is test, the rest train — the protocol of Surprise's ``KFold`` and LensKit's
  crossfold by rating. The cross-validation stage runs every fold.
- ``predefined``: the train/test split the archive ships (ml-100k's ``u1``…``u5`` five-fold
  and ``ua``/``ub``), named by ``predefined``; its ``.test`` ratings are test, the rest train
  (the ``.base`` file must hold exactly the rest, or the archive is corrupt).

Validation (``val_fraction > 0``) is carved from train the same way for every method: the
train ratings in file order draw ``rs.rand(n_train) < val_fraction`` and those go to
validation. For ``random`` this continues the same ``RandomState`` right after the
train/test draw (so train ∪ val is exactly the notebook's train); for the others it is a
fresh ``RandomState(seed)``.

On disk a split is a folder holding ``train.npz``, ``test.npz``, ``val.npz`` (each both CSR
layouts, uncompressed, no pickles) and ``split.json``; see :func:`save_split`.
"""

from __future__ import annotations

import logging
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from movielens_als.atomic import atomic_path, load_npz, read_json, save_npz, write_json
from movielens_als.data._kernels import latest_per_row
from movielens_als.data.index import IndexedData
from movielens_als.errors import ConfigError, DataError
from movielens_als.sparse import CSR, RatingMatrix, Ratings

log = logging.getLogger(__name__)

PARTS = ("train", "test", "val")
SPLIT_META = "split.json"
FORMAT_VERSION = 1
METHODS = ("random", "temporal", "kfold", "predefined")
_LAYOUT_KEYS = ("indptr", "indices", "data")


@dataclass(frozen=True)
class Split:
    """Train, test and validation ratings over the same user and item indices.

    ``val`` has no entries when no validation set was asked for.
    """

    train: RatingMatrix
    test: RatingMatrix
    val: RatingMatrix
    n_users: int
    n_items: int

    def parts(self) -> dict[str, RatingMatrix]:
        return {"train": self.train, "test": self.test, "val": self.val}


def split_ratings(
    data: IndexedData,
    *,
    method: str = "random",
    train_fraction: float = 0.9,
    val_fraction: float = 0.0,
    seed: int = 42,
    n_test_per_user: int = 5,
    folds: int = 5,
    fold: int = 0,
    predefined: tuple[Any, Any] | None = None,
) -> tuple[Split, dict[str, Any]]:
    """Split ``data.ratings`` (see the module docstring for the exact rules).

    Returns the split and its metrics: ``n_train``, ``n_test``, ``n_val`` and, for test and
    validation, how many of their ratings (and distinct users / movies) have no rating in
    train. Invalid settings raise :class:`ConfigError` naming the ``split.*`` key; a split
    that leaves train empty too.
    """
    check_settings(method, train_fraction, val_fraction, seed, n_test_per_user, folds, fold)
    n = len(data.ratings)
    random_state = np.random.RandomState(seed)
    if method == "random":
        in_test = ~(random_state.rand(n) < train_fraction)
    elif method == "temporal":
        in_test = latest_per_row(data.ratings.user, data.timestamp, data.n_users, n_test_per_user)
    elif method == "kfold":
        in_test = np.zeros(n, dtype=np.bool_)
        in_test[random_state.permutation(n)[fold::folds]] = True
    else:
        if predefined is None:
            raise ConfigError("split.method: predefined needs the archive's base and test files")
        in_test = predefined_test_mask(data, *predefined)
    train_positions = np.flatnonzero(~in_test)
    in_val = np.zeros(n, dtype=np.bool_)
    if val_fraction > 0:
        if method != "random":
            random_state = np.random.RandomState(seed)
        in_val[train_positions[random_state.rand(len(train_positions)) < val_fraction]] = True
    in_train = ~in_test & ~in_val
    del train_positions
    if not in_train.any():
        raise ConfigError(
            f"split: method={method!r}, train_fraction={train_fraction}, "
            f"val_fraction={val_fraction} leaves the train set empty"
        )

    masks = {"train": in_train, "test": in_test, "val": in_val}
    split = Split(
        **{
            part: _rating_matrix(data.ratings, mask, data.n_users, data.n_movies)
            for part, mask in masks.items()
        },
        n_users=data.n_users,
        n_items=data.n_movies,
    )
    metrics: dict[str, Any] = {
        "method": method,
        "seed": seed,
        "train_fraction": train_fraction if method == "random" else None,
        "val_fraction": val_fraction,
        "n_test_per_user": n_test_per_user if method == "temporal" else None,
        **({"folds": folds, "fold": fold} if method == "kfold" else {}),
        "n_ratings": n,
        "n_users": data.n_users,
        "n_movies": data.n_movies,
        "n_train": split.train.nnz,
        "n_test": split.test.nnz,
        "n_val": split.val.nnz,
        "test_share": split.test.nnz / n,
    }
    for part in ("test", "val"):
        metrics.update(_coverage(part, getattr(split, part), split.train))
    if split.test.nnz == 0:
        log.warning("split: the test set is empty (method=%s)", method)
    if val_fraction > 0 and split.val.nnz == 0:
        log.warning("split: val_fraction=%s gave an empty validation set", val_fraction)
    return split, metrics


def save_split(split: Split, folder: str | os.PathLike[str]) -> None:
    """Write ``folder/{train,test,val}.npz`` and ``folder/split.json`` (atomically).

    Each ``.npz`` holds ``by_user_indptr`` (int64), ``by_user_indices`` (int32, item
    indices), ``by_user_data`` (float32 ratings) and the same three ``by_item_*`` arrays
    (indices = user indices). ``split.json`` holds ``n_users``, ``n_items`` and each part's
    number of ratings.
    """
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        for part, matrix in split.parts().items():
            arrays = {}
            for layout in ("by_user", "by_item"):
                csr: CSR = getattr(matrix, layout)
                for key in _LAYOUT_KEYS:
                    arrays[f"{layout}_{key}"] = getattr(csr, key)
            save_npz(tmp / f"{part}.npz", **arrays)
        write_json(
            tmp / SPLIT_META,
            {
                "format_version": FORMAT_VERSION,
                "n_users": split.n_users,
                "n_items": split.n_items,
                "nnz": {part: matrix.nnz for part, matrix in split.parts().items()},
            },
        )


def load_split(folder: str | os.PathLike[str]) -> Split:
    """Read a split written by :func:`save_split`; a :class:`DataError` if a file is
    missing or the arrays disagree with ``split.json``."""
    folder = Path(folder)
    meta_path = folder / SPLIT_META
    if not meta_path.is_file():
        raise DataError(f"{meta_path}: missing; run the split stage first")
    meta = read_json(meta_path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{meta_path}: format_version {meta.get('format_version')!r}, "
            f"expected {FORMAT_VERSION}; rerun the split stage"
        )
    n_users, n_items = int(meta["n_users"]), int(meta["n_items"])
    parts = {}
    for part in PARTS:
        path = folder / f"{part}.npz"
        if not path.is_file():
            raise DataError(f"{path}: missing; run the split stage first")
        arrays = load_npz(path)
        layouts = {}
        for layout, n_rows, n_cols in (
            ("by_user", n_users, n_items),
            ("by_item", n_items, n_users),
        ):
            keys = [f"{layout}_{key}" for key in _LAYOUT_KEYS]
            missing = [key for key in keys if key not in arrays]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}")
            csr = CSR(*(arrays[key] for key in keys), n_cols)
            if csr.n_rows != n_rows or csr.nnz != meta["nnz"][part] or csr.indptr[-1] != csr.nnz:
                raise DataError(
                    f"{path}: {layout} has {csr.n_rows} rows and {csr.nnz} entries; "
                    f"{meta_path} says {n_rows} rows and {meta['nnz'][part]} entries"
                )
            layouts[layout] = csr
        parts[part] = RatingMatrix(**layouts)
    return Split(**parts, n_users=n_users, n_items=n_items)


def _rating_matrix(ratings: Ratings, mask: np.ndarray, n_users: int, n_items: int) -> RatingMatrix:
    part = ratings.subset(mask)
    return RatingMatrix(
        by_user=CSR.from_coo(part.user, part.item, part.rating, n_users, n_items),
        by_item=CSR.from_coo(part.item, part.user, part.rating, n_items, n_users),
    )


def _coverage(part: str, matrix: RatingMatrix, train: RatingMatrix) -> dict[str, int]:
    """How much of ``part`` falls on users or movies that train has never seen."""
    user_counts, item_counts = matrix.by_user.row_counts(), matrix.by_item.row_counts()
    user_unseen = train.by_user.row_counts() == 0
    item_unseen = train.by_item.row_counts() == 0
    return {
        f"n_{part}_users_not_in_train": int(((user_counts > 0) & user_unseen).sum()),
        f"n_{part}_ratings_user_not_in_train": int(user_counts[user_unseen].sum()),
        f"n_{part}_movies_not_in_train": int(((item_counts > 0) & item_unseen).sum()),
        f"n_{part}_ratings_movie_not_in_train": int(item_counts[item_unseen].sum()),
    }


def predefined_test_mask(data: IndexedData, base: Any, test: Any) -> np.ndarray:
    """Which of ``data``'s ratings are in the shipped ``test`` frame (raw ``userId, movieId``);
    ``base`` must hold exactly the others (DataError when the files disagree with the index)."""

    def keys(frame) -> np.ndarray:
        users = np.searchsorted(data.user_ids, frame["userId"].to_numpy())
        movies = np.searchsorted(data.movie_ids, frame["movieId"].to_numpy())
        users = np.minimum(users, data.n_users - 1)
        movies = np.minimum(movies, data.n_movies - 1)
        known = (data.user_ids[users] == frame["userId"].to_numpy()) & (
            data.movie_ids[movies] == frame["movieId"].to_numpy()
        )
        if not known.all():
            row = int(np.flatnonzero(~known)[0])
            raise DataError(
                f"predefined split: line {row + 1} rates user {frame['userId'].iloc[row]}, movie "
                f"{frame['movieId'].iloc[row]}, which the ratings file does not hold"
            )
        return users.astype(np.int64) * data.n_movies + movies

    all_keys = data.ratings.user.astype(np.int64) * data.n_movies + data.ratings.item
    test_keys, base_keys = keys(test), keys(base)
    in_test = np.isin(all_keys, test_keys)
    in_base = np.isin(all_keys, base_keys)
    if len(test_keys) + len(base_keys) != len(all_keys) or np.any(in_test == in_base):
        raise DataError(
            f"predefined split: base ({len(base_keys)}) and test ({len(test_keys)}) ratings do not "
            f"partition the {len(all_keys)} ratings of the release"
        )
    return in_test


def check_settings(
    method: str,
    train_fraction: float,
    val_fraction: float,
    seed: int,
    n_test_per_user: int,
    folds: int = 5,
    fold: int = 0,
) -> None:
    if method not in METHODS:
        raise ConfigError(f"split.method: {method!r} is not one of {', '.join(METHODS)}")
    if not isinstance(train_fraction, numbers.Real) or not 0 < train_fraction < 1:
        raise ConfigError(f"split.train_fraction: {train_fraction!r} is not in (0, 1)")
    if not isinstance(val_fraction, numbers.Real) or not 0 <= val_fraction < 1:
        raise ConfigError(f"split.val_fraction: {val_fraction!r} is not in [0, 1)")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
        raise ConfigError(f"split.seed: {seed!r} is not an integer in [0, 2**32)")
    if method == "temporal" and (
        isinstance(n_test_per_user, bool)
        or not isinstance(n_test_per_user, numbers.Integral)
        or n_test_per_user < 1
    ):
        raise ConfigError(f"split.n_test_per_user: {n_test_per_user!r} is not an integer >= 1")
    if method == "kfold":
        if isinstance(folds, bool) or not isinstance(folds, numbers.Integral) or folds < 2:
            raise ConfigError(f"split.folds: {folds!r} is not an integer >= 2")
        if (
            isinstance(fold, bool)
            or not isinstance(fold, numbers.Integral)
            or not 0 <= fold < folds
        ):
            raise ConfigError(f"split.fold: {fold!r} is out of range: folds are 0 … {folds - 1}")
