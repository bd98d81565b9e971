"""DVC stage `split`: python -m movielens_als.stages.split [dataset=<name>] [overrides]"""

from movielens_als.pipeline.data import run_split as run
from movielens_als.stages._entry import hydra_entry

main = hydra_entry("split", run)

if __name__ == "__main__":
    main()
