"""fetch_release against a local HTTPS (and HTTP) server, file:// URLs and mirror folders."""

from __future__ import annotations

import io
import json
import logging
import socket
import time
import zipfile
from pathlib import Path

import pytest

from _data_helpers import (
    LATEST_MOVIES,
    LATEST_RATINGS,
    declare_size,
    make_zip,
    md5_line,
    serve,
    write_files,
    write_test_ca,
)
from movielens_als.data import download
from movielens_als.data.download import MANIFEST, ExtractionLimits, fetch_release, is_fetched
from movielens_als.data.registry import (
    DEFAULT_MAX_UNPACKED_BYTES,
    MAX_COMPRESSION_RATIO,
    UNPACKED_SAFETY_FACTOR,
    get_release,
)
from movielens_als.errors import ConfigError, DataError, DownloadError

NAME = "ml-latest-small"
ARCHIVE = f"{NAME}.zip"
FILES = {"ratings.csv": LATEST_RATINGS, "movies.csv": LATEST_MOVIES, "README.txt": "licence"}


@pytest.fixture(autouse=True)
def no_env_mirror(monkeypatch, tmp_path_factory):
    """The developer's own $MOVIELENS_MIRROR / $MOVIELENS_ALLOW_HTTP must not leak into these
    tests; the loopback HTTPS server's certificate is trusted (as a private CA would be)."""
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    monkeypatch.delenv(download.ALLOW_HTTP_ENV, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(write_test_ca(tmp_path_factory.mktemp("ca"))))


def big_archive() -> bytes:
    """An archive big enough (stored, incompressible-ish) to cut mid-body."""
    ratings = "userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{m},{(u * m) % 10 / 2 + 0.5},{1_000_000 + u * m}\n"
        for u in range(1, 60)
        for m in range(1, 60)
    )
    return make_zip({**FILES, "ratings.csv": ratings})


def assert_release(folder: Path, files: dict[str, str] = FILES) -> None:
    for name, content in files.items():
        assert (folder / name).read_text() == content
    manifest = json.loads((folder / MANIFEST).read_text())
    assert set(manifest["files"]) == set(files)


def assert_nothing_left(raw: Path) -> None:
    leftovers = [p for p in raw.rglob("*")] if raw.exists() else []
    assert leftovers == [], leftovers


def test_https_download_with_published_md5(tmp_path, caplog):
    archive = make_zip(FILES)
    with (
        caplog.at_level(logging.INFO, logger="movielens_als.progress"),
        serve({ARCHIVE: archive, f"{ARCHIVE}.md5": md5_line(archive, ARCHIVE)}) as server,
    ):
        folder = fetch_release(NAME, tmp_path / "raw", base_url=server.url, progress=True)
    assert folder == tmp_path / "raw" / NAME
    assert_release(folder)
    assert (
        json.loads((folder / MANIFEST).read_text())["archive_md5"]
        == md5_line(archive, "x").split()[0].decode()
    )
    assert [name for name, _ in server.requests] == [ARCHIVE, f"{ARCHIVE}.md5"]
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == [NAME]  # no .part left
    # stderr is no terminal here: the progress is log lines, the last one at 100 %
    assert f"{ARCHIVE} 100% " in caplog.text


def test_missing_published_md5_is_tolerated(tmp_path, caplog):
    with caplog.at_level(logging.WARNING), serve({ARCHIVE: make_zip(FILES)}) as server:
        folder = fetch_release(NAME, tmp_path, base_url=server.url, progress=False)
    assert_release(folder)
    assert "no published md5" in caplog.text


def test_wrong_md5_is_refused_and_leaves_nothing(tmp_path):
    archive = make_zip(FILES)
    with serve({ARCHIVE: archive, f"{ARCHIVE}.md5": md5_line(b"other", ARCHIVE)}) as server:
        with pytest.raises(DownloadError, match=r"md5 .* does not match"):
            fetch_release(NAME, tmp_path / "raw", base_url=server.url, progress=False)
    assert_nothing_left(tmp_path / "raw")


def test_dropped_connection_resumes_with_range(tmp_path):
    archive = big_archive()
    with serve({ARCHIVE: archive}) as server:
        server.drop_after, server.drops_left = len(archive) // 3, 2
        folder = fetch_release(NAME, tmp_path, base_url=server.url, progress=False)
    zip_requests = [header for name, header in server.requests if name == ARCHIVE]
    assert zip_requests[0] is None
    assert zip_requests[1] == f"bytes={len(archive) // 3}-"
    assert len(zip_requests) == 3
    assert (folder / "ratings.csv").stat().st_size > 10_000
    assert is_fetched(folder, NAME)


def test_server_without_range_support_restarts(tmp_path):
    archive = big_archive()
    with serve({ARCHIVE: archive}) as server:
        server.honour_range = False
        server.drop_after, server.drops_left = len(archive) // 2, 1
        folder = fetch_release(NAME, tmp_path, base_url=server.url, progress=False)
    assert is_fetched(folder, NAME)
    assert [h for n, h in server.requests if n == ARCHIVE][1] == f"bytes={len(archive) // 2}-"


def test_interrupted_run_keeps_part_and_next_run_resumes(tmp_path):
    archive = big_archive()
    cut = len(archive) // 4
    with serve({ARCHIVE: archive}) as server:
        server.drop_after, server.drops_left = cut, 10
        with pytest.raises(DownloadError, match=r"broke off .* rerun resumes"):
            fetch_release(NAME, tmp_path, base_url=server.url, progress=False, retries=0)
        assert (tmp_path / f"{ARCHIVE}.part").stat().st_size == cut
        assert not (tmp_path / NAME).exists()
        server.drops_left = 0
        folder = fetch_release(NAME, tmp_path, base_url=server.url, progress=False)
    assert server.requests[-2] == (ARCHIVE, f"bytes={cut}-")
    assert is_fetched(folder, NAME)
    assert not (tmp_path / f"{ARCHIVE}.part").exists()


def test_stale_part_from_another_file_is_not_spliced(tmp_path):
    """A .part whose server validator changed gets the whole new file (If-Range)."""
    archive = big_archive()
    (tmp_path / f"{ARCHIVE}.part").write_bytes(b"x" * 100)
    with serve({ARCHIVE: archive}) as server:
        (tmp_path / f"{ARCHIVE}.part.json").write_text(
            json.dumps({"url": f"{server.url}/{ARCHIVE}", "validator": '"stale"'})
        )
        folder = fetch_release(NAME, tmp_path, base_url=server.url, progress=False)
    assert server.requests[0] == (ARCHIVE, "bytes=100-")
    assert is_fetched(folder, NAME)
    assert (folder / "ratings.csv").stat().st_size > 10_000


def test_skips_when_already_fetched_and_refetches_when_changed(tmp_path):
    with serve({ARCHIVE: make_zip(FILES)}) as server:
        folder = fetch_release(NAME, tmp_path, base_url=server.url, progress=False)
        url = server.url
    # the server is gone: a second call must not need it
    assert fetch_release(NAME, tmp_path, base_url=url, progress=False) == folder
    (folder / "ratings.csv").write_text("changed")
    with pytest.raises(DownloadError, match=r"cannot reach"):
        fetch_release(NAME, tmp_path, base_url=url, progress=False, timeout=2)
    assert (folder / "ratings.csv").read_text() == "changed"  # a failed fetch replaces nothing


def test_offline_without_mirror_says_how_to_set_one(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "GROUPLENS_BASE_URL", "https://127.0.0.1:1")
    with pytest.raises(DownloadError) as info:
        fetch_release(NAME, tmp_path / "raw", progress=False, timeout=2)
    message = str(info.value)
    assert "cannot reach GroupLens" in message
    assert "MOVIELENS_MIRROR" in message and "dataset.mirror" in message
    assert f"{ARCHIVE}.md5" in message and f"{NAME}/" in message
    assert_nothing_left(tmp_path / "raw")


def test_network_timeout_is_configurable(tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts connections, never answers
    try:
        started = time.monotonic()
        with pytest.raises(DownloadError, match=r"timeout 0.5 s"):
            fetch_release(
                NAME,
                tmp_path,
                base_url=f"https://127.0.0.1:{silent.getsockname()[1]}",
                progress=False,
                timeout=0.5,
            )
        assert time.monotonic() - started < 10
    finally:
        silent.close()


def test_http_404_names_the_url(tmp_path):
    with serve({}) as server:
        with pytest.raises(DownloadError, match=rf"{ARCHIVE}: HTTP 404"):
            fetch_release(NAME, tmp_path, base_url=server.url, progress=False)


def test_mirror_folder_with_zip_and_md5(tmp_path):
    archive = make_zip(FILES)
    mirror = write_files(
        tmp_path / "mirror", {ARCHIVE: archive, f"{ARCHIVE}.md5": md5_line(archive, ARCHIVE)}
    )
    folder = fetch_release(NAME, tmp_path / "raw", mirror=mirror, progress=False)
    assert_release(folder)


def test_mirror_folder_md5_mismatch(tmp_path):
    archive = make_zip(FILES)
    mirror = write_files(
        tmp_path / "mirror", {ARCHIVE: archive, f"{ARCHIVE}.md5": md5_line(b"x", ARCHIVE)}
    )
    with pytest.raises(DownloadError, match=r"does not match"):
        fetch_release(NAME, tmp_path / "raw", mirror=mirror, progress=False)
    assert_nothing_left(tmp_path / "raw")


def test_md5_file_for_another_archive_is_refused(tmp_path):
    archive = make_zip(FILES)
    mirror = write_files(
        tmp_path / "mirror", {ARCHIVE: archive, f"{ARCHIVE}.md5": md5_line(archive, "ml-1m.zip")}
    )
    with pytest.raises(DownloadError, match=r"not 'ml-latest-small.zip'"):
        fetch_release(NAME, tmp_path / "raw", mirror=mirror, progress=False)


def test_file_url_mirror(tmp_path):
    mirror = write_files(tmp_path / "mirror", {ARCHIVE: make_zip(FILES)})
    folder = fetch_release(NAME, tmp_path / "raw", mirror=mirror.as_uri(), progress=False)
    assert_release(folder)


def test_env_mirror_is_used(tmp_path, monkeypatch):
    mirror = write_files(tmp_path / "mirror", {ARCHIVE: make_zip(FILES)})
    monkeypatch.setenv(download.MIRROR_ENV, str(mirror))
    assert_release(fetch_release(NAME, tmp_path / "raw", progress=False))


def test_https_mirror_url(tmp_path):
    with serve({ARCHIVE: make_zip(FILES)}) as server:
        folder = fetch_release(NAME, tmp_path, mirror=server.url + "/", progress=False)
    assert_release(folder)


def test_untrusted_certificate_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE")
    with serve({ARCHIVE: make_zip(FILES)}) as server:
        with pytest.raises(DownloadError, match=r"CERTIFICATE_VERIFY_FAILED"):
            fetch_release(NAME, tmp_path / "raw", mirror=server.url, progress=False)
    assert_nothing_left(tmp_path / "raw")


# --------------------------------------------------------------------------- HTTPS only


@pytest.mark.parametrize("allow_http", [False, True])
def test_redirect_from_https_to_http_is_refused(tmp_path, allow_http):
    """Opt-in or not: a source set up as https:// must not be downgraded on the way."""
    archive = make_zip(FILES)
    with serve({ARCHIVE: archive}, tls=False) as plain, serve({}) as secure:
        secure.redirects[ARCHIVE] = f"{plain.url}/{ARCHIVE}"
        with pytest.raises(DownloadError) as info:
            fetch_release(
                NAME, tmp_path / "raw", mirror=secure.url, progress=False, allow_http=allow_http
            )
    message = str(info.value)
    assert f"{secure.url}/{ARCHIVE}" in message and f"{plain.url}/{ARCHIVE}" in message
    assert "leaves HTTPS" in message
    assert plain.requests == []  # never followed
    assert_nothing_left(tmp_path / "raw")


def test_md5_redirected_off_https_is_refused(tmp_path):
    """The md5 is no check when it arrives over a channel that could alter it."""
    archive = make_zip(FILES)
    with (
        serve({f"{ARCHIVE}.md5": md5_line(archive, ARCHIVE)}, tls=False) as plain,
        serve({ARCHIVE: archive}) as secure,
    ):
        secure.redirects[f"{ARCHIVE}.md5"] = f"{plain.url}/{ARCHIVE}.md5"
        with pytest.raises(
            DownloadError, match=rf"/{ARCHIVE}\.md5: the server redirects .* to http://.*HTTPS"
        ):
            fetch_release(NAME, tmp_path / "raw", base_url=secure.url, progress=False)
    assert plain.requests == []
    assert_nothing_left(tmp_path / "raw")  # the downloaded .part is gone too


def test_redirect_that_stays_on_https_is_followed(tmp_path):
    archive = make_zip(FILES)
    with serve({ARCHIVE: archive}) as second, serve({}) as first:
        first.redirects[ARCHIVE] = f"{second.url}/{ARCHIVE}"
        folder = fetch_release(NAME, tmp_path, mirror=first.url, progress=False)
    assert_release(folder)
    assert second.requests[0] == (ARCHIVE, None)


@pytest.mark.parametrize("origin", ["mirror", "base_url", "env"])
def test_http_source_is_refused_without_opt_in(tmp_path, monkeypatch, origin):
    with serve({ARCHIVE: make_zip(FILES)}, tls=False) as plain:
        kwargs = {"mirror": plain.url} if origin == "mirror" else {}
        if origin == "base_url":
            kwargs = {"base_url": plain.url}
        if origin == "env":
            monkeypatch.setenv(download.MIRROR_ENV, plain.url)
        with pytest.raises(ConfigError) as info:
            fetch_release(NAME, tmp_path / "raw", progress=False, **kwargs)
    key = {"mirror": "dataset.mirror", "base_url": "base_url", "env": "$MOVIELENS_MIRROR"}[origin]
    message = str(info.value)
    assert message.startswith(f"{key}: '{plain.url}' is plain http://")
    assert "MOVIELENS_ALLOW_HTTP=1" in message and "allow_http=True" in message
    assert plain.requests == []
    assert_nothing_left(tmp_path / "raw")


def test_http_mirror_works_with_opt_in(tmp_path, monkeypatch):
    archive = make_zip(FILES)
    with serve(
        {ARCHIVE: archive, f"{ARCHIVE}.md5": md5_line(archive, ARCHIVE)}, tls=False
    ) as plain:
        assert_release(
            fetch_release(NAME, tmp_path / "a", mirror=plain.url, progress=False, allow_http=True)
        )
        monkeypatch.setenv(download.ALLOW_HTTP_ENV, "1")
        assert_release(fetch_release(NAME, tmp_path / "b", mirror=plain.url, progress=False))
    assert [name for name, _ in plain.requests] == [ARCHIVE, f"{ARCHIVE}.md5"] * 2


def test_allow_http_env_must_be_a_boolean(tmp_path, monkeypatch):
    monkeypatch.setenv(download.ALLOW_HTTP_ENV, "maybe")
    with pytest.raises(ConfigError, match=r"^\$MOVIELENS_ALLOW_HTTP: 'maybe' is not 1/true"):
        fetch_release(NAME, tmp_path, mirror="http://127.0.0.1:1", progress=False)


def test_extracted_mirror_folder_nested_and_normalised(tmp_path):
    """ml-10m's archive folder is ml-10M100K: the files end up directly in raw/ml-10m/."""
    dat_files = {"ratings.dat": "1::10::4.5::100\n", "movies.dat": "10::Movie: X (1990)::Drama\n"}
    write_files(tmp_path / "mirror" / "ml-10m" / "ml-10M100K", dat_files)
    folder = fetch_release("ml-10m", tmp_path / "raw", mirror=tmp_path / "mirror", progress=False)
    assert folder == tmp_path / "raw" / "ml-10m"
    assert_release(folder, dat_files)


def test_archive_folder_name_is_normalised(tmp_path):
    dat_files = {"ratings.dat": "1::10::4.5::100\n", "movies.dat": "10::Movie: X (1990)::Drama\n"}
    mirror = write_files(
        tmp_path / "mirror", {"ml-10m.zip": make_zip(dat_files, folder="ml-10M100K")}
    )
    folder = fetch_release("ml-10m", tmp_path / "raw", mirror=mirror, progress=False)
    assert_release(folder, dat_files)


def test_mirror_folder_without_the_release(tmp_path):
    (tmp_path / "mirror").mkdir()
    with pytest.raises(
        DownloadError, match=r"holds neither ml-latest-small.zip nor ml-latest-small/"
    ):
        fetch_release(NAME, tmp_path / "raw", mirror=tmp_path / "mirror", progress=False)
    with pytest.raises(DownloadError, match=r"does not exist"):
        fetch_release(NAME, tmp_path / "raw", mirror=tmp_path / "nowhere", progress=False)


def test_corrupt_zip(tmp_path):
    archive = make_zip(FILES)
    mirror = write_files(tmp_path / "mirror", {ARCHIVE: archive[: len(archive) // 2]})
    with pytest.raises(DownloadError, match=r"not a readable zip archive"):
        fetch_release(NAME, tmp_path / "raw", mirror=mirror, progress=False)
    assert_nothing_left(tmp_path / "raw")


def test_crc_failure(tmp_path):
    archive = bytearray(make_zip(FILES, compression=zipfile.ZIP_STORED))
    archive[bytes(archive).index(b"licence")] ^= 0x01  # stored bytes: the CRC no longer fits
    mirror = write_files(tmp_path / "mirror", {ARCHIVE: bytes(archive)})
    with pytest.raises(DownloadError, match=r"'ml-latest-small/README.txt' fails its CRC check"):
        fetch_release(NAME, tmp_path / "raw", mirror=mirror, progress=False)
    assert_nothing_left(tmp_path / "raw")


@pytest.mark.parametrize(
    ("extra", "symlinks", "why"),
    [
        ({"ml-latest-small/../../evil.txt": b"x"}, None, "outside the release folder"),
        ({"/etc/evil.txt": b"x"}, None, "outside the release folder"),
        ({"C:/evil.txt": b"x"}, None, "outside the release folder"),
        (None, {"ml-latest-small/link": "/etc/passwd"}, "symbolic link"),
    ],
)
def test_members_escaping_the_folder_are_refused(tmp_path, extra, symlinks, why):
    archive = make_zip(FILES, extra=extra, symlinks=symlinks)
    mirror = write_files(tmp_path / "mirror", {ARCHIVE: archive})
    with pytest.raises(DownloadError, match=why):
        fetch_release(NAME, tmp_path / "raw", mirror=mirror, progress=False)
    assert_nothing_left(tmp_path / "raw")
    assert not (tmp_path / "evil.txt").exists()


# --------------------------------------------------------------------------- zip bombs


def test_extraction_limits_come_from_the_registry():
    ml1m = get_release("ml-1m")
    assert ml1m.unpacked_bytes is not None
    assert ExtractionLimits.for_release(ml1m) == ExtractionLimits(
        ml1m.unpacked_bytes * UNPACKED_SAFETY_FACTOR, MAX_COMPRESSION_RATIO
    )
    assert ExtractionLimits.for_release(get_release("ml-latest")).max_bytes == (
        DEFAULT_MAX_UNPACKED_BYTES
    )
    assert ExtractionLimits.for_release(ml1m, 1000, 5) == ExtractionLimits(1000, 5.0)
    # the recorded size covers the real archive (the offline copy of GroupLens')
    small = get_release(NAME)
    assert small.unpacked_bytes is not None and 3_303_135 <= small.unpacked_bytes


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"max_unpacked_bytes": 0}, "max_unpacked_bytes"),
        ({"max_unpacked_bytes": -5}, "max_unpacked_bytes"),
        ({"max_unpacked_bytes": 1.5}, "max_unpacked_bytes"),
        ({"max_unpacked_bytes": True}, "max_unpacked_bytes"),
        ({"max_compression_ratio": 0.5}, "max_compression_ratio"),
        ({"max_compression_ratio": float("nan")}, "max_compression_ratio"),
        ({"max_compression_ratio": "10"}, "max_compression_ratio"),
    ],
)
def test_bad_extraction_limits_name_the_config_key(tmp_path, kwargs, key):
    with pytest.raises(ConfigError, match=rf"^dataset\.{key}: "):
        fetch_release(NAME, tmp_path, mirror=tmp_path, progress=False, **kwargs)


def test_archive_over_a_lowered_size_cap_is_refused(tmp_path):
    readme = "".join(f"line {i}: the licence, at some length\n" for i in range(200))
    archive = make_zip({**FILES, "README.txt": readme})
    mirror = write_files(tmp_path / "mirror", {ARCHIVE: archive})
    with pytest.raises(DownloadError) as info:
        fetch_release(
            NAME, tmp_path / "raw", mirror=mirror, progress=False, max_unpacked_bytes=4000
        )
    message = str(info.value)
    assert message.startswith(f"{mirror / ARCHIVE}: the archive unpacks to ")
    assert "more than the 4000 bytes" in message and "max_unpacked_bytes" in message
    assert_nothing_left(tmp_path / "raw")
    assert_release(
        fetch_release(NAME, tmp_path / "raw", mirror=mirror, progress=False),
        {**FILES, "README.txt": readme},
    )  # the default cap lets it through


def test_archive_declaring_gigabytes_is_refused_before_decompressing(tmp_path):
    """A few hundred bytes that claim 3 GiB: refused on the declaration, with default caps."""
    archive = declare_size(make_zip(FILES), f"{NAME}/README.txt", 3 << 30)
    declared = (3 << 30) + len(LATEST_RATINGS) + len(LATEST_MOVIES)
    assert zipfile.ZipFile(io.BytesIO(archive)).getinfo(f"{NAME}/README.txt").file_size == 3 << 30
    with serve({ARCHIVE: archive}) as server:
        with pytest.raises(
            DownloadError,
            match=rf"unpacks to {declared}\D.*more than the "
            rf"{get_release(NAME).max_unpacked_bytes} bytes .* allowed for {NAME}",
        ) as info:
            fetch_release(NAME, tmp_path / "raw", base_url=server.url, progress=False)
    assert "zip bomb" in str(info.value)
    assert_nothing_left(tmp_path / "raw")


def test_highly_compressible_member_trips_the_ratio_cap(tmp_path):
    """2 MiB of zeros deflate to ~2 KiB: far under the size cap, far over the ratio cap."""
    archive = make_zip({**FILES, "README.txt": bytes(2 << 20)})
    assert len(archive) < 10_000
    mirror = write_files(tmp_path / "mirror", {ARCHIVE: archive})
    with pytest.raises(
        DownloadError,
        match=rf"archive member '{NAME}/README.txt' unpacks to \d+ times its compressed size "
        rf"\({2 << 20} bytes from \d+\), more than the 100 allowed",
    ):
        fetch_release(NAME, tmp_path / "raw", mirror=mirror, progress=False)
    assert_nothing_left(tmp_path / "raw")
    folder = fetch_release(
        NAME, tmp_path / "raw", mirror=mirror, progress=False, max_compression_ratio=5000
    )
    assert (folder / "README.txt").stat().st_size == 2 << 20


def test_many_small_compressible_members_trip_the_whole_archive_ratio(tmp_path):
    """Each member is under RATIO_MIN_BYTES (not held to the ratio); together they are."""
    padding = {f"pad{i}.txt": bytes(600_000) for i in range(3)}
    mirror = write_files(tmp_path / "mirror", {ARCHIVE: make_zip({**FILES, **padding})})
    with pytest.raises(DownloadError, match=r"the archive as a whole unpacks to \d+ times"):
        fetch_release(NAME, tmp_path / "raw", mirror=mirror, progress=False)
    assert_nothing_left(tmp_path / "raw")


# --------------------------------------------------------------------------- symlinks


@pytest.mark.parametrize(
    "link",
    [
        f"{NAME}/secret.txt",  # a file beside the release's
        f"{NAME}/ratings.csv",  # one of the release's own files
        f"{NAME}/extras",  # a folder
        f"{NAME}/nested/secret.txt",  # deeper down
        NAME,  # the release folder itself
        ARCHIVE,  # the archive
        f"{ARCHIVE}.md5",  # its md5
    ],
)
def test_symlink_in_mirror_folder_is_refused(tmp_path, link):
    """As for a link inside an archive: refused, never followed, nothing copied."""
    outside = write_files(tmp_path / "outside", {"secret.txt": "private", **FILES})
    archive = make_zip(FILES)
    mirror = tmp_path / "mirror"
    if link in (ARCHIVE, f"{ARCHIVE}.md5"):
        write_files(outside, {ARCHIVE: archive, f"{ARCHIVE}.md5": md5_line(archive, ARCHIVE)})
        write_files(mirror, {ARCHIVE: archive, f"{ARCHIVE}.md5": md5_line(archive, ARCHIVE)})
    elif link != NAME:
        write_files(mirror / NAME, FILES)
        (mirror / NAME / "nested").mkdir()
    mirror.mkdir(exist_ok=True)
    (mirror / link).unlink(missing_ok=True)
    target = outside if link in (NAME, f"{NAME}/extras") else outside / Path(link).name
    (mirror / link).symlink_to(target)
    with pytest.raises(DownloadError) as info:
        fetch_release(NAME, tmp_path / "raw", mirror=mirror, progress=False)
    assert str(info.value).startswith(f"{mirror / link}: is a symbolic link (to {target})")
    assert "refusing to follow it" in str(info.value)
    assert_nothing_left(tmp_path / "raw")


def test_symlink_in_nested_extracted_folder_is_refused(tmp_path):
    """ml-10m's files lie one folder down; a link there is found before the files are."""
    dat_files = {"ratings.dat": "1::10::4.5::100\n", "movies.dat": "10::Movie: X (1990)::Drama\n"}
    release_folder = write_files(tmp_path / "mirror" / "ml-10m" / "ml-10M100K", dat_files)
    (release_folder / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(
        DownloadError, match=r"ml-10M100K/passwd: is a symbolic link \(to /etc/passwd\)"
    ):
        fetch_release("ml-10m", tmp_path / "raw", mirror=tmp_path / "mirror", progress=False)
    assert_nothing_left(tmp_path / "raw")


def test_archive_without_movies_file(tmp_path):
    mirror = write_files(tmp_path / "mirror", {ARCHIVE: make_zip({"ratings.csv": LATEST_RATINGS})})
    with pytest.raises(DataError, match=r"no 'movies.csv'"):
        fetch_release(NAME, tmp_path / "raw", mirror=mirror, progress=False)
    assert_nothing_left(tmp_path / "raw")


def test_archive_without_ratings_file(tmp_path):
    mirror = write_files(tmp_path / "mirror", {ARCHIVE: make_zip({"movies.csv": LATEST_MOVIES})})
    with pytest.raises(DataError, match=r"no ratings file 'ratings.csv'"):
        fetch_release(NAME, tmp_path / "raw", mirror=mirror, progress=False)


@pytest.mark.parametrize("style", ["gnu", "bsd"])
def test_checksums_txt_inside_is_verified(tmp_path, style):
    import hashlib

    digest = hashlib.md5(LATEST_RATINGS.encode()).hexdigest()
    line = (
        f"{digest}  ratings.csv\n" if style == "gnu" else f"MD5 (ml-32m/ratings.csv) = {digest}\n"
    )
    good = make_zip({**FILES, "checksums.txt": line}, folder="ml-32m")
    mirror = write_files(tmp_path / "mirror", {"ml-32m.zip": good})
    assert is_fetched(
        fetch_release("ml-32m", tmp_path / "raw", mirror=mirror, progress=False), "ml-32m"
    )

    bad = make_zip({**FILES, "ratings.csv": "tampered", "checksums.txt": line}, folder="ml-32m")
    write_files(tmp_path / "mirror2", {"ml-32m.zip": bad})
    with pytest.raises(DownloadError, match=r"checksums.txt line 1"):
        fetch_release("ml-32m", tmp_path / "raw2", mirror=tmp_path / "mirror2", progress=False)
    assert_nothing_left(tmp_path / "raw2")


def test_checksums_txt_listing_a_missing_file(tmp_path):
    line = f"{'0' * 32}  tags.csv\n"
    mirror = write_files(
        tmp_path / "mirror",
        {"ml-32m.zip": make_zip({**FILES, "checksums.txt": line}, folder="ml-32m")},
    )
    with pytest.raises(DownloadError, match=r"lists 'tags.csv', which the archive lacks"):
        fetch_release("ml-32m", tmp_path / "raw", mirror=mirror, progress=False)


def test_unknown_and_synthetic_names(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown MovieLens release 'ml-2m'.*ml-latest-small"):
        fetch_release("ml-2m", tmp_path)
    with pytest.raises(ConfigError, match=r"generated"):
        fetch_release("synthetic", tmp_path)


def test_bad_mirror_scheme(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset.mirror"):
        fetch_release(NAME, tmp_path, mirror="ftp://example.org/x", progress=False)
