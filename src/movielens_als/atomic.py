"""Write outputs under a temporary name and rename, so no half-written file is ever left
for DVC to cache when a stage fails part-way.

Every output passes through ``atomic_paths``, so that is also where the fault suite
(tests/test_fault_suite.py) stops a stage: see ``fault_point``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from movielens_als.errors import DataError


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Delete the temporaries of ``target`` that a killed process left (``atomic_path`` names
    them ``.<name>.<pid>.<random>.tmp``): only names of this form, and only when no process
    with that pid is alive (a live one may still be writing). Returns what was removed."""
    removed = []
    prefix = f".{target.name}."
    for candidate in target.parent.glob(f"{glob_escape(prefix)}*.tmp"):
        pid_text = candidate.name[len(prefix) :].split(".", 1)[0]
        if not pid_text.isdigit() or process_alive(int(pid_text)):
            continue
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def glob_escape(text: str) -> str:
    """``text`` with glob metacharacters escaped (release names are plain, but be exact)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike[str]) -> Iterator[list[Path]]:
    """Yield a temporary sibling path for each of ``paths``; when the block succeeds rename
    them all over their targets (write all, then rename all: a reader never sees a new file
    beside old ones from a run that failed half-way, nor from one stopped by Ctrl-C or
    SIGTERM, which wait for the renames), on error delete them all.

    Works for files and for directories (the caller creates whichever it needs at each
    yielded path). A temporary's name carries this process's pid, so a later write of the
    same target removes what a killed run left (``remove_stale_temporaries``).
    """
    targets = [Path(path) for path in paths]
    temporaries: list[Path] = []
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(target)
            tmp = Path(
                tempfile.mkdtemp(
                    prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent
                )
            )
            tmp.rmdir()  # the caller decides whether the temporary is a file or a folder
            temporaries.append(tmp)
        fault_point("reserved", targets)
        yield list(temporaries)
        fault_point("written", targets)
        with stops_deferred():
            for i, (tmp, target) in enumerate(zip(temporaries, targets, strict=True), start=1):
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                os.replace(tmp, target)
                fault_point(f"renamed {i}/{len(targets)}", [target])
    finally:
        for tmp in temporaries:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            elif tmp.exists():
                tmp.unlink()


@contextlib.contextmanager
def stops_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM (Ctrl-C, kill) wait until the block is done, then take effect:
    otherwise the KeyboardInterrupt a stage raises for them could land between two renames
    and leave new outputs beside old ones, or inside an MLflow store write and leave its
    SQLite transaction holding the lock the run's closing write then waits on. SIGKILL cannot wait; what it leaves is whole files
    and stale temporaries. Python runs signal handlers in the main thread only: a block in
    another thread is not interrupted by them (and may not change them)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if handler is not None and handler != signal.SIG_IGN:  # None: set outside Python
            previous[signum] = signal.signal(signum, lambda number, _: caught.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught:
            signal.raise_signal(caught[0])


FAULT_LOG_ENV = "MOVIELENS_ALS_FAULT_LOG"
FAULT_AT_ENV = "MOVIELENS_ALS_FAULT_AT"
FAULT_SIGNAL_ENV = "MOVIELENS_ALS_FAULT_SIGNAL"
_fault_points_passed = 0


def fault_point(event: str, targets: list[Path]) -> None:
    """Test hook, for the fault suite (tests/test_fault_suite.py) only: a numbered point where
    the death of this process changes what it leaves on disk, so that a test can stop a stage
    at each such point instead of after a guessed delay. With neither variable below set it
    only looks them up.

    ``atomic_paths`` passes three kinds of point per block: ``reserved`` (temporaries named,
    nothing written), ``written`` (the caller has filled them, nothing renamed) and
    ``renamed i/n`` after each rename into place — between the renames of a multi-output
    publish, and after the last one, before the stage's MLflow run closes. A block nested in
    another's temporary (a model's files inside its folder) gives points while a temporary
    is being written.

    - ``MOVIELENS_ALS_FAULT_LOG=<file>``: append ``<n>\t<event>\t<targets>`` per point, so a
      test knows how many points a stage has and what each one is;
    - ``MOVIELENS_ALS_FAULT_AT=<n>``: at point n (from 1) send this process
      ``MOVIELENS_ALS_FAULT_SIGNAL`` (a name: ``KILL``, the default, or ``TERM``).
    """
    log, at = os.environ.get(FAULT_LOG_ENV), os.environ.get(FAULT_AT_ENV)
    if log is None and at is None:
        return
    global _fault_points_passed
    _fault_points_passed += 1
    if log is not None:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{_fault_points_passed}\t{event}\t{', '.join(map(str, targets))}\n")
    if at is not None and int(at) == _fault_points_passed:
        name = os.environ.get(FAULT_SIGNAL_ENV, "KILL")
        os.kill(os.getpid(), signal.Signals[f"SIG{name}"])


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """``atomic_paths`` for one output."""
    with atomic_paths(path) as (tmp,):
        yield tmp


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically. NaN and infinity are refused (they are not
    JSON, and a metric that is NaN means an empty or broken result): DataError naming the key."""
    with atomic_path(path) as tmp:
        dump_json(tmp, obj, name=path)


def dump_json(path: Path, obj: Any, *, name: str | os.PathLike[str] | None = None) -> None:
    """Write ``obj`` as indented JSON to ``path`` (not atomically: for a temporary), refusing
    NaN and infinity with a DataError naming ``name`` (default ``path``) and the key."""
    bad = _non_finite_key(obj)
    if bad is not None:
        raise DataError(
            f"{name or path}: {bad} is not a finite number; nothing was written (an empty "
            "test or validation set, or a diverged fit?)"
        )
    path.write_text(
        json.dumps(obj, indent=2, sort_keys=False, default=_json_default, allow_nan=False) + "\n",
        encoding="utf-8",
    )


def _non_finite_key(obj: Any, where: str = "") -> str | None:
    """The dotted key of the first NaN or infinity in ``obj`` (None when there is none)."""
    if isinstance(obj, float | np.floating):
        return None if np.isfinite(obj) else (where or "the value")
    if isinstance(obj, dict):
        for key, value in obj.items():
            found = _non_finite_key(value, f"{where}.{key}" if where else str(key))
            if found:
                return found
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            found = _non_finite_key(value, f"{where}[{i}]")
            if found:
                return found
    elif isinstance(obj, np.ndarray) and obj.dtype.kind == "f" and not np.isfinite(obj).all():
        return where or "the array"
    return None


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# np.savez stamps every member with the current time, so the same arrays saved twice differ;
# DVC hashes the bytes, and a rerun must leave dvc.lock unchanged.
_NPZ_MEMBER_TIME = (1980, 1, 1, 0, 0, 0)


def save_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    """Save arrays as ``np.savez`` does (uncompressed, memory-friendly to load, never pickled),
    atomically, with fixed member timestamps so that equal arrays give equal bytes."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for name, values in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=_NPZ_MEMBER_TIME)
            with archive.open(member, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(values), allow_pickle=False)


def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file; object arrays are refused (never unpickle).
    A missing, truncated or corrupt file is a DataError naming it."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"{path}: cannot read arrays ({exc}); rerun the stage that writes it"
        ) from exc


def read_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; a missing or malformed one is a DataError naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(
            f"{path}: cannot read JSON ({exc}); rerun the stage that writes it"
        ) from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
