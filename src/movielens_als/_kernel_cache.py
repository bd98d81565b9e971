"""Where Numba caches the package's compiled kernels: a folder named by the kernels' sources.

Numba's ``cache=True`` checks only the file that defines a jitted function, so a kernel that
calls (and inlines) a kernel from another module — ``bayes_als.sample_block`` draws with
``streams.row_normals`` — keeps its stale machine code after that other module is edited
(numba/numba#1833). Caching under a folder keyed by the hash of every module that defines
kernels makes any such edit start a fresh cache, while runs of unchanged code, and every
process of a DVC repro or a Dask cluster, share one.

A user's own ``NUMBA_CACHE_DIR`` wins. Each edit of a kernel module leaves its old folder (a
few MB) behind; ``make clean`` removes them all.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ENV = "NUMBA_CACHE_DIR"


def kernel_digest(package: Path = PACKAGE) -> str:
    """A hash (16 hex digits) of the paths and bytes of the package's modules that import
    Numba: the ones that define kernels or call them."""
    digest = hashlib.blake2b(digest_size=8)
    for path in sorted(package.rglob("*.py")):
        source = path.read_bytes()
        if b"numba" in source:
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + source)
    return digest.hexdigest()


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/movielens-als/numba`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "movielens-als" / "numba"


def use_keyed_cache(package: Path = PACKAGE) -> str | None:
    """Point Numba's cache at ``default_cache_root()/<kernel digest of package>`` unless the
    user set ``NUMBA_CACHE_DIR``; returns the folder used (None when the user's stands)."""
    if os.environ.get(ENV):
        return None
    folder = str(default_cache_root() / kernel_digest(package))
    os.environ[ENV] = folder  # the stage subprocesses and Dask workers this process starts
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None:  # Numba read its environment already: tell it directly
        numba_config.CACHE_DIR = folder
    return folder
