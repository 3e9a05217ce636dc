# hpcsys: two commands do everything on a fresh machine.
#   make run   - create the venv, install, run configs/quick.yaml under mpiexec -n 2,
#                reduce, print the tables and write the figures
#   make test  - create the venv, install, pass every test (MPI tests under mpiexec)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
NP ?= 2
CONFIG ?= configs/quick.yaml
RUN_DIR ?= runs/quick
STAMP := $(VENV)/.installed

export HDF5_USE_FILE_LOCKING ?= FALSE
export XLA_PYTHON_CLIENT_PREALLOCATE ?= false

MIN_VENV ?= /tmp/hpcsys-minvenv

.PHONY: install run test test-serial test-fast test-mpi test-slurm test-min docs lint bench clean

$(STAMP): pyproject.toml setup.cfg Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[mpich,test,docs,spectra]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/hpcsys check $(CONFIG)
	$(BIN)/mpiexec -n $(NP) $(BIN)/hpcsys run $(CONFIG) --resume
	$(BIN)/hpcsys report $(RUN_DIR)/results.h5
	$(PY) analysis/make_all.py $(RUN_DIR)/results.h5 --out $(RUN_DIR)/analysis

lint: install
	$(BIN)/ruff check hpcsys tests analysis benchmarks docs/examples

test-serial: install
	$(PY) -m pytest -q -m "not mpi and not slurm" tests

# While developing: the serial tests without the end-to-end subprocess runs (not part of test).
test-fast: install
	$(PY) -m pytest -q -m "not mpi and not slurm and not slow" tests

# Both MPI sessions and all their ranks share one JAX compilation cache in a temporary
# directory (tests/conftest.py), removed afterwards.
test-mpi: install
	cache=$$(mktemp -d -t hpcsys-test-jax-cache-XXXXXX) && export HPCSYS_TEST_JAX_CACHE=$$cache && \
	timeout 900 $(BIN)/mpiexec -n 2 $(PY) -m pytest -q --with-mpi -m mpi -p no:cacheprovider tests && \
	timeout 900 $(BIN)/mpiexec -n 3 $(PY) -m pytest -q --with-mpi -m mpi -p no:cacheprovider tests; \
	rc=$$?; rm -rf "$$cache"; exit $$rc

# The declared dependency floors (tests/min-versions.txt) in a throwaway venv; not part of test.
test-min:
	test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install -q --upgrade pip
	$(MIN_VENV)/bin/python -m pip install -q --only-binary=:all: -r tests/min-versions.txt
	PYTHONPATH=$(CURDIR) $(MIN_VENV)/bin/python -m pytest -q -p no:cacheprovider \
		-m "not mpi and not slurm and not slow" tests

test-slurm: install
	timeout 900 $(PY) -m pytest -q -m slurm -p no:cacheprovider tests/test_slurm.py

docs: install
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

test: lint test-serial test-mpi test-slurm docs

bench: install
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf runs docs/_build docs/auto_examples .pytest_cache
