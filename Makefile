# One-command entry points for a fresh machine: `make run` (the benchmark) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
# Every core of this machine unless told otherwise: `make run CORES=8`.
CORES ?= $(shell nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 4)
# GPU=1 (`make setup GPU=1`, `make run GPU=1`) also installs TensorFlow's CUDA build, the `gpu` extra.
GPU ?= 0
EXTRAS = test$(if $(filter 1 yes true,$(GPU)),$(comma)gpu)
comma = ,
SNAKEMAKE = $(VENV)/bin/snakemake

.PHONY: setup run quick test lint clean

setup: $(VENV)/.installed

# The stamp names the extras, so `make setup GPU=1` after a CPU setup installs the CUDA build.
$(VENV)/.installed: $(VENV)/.installed-$(EXTRAS)
	touch $@

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

run: setup  ## the default run (the reference experiment) -> results/reference/summary.md
	$(SNAKEMAKE) --cores $(CORES)

quick: setup  ## the same DAG at CPU size (presets/quick.yaml)
	$(SNAKEMAKE) --cores $(CORES) --configfile presets/quick.yaml

test: setup
	$(VENV)/bin/python -m pytest

lint: setup
	$(SNAKEMAKE) --lint

clean:  ## remove every run's outputs and resume state, results/<run_name>/ (not the venv, not data/)
	rm -rf results/*/ .snakemake
