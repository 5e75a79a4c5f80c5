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

# A fresh .venv measured 5.9 GB (6.1 GB at its peak while installing): torch's CUDA build with its
# NVIDIA libraries and triton, which pip takes even on a CPU-only machine. Checked before a first
# install (no importable torch yet), so that a full disk ends in one line, not in pip's OSError.
INSTALL_NEEDS_MB ?= 6500
VENV_DISK = $(dir $(abspath $(VENV)))

$(VENV)/.installed: pyproject.toml
	@if ! $(PYTHON) -c "import torch" 2>/dev/null; then \
	  mkdir -p "$(VENV_DISK)"; free_mb=$$(df -Pm "$(VENV_DISK)" | awk 'NR==2 {print $$4}'); \
	  if [ "$$free_mb" -lt "$(INSTALL_NEEDS_MB)" ] 2>/dev/null; then \
	    echo "make install: $$free_mb MB free under $(VENV_DISK), but a first install needs about $(INSTALL_NEEDS_MB) MB (torch's CUDA build with its NVIDIA libraries, 5.9 GB even on a CPU-only machine); free some space, or put the environment on a larger disk with VENV=PATH" >&2; \
	    exit 1; \
	  fi; \
	fi
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
