"""Read a release's ratings and movies files into DataFrames with fixed dtypes.

Every file is parsed by pyarrow's multithreaded C++ CSV reader (never a Python loop over
rows). The ``::``-separated ``.dat`` files are first turned into tab-separated text by one
byte-level replace (no field of theirs contains ``::`` or a tab; titles may contain ``:``).

Errors name the file and the line (the header, where there is one, is line 1). Locating the
line is done only after a parse has failed, so the fast path pays nothing for it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from movielens_als.data._kernels import first_off_scale
from movielens_als.data.registry import Release, get_release
from movielens_als.errors import ConfigError, DataError

log = logging.getLogger(__name__)

RATINGS_COLUMNS = ("userId", "movieId", "rating", "timestamp")
MOVIES_COLUMNS = ("movieId", "title", "genres")
NO_GENRES = "(no genres listed)"  # ml-latest's label for a movie without genre
UNKNOWN_GENRE_100K = "unknown"  # ml-100k's flag for a movie without genre

# int32 ids: MovieLens ids are below a million, and at ML-32M shape each int64 column would
# cost 128 MB more of freshly touched memory, which costs parse time too (page faults); an
# id beyond int32 is a DataError naming its line.
_RATINGS_TYPES = {
    "userId": pa.int32(),
    "movieId": pa.int32(),
    "rating": pa.float32(),
    "timestamp": pa.int64(),
}
_MOVIES_TYPES = {"movieId": pa.int64(), "title": pa.string(), "genres": pa.string()}
_INTEGER_TEXT = r"^\s*[+-]?[0-9]+\s*$"
_FLOAT_TEXT = (
    r"^\s*[+-]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|nan|NaN|NAN|inf|Inf|INF)\s*$"
)
# pyarrow parses blocks in parallel, and each block becomes one chunk of every column. At
# ML-32M shape (0.89 GB) 4 MiB blocks made 220 chunks, and converting them to NumPy took
# 1.7-2.4 s; 32 MiB blocks make 28 chunks (0.2-1.1 s) and parse no slower on 2 threads.
_BLOCK_BYTES = 1 << 25
_COLUMN_COUNT = re.compile(r"Expected (\d+) columns, got (\d+)")
_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to (\w+)")


def read_ratings(release: Release | str, folder: str | os.PathLike[str]) -> pd.DataFrame:
    """Read the release's ratings file from ``folder``.

    Returns columns ``userId`` (int32), ``movieId`` (int32), ``rating`` (float32),
    ``timestamp`` (int64), one row per line, in file order. Every rating is checked against
    the release's scale (NaN, off the range or off the step is a :class:`DataError` naming
    the line).

    A negative timestamp is refused too (a :class:`DataError` naming the line), not counted
    and kept: MovieLens timestamps are seconds since 1970-01-01 UTC and its first rating is
    from 1995, so a negative one means a corrupt or hand-edited file, and the ratings are
    ordered by it (the latest of a duplicate pair wins, the temporal split tests on each
    user's latest), where a wrong time would silently move a rating. Zero is accepted.
    """
    release = _as_release(release)
    path = _required_file(folder, release.ratings_file, "ratings")
    if release.fmt in ("latest", "synthetic"):
        _check_header(path, RATINGS_COLUMNS, delimiter=",")
        table = _read_table(path, path, RATINGS_COLUMNS, _RATINGS_TYPES, ",", skip_rows=1)
        header_lines = 1
    elif release.fmt == "dat":
        text = _read_nonempty_bytes(path).replace(b"::", b"\t")
        table = _read_table(text, path, RATINGS_COLUMNS, _RATINGS_TYPES, "\t", skip_rows=0)
        del text
        header_lines = 0
    elif release.fmt == "100k":
        table = _read_table(path, path, RATINGS_COLUMNS, _RATINGS_TYPES, "\t", skip_rows=0)
        header_lines = 0
    else:  # pragma: no cover - the registry holds no other format
        raise DataError(f"{path}: unknown release format {release.fmt!r}")
    if table.num_rows == 0:
        raise DataError(f"{path}: the ratings file holds no ratings (only a header or blank lines)")
    columns = _columns_of(table)
    del table  # each column's Arrow buffers are freed as soon as it is converted
    frame = _frame_of(columns, path, header_lines)
    # Arrow's allocator keeps freed memory for reuse (about 1 GB at ML-32M shape); hand it
    # back before the index and split allocate theirs (peak memory).
    pa.default_memory_pool().release_unused()
    _check_scale(frame["rating"].to_numpy(), release, path, header_lines)
    _check_timestamps(frame["timestamp"].to_numpy(), path, header_lines)
    return frame


def read_predefined_split(
    release: Release | str, folder: str | os.PathLike[str], name: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The base (train) and test ratings of split ``name`` the archive ships (``<name>.base``,
    ``<name>.test``; ml-100k's u1…u5, ua, ub), read and checked like the ratings file."""
    release = _as_release(release)
    if not release.predefined_splits:
        raise ConfigError(
            f"split.method: predefined: {release.name} ships no predefined splits "
            "(ml-100k does: u1…u5, ua, ub); use kfold or random"
        )
    if name not in release.predefined_splits:
        raise ConfigError(
            f"split.predefined: {name!r} is not a split of {release.name}; "
            f"it ships {', '.join(release.predefined_splits)}"
        )
    return tuple(
        read_ratings(dataclasses.replace(release, ratings_file=f"{name}.{part}"), folder)
        for part in ("base", "test")
    )


def read_movies(release: Release | str, folder: str | os.PathLike[str]) -> pd.DataFrame:
    """Read the release's movie table from ``folder``.

    Returns columns ``movieId`` (int64), ``title`` (str) and ``genres`` (``list[str]``; an
    empty list means no genre: ml-latest's ``(no genres listed)`` and ml-100k's ``unknown``
    are not genres), one row per line in file order. A movie id listed twice is a
    :class:`DataError` naming both lines.
    """
    release = _as_release(release)
    path = _required_file(folder, release.movies_file, "movies")
    if release.fmt in ("latest", "synthetic"):
        _check_header(path, MOVIES_COLUMNS, delimiter=",")
        table = _read_table(
            path, path, MOVIES_COLUMNS, _MOVIES_TYPES, ",", skip_rows=1, quoted=True
        )
        genres = _split_genres(table.column("genres"))
        header_lines = 1
    elif release.fmt == "dat":
        text = _decode(_read_nonempty_bytes(path), release, path).replace("::", "\t")
        table = _read_table(
            text.encode("utf-8"), path, MOVIES_COLUMNS, _MOVIES_TYPES, "\t", skip_rows=0
        )
        genres = _split_genres(table.column("genres"))
        header_lines = 0
    elif release.fmt == "100k":
        table, genres = _read_100k_items(release, folder, path)
        header_lines = 0
    else:  # pragma: no cover - the registry holds no other format
        raise DataError(f"{path}: unknown release format {release.fmt!r}")
    if table.num_rows == 0:
        raise DataError(f"{path}: the movies file lists no movies")
    movie_ids = _chunked_numpy(table.column("movieId"), "movieId", path, header_lines)
    _check_unique_ids(movie_ids, path, header_lines)
    return pd.DataFrame(
        {
            "movieId": movie_ids,
            "title": pd.Series(table.column("title").to_pylist(), dtype=str),
            "genres": pd.Series(genres, dtype=object),
        }
    )


# --------------------------------------------------------------------------- file access


def _as_release(release: Release | str) -> Release:
    return release if isinstance(release, Release) else get_release(release)


def _required_file(folder: str | os.PathLike[str], name: str, what: str) -> Path:
    path = Path(folder) / name
    if not path.is_file():
        raise DataError(f"{path}: missing {what} file {name!r} in release folder {Path(folder)}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the {what} file is empty")
    return path


def _read_nonempty_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if not data.strip():
        raise DataError(f"{path}: the file is empty")
    return data


def _decode(data: bytes, release: Release, path: Path) -> str:
    try:
        return data.decode(release.encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        if release.fallback_encoding is None:
            raise DataError(
                f"{path}: line {line}: bytes that are not valid {release.encoding}"
            ) from None
        log.warning(
            "%s: line %d is not valid %s; reading the file as %s",
            path,
            line,
            release.encoding,
            release.fallback_encoding,
        )
        return data.decode(release.fallback_encoding)


def _check_header(path: Path, expected: tuple[str, ...], delimiter: str) -> None:
    with open(path, "rb") as fh:
        first = fh.readline()
    header = first.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
    if header.split(delimiter) != list(expected):
        raise DataError(
            f"{path}: line 1: expected the header {delimiter.join(expected)!r}, found {header!r}"
        )


# --------------------------------------------------------------------------- parsing


def _read_table(
    source: Path | bytes,
    path: Path,
    names: tuple[str, ...],
    types: dict[str, pa.DataType],
    delimiter: str,
    *,
    skip_rows: int,
    quoted: bool = False,
) -> pa.Table:
    """Parse delimited text with fixed column names and types; errors name the line."""
    try:
        return pcsv.read_csv(
            _arrow_input(source),
            read_options=pcsv.ReadOptions(
                column_names=list(names), skip_rows=skip_rows, block_size=_BLOCK_BYTES
            ),
            parse_options=_parse_options(delimiter, quoted),
            convert_options=_convert_options(types),
        )
    except pa.ArrowInvalid as exc:
        raise _located_error(
            exc, source, path, names, types, delimiter, skip_rows, quoted
        ) from None


def _arrow_input(source: Path | bytes):
    return str(source) if isinstance(source, Path) else pa.BufferReader(source)


def _parse_options(delimiter: str, quoted: bool, handler=None) -> pcsv.ParseOptions:
    return pcsv.ParseOptions(
        delimiter=delimiter,
        quote_char='"' if quoted else False,
        ignore_empty_lines=True,
        invalid_row_handler=handler,
    )


def _convert_options(types: dict[str, pa.DataType], include=None) -> pcsv.ConvertOptions:
    # Only an empty field is null: "nan" must reach the scale check as NaN, "NA" must fail.
    return pcsv.ConvertOptions(
        column_types=types,
        null_values=[""],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        include_columns=include,
    )


def _located_error(
    exc: pa.ArrowInvalid,
    source: Path | bytes,
    path: Path,
    names: tuple[str, ...],
    types: dict[str, pa.DataType],
    delimiter: str,
    skip_rows: int,
    quoted: bool,
) -> DataError:
    """Turn a pyarrow parse error into a DataError naming the physical line."""
    message = str(exc)
    data = source.read_bytes() if isinstance(source, Path) else source
    if _COLUMN_COUNT.search(message):
        bad_rows: list[pcsv.InvalidRow] = []

        def remember(row: pcsv.InvalidRow) -> str:
            bad_rows.append(row)
            return "error"

        # Only a single-threaded parse reports the row number of an invalid row.
        try:
            pcsv.read_csv(
                pa.BufferReader(data),
                read_options=pcsv.ReadOptions(
                    column_names=list(names), skip_rows=skip_rows, use_threads=False
                ),
                parse_options=_parse_options(delimiter, quoted, remember),
                convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())),
            )
        except pa.ArrowInvalid:
            pass
        if bad_rows:
            row = bad_rows[0]
            where = f"line {_physical_line(data, row.number)}: " if row.number else ""
            return DataError(
                f"{path}: {where}expected {row.expected_columns} fields separated by "
                f"{delimiter!r}, found {row.actual_columns}: {row.text[:200]!r}"
            )
        return DataError(f"{path}: {message}")
    conversion = _CONVERSION.search(message)
    if conversion:
        name = names[int(conversion.group(1))]
        target = conversion.group(2)
        if "UTF8" in message:
            return _utf8_error(data, path)
        column = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(column_names=list(names), skip_rows=skip_rows),
            parse_options=_parse_options(delimiter, quoted),
            convert_options=_convert_options({name: pa.string()}, include=[name]),
        ).column(name)
        pattern = _FLOAT_TEXT if pa.types.is_floating(types[name]) else _INTEGER_TEXT
        valid = pc.match_substring_regex(column, pattern).to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(~valid)
        if not len(bad) and pa.types.is_integer(types[name]):  # integers, some out of range
            info = np.iinfo(types[name].to_pandas_dtype())
            # float64 finds the candidates; exact integers decide at the boundary (2**63
            # and int64's maximum are the same float64)
            values = pc.cast(pc.utf8_trim_whitespace(column), pa.float64()).to_numpy()
            near = np.flatnonzero((values <= info.min) | (values >= info.max))
            bad = [r for r in near if not info.min <= int(column[int(r)].as_py()) <= info.max]
            if len(bad):
                row = int(bad[0])
                return DataError(
                    f"{path}: line {_physical_line(data, skip_rows + row + 1)}: column "
                    f"{name!r}: {column[row].as_py()!r} is out of the {target} range "
                    f"({info.min:,} to {info.max:,})"
                )
        if len(bad):
            row = int(bad[0])
            line = _physical_line(data, skip_rows + row + 1)
            value = column[row].as_py()
            return DataError(
                f"{path}: line {line}: column {name!r}: {value!r} is not a valid {target} "
                f"({'a number' if target.startswith(('float', 'double')) else 'an integer'} expected)"
            )
        return DataError(f"{path}: column {name!r}: {message}")
    return DataError(f"{path}: {message}")


def _utf8_error(data: bytes, path: Path) -> DataError:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return DataError(f"{path}: line {line}: bytes that are not valid utf-8")
    return DataError(f"{path}: bytes that are not valid utf-8")


def _physical_line(data: bytes, nonempty_row: int) -> int:
    """Line number (1-based) of the ``nonempty_row``-th non-blank line of ``data``.

    pyarrow skips blank lines and counts rows among the others; users count lines.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == ord("\n"))
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(buf)]))
    lengths = ends - starts
    carriage_return_only = (lengths == 1) & (buf[np.minimum(starts, len(buf) - 1)] == ord("\r"))
    nonblank = np.flatnonzero((lengths > 0) & ~carriage_return_only)
    if nonempty_row < 1 or nonempty_row > len(nonblank):
        return nonempty_row
    return int(nonblank[nonempty_row - 1]) + 1


def _columns_of(table: pa.Table) -> dict[str, pa.ChunkedArray]:
    return {name: table.column(name) for name in table.column_names}


def _frame_of(columns: dict[str, pa.ChunkedArray], path: Path, header_lines: int) -> pd.DataFrame:
    """Convert column by column, taking each Arrow column out of ``columns`` (so that the
    caller, having dropped the table, holds no reference to it) and converting it."""
    arrays: dict[str, np.ndarray] = {}
    for name in list(columns):
        arrays[name] = _chunked_numpy(columns.pop(name), name, path, header_lines)
    return pd.DataFrame(arrays, copy=False)


def _chunked_numpy(column: pa.ChunkedArray, name: str, path: Path, header_lines: int) -> np.ndarray:
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        line = _physical_line(path.read_bytes(), header_lines + row + 1)
        raise DataError(f"{path}: line {line}: column {name!r} is empty")
    return column.to_numpy()


def _check_scale(ratings: np.ndarray, release: Release, path: Path, header_lines: int) -> None:
    low, high, step = release.rating_scale
    row = first_off_scale(ratings, low, high, step)
    if row >= 0:
        line = _physical_line(path.read_bytes(), header_lines + row + 1)
        raise DataError(
            f"{path}: line {line}: rating {float(ratings[row]):g} is off the {release.name} scale "
            f"({low:g} to {high:g} in steps of {step:g})"
        )


def _check_timestamps(timestamps: np.ndarray, path: Path, header_lines: int) -> None:
    negative = np.flatnonzero(timestamps < 0)
    if len(negative):
        row = int(negative[0])
        line = _physical_line(path.read_bytes(), header_lines + row + 1)
        raise DataError(
            f"{path}: line {line}: timestamp {int(timestamps[row])} is negative (before "
            f"1970-01-01); MovieLens times are seconds since then, so the file is corrupt "
            f"({len(negative)} negative timestamp{'s' if len(negative) > 1 else ''} in all)"
        )


def _check_unique_ids(movie_ids: np.ndarray, path: Path, header_lines: int) -> None:
    order = np.argsort(movie_ids, kind="stable")
    repeated = np.flatnonzero(movie_ids[order][1:] == movie_ids[order][:-1])
    if len(repeated):
        first, second = sorted((int(order[repeated[0]]), int(order[repeated[0] + 1])))
        data = path.read_bytes()
        raise DataError(
            f"{path}: line {_physical_line(data, header_lines + second + 1)}: movie id "
            f"{movie_ids[second]} is listed again (first on line "
            f"{_physical_line(data, header_lines + first + 1)})"
        )


# --------------------------------------------------------------------------- genres


def _split_genres(column: pa.ChunkedArray) -> list[list[str]]:
    """``"A|B"`` → ``["A", "B"]``; ``(no genres listed)`` and empty names are dropped."""
    lists = pc.split_pattern(column.combine_chunks(), "|")
    values = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    parents = pc.list_parent_indices(lists).to_numpy()
    keep = pc.and_(pc.not_equal(values, NO_GENRES), pc.not_equal(values, "")).to_numpy(
        zero_copy_only=False
    )
    return _lists_from_parents(values.filter(pa.array(keep)), parents[keep], len(lists))


def _lists_from_parents(values: pa.Array, parents: np.ndarray, n_rows: int) -> list[list[str]]:
    counts = np.bincount(parents, minlength=n_rows)
    offsets = np.zeros(n_rows + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values).to_pylist()


def _read_100k_items(release: Release, folder: str | os.PathLike[str], path: Path):
    """``u.item``: ``id|title|release date|video date|IMDb URL|flag…`` with flags named by
    ``u.genre`` (``name|index`` lines)."""
    assert release.genres_file is not None
    genre_path = _required_file(folder, release.genres_file, "genre names")
    flag_names = _read_100k_genre_names(genre_path, release)
    names = ("movieId", "title", "release_date", "video_release_date", "imdb_url", *flag_names)
    types: dict[str, pa.DataType] = {name: pa.string() for name in names[1:5]}
    types["movieId"] = pa.int64()
    types.update(dict.fromkeys(flag_names, pa.int8()))
    text = _decode(_read_nonempty_bytes(path), release, path).encode("utf-8")
    table = _read_table(text, path, names, types, "|", skip_rows=0)
    flags = np.column_stack(
        [_chunked_numpy(table.column(name), name, path, 0) for name in flag_names]
    )
    if not np.isin(flags, (0, 1)).all():
        row, col = (int(i[0]) for i in np.nonzero(~np.isin(flags, (0, 1))))
        line = _physical_line(text, row + 1)
        raise DataError(
            f"{path}: line {line}: genre flag {flag_names[col]!r} is {flags[row, col]}, not 0 or 1"
        )
    real = np.array([name != UNKNOWN_GENRE_100K for name in flag_names])
    rows, cols = np.nonzero(flags.astype(bool) & real)
    values = pa.array(np.asarray(flag_names, dtype=object)[cols], type=pa.string())
    return table, _lists_from_parents(values, rows, table.num_rows)


def _read_100k_genre_names(path: Path, release: Release) -> list[str]:
    text = _decode(_read_nonempty_bytes(path), release, path)
    names: dict[int, str] = {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, index = line.rpartition("|")
        if not sep or not index.strip().isdigit():
            raise DataError(f"{path}: line {line_number}: expected 'name|index', found {line!r}")
        names[int(index)] = name
    if sorted(names) != list(range(len(names))):
        raise DataError(f"{path}: genre indices {sorted(names)} are not 0..{len(names) - 1}")
    return [names[i] for i in range(len(names))]
