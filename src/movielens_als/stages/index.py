"""DVC stage `index`: python -m movielens_als.stages.index [dataset=<name>] [overrides]"""

from movielens_als.pipeline.data import run_index as run
from movielens_als.stages._entry import hydra_entry

main = hydra_entry("index", run)

if __name__ == "__main__":
    main()
