"""Stage processes forked from a server that has imported the stages' libraries once.

``python -m movielens_als.stages.<name>`` spends about five seconds importing MLflow, Hydra,
Optuna, pandas and matplotlib and setting up Numba before it does anything, and the fault
suite starts a stage about fifty times by default. Each child here is still its own process
that runs the stage's entry point as ``python -m`` does (``runpy``, as ``__main__``) and ends
as an interpreter does (non-daemon threads joined, atexit handlers, streams flushed), so a
signal, the exit code and what is left on disk are those of a real run. What the children
of one server share is its hash seed (chosen by the caller).

The server (``serve``) reads one JSON request per line on stdin, forks, answers ``pid <n>``,
waits for the child and answers ``status <wait status>``; one child at a time.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Imported by the server before it forks: what the stages import, found by listing the modules
# a child imported itself (a module left out is imported by each child instead: slower, not
# wrong).
PRELOAD = [
    "alembic.command",
    "git",
    "hydra",
    "matplotlib.backends.backend_agg",
    "matplotlib.backends.backend_pdf",
    "matplotlib.pyplot",
    "mlflow",
    "mlflow.pyfunc",
    "mlflow.store.tracking.sqlalchemy_store",
    "optuna",
    "optuna.importance",
    "pandas",
    "scipy.optimize",
    "scipy.stats",
    "sklearn.ensemble",
    "sqlalchemy.dialects.sqlite",
    "movielens_als.analysis.eda",
    "movielens_als.analysis.factors",
    "movielens_als.analysis.genre",
    "movielens_als.api",
    "movielens_als.core.bayes_als",
    "movielens_als.core.fit",
    "movielens_als.data.download",
    "movielens_als.data.index",
    "movielens_als.data.parse",
    "movielens_als.data.split",
    "movielens_als.data.synthetic",
    "movielens_als.evaluation.prior",
    "movielens_als.evaluation.ranking",
    "movielens_als.figures.convergence",
    "movielens_als.figures.eda",
    "movielens_als.figures.factors",
    "movielens_als.figures.genre",
    "movielens_als.figures.tuning",
    "movielens_als.pipeline.crossval",
    "movielens_als.pipeline.data",
    "movielens_als.pipeline.eda",
    "movielens_als.pipeline.kgrid",
    "movielens_als.pipeline.sweep",
    "movielens_als.pipeline.train",
    "movielens_als.pipeline.use",
    "movielens_als.stages._entry",
    "movielens_als.tracking.pyfunc",
    "movielens_als.tuning.search",
]


@dataclass(frozen=True)
class Finished:
    pid: int
    returncode: int  # negative: killed by that signal, as subprocess reports it
    stdout: str
    stderr: str


class StageServer:
    """The client side: start the server, run stages through it (one at a time: a thread
    that shares a server must hold it for the whole run), stop it."""

    def __init__(self, scratch: Path, hash_seed: int, niceness: int = 0) -> None:
        self.scratch = scratch  # where each child's stdout and stderr are written
        scratch.mkdir(parents=True, exist_ok=True)
        self.count = 0
        tests = str(Path(__file__).resolve().parent)
        self.server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {tests!r}); "
                f"import _stage_processes; _stage_processes.serve({niceness})",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            # every child has the server's hash seed; servers with different seeds show up an
            # output that depends on the order of a set or of a string-keyed hash
            env={**os.environ, "PYTHONHASHSEED": str(hash_seed)},
        )

    def run(
        self,
        stage: str,
        overrides: list[str],
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        timeout: float = 300.0,
    ) -> Finished:
        """Run ``python -m movielens_als.stages.<stage> <overrides>`` in ``cwd`` with this
        process's environment (minus ``MLFLOW_TRACKING_URI``, so the overrides choose the
        store) updated by ``env``; wait for it to end (killing it after ``timeout`` s)."""
        self.count += 1
        out = self.scratch / f"{self.count}.stdout"
        err = self.scratch / f"{self.count}.stderr"
        child_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        child_env.update(env or {})
        request = {
            "module": f"movielens_als.stages.{stage}",
            "argv": list(overrides),
            "env": child_env,
            "cwd": str(cwd),
            "stdout": str(out),
            "stderr": str(err),
        }
        self.server.stdin.write(json.dumps(request).encode() + b"\n")
        pid = int(self._answer("pid", 60.0))
        try:
            status = int(self._answer("status", timeout))
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            self._answer("status", 60.0)
            raise AssertionError(
                f"{stage} {' '.join(overrides)}: still running after {timeout} s"
            ) from None
        return Finished(
            pid,
            os.waitstatus_to_exitcode(status),
            out.read_text(errors="replace"),
            err.read_text(errors="replace"),
        )

    def _answer(self, word: str, timeout: float) -> str:
        line = b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self.server.stdout], [], [], timeout)
            if not ready:
                raise TimeoutError(word)
            byte = self.server.stdout.read(1)
            if not byte:
                raise AssertionError(f"the stage server died (exit {self.server.wait()})")
            line += byte
        key, value = line.decode().split()
        assert key == word, line
        return value

    def close(self) -> None:
        self.server.stdin.close()  # the server's loop ends at end of input
        self.server.wait(timeout=60)


def serve(niceness: int) -> None:
    """The server: preload, then fork one child per request (at ``niceness``: a lower
    priority for work that may wait)."""
    import importlib

    os.nice(niceness)
    for name in PRELOAD:
        importlib.import_module(name)
    _warm_numba()
    _warm_matplotlib()
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _become_stage(request)  # never returns
        answers.write(f"pid {pid}\n".encode())
        answers.flush()
        _, status = os.waitpid(pid, 0)
        answers.write(f"status {status}\n".encode())
        answers.flush()


def _warm_numba() -> None:
    """Numba builds its typing and target contexts at a process's first compilation or cache
    load (over a second); doing it here does it once. A plain (not parallel) function starts
    no threads, so forking afterwards is safe."""
    import numba

    numba.njit(lambda x: x + 1)(1)


def _warm_matplotlib() -> None:
    """The first figure a process saves loads its fonts and the PDF backend's font tools."""
    import io

    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    axes.set_title("warm-up")
    for fmt in ("pdf", "png"):
        figure.savefig(io.BytesIO(), format=fmt)
    plt.close(figure)


def _become_stage(request: dict) -> None:
    """The child: ``python -m <module> <argv>`` in ``cwd`` with ``env``. Leaves by SystemExit
    (or an uncaught exception) through ``serve`` and the ``-c`` program, so the interpreter
    exits as after ``python -m``."""
    import runpy
    import tempfile

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # honour the request's TMPDIR
    with open(os.devnull, "rb") as devnull:
        os.dup2(devnull.fileno(), 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        with open(path, "wb") as fh:
            os.dup2(fh.fileno(), fd)
    sys.argv = [request["module"], *request["argv"]]
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    sys.exit(0)
