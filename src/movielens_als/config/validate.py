"""Validation of composed configs: every problem is reported with the key that holds it."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from movielens_als.errors import ConfigError


def validate(cfg: DictConfig, stage: str | None = None) -> None:
    """Check the sections a stage reads; raise ConfigError naming the first bad key."""
    from movielens_als.data.registry import RELEASES

    name = _get(cfg, "dataset.name")
    if name not in RELEASES:
        known = ", ".join(sorted(RELEASES))
        raise ConfigError(f"dataset.name: unknown dataset {name!r}; known: {known}")
    allow_http = cfg.dataset.get("allow_http", False)
    if not isinstance(allow_http, bool):
        raise ConfigError(f"dataset.allow_http: must be true or false, got {allow_http!r}")
    _validate_split(cfg)
    _validate_sections(cfg)
    if stage == "validation_fit":  # params.yaml leaves it null: each DVC command names one
        fitted, ranked = _get(cfg, "validation_fit.model"), list(_get(cfg, "ranking.models"))
        if fitted not in ranked:
            raise ConfigError(
                "validation_fit.model: name the trained model to refit on the validation "
                f"carve-out, one of ranking.models ({', '.join(map(str, ranked))}); got {fitted!r}"
            )
    if isinstance(cfg.get("model"), DictConfig):  # the stage's own model (resolved by the stage)
        validate_model(cfg.model, prefix="model")


def validate_model(model: Any, *, prefix: str = "model") -> None:
    """The model section: its variant's own parameter checks (the one owner of those rules)."""
    from omegaconf import OmegaConf

    from movielens_als.core.variant import model_params

    values = (
        OmegaConf.to_container(model, resolve=True)
        if isinstance(model, DictConfig)
        else dict(model)
    )
    try:
        model_params(values)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("model.", f"{prefix}.", 1)) from None


def _validate_split(cfg: DictConfig) -> None:
    """The split rules live with the split (``data.split.check_settings``)."""
    if "split" not in cfg:
        return
    from movielens_als.data.split import check_settings

    for key in ("method", "train_fraction", "val_fraction", "seed", "n_test_per_user"):
        _get(cfg, f"split.{key}")
    check_settings(
        cfg.split.method,
        cfg.split.train_fraction,
        cfg.split.val_fraction,
        cfg.split.seed,
        cfg.split.n_test_per_user,
        cfg.split.get("folds", 5),
        cfg.split.get("fold", 0),
    )


def _validate_sections(cfg: DictConfig) -> None:
    """The stage-specific sections, where present (a stage's own config, or params.yaml)."""
    if "compute" in cfg:
        from omegaconf import OmegaConf

        from movielens_als.compute import check_settings

        check_settings(OmegaConf.to_container(cfg.compute, resolve=True))
    if "tuning" in cfg:
        for key in ("n_trials", "iterations", "final_iterations"):
            _positive_int(cfg, f"tuning.{key}")
        for key in ("pruner_startup_trials", "pruner_warmup_steps"):
            value = _get(cfg, f"tuning.{key}")
            if not _is_int(value) or value < 0:
                raise ConfigError(f"tuning.{key}: must be an integer ≥ 0, got {value!r}")
        _positive_int(cfg, "tuning.pruner_min_resource")
        factor = _get(cfg, "tuning.pruner_reduction_factor")
        if not _is_int(factor) or factor < 2:
            raise ConfigError(
                f"tuning.pruner_reduction_factor: must be an integer ≥ 2, got {factor!r}"
            )
        from movielens_als.tuning.search import PRUNERS

        if _get(cfg, "tuning.pruner") not in PRUNERS:
            raise ConfigError(
                f"tuning.pruner: must be one of {', '.join(PRUNERS)}; got {_get(cfg, 'tuning.pruner')!r}"
            )
        fraction = _get(cfg, "tuning.val_fraction")
        if not _is_number(fraction) or not 0 < fraction < 1:
            raise ConfigError(
                f"tuning.val_fraction: must lie in (0, 1) — the sweep tunes on validation, never on test; got {fraction!r}"
            )
    if "kgrid" in cfg:
        Ks = _get(cfg, "kgrid.Ks")
        if not Ks or any(not _is_int(k) or k < 1 for k in Ks):
            raise ConfigError(f"kgrid.Ks: must be a non-empty list of integers ≥ 1, got {Ks!r}")
        if _get(cfg, "kgrid.K") is not None:
            _positive_int(cfg, "kgrid.K")
        _positive_int(cfg, "kgrid.iterations")
    if "ranking" in cfg:
        ranked = _get(cfg, "ranking.models")
        if not ranked:
            raise ConfigError(
                "ranking.models: name at least one trained model (e.g. als, genre_als)"
            )
        if len(set(ranked)) < len(ranked):
            raise ConfigError(f"ranking.models: names a model twice: {list(ranked)!r}")
        ks = _get(cfg, "ranking.ks")
        if not ks or any(not _is_int(k) or k < 1 for k in ks):
            raise ConfigError(f"ranking.ks: must be a non-empty list of integers ≥ 1, got {ks!r}")
        max_users = _get(cfg, "ranking.max_users")
        if max_users is not None and (not _is_int(max_users) or max_users < 1):
            raise ConfigError(
                f"ranking.max_users: must be an integer ≥ 1, or null for all users; got {max_users!r}"
            )
        if not _is_int(_get(cfg, "ranking.seed")):
            raise ConfigError(
                f"ranking.seed: must be an integer, got {_get(cfg, 'ranking.seed')!r}"
            )
        weights = _get(cfg, "ranking.prior_weights")
        if any(not _is_number(w) or w < 0 for w in weights):
            raise ConfigError(f"ranking.prior_weights: must be numbers ≥ 0, got {weights!r}")
        fraction = _get(cfg, "ranking.val_fraction")
        if not _is_number(fraction) or not 0 < fraction < 1:
            raise ConfigError(f"ranking.val_fraction: must lie in (0, 1), got {fraction!r}")
    if "analysis" in cfg:
        for key in ("min_ratings", "top_n"):
            _positive_int(cfg, f"analysis.{key}")
        edges = _get(cfg, "analysis.tier_edges")
        if (
            not edges
            or any(not _is_int(e) or e < 1 for e in edges)
            or list(edges) != sorted(set(edges))
        ):
            raise ConfigError(
                f"analysis.tier_edges: must be increasing integers ≥ 1, got {edges!r}"
            )
    if "tuned" in cfg and cfg.tuned is not None and not isinstance(cfg.tuned, str):
        raise ConfigError(
            f"tuned: must be null or a search space name (notebook, count, best), got {cfg.tuned!r}"
        )


def _positive_int(cfg: DictConfig, dotted: str) -> None:
    value = _get(cfg, dotted)
    if not _is_int(value) or value < 1:
        raise ConfigError(f"{dotted}: must be an integer ≥ 1, got {value!r}")


def _get(node: Any, dotted: str, prefix: str = "") -> Any:
    where = f"{prefix}.{dotted}" if prefix else dotted
    current = node
    for part in dotted.split("."):
        if not isinstance(current, DictConfig | dict) or part not in current:
            raise ConfigError(f"{where}: missing key")
        current = current[part]
    return current


def _choice(node: Any, key: str, allowed: tuple[str, ...], prefix: str) -> None:
    value = _get(node, key, prefix)
    if value not in allowed:
        raise ConfigError(f"{prefix}.{key}: must be one of {', '.join(allowed)}; got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
