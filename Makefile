# One-command entry points for a fresh machine: `make run` (the benchmark) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# The Keras backend: tensorflow (the default, in .venv), jax or torch (each in a venv of its own without
# TensorFlow, .venv-jax / .venv-torch): `make setup BACKEND=jax`, `make run BACKEND=jax`.
BACKEND ?= tensorflow
VENV ?= $(if $(filter tensorflow,$(BACKEND)),.venv,.venv-$(BACKEND))
# Every core of this machine unless told otherwise: `make run CORES=8`.
CORES ?= $(shell nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 4)
# GPU=1 (`make setup GPU=1`, `make run GPU=1`) installs the backend's CUDA build: TensorFlow's `gpu` extra,
# JAX's `jax-cuda` (PyTorch's Linux wheel has CUDA already).
GPU ?= 0
ON_GPU = $(filter 1 yes true,$(GPU))
BACKEND_EXTRA = $(if $(ON_GPU),$(GPU_EXTRA_$(BACKEND)),$(BACKEND))
GPU_EXTRA_tensorflow = gpu
GPU_EXTRA_jax = jax-cuda
GPU_EXTRA_torch = torch
EXTRAS = test$(comma)$(BACKEND_EXTRA)
comma = ,
SNAKEMAKE = $(VENV)/bin/snakemake
# Jobs run on train.backend, which is KERAS_BACKEND where the config leaves it null (the default): a BACKEND
# other than the default sets that for the run (snakemake's --config takes no dotted keys).
BACKEND_ENV = $(if $(filter tensorflow,$(BACKEND)),,KERAS_BACKEND=$(BACKEND) )

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
	$(BACKEND_ENV)$(SNAKEMAKE) --cores $(CORES)

quick: setup  ## the same DAG at CPU size (presets/quick.yaml)
	$(BACKEND_ENV)$(SNAKEMAKE) --cores $(CORES) --configfile presets/quick.yaml

test: setup
	$(VENV)/bin/python -m pytest

lint: setup
	$(SNAKEMAKE) --lint

clean:  ## remove every run's outputs and resume state, results/<run_name>/ (not the venv, not data/)
	rm -rf results/*/ .snakemake
