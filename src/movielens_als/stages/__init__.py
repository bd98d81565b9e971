"""Hydra entry points, one per DVC stage: ``python -m movielens_als.stages.<name> [overrides]``.

Each module only binds a config name (``conf/<name>.yaml``) to a ``run(cfg) -> dict`` from
``movielens_als.pipeline``; ``-m`` multirun sweeps work as with any Hydra app.
"""
