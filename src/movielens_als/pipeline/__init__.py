"""Stage orchestration: each ``run_*`` reads its inputs, calls the library, writes its outputs
atomically and logs one MLflow run. The Hydra entry points in ``movielens_als.stages`` are
thin wrappers around these functions, which tests call directly with a composed config."""
