"""The counter-based normals of the Gibbs samplers: Ziggurat tables and the draws' law."""

import io
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import stats

from movielens_als.core import streams


def test_ziggurat_layers_have_equal_area_and_the_base_holds_the_tail():
    limits, widths, heights = streams.ziggurat_tables()
    scale = 2.0**52
    edges = widths * scale  # x_i; layer 0's width is its box's, not x_0
    area = 4.92867323399e-3
    r = edges[-1]
    assert r == pytest.approx(3.6541528853610088)
    # layer i ≥ 1: the box of width x_i between heights f(x_i) and f(x_{i−1})
    boxes = edges[1:] * (heights[:-1] - heights[1:])
    np.testing.assert_allclose(boxes, area, rtol=1e-6)
    tail = math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))
    assert r * math.exp(-0.5 * r * r) + tail == pytest.approx(area, rel=1e-6)
    assert edges[0] * heights[-1] == pytest.approx(area)
    # the sure part of a layer is [0, x_{i−1}): x_{i−1} / x_i of its magnitudes
    np.testing.assert_allclose(limits[2:] / scale, edges[1:-1] / edges[2:], rtol=1e-12)
    assert limits[1] == 0 and limits[0] / scale == pytest.approx(r / edges[0])
    assert np.all(np.diff(edges[1:]) > 0) and np.all(np.diff(heights) < 0)


def test_draws_are_standard_normal_in_body_and_tails():
    values = np.empty(2_000_000)
    streams.row_normals(np.uint64(streams.stream_key(11, 3, 0)), 5, values)
    assert stats.kstest(values, "norm").pvalue > 1e-3
    edges = stats.norm.ppf(np.linspace(0.0, 1.0, 201))
    assert stats.chisquare(np.histogram(values, edges)[0]).pvalue > 1e-3
    beyond = np.mean(np.abs(values) > 3.6541528853610088)  # the tail draws
    expected = 2 * stats.norm.sf(3.6541528853610088)
    assert abs(beyond - expected) < 5 * math.sqrt(expected / len(values))
    assert abs(np.mean(values > 0) - 0.5) < 5 * 0.5 / math.sqrt(len(values))


def test_short_row_streams_are_standard_and_distinct():
    """A sweep draws K + 1 normals for each of many rows: pooled, they must be N(0, 1) too, and
    no two rows may share a stream."""
    key = np.uint64(streams.stream_key(42, 7, 1))
    rows = np.empty((50_000, 33))
    for row in range(len(rows)):
        streams.row_normals(key, row, rows[row])
    assert stats.kstest(rows.ravel(), "norm").pvalue > 1e-3
    assert len(np.unique(rows[:, 0])) == len(rows)
    # neighbouring rows and neighbouring positions are uncorrelated
    assert abs(np.corrcoef(rows[:-1, 0], rows[1:, 0])[0, 1]) < 0.02
    assert abs(np.corrcoef(rows[:, 0], rows[:, 1])[0, 1]) < 0.02


def _draws(key, row, n):
    out = np.empty(n)
    streams.row_normals(key, row, out)
    return out


def test_draws_without_numba_are_the_compiled_ones():
    """With NUMBA_DISABLE_JIT=1 (the reference tests) the same words and tables give the same
    draws, tail and wedge cases included."""
    key = np.uint64(streams.stream_key(1, 2, 0))
    tail_row = next(  # the first row whose 400 draws include one from the tail beyond r
        row for row in range(10_000) if np.abs(_draws(key, row, 400)).max() > 3.6541528853610088
    )
    rows = (0, 1, tail_row)
    compiled = np.array([_draws(key, row, 400) for row in rows])
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from movielens_als.core import streams
        out = np.empty((3, 400))
        with np.errstate(over="ignore"):
            for row, values in zip({rows}, out):
                streams.row_normals(np.uint64({int(key)}), row, values)
        np.save(sys.stdout.buffer, out)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "NUMBA_DISABLE_JIT": "1"},
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    np.testing.assert_array_equal(np.load(io.BytesIO(result.stdout)), compiled)
