"""Fetch a MovieLens release, verify it, and extract it to ``raw_dir/<name>/``.

Sources, first match wins: the ``mirror`` argument, the ``base_url`` argument, the
``MOVIELENS_MIRROR`` environment variable, GroupLens
(``https://files.grouplens.org/datasets/movielens/<name>.zip``). A mirror is a folder (or a
``file://`` URL) holding ``<name>.zip`` [+ ``<name>.zip.md5``] or an extracted ``<name>/``,
or an ``http(s)://`` base URL under which ``<name>.zip`` [+ ``.md5``] lie.

A download goes to ``raw_dir/<name>.zip.part`` and resumes from there (HTTP Range, guarded
by ``If-Range`` with the server's validator) after a dropped connection or an interrupted
run; a server that ignores the range restarts it from zero. Integrity checks, each a
:class:`DownloadError` that leaves nothing behind: the published md5 (``<url>.md5``,
``HASH  NAME``) when there is one, every member's CRC (``zipfile.testzip``), no member
escaping the folder (absolute paths, ``..``, symlinks), and the md5 lines of a
``checksums.txt`` inside the archive when it has one. The release's files are extracted
into a temporary folder which is then renamed to ``raw_dir/<name>/`` (the files directly
inside, whatever the archive's folder is called) together with ``.fetched.json``, the
record that lets a later call skip the work.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import stat
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from movielens_als.atomic import atomic_path, write_json
from movielens_als.data.registry import GROUPLENS_BASE_URL, Release, get_release
from movielens_als.errors import ConfigError, DataError, DownloadError

log = logging.getLogger(__name__)

MIRROR_ENV = "MOVIELENS_MIRROR"
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
) -> Path:
    """Make ``raw_dir/<name>/`` hold the verified files of release ``name``; return it.

    Does nothing when that folder already holds what an earlier fetch verified.
    ``timeout`` (seconds) bounds each network wait; ``retries`` is how many times a
    dropped download resumes before giving up (the ``.part`` file stays for a later run).
    """
    release = get_release(name)
    if release.url is None:
        raise ConfigError(
            f"dataset.name: {name!r} is generated (movielens_als.data.synthetic.write_release),"
            " not downloaded"
        )
    raw_dir = Path(raw_dir)
    target = raw_dir / release.name
    if is_fetched(target, release):
        log.info("%s: already fetched and verified, skipping", target)
        return target

    source = _resolve_source(mirror, base_url)
    folder = _local_folder(source)
    if folder is not None:
        _install_from_folder(release, folder, target)
    else:
        url = f"{source.rstrip('/')}/{release.archive_name}"
        part = raw_dir / f"{release.archive_name}.part"
        _download(
            url,
            part,
            progress=progress,
            timeout=timeout,
            retries=retries,
            from_grouplens=source == GROUPLENS_BASE_URL,
            release=release,
        )
        try:
            expected = _remote_md5(f"{url}.md5", release, timeout)
            _install_archive(release, part, expected, target, source=url)
        finally:
            _remove_part(part)
    return target


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


def _resolve_source(mirror: str | os.PathLike[str] | None, base_url: str | None) -> str:
    for candidate in (mirror, base_url, os.environ.get(MIRROR_ENV)):
        if candidate is not None and str(candidate).strip():
            return str(candidate).strip()
    return GROUPLENS_BASE_URL


def _local_folder(source: str) -> Path | None:
    """The folder a mirror setting names, or None for an http(s) URL."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if len(parsed.scheme) > 1:  # one letter is a Windows drive
        raise ConfigError(
            f"dataset.mirror: {source!r} is neither a folder nor an http(s):// or file:// URL"
        )
    return Path(source).expanduser()


def _mirror_help(release: Release) -> str:
    return (
        f"To use a local copy, set a mirror: the environment variable {MIRROR_ENV} or the "
        f"config key dataset.mirror, naming a folder (or an http(s):// or file:// URL) that "
        f"holds {release.archive_name} [+ {release.archive_name}.md5] or an extracted "
        f"{release.name}/ folder."
    )


def _install_from_folder(release: Release, folder: Path, target: Path) -> None:
    if not folder.is_dir():
        raise DownloadError(f"mirror folder {folder} does not exist. {_mirror_help(release)}")
    archive = folder / release.archive_name
    extracted = folder / release.name
    if archive.is_file():
        md5_file = folder / f"{release.archive_name}.md5"
        expected = (
            _parse_md5(md5_file.read_text(errors="replace"), release, str(md5_file))
            if md5_file.is_file()
            else None
        )
        _install_archive(release, archive, expected, target, source=str(archive))
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


def _download(
    url: str,
    part: Path,
    *,
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
            response = urllib.request.urlopen(
                urllib.request.Request(url, headers=headers), timeout=timeout
            )
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
        tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=label,
            file=sys.stderr,
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        while True:
            try:
                chunk = response.read(_CHUNK)
            except http.client.IncompleteRead as exc:
                fh.write(exc.partial)
                raise _Interrupted(f"incomplete read: {exc}") from None
            if not chunk:
                break
            fh.write(chunk)
            bar.update(len(chunk))
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


def _remote_md5(url: str, release: Release, timeout: float) -> str | None:
    """GroupLens' published md5 of the archive, or None when it cannot be had."""
    try:
        with urllib.request.urlopen(
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
    release: Release, archive: Path, expected_md5: str | None, target: Path, *, source: str
) -> None:
    actual_md5 = file_md5(archive)
    if expected_md5 is not None and actual_md5 != expected_md5:
        raise DownloadError(
            f"{source}: md5 {actual_md5} does not match the published {expected_md5}; "
            "the archive is corrupt or not the release (deleted; fetch again)"
        )
    try:
        with zipfile.ZipFile(archive) as zf:
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
    """Copy an extracted release (its files directly inside or one folder down)."""
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
