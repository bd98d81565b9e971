"""DVC stage `ranking`: python -m movielens_als.stages.ranking [overrides]"""

from movielens_als.pipeline.use import run_ranking as run
from movielens_als.stages._entry import hydra_entry

main = hydra_entry("ranking", run)

if __name__ == "__main__":
    main()
