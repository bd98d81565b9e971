"""DVC stage `analysis`: python -m movielens_als.stages.analysis [overrides]"""

from movielens_als.pipeline.use import run_analysis as run
from movielens_als.stages._entry import hydra_entry

main = hydra_entry("analysis", run)

if __name__ == "__main__":
    main()
