"""Counter-based standard normals: a row's draws depend only on (seed, sample, side, row).

SplitMix64 over the key, Box–Muller for the normals. Because no generator state is shared,
a row's draw does not depend on which thread (or which worker of a partitioned fit) computes
it, so Gibbs runs are bit-identical at any thread count. Used by both Gibbs row samplers
(``bayes_als``'s block draw and ``coordinate``'s single-site draw).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_53 = 1.0 / 9007199254740992.0


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
def row_normals(key, row, out):
    """Fill ``out`` with standard normals for ``row`` of the stream ``key``: SplitMix64 from
    the seed hash(key, row), two uniforms per Box–Muller pair (u₁ ∈ (0, 1], u₂ ∈ [0, 1))."""
    state = splitmix64(key ^ splitmix64(np.uint64(row)))
    n = len(out)
    for i in range(0, n, 2):
        state = state + _GOLDEN
        h1 = splitmix64(state)
        state = state + _GOLDEN
        h2 = splitmix64(state)
        u1 = (np.float64(h1 >> np.uint64(11)) + 1.0) * _TWO_POW_53
        u2 = np.float64(h2 >> np.uint64(11)) * _TWO_POW_53
        radius = math.sqrt(-2.0 * math.log(u1))
        out[i] = radius * math.cos(2.0 * math.pi * u2)
        if i + 1 < n:
            out[i + 1] = radius * math.sin(2.0 * math.pi * u2)
