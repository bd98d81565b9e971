"""The Numba cache folder is keyed by the kernel modules' sources, so editing a kernel that
another module's kernel inlines recompiles both (Numba alone keeps the caller's stale code)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from movielens_als import _kernel_cache

CALLEE = "from numba import njit\n\n\n@njit(cache=True)\ndef step():\n    return {}\n"
CALLER = textwrap.dedent(
    """
    from numba import njit

    from kernels_pkg.callee import step


    @njit(cache=True)
    def twice():
        return 2 * step()
    """
)
DRIVER = textwrap.dedent(
    """
    import importlib.util
    import sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[1])
    if sys.argv[2] == "keyed":  # the module alone: the package's import would key its own
        spec = importlib.util.spec_from_file_location("kernel_cache", sys.argv[3])
        kernel_cache = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(kernel_cache)
        kernel_cache.use_keyed_cache(Path(sys.argv[1]) / "kernels_pkg")
    from kernels_pkg.caller import twice

    print(twice())
    """
)


def _package(root: Path, value: int) -> Path:
    package = root / "kernels_pkg"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "callee.py").write_text(CALLEE.format(value))
    (package / "caller.py").write_text(CALLER)
    return package


def _twice(root: Path, mode: str, env: dict[str, str]) -> int:
    driver = root / "driver.py"
    driver.write_text(DRIVER)
    result = subprocess.run(
        [sys.executable, str(driver), str(root), mode, _kernel_cache.__file__],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return int(result.stdout.split()[-1])


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT")}
    # no .pyc: an edit within the same second and of the same size would load the old bytecode
    return {**env, "XDG_CACHE_HOME": str(tmp_path / "xdg"), "PYTHONDONTWRITEBYTECODE": "1", **extra}


def test_an_edited_callee_recompiles_its_cached_caller(tmp_path):
    env = _env(tmp_path)
    _package(tmp_path, 1)
    assert _twice(tmp_path, "keyed", env) == 2
    _package(tmp_path, 5)
    assert _twice(tmp_path, "keyed", env) == 10
    assert len(list((tmp_path / "xdg" / "movielens-als" / "numba").iterdir())) == 2


def test_one_fixed_cache_folder_keeps_the_stale_caller(tmp_path):
    """What the keyed folder prevents (numba/numba#1833); if Numba ever tracks callees, this
    fails and the keyed folder can go."""
    env = _env(tmp_path, NUMBA_CACHE_DIR=str(tmp_path / "fixed"))
    _package(tmp_path, 1)
    assert _twice(tmp_path, "plain", env) == 2
    _package(tmp_path, 5)
    assert _twice(tmp_path, "plain", env) == 2


def test_the_digest_follows_kernel_modules_only(tmp_path):
    package = _package(tmp_path, 1)
    (package / "plumbing.py").write_text("VALUE = 1\n")
    digest = _kernel_cache.kernel_digest(package)
    (package / "plumbing.py").write_text("VALUE = 2\n")  # no Numba in it: same kernels
    assert _kernel_cache.kernel_digest(package) == digest
    (package / "callee.py").write_text(CALLEE.format(2))
    assert _kernel_cache.kernel_digest(package) != digest


def test_a_users_numba_cache_dir_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert _kernel_cache.use_keyed_cache() is None
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "mine")


def test_the_package_import_keys_numba_to_its_kernels(tmp_path):
    code = "import movielens_als, numba; print(numba.config.CACHE_DIR)"
    env = _env(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    expected = tmp_path / "xdg" / "movielens-als" / "numba" / _kernel_cache.kernel_digest()
    assert out == str(expected)
