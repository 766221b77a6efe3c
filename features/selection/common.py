"""Shared pieces of the screening stages: purged time folds, time-aware permutations, tree models."""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from utils.timeline import expanding_splits

logger = logging.getLogger(__name__)


def purged_folds(ts: pd.Series, n_folds: int, period: str, horizon: int,
                 embargo: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, test rows) of each :func:`utils.timeline.expanding_splits` fold that has both.

    The timeline is cut into ``n_folds + 1`` equal blocks; fold ``j`` tests on block ``j + 1`` from its start +
    ``embargo`` bars and fits on rows whose labels (``horizon`` bars) are known before the block starts.
    """
    folds = []
    for split in expanding_splits(ts, n_folds, period, horizon, embargo):
        fit, test = split.indices(ts).values()
        if len(fit) and len(test):
            folds.append((fit, test))
    return folds


def group_slices(groups: np.ndarray) -> list[np.ndarray]:
    """Row positions of each group, in row order (rows must be time-sorted within groups)."""
    codes, _ = pd.factorize(groups)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return np.split(order, bounds)


def time_permutation(n_rows: int, slices: list[np.ndarray], rng: np.random.Generator, block_len: int,
                     mode: str) -> np.ndarray:
    """Row index that permutes one or more columns in a time-aware way, within each group.

    ``cyclic``: each group's series is rotated by a random offset of at least ``block_len`` rows (a one-row
    shift of a persistent feature is not a permutation); ``block``: the group's series is cut into blocks of
    ``block_len`` rows whose order is shuffled (persistence inside blocks is kept, alignment is broken).
    """
    idx = np.arange(n_rows)
    for rows in slices:
        n = len(rows)
        if n < 2 * block_len + 1:
            idx[rows] = rows[rng.permutation(n)]
            continue
        if mode == "cyclic":
            shift = int(rng.integers(block_len, n - block_len))
            idx[rows] = np.roll(rows, shift)
        else:
            blocks = np.array_split(rows, int(np.ceil(n / block_len)))
            order = rng.permutation(len(blocks))
            idx[rows] = np.concatenate([blocks[i] for i in order])
    return idx


def is_classification(y: np.ndarray) -> bool:
    """0/1 labels."""
    vals = np.unique(y[np.isfinite(y)])
    return len(vals) <= 2 and set(vals.tolist()) <= {0.0, 1.0}


def fit_tree(name: str, X: np.ndarray, y: np.ndarray, classification: bool, n_estimators: int, seed: int):
    """A small gradient-boosted tree model (LightGBM, XGBoost or CatBoost), fit on the CPU or CUDA."""
    common = {"n_estimators": n_estimators, "learning_rate": 0.05, "random_state": seed}
    # small fits: one thread. OpenMP threads spin-wait at every barrier, which turns a busy second core
    # into a 10-100x slowdown; the data here rarely pays for the synchronisation anyway.
    threads = 1 if len(X) < 100_000 else max(1, (os.cpu_count() or 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "lightgbm":
            import lightgbm as lgb

            cls = lgb.LGBMClassifier if classification else lgb.LGBMRegressor
            model = cls(num_leaves=15, min_child_samples=50, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                        importance_type="gain", verbose=-1, n_jobs=threads, **common)
        elif name == "xgboost":
            import xgboost as xgb

            cls = xgb.XGBClassifier if classification else xgb.XGBRegressor
            model = cls(max_depth=4, subsample=0.8, colsample_bytree=0.8, importance_type="total_gain", n_jobs=threads,
                        **xgboost_device(), **common)
        elif name == "catboost":
            import catboost as cb

            cls = cb.CatBoostClassifier if classification else cb.CatBoostRegressor
            model = cls(iterations=n_estimators, depth=4, learning_rate=0.08, random_seed=seed, verbose=False,
                        thread_count=threads, allow_writing_files=False)
        else:
            raise ValueError(f"unknown tree model {name!r}")
        model.fit(X, y)
    return model


def xgboost_device() -> dict[str, str]:
    """``tree_method='hist'`` on ``cuda`` when a GPU is present (``gpu_hist`` on XGBoost < 2), else the CPU."""
    import xgboost as xgb

    try:
        import torch

        gpu = torch.cuda.is_available()
    except ImportError:  # torch is a dependency; this only guards odd installs
        gpu = False
    major = int(xgb.__version__.split(".")[0])
    if not gpu:
        return {"tree_method": "hist"}
    return {"tree_method": "hist", "device": "cuda"} if major >= 2 else {"tree_method": "gpu_hist"}


def gain_importance(model, n_features: int) -> np.ndarray:
    """Gain importances normalised to sum 1 (never split counts)."""
    if hasattr(model, "get_feature_importance"):  # CatBoost: PredictionValuesChange, a gain-type measure
        imp = np.asarray(model.get_feature_importance(), dtype=np.float64)
    else:
        imp = np.asarray(model.feature_importances_, dtype=np.float64)
    imp = imp[:n_features] if len(imp) >= n_features else np.pad(imp, (0, n_features - len(imp)))
    total = imp.sum()
    return imp / total if total > 0 else imp


def model_score(model, X: np.ndarray, y: np.ndarray, classification: bool) -> float:
    """ROC-AUC (classification) or Spearman correlation of prediction and target (regression)."""
    if classification:
        if len(np.unique(y)) < 2:
            return float("nan")
        return float(roc_auc_score(y, model.predict_proba(X)[:, 1]))
    pred = model.predict(X)
    return float(pd.Series(pred).corr(pd.Series(y), method="spearman"))


def cap_rows(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted random subset of at most ``cap`` row positions (tree importances are not time-sensitive)."""
    return np.arange(n) if n <= cap else np.sort(rng.choice(n, cap, replace=False))
