"""The MovieLens releases this project knows: where each is published and how its files look."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from movielens_als.errors import ConfigError

GROUPLENS_BASE_URL = "https://files.grouplens.org/datasets/movielens"

ReleaseFormat = Literal["latest", "dat", "100k", "synthetic"]

HALF_STARS = (0.5, 5.0, 0.5)
WHOLE_STARS = (1.0, 5.0, 1.0)

# Limits on what an archive may unpack to (movielens_als.data.download.ExtractionLimits),
# so that a zip bomb (a few MB holding GiBs of zeros) is refused before anything is written.
# A release may unpack to UNPACKED_SAFETY_FACTOR times its recorded ``unpacked_bytes``: room
# for a re-published archive with more files (tag genome, extra splits) without a code change.
UNPACKED_SAFETY_FACTOR = 4
# The cap for a release without a recorded size: over 5x the largest (ml-latest, ml-25m:
# 1.2-1.5 GB).
DEFAULT_MAX_UNPACKED_BYTES = 8 << 30
# Most a member (or the whole archive) may unpack to per compressed byte. MovieLens CSVs
# deflate 2-4x (ml-latest-small: 3.3x), text rarely beyond 10x; a zip bomb nears deflate's
# limit of ~1000x.
MAX_COMPRESSION_RATIO = 100.0
# Members under 1 MiB are not held to the ratio: a small file of padding may compress a
# thousandfold and harms nothing, and the size cap bounds them all.
RATIO_MIN_BYTES = 1 << 20


@dataclass(frozen=True)
class Release:
    """One MovieLens release.

    ``fmt`` names the file layout:

    - ``latest``: ``ratings.csv`` (``userId,movieId,rating,timestamp``) and ``movies.csv``
      (``movieId,title,genres``, genres ``|``-separated, ``(no genres listed)`` = none);
    - ``dat``: ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``) and ``movies.dat``
      (``MovieID::Title::Genres``);
    - ``100k``: ``u.data`` (tab-separated ``user item rating timestamp``), ``u.item``
      (``|``-separated, 19 binary genre flags) and ``u.genre`` (the flags' names);
    - ``synthetic``: generated in the ``latest`` layout by :mod:`movielens_als.data.synthetic`.

    ``rating_scale`` is ``(min, max, step)``: every rating must be ``min + k * step <= max``.
    ``fallback_encoding`` is tried (with a logged warning) when a file does not decode
    with ``encoding``; None means a decoding error is a :class:`DataError`.
    ``unpacked_bytes`` is the total size of the published archive's members, rounded up
    (as GroupLens publishes it); None for a release whose archive is regenerated
    (``ml-latest``) or that is not downloaded. It sets :attr:`max_unpacked_bytes`.
    """

    name: str
    url: str | None
    fmt: ReleaseFormat
    ratings_file: str
    movies_file: str
    encoding: str
    rating_scale: tuple[float, float, float]
    genres_file: str | None = None
    fallback_encoding: str | None = None
    unpacked_bytes: int | None = None
    # train/test splits the archive itself ships (ml-100k: u1…u5 five-fold, ua/ub ten ratings
    # per user in test), each as <name>.base and <name>.test in the ratings file's layout
    predefined_splits: tuple[str, ...] = ()

    @property
    def archive_name(self) -> str:
        """File name of the published archive (``<name>.zip``)."""
        return f"{self.name}.zip"

    @property
    def max_unpacked_bytes(self) -> int:
        """Most the archive may unpack to: ``unpacked_bytes`` × :data:`UNPACKED_SAFETY_FACTOR`,
        or :data:`DEFAULT_MAX_UNPACKED_BYTES` when the size is not recorded."""
        if self.unpacked_bytes is None:
            return DEFAULT_MAX_UNPACKED_BYTES
        return self.unpacked_bytes * UNPACKED_SAFETY_FACTOR

    @property
    def required_files(self) -> tuple[str, ...]:
        """Files a release folder must hold for :mod:`movielens_als.data.parse` to read it."""
        files = (self.ratings_file, self.movies_file)
        return (*files, self.genres_file) if self.genres_file else files


def _latest(name: str, unpacked_bytes: int | None) -> Release:
    return Release(
        name=name,
        url=f"{GROUPLENS_BASE_URL}/{name}.zip",
        fmt="latest",
        ratings_file="ratings.csv",
        movies_file="movies.csv",
        encoding="utf-8",
        rating_scale=HALF_STARS,
        unpacked_bytes=unpacked_bytes,
    )


RELEASES: dict[str, Release] = {
    release.name: release
    for release in (
        _latest("ml-latest-small", 3_400_000),  # 3,303,135 in the 2018-09-26 archive
        _latest("ml-latest", None),  # regenerated from time to time
        _latest("ml-20m", 880_000_000),
        _latest("ml-25m", 1_170_000_000),
        _latest("ml-32m", 970_000_000),
        Release(
            name="ml-1m",
            url=f"{GROUPLENS_BASE_URL}/ml-1m.zip",
            fmt="dat",
            ratings_file="ratings.dat",
            movies_file="movies.dat",
            encoding="latin-1",
            rating_scale=WHOLE_STARS,
            unpacked_bytes=25_000_000,
        ),
        Release(
            # the archive extracts to ``ml-10M100K/``; download normalises the folder name
            name="ml-10m",
            url=f"{GROUPLENS_BASE_URL}/ml-10m.zip",
            fmt="dat",
            ratings_file="ratings.dat",
            movies_file="movies.dat",
            encoding="utf-8",
            rating_scale=HALF_STARS,
            fallback_encoding="latin-1",
            unpacked_bytes=270_000_000,
        ),
        Release(
            name="ml-100k",
            url=f"{GROUPLENS_BASE_URL}/ml-100k.zip",
            fmt="100k",
            ratings_file="u.data",
            movies_file="u.item",
            encoding="latin-1",
            rating_scale=WHOLE_STARS,
            genres_file="u.genre",
            unpacked_bytes=16_000_000,
            predefined_splits=("u1", "u2", "u3", "u4", "u5", "ua", "ub"),
        ),
        Release(
            name="synthetic",
            url=None,
            fmt="synthetic",
            ratings_file="ratings.csv",
            movies_file="movies.csv",
            encoding="utf-8",
            rating_scale=HALF_STARS,
        ),
    )
}


def get_release(name: str) -> Release:
    """The release called ``name``; a :class:`ConfigError` listing the known names otherwise."""
    try:
        return RELEASES[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(RELEASES))
        raise ConfigError(
            f"dataset.name: unknown MovieLens release {name!r}; known: {known}"
        ) from None
