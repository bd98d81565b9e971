# One-command set-up. `make repro` runs the study, `make test` runs the test suite; both create
# .venv and install the project first, so either works as the first command on a fresh clone.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Offline machines keep MovieLens archives in a mirror folder; a `shared/datasets` folder
# beside the checkout is used when MOVIELENS_MIRROR is not set.
MOVIELENS_MIRROR ?= $(wildcard $(CURDIR)/../shared/datasets)
export MOVIELENS_MIRROR

.PHONY: install repro test test-fast params check-params lint bench bench-study mlflow-ui clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

repro: install check-params
	dvc repro

test: install
	python -m pytest

test-fast: install
	python -m pytest -m "not slow"

params: install
	python -m movielens_als.config.params $(OVERRIDES)

check-params: install
	python -m movielens_als.config.params --check

lint: install
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks

# the baselines (LensKit, myFM) are a benchmark-only extra: a large install (torch), pandas 2
bench: install
	python -m pip install --quiet -e '.[test,bench]'
	python benchmarks/bench_data.py
	python benchmarks/bench_als.py
	python benchmarks/bench_bayes.py
	python benchmarks/bench_ranking.py

# the whole study at ML-32M shape (26-52 min on 2 cores, depending on the host): per-stage wall time and peak RSS
bench-study: install
	python benchmarks/bench_study.py

mlflow-ui: install
	mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000 --workers 1

clean:
	rm -rf outputs multirun .pytest_cache
	-python -c 'import shutil, movielens_als._kernel_cache as c; shutil.rmtree(c.default_cache_root(), ignore_errors=True)'
