"""The one way a stage starts: compose ``conf/<stage>.yaml`` with Hydra and call ``run``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig

from movielens_als.config.compose import conf_dir
from movielens_als.errors import MovieLensError

log = logging.getLogger("movielens_als")

ERROR_EXIT_CODE = 2


def hydra_entry(config_name: str, run: Callable[[DictConfig], dict[str, Any]]) -> Callable[[], None]:
    """A ``main()`` for ``python -m``: user errors print one line and exit with status 2."""

    def task(cfg: DictConfig) -> None:
        try:
            run(cfg)
        except MovieLensError as exc:
            # One readable line, no traceback: the message already says what and where.
            print(f"error: {config_name}: {exc}", file=sys.stderr)
            sys.exit(ERROR_EXIT_CODE)

    def main() -> None:
        hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base=None)(task)()

    return main
