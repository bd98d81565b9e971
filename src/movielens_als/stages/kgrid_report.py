"""DVC stage `kgrid_report`: python -m movielens_als.stages.kgrid_report [overrides]"""

from movielens_als.pipeline.kgrid import run_kgrid_report as run
from movielens_als.stages._entry import hydra_entry

main = hydra_entry("kgrid", run, stage="kgrid_report")

if __name__ == "__main__":
    main()
