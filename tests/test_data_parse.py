"""read_ratings / read_movies on small files of every release format, and on bad input."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from _data_helpers import LATEST_MOVIES, LATEST_RATINGS, write_files
from movielens_als.data import parse
from movielens_als.data.parse import read_movies, read_ratings
from movielens_als.data.registry import RELEASES, get_release
from movielens_als.errors import ConfigError, DataError

LATEST = get_release("ml-latest-small")
ML1M = get_release("ml-1m")
ML10M = get_release("ml-10m")
ML100K = get_release("ml-100k")

U_GENRE = (
    "unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\nCrime|6\n"
    "Documentary|7\nDrama|8\nFantasy|9\nFilm-Noir|10\nHorror|11\nMusical|12\nMystery|13\n"
    "Romance|14\nSci-Fi|15\nThriller|16\nWar|17\nWestern|18\n\n"
)


def u_item_line(movie_id: int, title: str, flags: list[int]) -> str:
    values = [0] * 19
    for flag in flags:
        values[flag] = 1
    return f"{movie_id}|{title}|01-Jan-1995||http://imdb/x|" + "|".join(map(str, values)) + "\n"


def test_registry_knows_the_releases():
    assert {
        "ml-latest-small",
        "ml-latest",
        "ml-20m",
        "ml-25m",
        "ml-32m",
        "ml-1m",
        "ml-10m",
        "ml-100k",
        "synthetic",
    } <= set(RELEASES)
    assert LATEST.url == "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
    assert ML1M.rating_scale == (1.0, 5.0, 1.0) and ML10M.rating_scale == (0.5, 5.0, 0.5)
    assert ML100K.required_files == ("u.data", "u.item", "u.genre")
    with pytest.raises(ConfigError, match=r"'ml-3m'.*known: .*ml-100k"):
        get_release("ml-3m")


def test_latest_format(tmp_path):
    folder = write_files(tmp_path, {"ratings.csv": LATEST_RATINGS, "movies.csv": LATEST_MOVIES})
    ratings = read_ratings(LATEST, folder)
    assert list(ratings.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert [str(t) for t in ratings.dtypes] == ["int32", "int32", "float32", "int64"]
    assert ratings["userId"].tolist() == [1, 1, 7, 3, 3]  # file order
    assert ratings["rating"].tolist() == [4.0, 3.5, 0.5, 5.0, 2.0]
    movies = read_movies(LATEST, folder)
    assert movies["movieId"].tolist() == [10, 20, 30, 40]
    assert movies["title"].tolist()[1] == "American President, The (1995)"
    assert movies["title"].tolist()[2] == "Ghost: The Return (2001)"
    assert movies["genres"].tolist() == [
        ["Adventure", "Animation", "Children"],
        ["Comedy", "Drama", "Romance"],
        [],
        ["Drama"],
    ]


def test_latest_format_crlf_and_blank_lines(tmp_path):
    ratings = LATEST_RATINGS.replace("\n", "\r\n") + "\r\n"
    folder = write_files(tmp_path, {"ratings.csv": ratings, "movies.csv": LATEST_MOVIES})
    assert len(read_ratings(LATEST, folder)) == 5


def test_ml1m_dat_latin1(tmp_path):
    folder = write_files(
        tmp_path,
        {
            "ratings.dat": "1::1193::5::978300760\n1::661::3::978302109\n2::1193::1::978298413\n",
            "movies.dat": "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
            "661::James and the Giant Peach: The Movie (1996)::Animation|Children's|Musical\n"
            "3::Misérables, Les (1995)::Drama|Musical\n",
        },
        encoding="latin-1",
    )
    ratings = read_ratings(ML1M, folder)
    assert ratings.to_dict("list") == {
        "userId": [1, 1, 2],
        "movieId": [1193, 661, 1193],
        "rating": [5.0, 3.0, 1.0],
        "timestamp": [978300760, 978302109, 978298413],
    }
    movies = read_movies(ML1M, folder)
    assert movies["title"].tolist() == [
        "One Flew Over the Cuckoo's Nest (1975)",
        "James and the Giant Peach: The Movie (1996)",
        "Misérables, Les (1995)",
    ]
    assert movies["genres"].tolist()[1] == ["Animation", "Children's", "Musical"]


def test_ml1m_rejects_half_stars(tmp_path):
    folder = write_files(tmp_path, {"ratings.dat": "1::1::5::1\n1::2::3.5::2\n"})
    with pytest.raises(DataError, match=r"ratings.dat: line 2: rating 3.5 is off the ml-1m scale"):
        read_ratings(ML1M, folder)


def test_ml10m_utf8_and_latin1_fallback(tmp_path, caplog):
    folder = write_files(
        tmp_path,
        {
            "ratings.dat": "1::122::4.5::838985046\n",
            "movies.dat": "122::Boomerang: Ça (1992)::(no genres listed)\n",
        },
    )
    assert read_ratings(ML10M, folder)["rating"].tolist() == [4.5]
    movies = read_movies(ML10M, folder)
    assert movies["title"].tolist() == ["Boomerang: Ça (1992)"] and movies["genres"].tolist() == [
        []
    ]
    (folder / "movies.dat").write_bytes("1::A::Drama\n2::Ça (1992)::Drama\n".encode("latin-1"))
    with caplog.at_level(logging.WARNING):
        assert read_movies(ML10M, folder)["title"].tolist() == ["A", "Ça (1992)"]
    assert "line 2 is not valid utf-8" in caplog.text


def test_ml100k_format(tmp_path):
    folder = write_files(
        tmp_path,
        {
            "u.data": "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n",
            "u.item": u_item_line(242, "Kolya (1996)", [5])
            + u_item_line(302, "L.A. Confidential (1997)", [6, 10, 13, 16])
            + u_item_line(377, "Heavyweights (1994)", [4, 5])
            + u_item_line(267, "unknown", [0]),
            "u.genre": U_GENRE,
        },
        encoding="latin-1",
    )
    ratings = read_ratings(ML100K, folder)
    assert ratings["userId"].tolist() == [196, 186, 22]
    assert ratings["rating"].dtype == np.float32
    movies = read_movies(ML100K, folder)
    assert movies["movieId"].tolist() == [242, 302, 377, 267]
    assert movies["genres"].tolist() == [
        ["Comedy"],
        ["Crime", "Film-Noir", "Mystery", "Thriller"],
        ["Children's", "Comedy"],
        [],
    ]


def test_ml100k_bad_flag_and_bad_genre_file(tmp_path):
    line = u_item_line(1, "A (1990)", [1]).replace("|1|", "|2|", 1)
    folder = write_files(tmp_path, {"u.item": line, "u.genre": U_GENRE}, encoding="latin-1")
    with pytest.raises(DataError, match=r"u.item: line 1: genre flag 'Action' is 2"):
        read_movies(ML100K, folder)
    write_files(tmp_path, {"u.genre": "unknown|0\nAction\n"})
    with pytest.raises(DataError, match=r"u.genre: line 2: expected 'name\|index'"):
        read_movies(ML100K, folder)
    (folder / "u.genre").unlink()
    with pytest.raises(DataError, match=r"missing genre names file 'u.genre'"):
        read_movies(ML100K, folder)


# --------------------------------------------------------------------------- bad input


def latest_folder(tmp_path, ratings=LATEST_RATINGS, movies=LATEST_MOVIES):
    return write_files(tmp_path, {"ratings.csv": ratings, "movies.csv": movies})


def test_missing_files(tmp_path):
    folder = write_files(tmp_path, {"movies.csv": LATEST_MOVIES})
    with pytest.raises(DataError, match=r"missing ratings file 'ratings.csv'"):
        read_ratings(LATEST, folder)
    folder = write_files(tmp_path / "b", {"ratings.csv": LATEST_RATINGS})
    with pytest.raises(DataError, match=r"missing movies file 'movies.csv'"):
        read_movies(LATEST, folder)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("", "ratings file is empty"),
        ("userId,movieId,rating,timestamp\n", "holds no ratings"),
        ("userId,movieId,rating,timestamp\n\n\n", "holds no ratings"),
    ],
)
def test_empty_ratings(tmp_path, content, why):
    with pytest.raises(DataError, match=why):
        read_ratings(LATEST, latest_folder(tmp_path, ratings=content))


def test_empty_dat_ratings(tmp_path):
    folder = write_files(tmp_path, {"ratings.dat": "\n\n"})
    with pytest.raises(DataError, match=r"ratings.dat: the file is empty"):
        read_ratings(ML1M, folder)


def test_wrong_header(tmp_path):
    bad = LATEST_RATINGS.replace("userId,movieId", "user,movie")
    with pytest.raises(
        DataError,
        match=r"ratings.csv: line 1: expected the header 'userId,movieId,rating,timestamp', found 'user,movie,rating,timestamp'",
    ):
        read_ratings(LATEST, latest_folder(tmp_path, ratings=bad))
    with pytest.raises(DataError, match=r"movies.csv: line 1: expected the header"):
        read_movies(LATEST, latest_folder(tmp_path, movies="movieId,title\n1,A\n"))


def test_wrong_column_count_names_the_physical_line(tmp_path):
    bad = LATEST_RATINGS + "\n8,10,4.0,1,extra\n"  # a blank line, then line 8
    with pytest.raises(
        DataError,
        match=r"ratings.csv: line 8: expected 4 fields separated by ',', found 5: '8,10,4.0,1,extra'",
    ):
        read_ratings(LATEST, latest_folder(tmp_path, ratings=bad))
    with pytest.raises(
        DataError, match=r"ratings.dat: line 2: expected 4 fields separated by '\\t', found 3"
    ):
        read_ratings(ML1M, write_files(tmp_path / "dat", {"ratings.dat": "1::2::3::4\n1::2::3\n"}))


@pytest.mark.parametrize(
    ("row", "column", "value"),
    [
        ("1,abc,4.0,5", "movieId", "abc"),
        ("x1,10,4.0,5", "userId", "x1"),
        ("1,10,four,5", "rating", "four"),
        ("1,10,4.0,1.5", "timestamp", "1.5"),
    ],
)
def test_non_numeric_values_name_line_and_column(tmp_path, row, column, value):
    bad = LATEST_RATINGS + "\n" + row + "\n"  # header = line 1, 5 rows, blank line 7, row on 8
    with pytest.raises(DataError, match=rf"line 8: column '{column}': '{value}' is not a valid"):
        read_ratings(LATEST, latest_folder(tmp_path, ratings=bad))


INT32_RANGE = r"int32 range \(-2,147,483,648 to 2,147,483,647\)"
INT64_RANGE = r"int64 range \(-9,223,372,036,854,775,808 to 9,223,372,036,854,775,807\)"


@pytest.mark.parametrize(
    ("row", "column", "value", "range_text"),
    [
        ("1,3000000000,4.0,5", "movieId", "3000000000", INT32_RANGE),
        ("-2147483649,10,4.0,5", "userId", "-2147483649", INT32_RANGE),
        ("1,10,4.0,9223372036854775808", "timestamp", "9223372036854775808", INT64_RANGE),
    ],
)
def test_integers_beyond_their_type_name_line_and_column(tmp_path, row, column, value, range_text):
    bad = LATEST_RATINGS + "\n" + row + "\n"
    with pytest.raises(
        DataError, match=rf"line 8: column '{column}': '{value}' is out of the {range_text}"
    ):
        read_ratings(LATEST, latest_folder(tmp_path, ratings=bad))


def test_integers_at_their_type_limits_are_read(tmp_path):
    good = LATEST_RATINGS + "\n2147483647,10,4.0,9223372036854775807\n"
    ratings = read_ratings(LATEST, latest_folder(tmp_path, ratings=good))
    assert ratings["userId"].iloc[-1] == 2**31 - 1 and ratings["timestamp"].iloc[-1] == 2**63 - 1


def test_non_numeric_in_dat_file(tmp_path):
    folder = write_files(tmp_path, {"ratings.dat": "1::2::3::4\n1::2b::3::4\n"})
    with pytest.raises(DataError, match=r"ratings.dat: line 2: column 'movieId': '2b'"):
        read_ratings(ML1M, folder)


def test_empty_field(tmp_path):
    bad = LATEST_RATINGS + "9,,4.0,5\n"
    with pytest.raises(DataError, match=r"line 7: column 'movieId' is empty"):
        read_ratings(LATEST, latest_folder(tmp_path, ratings=bad))


@pytest.mark.parametrize("value", ["5.5", "0.0", "0.25", "-1", "nan", "inf"])
def test_rating_off_scale_or_nan(tmp_path, value):
    bad = LATEST_RATINGS + f"9,10,{value},5\n"
    with pytest.raises(
        DataError,
        match=r"ratings.csv: line 7: rating .* is off the ml-latest-small scale \(0.5 to 5 in steps of 0.5\)",
    ):
        read_ratings(LATEST, latest_folder(tmp_path, ratings=bad))


def test_invalid_utf8_title(tmp_path):
    movies = LATEST_MOVIES.encode() + b"50,Caf\xe9 (1990),Drama\n"
    folder = write_files(tmp_path, {"ratings.csv": LATEST_RATINGS, "movies.csv": movies})
    with pytest.raises(DataError, match=r"movies.csv: line 6: bytes that are not valid utf-8"):
        read_movies(LATEST, folder)


def test_latin1_decoding_error_without_fallback(tmp_path):
    release = get_release("ml-latest-small")
    folder = write_files(tmp_path, {"ratings.csv": LATEST_RATINGS, "movies.csv": LATEST_MOVIES})
    assert release.fallback_encoding is None
    (folder / "movies.csv").write_bytes(b"movieId,title,genres\n1,\xff\xfe,Drama\n")
    with pytest.raises(DataError, match=r"line 2: bytes that are not valid utf-8"):
        read_movies(release, folder)


def test_duplicate_movie_id_names_both_lines(tmp_path):
    movies = LATEST_MOVIES + "20,Again (2000),Drama\n"
    with pytest.raises(
        DataError, match=r"movies.csv: line 6: movie id 20 is listed again \(first on line 3\)"
    ):
        read_movies(LATEST, latest_folder(tmp_path, movies=movies))


def test_quoted_titles_with_commas_and_quotes(tmp_path):
    movies = 'movieId,title,genres\n1,"Hello, ""World"" (1999)",Comedy\n2,"A, B, C (2000)",Drama|Comedy\n'
    frame = read_movies(LATEST, latest_folder(tmp_path, movies=movies))
    assert frame["title"].tolist() == ['Hello, "World" (1999)', "A, B, C (2000)"]
    assert frame["genres"].tolist() == [["Comedy"], ["Drama", "Comedy"]]


def large_ratings(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "userId": rng.integers(1, 5000, n, dtype=np.int32),
            "movieId": rng.integers(1, 90_000, n, dtype=np.int32),
            "rating": (rng.integers(1, 11, n) / 2).astype(np.float32),
            "timestamp": rng.integers(789_652_009, 1_697_155_200, n),
        }
    )


def test_large_file_matches_pandas(tmp_path, monkeypatch):
    """Multi-block parsing (pyarrow's threads, one chunk per block) keeps file order and values."""
    monkeypatch.setattr(parse, "_BLOCK_BYTES", 1 << 20)  # 9 MB of ratings: 9 blocks
    chunks = []
    read_table = parse._read_table

    def counting(*args, **kwargs):
        table = read_table(*args, **kwargs)
        chunks.append(table.column("rating").num_chunks)
        return table

    monkeypatch.setattr(parse, "_read_table", counting)
    expected = large_ratings(300_000)
    expected.to_csv(tmp_path / "ratings.csv", index=False)
    write_files(tmp_path, {"movies.csv": LATEST_MOVIES})
    pd.testing.assert_frame_equal(read_ratings(LATEST, tmp_path), expected)
    assert chunks[0] > 1


def test_error_in_a_later_block_names_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr(parse, "_BLOCK_BYTES", 1 << 20)
    large_ratings(100_000).to_csv(tmp_path / "ratings.csv", index=False)
    with open(tmp_path / "ratings.csv", "a") as ratings:
        ratings.write("9,10,four,5\n")  # header + 100,000 rows: line 100,002, the fourth block
    write_files(tmp_path, {"movies.csv": LATEST_MOVIES})
    with pytest.raises(DataError, match=r"line 100002: column 'rating': 'four' is not a valid"):
        read_ratings(LATEST, tmp_path)


@pytest.mark.parametrize(
    ("release", "name", "content", "line"),
    [
        # header = line 1, 5 rows, blank line 7, the negative one on line 8
        (LATEST, "ratings.csv", LATEST_RATINGS + "\n9,10,4.0,-964982703\n9,20,4.0,-1\n", 8),
        (ML1M, "ratings.dat", "1::1::5::978300760\n\n1::2::3::-1\n", 3),
        (ML100K, "u.data", "196\t242\t3\t-881250949\n", 1),
    ],
)
def test_negative_timestamp_is_refused_naming_the_line(tmp_path, release, name, content, line):
    """The policy (read_ratings' docstring): refused, never silently kept."""
    folder = write_files(tmp_path, {name: content})
    with pytest.raises(
        DataError, match=rf"{name}: line {line}: timestamp -\d+ is negative"
    ) as info:
        read_ratings(release, folder)
    assert "1970-01-01" in str(info.value)


def test_negative_timestamps_are_counted_in_the_message(tmp_path):
    bad = LATEST_RATINGS + "9,10,4.0,-5\n9,20,4.0,-6\n"
    with pytest.raises(DataError, match=r"line 7: timestamp -5 .*\(2 negative timestamps in all\)"):
        read_ratings(LATEST, latest_folder(tmp_path, ratings=bad))


def test_timestamp_zero_is_accepted(tmp_path):
    ratings = read_ratings(LATEST, latest_folder(tmp_path, ratings=LATEST_RATINGS + "9,10,4.0,0\n"))
    assert ratings["timestamp"].tolist()[-1] == 0
