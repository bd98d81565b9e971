"""Where ``conf/`` lives and how to compose it outside ``@hydra.main`` (tests, params.yaml)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

CONF_ENV = "MOVIELENS_ALS_CONF"


def conf_dir() -> Path:
    """The project's ``conf/`` folder.

    ``$MOVIELENS_ALS_CONF`` wins; then ``./conf`` (stages run from the project folder, as DVC
    runs them); then the ``conf/`` of the checkout this package was installed from (editable).
    """
    candidates = []
    if os.environ.get(CONF_ENV):
        candidates.append(Path(os.environ[CONF_ENV]))
    candidates.append(Path.cwd() / "conf")
    candidates.append(Path(__file__).resolve().parents[3] / "conf")
    for candidate in candidates:
        if (candidate / "base.yaml").is_file():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"no Hydra config folder found (looked for base.yaml in: {tried}); set ${CONF_ENV}"
    )


RUN_STAMP_RESOLVER = "run_stamp"


def register_resolvers() -> None:
    """``${run_stamp:}``: this process's start time and pid (``14-03-07-51234``), naming Hydra's
    run and multirun folders (conf/base.yaml). ``${now:…}`` alone gives the same folder to runs
    started in the same second, which then overwrite each other's jobs; the pid cannot repeat
    among live processes. Cached, and Hydra copies the cache to every job of a multirun, so
    the jobs of one multirun share the folder (each in its own numbered subfolder)."""
    import datetime

    from omegaconf import OmegaConf

    stamp = f"{datetime.datetime.now():%H-%M-%S}-{os.getpid()}"
    OmegaConf.register_new_resolver(RUN_STAMP_RESOLVER, lambda: stamp, use_cache=True, replace=True)


def compose(config_name: str, overrides: Sequence[str] = (), *, resolve: bool = True) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with Hydra overrides, as the stage would see it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(conf_dir()), version_base=None):
        cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
    if resolve:
        OmegaConf.resolve(cfg)
    return cfg
