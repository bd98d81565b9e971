"""Run a script at 1 and 2 Numba threads, for the bit-identity tests of the fit kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def outputs_at_one_and_two_threads(script: str) -> list[dict]:
    """The JSON object each run prints last; asserts each ran with the thread count asked."""
    outputs = []
    for threads in ("1", "2"):
        env = {**os.environ, "NUMBA_NUM_THREADS": threads}
        run = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stderr[-3000:]
        outputs.append(json.loads(run.stdout.strip().splitlines()[-1]))
    assert [o["threads"] for o in outputs] == [1, 2]
    return outputs
