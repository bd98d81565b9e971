"""DVC stage `bias`: python -m movielens_als.stages.bias [model.K=…] [model.tau=…] [-m sweeps]"""

from functools import partial

from movielens_als.pipeline.train import run_training
from movielens_als.stages._entry import hydra_entry

run = partial(run_training, stage="bias")
main = hydra_entry("bias", run)

if __name__ == "__main__":
    main()
