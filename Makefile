# One-command entry points for a fresh machine: `make run` (the benchmark) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
CORES ?= 4
SNAKEMAKE = $(VENV)/bin/snakemake

.PHONY: setup run quick test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $@

run: setup  ## the default, seed-faithful benchmark -> results/summary.md
	$(SNAKEMAKE) --cores $(CORES)

quick: setup  ## the same DAG at CPU size (presets/quick.yaml)
	$(SNAKEMAKE) --cores $(CORES) --configfile presets/quick.yaml

test: setup
	$(VENV)/bin/python -m pytest

lint: setup
	$(SNAKEMAKE) --lint

clean:  ## remove outputs (not the venv)
	rm -rf results/data results/models results/logits results/eval results/logs results/benchmarks \
	       results/.resume results/summary.md .snakemake
