"""DVC stage `crossval`: python -m movielens_als.stages.crossval [split=kfold] [dataset=ml-100k split=predefined]"""

from movielens_als.pipeline.crossval import run_crossval as run
from movielens_als.stages._entry import hydra_entry

main = hydra_entry("crossval", run)

if __name__ == "__main__":
    main()
