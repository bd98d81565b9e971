"""Counter-based standard normals: a row's draws depend only on (seed, sample, side, row).

SplitMix64 over the key gives each row its own stream of 64-bit words; the Ziggurat method
(Marsaglia & Tsang 2000, 256 layers, as NumPy's generator) turns each word into a normal.
Because no generator state is shared, a row's draw does not depend on which thread (or which
worker of a partitioned fit) computes it, so Gibbs runs are bit-identical at any thread count.
Used by both Gibbs row samplers (``bayes_als``'s block draw and ``coordinate``'s single-site
draw).

Why Ziggurat rather than Box–Muller: a Gibbs sweep draws K + 1 normals per row, and Box–Muller's
log, sqrt, sin and cos per pair cost about 15 % of a sweep at the ML-32M shape. About 99 % of
Ziggurat draws cost one hash, one table lookup, one compare and one multiply; the rest take the
exact wedge or tail test, so the draws are exactly N(0, 1) (up to the 52-bit grid).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_53 = 1.0 / 9007199254740992.0


def ziggurat_tables(
    layers: int = 256, edge: float = 3.6541528853610088, area: float = 4.92867323399e-3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Ziggurat's tables for the half-normal f(x) = exp(−x²/2) on a 52-bit magnitude.

    ``layers`` boxes of equal ``area`` under f, the lowest (with the tail beyond ``edge`` = r)
    being layer 0; x_i is layer i's right edge (x_{layers−1} = r, decreasing upwards, x_0 of
    layer 1 being 0). ``limits[i]`` = x_{i−1}/x_i · 2⁵² (a magnitude below it lies under f
    for sure), ``widths[i]`` = x_i / 2⁵² (magnitude → x) and ``heights[i]`` = f(x_i);
    layer 0's width is area / f(r) (its box and the tail have the same area).
    """
    scale = 2.0**52
    limits = np.zeros(layers, dtype=np.uint64)
    widths = np.zeros(layers)
    heights = np.zeros(layers)
    x = outer = edge
    base = area / math.exp(-0.5 * x * x)
    limits[0] = np.uint64(x / base * scale)
    widths[0] = base / scale
    widths[layers - 1] = x / scale
    heights[0] = 1.0
    heights[layers - 1] = math.exp(-0.5 * x * x)
    for i in range(layers - 2, 0, -1):
        x = math.sqrt(-2.0 * math.log(area / x + math.exp(-0.5 * x * x)))
        limits[i + 1] = np.uint64(x / outer * scale)
        outer = x
        heights[i] = math.exp(-0.5 * x * x)
        widths[i] = x / scale
    return limits, widths, heights


_LIMITS, _WIDTHS, _HEIGHTS = ziggurat_tables()
_EDGE = 3.6541528853610088
_LAYER_MASK = np.uint64(0xFF)
_MAGNITUDE_MASK = np.uint64(0x000FFFFFFFFFFFFF)


@njit(cache=True)
def splitmix64(value):
    """SplitMix64's output function of ``value + golden``: a bijective 64-bit hash."""
    z = np.uint64(value) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def stream_key(seed, sample, side):
    """The key of one half-step's draws: a hash of (seed, sample, side)."""
    return splitmix64(splitmix64(splitmix64(np.uint64(seed)) ^ np.uint64(sample)) ^ np.uint64(side))


@njit(cache=True)
def _uniform(word):
    """A uniform in [0, 1) from a 64-bit word's top 53 bits."""
    return np.float64(word >> np.uint64(11)) * _TWO_POW_53


@njit(cache=True)
def _rare_normal(state, word):
    """The ~1 % of draws that fall outside their layer's sure part: the tail beyond r
    (layer 0, Marsaglia's exponential rejection) or the wedge test against f; a rejected word
    is replaced by the stream's next one. Returns (normal, state)."""
    while True:
        layer = np.int64(word & _LAYER_MASK)
        negative = ((word >> np.uint64(8)) & np.uint64(1)) == np.uint64(1)
        magnitude = (word >> np.uint64(9)) & _MAGNITUDE_MASK
        x = np.float64(magnitude) * _WIDTHS[layer]
        if magnitude < _LIMITS[layer]:
            return (-x if negative else x), state
        if layer == 0:
            while True:
                state = state + _GOLDEN
                tail = -math.log1p(-_uniform(splitmix64(state))) / _EDGE
                state = state + _GOLDEN
                height = -math.log1p(-_uniform(splitmix64(state)))
                if height + height > tail * tail:
                    x = _EDGE + tail
                    return (-x if negative else x), state
        state = state + _GOLDEN
        u = _uniform(splitmix64(state))
        if _HEIGHTS[layer] + u * (_HEIGHTS[layer - 1] - _HEIGHTS[layer]) < math.exp(-0.5 * x * x):
            return (-x if negative else x), state
        state = state + _GOLDEN
        word = splitmix64(state)


@njit(cache=True)
def row_normals(key, row, out):
    """Fill ``out`` with standard normals for ``row`` of the stream ``key``: SplitMix64 from
    the seed hash(key, row), one 64-bit word per draw (8 bits choose the layer, 1 the sign,
    52 the magnitude), more words only for a draw that needs the wedge or tail test."""
    state = splitmix64(key ^ splitmix64(np.uint64(row)))
    for i in range(len(out)):
        state = state + _GOLDEN
        word = splitmix64(state)
        layer = np.int64(word & _LAYER_MASK)
        magnitude = (word >> np.uint64(9)) & _MAGNITUDE_MASK
        if magnitude < _LIMITS[layer]:
            x = np.float64(magnitude) * _WIDTHS[layer]
            out[i] = -x if (word >> np.uint64(8)) & np.uint64(1) else x
        else:
            out[i], state = _rare_normal(state, word)
