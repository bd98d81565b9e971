"""DVC stage `als`: python -m movielens_als.stages.als [model.K=…] [model.tau=…] [-m sweeps]"""

from functools import partial

from movielens_als.pipeline.train import run_training
from movielens_als.stages._entry import hydra_entry

run = partial(run_training, stage="als")
main = hydra_entry("als", run)

if __name__ == "__main__":
    main()
