"""Locating, composing and validating the Hydra configuration in ``conf/``."""

from movielens_als.config.compose import compose, conf_dir
from movielens_als.config.validate import validate

__all__ = ["compose", "conf_dir", "validate"]
