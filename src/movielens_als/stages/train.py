"""DVC stage `train@<name>`: python -m movielens_als.stages.train [model=<name>] [model.K=…] [-m sweeps]"""

from movielens_als.pipeline.train import run_training as run
from movielens_als.stages._entry import hydra_entry

main = hydra_entry("train", run)

if __name__ == "__main__":
    main()
