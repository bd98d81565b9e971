"""DVC stage `kgrid`: python -m movielens_als.stages.kgrid [overrides]"""

from movielens_als.pipeline.kgrid import run_kgrid as run
from movielens_als.stages._entry import hydra_entry

main = hydra_entry("kgrid", run)

if __name__ == "__main__":
    main()
