# Two commands on a fresh machine: `make search` (the main job) and `make test`.
# Both create .venv and install what they need; torch==2.13.0 goes in first, explicitly, so that
# pip does not pull a multi-GB CUDA build for an unpinned `torch`. The `dev` extra adds pytest and
# the optional extras the tests exercise (mlflow-skinny, optuna-dashboard: ~100 MB, ~17 s).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
export MPLCONFIGDIR ?= $(CURDIR)/.cache/matplotlib
export RAY_AUTH_MODE ?= disabled
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER ?= 0

.PHONY: install kernels search test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# The packed 1-bit kernels (nas/runtime/csrc): built with the system C++ compiler into
# ~/.cache/bimtdp-nas/kernels (≈10 s of CPU; a cached build returns at once). Without a compiler
# this step fails, but nothing else needs it: packed inference then runs emulated.
kernels: install
	$(BIN)/python -m nas.runtime.build

# The quick demo: a search on the embedded synthetic scenes, its Pareto front, plots and report
# under results/$(STUDY)/. Re-running resumes (a finished study returns at once).
STUDY ?= demo
TRIALS ?= 16
search: install
	$(BIN)/bimtdp search --study $(STUDY) --space mini --fidelity quick --trials $(TRIALS)
	$(BIN)/bimtdp plot --study $(STUDY)
	$(BIN)/bimtdp export --study $(STUDY) --knee
	$(BIN)/bimtdp report --study $(STUDY)

test: kernels
	$(BIN)/python -m pytest -q

bench: kernels
	$(BIN)/python benchmarks/bench_binary_conv.py
	$(BIN)/python benchmarks/bench_cost.py
	$(BIN)/python benchmarks/bench_synth.py
	$(BIN)/python benchmarks/bench_train.py steps

clean:
	rm -rf $(VENV) .cache .pytest_cache
