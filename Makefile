# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PERIODS ?= 1h,4h,1d

.PHONY: install demo test lint bench clean-data

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Runs the chain as far as it exists on the embedded synthetic market (or data/raw if present).
demo: install
	$(PY) src/build_full_merged.py --periods $(PERIODS)
	$(PY) -m src.fuse_fundamentals --config pipelines/configs/fuse_fundamentals.yaml

lint: install
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest -q

bench: install
	$(PY) bench/bench_indicators.py
	$(PY) bench/bench_fusion.py

clean-data:
	rm -rf data/raw data/merged data/pkl_merged data/crypto_targeted_and_indicated
