"""Shared figure scaffolding: a pyplot-free ``Figure`` with constrained layout."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def new_figure(width: float = 6.4, height: float = 4.4) -> Figure:
    """A standalone ``Figure`` (no pyplot state, nothing shown) laid out without overlaps."""
    return Figure(figsize=(width, height), layout="constrained")


def scatter_alpha(n_points: int) -> float:
    """Opacity that keeps dense scatter clouds readable from 100 to 100k points."""
    return float(np.clip(2000.0 / max(n_points, 1), 0.08, 0.7))


def percent(fraction: float, digits: int = 2) -> str:
    """``0.98305`` → ``"98.31 %"``."""
    return f"{100.0 * fraction:.{digits}f} %"
