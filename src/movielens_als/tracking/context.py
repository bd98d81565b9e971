"""Provenance of a run: the git commit and the DVC hash of an output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml


def git_commit(cwd: str | Path = ".") -> str:
    """HEAD's commit, with ``-dirty`` when tracked files differ from it; "unknown" outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def dvc_out_hash(out_path: str | Path, lock_file: str | Path = "dvc.lock") -> str:
    """The md5 that ``dvc.lock`` records for an output path, or "unknown" when not recorded."""
    lock = Path(lock_file)
    if not lock.is_file():
        return "unknown"
    try:
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    except yaml.YAMLError:
        return "unknown"
    wanted = Path(out_path).as_posix().rstrip("/")
    for stage in stages.values():
        for out in stage.get("outs", []) or []:
            if Path(str(out.get("path", ""))).as_posix().rstrip("/") == wanted:
                return str(out.get("md5") or out.get("hash") or "unknown")
    return "unknown"
