# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PERIODS ?= 1h,4h,1d
EXPERTS ?= Alpha-Dir-TFT Risk-TFT Derivatives-Micro-TFT
# A short CPU run per expert (1h/base); drop these limits for a real training run.
DEMO_TRAIN ?= --set training.max_epochs=2 --set training.limit_train_batches=20 --set training.limit_val_batches=10
# Walk-forward out-of-fold windows of the demo: each window is one short training run, long enough (150
# batches, a 24-bar encoder) for the experts to carry some signal into the stacking layer.
DEMO_WF ?= --set walk_forward.n_windows=3 --set walk_forward.val_days=20 --set walk_forward.oof_days=40 \
  --set training.max_epochs=1 --set training.limit_train_batches=150 --set training.limit_val_batches=20 \
  --set window.encoder_length=24

.PHONY: install demo test lint bench clean-data

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Runs the chain end to end on the embedded synthetic market (generated into data/raw, or reused from there).
demo: install
	$(PY) src/build_full_merged.py --periods $(PERIODS) --synthetic
	$(PY) -m src.fuse_fundamentals --config pipelines/configs/fuse_fundamentals.yaml
	for e in $(EXPERTS); do \
	  $(PY) train_multi_tft.py --config configs/experts/$$e/1h/base/model_config.yaml $(DEMO_TRAIN) || exit 1; \
	done
	$(PY) scripts/experts_cli.py list
	$(PY) scripts/experts_cli.py summary
	for e in $(EXPERTS); do \
	  $(PY) scripts/experts_cli.py oof --expert $$e --leaf 1h/base $(DEMO_WF) || exit 1; \
	done
	# Baselines on the same rows (README "Baselines"): fit, compare with the TFT, and walk forward for the stack.
	$(PY) scripts/experts_cli.py baseline --expert Alpha-Dir-TFT --leaf 1h/base --model logistic
	$(PY) scripts/experts_cli.py baseline --expert Alpha-Dir-TFT --leaf 1h/base --model lightgbm
	$(PY) bench/bench_quality.py --leaf Alpha-Dir-TFT/1h/base --tft-ckpt best
	$(PY) scripts/experts_cli.py oof --expert Alpha-Dir-TFT --leaf 1h/base --model lightgbm $(DEMO_WF)
	$(PY) pipelines/build_oof_for_z.py --predictions-root lightning_logs --data-path data/pkl_merged/full_merged.pkl \
	  --output datasets/z_train.parquet
	$(PY) utils/audit_no_leakage.py --path datasets/z_train.parquet
	$(PY) experts/Z-Combiner/train_z.py --config experts/Z-Combiner/model_config.yaml
	$(PY) -m pipelines.run_feature_screening --config pipelines/configs/feature_selection_quick.yaml --experts alpha_dir
	# Stocks and FX (README): plain daily CSVs in a data root of their own, fused without fundamentals.
	rm -rf data_stocks_raw
	$(PY) scripts/make_example_ohlcv.py --out data_stocks_raw
	$(PY) src/build_full_merged.py --raw-dir data_stocks_raw --periods 1d --out data_stocks
	$(PY) -m src.fuse_fundamentals --config pipelines/configs/fuse_fundamentals.yaml --data-root data_stocks \
	  --missing-sources skip --experts Alpha-Dir-TFT

lint: install
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest -q

bench: install
	$(PY) bench/bench_indicators.py
	$(PY) bench/bench_fusion.py
	$(PY) bench/bench_training.py
	$(PY) bench/bench_screening.py

clean-data:
	rm -rf data/raw data/merged data/pkl_merged data/crypto_targeted_and_indicated data_stocks data_stocks_raw
