# weakdeblur: `make run` (demo job) and `make test` (the suite) work from a fresh clone.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
ARGS ?=
PYTEST_ARGS ?=
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 1)  # pytest-xdist workers, one torch thread each
SHARED_DATA := $(abspath ../shared/data)
# The data root (a folder holding levin/, ...): the environment wins; else ../shared/data if present.
ifeq ($(origin WEAKDEBLUR_DATA), undefined)
ifneq ($(wildcard $(SHARED_DATA)/levin),)
export WEAKDEBLUR_DATA := $(SHARED_DATA)
endif
endif

.PHONY: install run test test-all bench time-to-result gpu-check lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install  ## the default job: SelfDeblur on the embedded demo (ARGS="..." adds Hydra overrides)
	$(PYTHON) -m weakdeblur.run $(ARGS)

test: install  ## the test suite without the slow tests
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

test-all: install  ## every test, slow ones included
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

bench: install  ## s/iteration per speed variant against the plain reference loop (255x255, 128 crop), batched images/s, then time to result (TTR_ARGS; ~1.5 h of one core)
	$(PYTHON) -m weakdeblur.bench $(ARGS)
	$(PYTHON) -m weakdeblur.time_to_result $(TTR_ARGS)

time-to-result: install  ## +exp=selfdeblur's 5000 iterations on a Levin 128 crop against the faster configurations (TTR_ARGS)
	$(PYTHON) -m weakdeblur.time_to_result $(TTR_ARGS)

gpu-check: install  ## on a CUDA machine (<= 8 min): tests on cuda, bench on cuda, 8 Levin images batched vs CPU
	$(PYTHON) -m weakdeblur.gpu_check $(ARGS)

lint: install
	$(PYTHON) -m ruff check weakdeblur tests

clean:
	rm -rf outputs multirun .pytest_cache
