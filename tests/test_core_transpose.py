"""The vector transpose of the coordinate kernel's gather (``core.transpose``) against NumPy."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit

from movielens_als.core import coordinate
from movielens_als.core.transpose import TILE, transpose_rows


@njit
def _moved(source, rows, first, source_column, target, target_row, target_column):
    transpose_rows(source, rows, first, source_column, target, target_row, target_column)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_transpose_rows_matches_numpy(index_dtype, layout):
    rng = np.random.default_rng(3)
    source = rng.standard_normal((40, 19)).astype(np.float32)
    target = np.zeros((30, 50), dtype=np.float32)
    if layout == "F":
        source, target = np.asfortranarray(source), np.asfortranarray(target)
    elif layout == "strided":
        source = rng.standard_normal((40, 38)).astype(np.float32)[:, ::2]
        target = np.zeros((30, 100), dtype=np.float32)[:, ::2]
    rows = rng.permutation(40).astype(index_dtype)
    expected = target.copy()
    expected[5 : 5 + TILE, 11 : 11 + TILE] = source[rows[3 : 3 + TILE], 7 : 7 + TILE].T
    _moved(source, rows, 3, 7, target, 5, 11)
    np.testing.assert_array_equal(target, expected)  # and nothing outside the tile


@pytest.mark.parametrize("K", [3, 8, 13, 32])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 23])
def test_gather_writes_every_rating_column_wise(K, n):
    """Whole tiles, the K mod 8 coordinates and the n mod 8 ratings after the last tile."""
    rng = np.random.default_rng(K * 100 + n)
    other_factors = rng.standard_normal((60, K)).astype(np.float32)
    other_bias = rng.standard_normal(60).astype(np.float32)
    cols = rng.choice(60, size=n, replace=False).astype(np.int32)
    vals = rng.uniform(0.5, 5.0, size=n).astype(np.float32)
    gathered, residuals, _, _ = coordinate.new_coordinate_scratch(K, n)
    own = np.empty(K, dtype=np.float32)
    theta = rng.standard_normal(K + 1)
    total = coordinate.gather_and_start(
        cols, vals, 3.5, other_bias, other_factors, theta, gathered, residuals, own
    )
    np.testing.assert_array_equal(gathered[:, :n], other_factors[cols].T)
    v = other_factors[cols].astype(np.float64)
    start = vals - 3.5 - other_bias[cols].astype(np.float64) - theta[0] - v @ theta[1:]
    np.testing.assert_allclose(residuals[:n], start, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(total, start.sum(), rtol=1e-5, atol=1e-4)


def test_plain_python_fallback_matches():
    """With NUMBA_DISABLE_JIT=1 (the reference tests) the NumPy stand-in moves the same tile."""
    script = textwrap.dedent(
        """
        import numpy as np
        from movielens_als.core.transpose import transpose_rows
        source = np.arange(12 * 10, dtype=np.float32).reshape(12, 10)
        rows = np.array([11, 0, 5, 3, 2, 9, 8, 1, 4, 7], dtype=np.int32)
        target = np.zeros((9, 12), dtype=np.float32)
        transpose_rows(source, rows, 1, 2, target, 1, 3)
        expected = np.zeros((9, 12), dtype=np.float32)
        expected[1:9, 3:11] = source[rows[1:9], 2:10].T
        assert np.array_equal(target, expected)
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "NUMBA_DISABLE_JIT": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
