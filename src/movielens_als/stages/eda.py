"""DVC stage `eda`: python -m movielens_als.stages.eda [overrides]"""

from movielens_als.pipeline.eda import run_eda as run
from movielens_als.stages._entry import hydra_entry

main = hydra_entry("eda", run)

if __name__ == "__main__":
    main()
