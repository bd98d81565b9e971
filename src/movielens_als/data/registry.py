"""The MovieLens releases this project knows: where each is published and how its files look."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from movielens_als.errors import ConfigError

GROUPLENS_BASE_URL = "https://files.grouplens.org/datasets/movielens"

ReleaseFormat = Literal["latest", "dat", "100k", "synthetic"]

HALF_STARS = (0.5, 5.0, 0.5)
WHOLE_STARS = (1.0, 5.0, 1.0)


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

    @property
    def archive_name(self) -> str:
        """File name of the published archive (``<name>.zip``)."""
        return f"{self.name}.zip"

    @property
    def required_files(self) -> tuple[str, ...]:
        """Files a release folder must hold for :mod:`movielens_als.data.parse` to read it."""
        files = (self.ratings_file, self.movies_file)
        return (*files, self.genres_file) if self.genres_file else files


def _latest(name: str) -> Release:
    return Release(
        name=name,
        url=f"{GROUPLENS_BASE_URL}/{name}.zip",
        fmt="latest",
        ratings_file="ratings.csv",
        movies_file="movies.csv",
        encoding="utf-8",
        rating_scale=HALF_STARS,
    )


RELEASES: dict[str, Release] = {
    release.name: release
    for release in (
        _latest("ml-latest-small"),
        _latest("ml-latest"),
        _latest("ml-20m"),
        _latest("ml-25m"),
        _latest("ml-32m"),
        Release(
            name="ml-1m",
            url=f"{GROUPLENS_BASE_URL}/ml-1m.zip",
            fmt="dat",
            ratings_file="ratings.dat",
            movies_file="movies.dat",
            encoding="latin-1",
            rating_scale=WHOLE_STARS,
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
