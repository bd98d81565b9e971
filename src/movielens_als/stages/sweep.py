"""DVC stage `sweep`: python -m movielens_als.stages.sweep [overrides]"""

from movielens_als.pipeline.sweep import run_sweep as run
from movielens_als.stages._entry import hydra_entry

main = hydra_entry("sweep", run)

if __name__ == "__main__":
    main()
