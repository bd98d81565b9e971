"""The one way a stage starts: compose ``conf/<stage>.yaml`` with Hydra and call ``run``."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from movielens_als.config.compose import conf_dir, register_resolvers
from movielens_als.errors import MovieLensError

# Hydra settings of every stage run, given as overrides because DVC runs the stages with
# params.yaml, which holds no hydra section (its composition leaves it out); a command line's
# own value wins. Folders: git-ignored, named by start time and pid (${run_stamp:}) so runs and
# multiruns started in the same second never share one. Logging: brief lines on stderr, no file
# (conf/hydra/job_logging/stage.yaml; conf/ stays on the search path beside --config-dir).
HYDRA_SETTINGS = {
    "hydra.run.dir": "outputs/hydra/${now:%Y-%m-%d}/${run_stamp:}",
    "hydra.sweep.dir": "outputs/multirun/${now:%Y-%m-%d}/${run_stamp:}",
    "hydra/job_logging": "stage",
}
ERROR_EXIT_CODE = 2
INTERRUPTED_EXIT_CODE = 130  # the shell's code for a Ctrl-C'd command


def _raise_interrupt(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough; let the unwinding finish
    raise KeyboardInterrupt


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _interrupted(stage: str) -> None:
    print(
        f"error: {stage}: interrupted; no output is half-written (each is the previous or the new version)",
        file=sys.stderr,
    )
    sys.exit(INTERRUPTED_EXIT_CODE)


def hydra_entry(
    config_name: str, run: Callable[[DictConfig], dict[str, Any]], stage: str | None = None
) -> Callable[[], None]:
    """A ``main()`` for ``python -m``: user errors print one line and exit with status 2."""
    stage = stage or config_name

    def task(cfg: DictConfig) -> None:
        # SIGTERM (kill, a scheduler's stop) unwinds like Ctrl-C: temporaries are removed and
        # the MLflow run is closed as FAILED by the context managers on the way out.
        signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            run(_isolate_multirun_job(cfg))
        except KeyboardInterrupt:
            _interrupted(stage)
        except Exception as exc:
            if _caused_by_interrupt(exc):
                # an interrupt that landed inside a library call can surface as that
                # library's error while the context managers unwind: still the user's stop
                _interrupted(stage)
            if isinstance(exc, MovieLensError):
                # One readable line, no traceback: the message already says what and where.
                print(f"error: {stage}: {exc}", file=sys.stderr)
                sys.exit(ERROR_EXIT_CODE)
            if isinstance(exc, OSError):
                # A full disk, a write-protected folder: the path and the cause, in one line
                # (outputs are written under temporary names, so nothing half-written is left).
                where = exc.filename if exc.filename is not None else "an output"
                print(f"error: {stage}: {where}: {exc.strerror or exc}", file=sys.stderr)
                sys.exit(ERROR_EXIT_CODE)
            raise

    def main() -> None:
        register_resolvers()
        # Name the job after the stage (Hydra would call every stage "_entry" in its logs).
        for key, value in {"hydra.job.name": stage, **HYDRA_SETTINGS}.items():
            if not any(arg.startswith(f"{key}=") for arg in sys.argv[1:]):
                sys.argv.append(f"{key}={value}")
        # A stage's stderr is its progress and its summary line (conf/hydra/job_logging/);
        # MLflow's INFO lines (creating tables, validating the input example) are not, and it
        # sets its loggers up on import, out of reach of that config. Its warnings still show.
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base=None)(task)()

    return main


def _isolate_multirun_job(cfg: DictConfig) -> DictConfig:
    """A multirun job writes everything into its own job folder (``paths.outputs``), so jobs
    neither overwrite each other nor the DVC pipeline's outputs; inputs still come from the
    pipeline's folders (``paths.data``, ``paths.results``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return cfg
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    # the job's values of the swept keys (those the command line gave as a sweep, e.g.
    # model.K=2,3 → model.K=2), so its MLflow run says which job it is
    swept = [o for o in hydra_cfg.overrides.task if o not in sys.argv[1:]]
    with open_dict(cfg):
        cfg.paths.outputs = str(job_dir)
        cfg.tracking.run_label = f"#{hydra_cfg.job.num} " + " ".join(swept)
    return cfg
