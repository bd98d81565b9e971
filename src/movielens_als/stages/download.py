"""DVC stage `download`: python -m movielens_als.stages.download [dataset=<name>] [overrides]"""

from movielens_als.pipeline.data import run_download as run
from movielens_als.stages._entry import hydra_entry

main = hydra_entry("download", run)

if __name__ == "__main__":
    main()
