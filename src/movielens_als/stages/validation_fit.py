"""DVC stage `validation_fit@<model>`: python -m movielens_als.stages.validation_fit validation_fit.model=<model> [overrides]"""

from movielens_als.pipeline.use import run_validation_fit as run
from movielens_als.stages._entry import hydra_entry

main = hydra_entry("validation_fit", run)

if __name__ == "__main__":
    main()
