"""Fetch a MovieLens release, verify it, and extract it to ``raw_dir/<name>/``.

Sources, first match wins: the ``mirror`` argument, the ``base_url`` argument, the
``MOVIELENS_MIRROR`` environment variable, GroupLens
(``https://files.grouplens.org/datasets/movielens/<name>.zip``). A mirror is a folder (or a
``file://`` URL) holding ``<name>.zip`` [+ ``<name>.zip.md5``] or an extracted ``<name>/``,
or an ``https://`` base URL under which ``<name>.zip`` [+ ``.md5``] lie.

Downloads are HTTPS only. The md5 comes over the same channel as the archive, so a
channel anyone on the way can alter (plain HTTP) would let them alter both, and the check
would prove nothing. Hence an ``http://`` source is a :class:`ConfigError` unless the
caller opts in for a private mirror (``allow_http=True`` or ``MOVIELENS_ALLOW_HTTP=1``), and
a redirect that leaves HTTPS is a :class:`DownloadError` naming both URLs, opt-in or not
(whoever set up an https:// source did not mean to be downgraded). Certificates are checked
against the system's CAs; a private mirror with its own CA is trusted by pointing
OpenSSL's ``SSL_CERT_FILE`` at it.

A download goes to ``raw_dir/<name>.zip.part`` and resumes from there (HTTP Range, guarded
by ``If-Range`` with the server's validator) after a dropped connection or an interrupted
run; a server that ignores the range restarts it from zero. Integrity checks, each a
:class:`DownloadError` that leaves nothing behind: the published md5 (``<url>.md5``,
``HASH  NAME``) when there is one, the archive's declared unpacked size and compression
ratio within :class:`ExtractionLimits` (checked before a byte is decompressed), every
member's CRC (``zipfile.testzip``), no member escaping the folder (absolute paths, ``..``,
symlinks), and the md5 lines of a ``checksums.txt`` inside the archive when it has one.
A mirror folder follows the same rule as an archive: a symbolic link in it (the archive,
its ``.md5``, the extracted folder or anything below) is refused, never followed, so no
file from elsewhere on the machine can end up in ``raw_dir``. The release's files are
extracted into a temporary folder which is then renamed to ``raw_dir/<name>/`` (the files
directly inside, whatever the archive's folder is called) together with ``.fetched.json``,
the record that lets a later call skip the work.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import ssl
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from movielens_als.atomic import atomic_path, write_json
from movielens_als.data.registry import (
    GROUPLENS_BASE_URL,
    MAX_COMPRESSION_RATIO,
    RATIO_MIN_BYTES,
    Release,
    get_release,
)
from movielens_als.errors import ConfigError, DataError, DownloadError
from movielens_als.progress import Progress

log = logging.getLogger(__name__)

MIRROR_ENV = "MOVIELENS_MIRROR"
ALLOW_HTTP_ENV = "MOVIELENS_ALLOW_HTTP"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")
MANIFEST = ".fetched.json"
CHECKSUMS_FILE = "checksums.txt"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 3
_CHUNK = 1 << 20
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")
_GNU_LINE = re.compile(r"^([0-9a-fA-F]{32})\s+\*?(.+?)\s*$")
_BSD_LINE = re.compile(r"^MD5\s*\((.+)\)\s*=\s*([0-9a-fA-F]{32})\s*$")


def fetch_release(
    name: str,
    raw_dir: str | os.PathLike[str],
    *,
    mirror: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    progress: bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
    allow_http: bool = False,
    max_unpacked_bytes: int | None = None,
    max_compression_ratio: float | None = None,
) -> Path:
    """Make ``raw_dir/<name>/`` hold the verified files of release ``name``; return it.

    Does nothing when that folder already holds what an earlier fetch verified.
    ``timeout`` (seconds) bounds each network wait; ``retries`` is how many times a
    dropped download resumes before giving up (the ``.part`` file stays for a later run).
    ``allow_http`` (or ``MOVIELENS_ALLOW_HTTP=1``; either opts in) accepts a plain
    ``http://`` mirror, for a private one on a network you trust. ``max_unpacked_bytes``
    and ``max_compression_ratio`` override the release's :class:`ExtractionLimits`.
    ``progress`` shows the download as a bar on a terminal, as a log line every 10 %
    elsewhere (:class:`movielens_als.progress.Progress`).
    """
    release = get_release(name)
    if release.url is None:
        raise ConfigError(
            f"dataset.name: {name!r} is generated (movielens_als.data.synthetic.write_release),"
            " not downloaded"
        )
    limits = ExtractionLimits.for_release(release, max_unpacked_bytes, max_compression_ratio)
    raw_dir = Path(raw_dir)
    target = raw_dir / release.name
    if is_fetched(target, release):
        log.info("%s: already fetched and verified, skipping", target)
        return target

    source, origin = _resolve_source(mirror, base_url)
    folder = _local_folder(source, origin)
    if folder is not None:
        _install_from_folder(release, folder, target, limits)
    else:
        _check_scheme(source, origin, allow_http or _allow_http_from_env())
        opener = _opener()
        url = f"{source.rstrip('/')}/{release.archive_name}"
        part = raw_dir / f"{release.archive_name}.part"
        _download(
            url,
            part,
            opener=opener,
            progress=progress,
            timeout=timeout,
            retries=retries,
            from_grouplens=source == GROUPLENS_BASE_URL,
            release=release,
        )
        try:
            expected = _remote_md5(f"{url}.md5", release, timeout, opener)
            _install_archive(release, part, expected, target, source=url, limits=limits)
        finally:
            _remove_part(part)
    return target


@dataclass(frozen=True)
class ExtractionLimits:
    """What an archive may declare before anything of it is decompressed.

    ``max_bytes`` bounds the sum of the members' uncompressed sizes; ``max_ratio`` bounds
    uncompressed / compressed size, of each member and of the whole archive, once it is
    :data:`~movielens_als.data.registry.RATIO_MIN_BYTES` or more (a tiny file may compress
    a thousandfold and harms nothing). The defaults come from the release's registry entry
    (:attr:`Release.max_unpacked_bytes`). Declared sizes are enough to go by: ``zipfile``
    never yields more than a member's declared size (a member that holds more fails its CRC).
    """

    max_bytes: int
    max_ratio: float

    @classmethod
    def for_release(
        cls,
        release: Release,
        max_unpacked_bytes: int | None = None,
        max_compression_ratio: float | None = None,
    ) -> ExtractionLimits:
        """The release's limits, with either cap replaced when given (positive)."""
        max_bytes = release.max_unpacked_bytes if max_unpacked_bytes is None else max_unpacked_bytes
        max_ratio = (
            MAX_COMPRESSION_RATIO if max_compression_ratio is None else max_compression_ratio
        )
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ConfigError(
                f"dataset.max_unpacked_bytes: {max_unpacked_bytes!r} is not a positive whole number "
                "of bytes"
            )
        if (
            isinstance(max_ratio, bool)
            or not isinstance(max_ratio, int | float)
            or not max_ratio >= 1  # also refuses NaN
        ):
            raise ConfigError(
                f"dataset.max_compression_ratio: {max_compression_ratio!r} is not a number >= 1"
            )
        return cls(max_bytes, float(max_ratio))


def is_fetched(target: str | os.PathLike[str], release: Release | str) -> bool:
    """Whether ``target`` holds a completed fetch: its manifest lists files that are all
    present with their recorded sizes, the release's required files among them."""
    release = release if isinstance(release, Release) else get_release(release)
    target = Path(target)
    try:
        manifest = json.loads((target / MANIFEST).read_text())
        files: dict[str, int] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not set(release.required_files) <= set(files):
        return False
    for relative, size in files.items():
        path = target / relative
        if not path.is_file() or path.stat().st_size != size:
            log.info("%s: %s is missing or changed; fetching again", target, relative)
            return False
    return True


# --------------------------------------------------------------------------- sources


def _resolve_source(mirror: str | os.PathLike[str] | None, base_url: str | None) -> tuple[str, str]:
    """(the source, the setting it came from: named in messages about it)."""
    for candidate, origin in (
        (mirror, "dataset.mirror"),
        (base_url, "base_url"),
        (os.environ.get(MIRROR_ENV), f"${MIRROR_ENV}"),
    ):
        if candidate is not None and str(candidate).strip():
            return str(candidate).strip(), origin
    return GROUPLENS_BASE_URL, "the GroupLens URL"


def _local_folder(source: str, origin: str) -> Path | None:
    """The folder a mirror setting names, or None for an http(s) URL."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if len(parsed.scheme) > 1:  # one letter is a Windows drive
        raise ConfigError(
            f"{origin}: {source!r} is neither a folder nor an https:// or file:// URL"
        )
    return Path(source).expanduser()


def _allow_http_from_env() -> bool:
    value = os.environ.get(ALLOW_HTTP_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(
        f"${ALLOW_HTTP_ENV}: {os.environ[ALLOW_HTTP_ENV]!r} is not 1/true/yes/on or 0/false/no/off"
    )


def _check_scheme(source: str, origin: str, allow_http: bool) -> None:
    """Refuse a plain-HTTP source unless the caller opted in (see the module docstring)."""
    if urllib.parse.urlparse(source).scheme == "http" and not allow_http:
        raise ConfigError(
            f"{origin}: {source!r} is plain http://, over which anyone on the way can alter "
            "the archive and its .md5 alike; use https://, a file:// URL or a folder, or, for "
            f"a private mirror on a network you trust, opt in with {ALLOW_HTTP_ENV}=1 "
            "(fetch_release(allow_http=True))"
        )


def _mirror_help(release: Release) -> str:
    return (
        f"To use a local copy, set a mirror: the environment variable {MIRROR_ENV} or the "
        f"config key dataset.mirror, naming a folder (or an https:// or file:// URL) that "
        f"holds {release.archive_name} [+ {release.archive_name}.md5] or an extracted "
        f"{release.name}/ folder."
    )


def _refuse_symlink(path: Path) -> None:
    """A symbolic link in a mirror folder is refused, as one inside an archive is."""
    if path.is_symlink():
        raise DownloadError(
            f"{path}: is a symbolic link (to {os.readlink(path)}) in the mirror folder; "
            "refusing to follow it, as for a link inside an archive (put the file itself there)"
        )


def _install_from_folder(
    release: Release, folder: Path, target: Path, limits: ExtractionLimits
) -> None:
    if not folder.is_dir():
        raise DownloadError(f"mirror folder {folder} does not exist. {_mirror_help(release)}")
    archive = folder / release.archive_name
    md5_file = folder / f"{release.archive_name}.md5"
    extracted = folder / release.name
    for path in (archive, md5_file, extracted):
        _refuse_symlink(path)
    if archive.is_file():
        expected = (
            _parse_md5(md5_file.read_text(errors="replace"), release, str(md5_file))
            if md5_file.is_file()
            else None
        )
        _install_archive(release, archive, expected, target, source=str(archive), limits=limits)
    elif extracted.is_dir():
        _install_extracted(release, extracted, target)
    else:
        raise DownloadError(
            f"mirror folder {folder} holds neither {release.archive_name} nor {release.name}/. "
            f"{_mirror_help(release)}"
        )


# --------------------------------------------------------------------------- HTTP


class _Interrupted(Exception):
    """The body stopped before its announced end."""


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect unless it leaves HTTPS (then a :class:`DownloadError`).

    urllib's own handler follows https:// → http:// silently, and whatever came over the
    downgraded hop (the archive, its .md5) could have been altered on the way.
    """

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if (
            urllib.parse.urlparse(req.full_url).scheme == "https"
            and urllib.parse.urlparse(newurl).scheme != "https"
        ):
            fp.close()
            raise DownloadError(
                f"{req.full_url}: the server redirects (HTTP {code}) to {newurl}, which leaves "
                "HTTPS; refusing to follow it (whatever comes over plain HTTP can be altered "
                "on the way, the archive and its md5 alike). Use a mirror that stays on HTTPS."
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener() -> urllib.request.OpenerDirector:
    """urllib with certificate checks (system CAs, or ``$SSL_CERT_FILE``) and
    :class:`_HttpsOnlyRedirects`; the context is made per fetch, so it sees the variable."""
    return urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=ssl.create_default_context()),
        _HttpsOnlyRedirects(),
    )


def _download(
    url: str,
    part: Path,
    *,
    opener: urllib.request.OpenerDirector,
    progress: bool,
    timeout: float,
    retries: int,
    from_grouplens: bool,
    release: Release,
) -> None:
    """Download ``url`` into ``part``, resuming what is there when the server allows."""
    state_path = part.with_name(part.name + ".json")
    failures = 0
    while True:
        state = _read_state(state_path)
        if part.exists() and state.get("url") != url:
            part.unlink()  # a leftover of another source: never splice two files
        offset = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": "movielens-als", "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if state.get("validator"):
                headers["If-Range"] = state["validator"]
        try:
            response = opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:  # the range is past the end: start over
                part.unlink()
                failures += 1
                if failures > retries:
                    raise DownloadError(f"{url}: HTTP 416 on every resume attempt") from None
                continue
            hint = f" {_mirror_help(release)}" if exc.code == 404 else ""
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}.{hint}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            where = "GroupLens" if from_grouplens else "the mirror"
            raise DownloadError(
                f"cannot reach {where} at {url} ({reason}; timeout {timeout:g} s). "
                f"{_mirror_help(release)}"
            ) from None
        with response:
            resumed = offset > 0 and response.status == 206
            if response.status == 206 and not (resumed and _range_starts_at(response, offset)):
                # a range we did not ask for: drop what we have and ask for the whole file
                part.unlink(missing_ok=True)
                failures += 1
                if failures > retries:
                    raise DownloadError(f"{url}: the server keeps answering with a wrong range")
                continue
            if offset and not resumed:
                log.info("%s: the server sent the whole file; restarting the download", url)
                offset = 0
            total = _total_size(response, offset, resumed)
            validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
            _write_state(state_path, {"url": url, "validator": validator})
            try:
                _receive(response, part, offset, total, progress, release.archive_name)
                return
            except (_Interrupted, OSError, http.client.HTTPException) as exc:
                failures += 1
                received = part.stat().st_size if part.exists() else 0
                if failures > retries:
                    raise DownloadError(
                        f"{url}: the download broke off {failures} times ({exc}); "
                        f"{received} bytes are kept in {part} and a rerun resumes from there"
                    ) from None
                log.warning("%s: connection dropped at byte %d (%s); resuming", url, received, exc)
                time.sleep(min(0.1 * 2**failures, 5.0))


def _receive(
    response, part: Path, offset: int, total: int | None, progress: bool, label: str
) -> None:
    part.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(part, "ab" if offset else "wb") as fh,
        Progress(
            label, total, unit="B", scale=True, lines=10, initial=offset, enabled=progress
        ) as bar,
    ):
        received = offset
        while True:
            try:
                chunk = response.read(_CHUNK)
            except http.client.IncompleteRead as exc:
                fh.write(exc.partial)
                raise _Interrupted(f"incomplete read: {exc}") from None
            if not chunk:
                break
            fh.write(chunk)
            received += len(chunk)
            bar.update(received)
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Interrupted(f"received {size} of {total} bytes")


def _range_starts_at(response, offset: int) -> bool:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return bool(match) and int(match.group(1)) == offset


def _total_size(response, offset: int, resumed: bool) -> int | None:
    if resumed:
        match = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", ""))
        if match:
            return int(match.group(1))
    length = response.headers.get("Content-Length")
    if length is None or not length.isdigit():
        return None
    return int(length) + (offset if resumed else 0)


def _read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_state(path: Path, state: dict[str, Any]) -> None:
    write_json(path, state)


def _remove_part(part: Path) -> None:
    for path in (part, part.with_name(part.name + ".json")):
        path.unlink(missing_ok=True)


def _remote_md5(
    url: str, release: Release, timeout: float, opener: urllib.request.OpenerDirector
) -> str | None:
    """GroupLens' published md5 of the archive, or None when it cannot be had (a redirect
    off HTTPS is not "cannot be had": it raises, as for the archive)."""
    try:
        with opener.open(
            urllib.request.Request(url, headers={"User-Agent": "movielens-als"}), timeout=timeout
        ) as response:
            text = response.read(4096).decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        log.warning("%s: no published md5 (%s); relying on the zip CRCs", url, exc)
        return None
    return _parse_md5(text, release, url)


def _parse_md5(text: str, release: Release, where: str) -> str:
    fields = text.split()
    if not fields or not _MD5.match(fields[0]):
        raise DownloadError(
            f"{where}: expected 'HASH  {release.archive_name}', found {text[:80]!r}"
        )
    if len(fields) > 1 and PurePosixPath(fields[-1].lstrip("*")).name != release.archive_name:
        raise DownloadError(f"{where}: the md5 is for {fields[-1]!r}, not {release.archive_name!r}")
    return fields[0].lower()


# --------------------------------------------------------------------------- archives


def file_md5(path: str | os.PathLike[str]) -> str:
    """Hex md5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _install_archive(
    release: Release,
    archive: Path,
    expected_md5: str | None,
    target: Path,
    *,
    source: str,
    limits: ExtractionLimits,
) -> None:
    actual_md5 = file_md5(archive)
    if expected_md5 is not None and actual_md5 != expected_md5:
        raise DownloadError(
            f"{source}: md5 {actual_md5} does not match the published {expected_md5}; "
            "the archive is corrupt or not the release (deleted; fetch again)"
        )
    try:
        with zipfile.ZipFile(archive) as zf:
            # before testzip: that decompresses everything too, which a bomb must not get to
            _check_unpacked_size(zf.infolist(), release, limits, source)
            bad_member = zf.testzip()
            if bad_member is not None:
                raise DownloadError(f"{source}: member {bad_member!r} fails its CRC check")
            members = _checked_members(zf, source)
            root = _release_root(members, release, source)
            with atomic_path(target) as tmp:
                tmp.mkdir()
                files = {}
                for info in members:
                    relative = _relative_to_root(info.filename, root)
                    if relative is None or info.is_dir():
                        continue
                    destination = tmp / relative
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(destination, "wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
                    files[relative] = info.file_size
                _verify_checksums(tmp, source)
                _write_manifest(tmp, source, actual_md5, files)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DownloadError(
            f"{source}: not a readable zip archive (corrupt or truncated: {exc})"
        ) from None
    log.info("%s: extracted %s into %s", source, release.name, target)


def _check_unpacked_size(
    members: list[zipfile.ZipInfo], release: Release, limits: ExtractionLimits, source: str
) -> None:
    """Refuse an archive whose declared sizes exceed ``limits`` (a zip bomb, or not the
    release): the whole unpacked size, then the ratio of each member and of the whole."""
    total = sum(info.file_size for info in members)
    if total > limits.max_bytes:
        raise DownloadError(
            f"{source}: the archive unpacks to {total} bytes ({total / 2**20:.1f} MiB), more "
            f"than the {limits.max_bytes} bytes ({limits.max_bytes / 2**20:.1f} MiB) allowed "
            f"for {release.name}; refusing to extract it (a zip bomb, or not the release; "
            "fetch_release(max_unpacked_bytes=...) raises the cap)"
        )
    sizes = [(f"archive member {i.filename!r}", i.file_size, i.compress_size) for i in members]
    sizes.append(("the archive as a whole", total, sum(i.compress_size for i in members)))
    for what, size, compressed in sizes:
        if size >= RATIO_MIN_BYTES and size > limits.max_ratio * max(compressed, 1):
            raise DownloadError(
                f"{source}: {what} unpacks to {size / max(compressed, 1):.0f} times its "
                f"compressed size ({size} bytes from {compressed}), more than the "
                f"{limits.max_ratio:g} allowed; refusing to extract it (a zip bomb, or not "
                "the release; fetch_release(max_compression_ratio=...) raises the cap)"
            )


def _checked_members(zf: zipfile.ZipFile, source: str) -> list[zipfile.ZipInfo]:
    """All members, after refusing any that could land outside the extraction folder."""
    members = zf.infolist()
    for info in members:
        name = info.filename
        posix = name.replace("\\", "/")
        parts = PurePosixPath(posix).parts
        is_link = stat.S_ISLNK(info.external_attr >> 16)
        if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix) or ".." in parts or is_link:
            kind = "a symbolic link" if is_link else "a path outside the release folder"
            raise DownloadError(
                f"{source}: archive member {name!r} is {kind}; refusing to extract the archive"
            )
    return members


def _release_root(members: list[zipfile.ZipInfo], release: Release, source: str) -> str:
    """The archive folder that holds the release's files ("" for the top level)."""
    candidates = sorted(
        (
            PurePosixPath(info.filename.replace("\\", "/"))
            for info in members
            if not info.is_dir()
            and PurePosixPath(info.filename).name == release.ratings_file
            and not info.filename.startswith("__MACOSX")
        ),
        key=lambda path: len(path.parts),
    )
    if not candidates:
        raise DataError(f"{source}: the archive has no ratings file {release.ratings_file!r}")
    root = candidates[0].parent.as_posix()
    root = "" if root == "." else root
    names = {info.filename.replace("\\", "/") for info in members}
    for required in release.required_files:
        if (f"{root}/{required}" if root else required) not in names:
            raise DataError(
                f"{source}: the archive has no {required!r} beside {release.ratings_file!r}"
            )
    return root


def _relative_to_root(name: str, root: str) -> str | None:
    posix = name.replace("\\", "/")
    if not root:
        return posix if not posix.startswith("__MACOSX/") else None
    prefix = root + "/"
    return posix[len(prefix) :] if posix.startswith(prefix) and len(posix) > len(prefix) else None


def _install_extracted(release: Release, folder: Path, target: Path) -> None:
    """Copy an extracted release (its files directly inside or one folder down).

    Any symbolic link anywhere in ``folder`` refuses the whole copy, as a link member
    refuses a whole archive: checked first, with nothing followed, so that neither the
    search for the ratings file nor the copy can reach outside the folder.
    """
    for directory, subfolders, names in os.walk(folder):
        for entry in sorted([*subfolders, *names]):
            _refuse_symlink(Path(directory) / entry)
    root = folder
    if not (folder / release.ratings_file).is_file():
        nested = sorted(p.parent for p in folder.glob(f"*/{release.ratings_file}"))
        if not nested:
            raise DataError(f"{folder}: no {release.ratings_file!r} inside (nor one folder down)")
        root = nested[0]
    for required in release.required_files:
        if not (root / required).is_file():
            raise DataError(f"{root}: missing {required!r} beside {release.ratings_file!r}")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        files = {}
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root).as_posix()
            if not path.is_file() or relative == MANIFEST:
                continue
            destination = tmp / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
            files[relative] = destination.stat().st_size
        _verify_checksums(tmp, str(root))
        _write_manifest(tmp, str(root), None, files)
    log.info("%s: copied %s into %s", root, release.name, target)


def _verify_checksums(folder: Path, source: str) -> None:
    """Check the md5 lines of ``checksums.txt`` (``HASH  NAME`` or ``MD5 (NAME) = HASH``)."""
    path = folder / CHECKSUMS_FILE
    if not path.is_file():
        return
    entries = []
    for line_number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        gnu, bsd = _GNU_LINE.match(line.strip()), _BSD_LINE.match(line.strip())
        if gnu:
            entries.append((line_number, gnu.group(2), gnu.group(1).lower()))
        elif bsd:
            entries.append((line_number, bsd.group(1), bsd.group(2).lower()))
    if not entries:
        log.warning("%s: %s has no md5 lines we recognise; not checked", source, CHECKSUMS_FILE)
        return
    for line_number, listed, expected in entries:
        member = _checksum_target(folder, listed)
        if member is None:
            raise DownloadError(
                f"{source}: {CHECKSUMS_FILE} line {line_number} lists {listed!r}, "
                "which the archive lacks"
            )
        actual = file_md5(member)
        if actual != expected:
            raise DownloadError(
                f"{source}: {listed!r} has md5 {actual}, but {CHECKSUMS_FILE} line "
                f"{line_number} says {expected}"
            )


def _checksum_target(folder: Path, listed: str) -> Path | None:
    """The extracted file a checksums line means (its name may carry the archive folder)."""
    parts = PurePosixPath(listed.replace("\\", "/").removeprefix("./")).parts
    for start in range(len(parts)):
        candidate = folder.joinpath(*parts[start:])
        if ".." not in parts[start:] and candidate.is_file():
            return candidate
    return None


def _write_manifest(
    folder: Path, source: str, archive_md5: str | None, files: dict[str, int]
) -> None:
    # Only the archive's name, not where it came from: the folder is a DVC output, and its
    # hash must not depend on the machine's mirror path.
    archive = source.rstrip("/").rsplit("/", 1)[-1]
    write_json(
        folder / MANIFEST,
        {"archive": archive, "archive_md5": archive_md5, "files": dict(sorted(files.items()))},
    )
