"""Stage 3: time-aware permutation importance on purged, embargoed held-out folds.

For each expanding time fold (test block after a purge of the label horizon and an embargo), a LightGBM
model is fit on the fold's training rows and scored on its test block (ROC-AUC or Spearman). Each
feature (or each correlation cluster, permuted together so that importance is not split between
near-copies) is then permuted *in time* within each group (``group_cols``, e.g. symbol):

* ``cyclic``: rotated by a random offset of at least ``block_len`` bars;
* ``block``: blocks of ``block_len`` bars shuffled;

``block_len`` should be at least the feature's decorrelation length (a one-bar shift of a persistent
feature is not a permutation). The drop in score over folds x repeats x modes gives ``perm_delta``,
``perm_std`` and a 95% interval; ``era`` rows repeat the computation per calendar year of the test rows.

Runnable alone (the entry point is :mod:`pipelines.run_tree_perm`)::

    python -m features.selection.tree_perm --periods 1h,4h --time-perm --block-len 48 --group-cols symbol \\
        --perm-repeats 5 --targets target_binarytrend,target_logreturn [--config ...] [--experts ...]
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats as sstats

from features.selection.common import (
    fit_tree,
    gain_importance,
    group_slices,
    model_score,
    purged_folds,
    time_permutation,
)
from features.selection.config import TreePermSection
from utils.timeline import embargo_bars

logger = logging.getLogger(__name__)


class TreePermStage:
    """Stage 3 for one period and target."""

    def __init__(self, cfg: TreePermSection, period: str, horizon: int, seed: int = 0) -> None:
        self.cfg, self.period, self.horizon, self.seed = cfg, period, horizon, seed

    def fit(self, frame: pd.DataFrame, features: list[str], target: str, classification: bool,
            clusters: pd.Series | None = None) -> TreePermStage:
        """``frame``: training rows; returns importances per feature (era ``all`` and per year)."""
        rng = np.random.default_rng(self.seed)
        self.block_len_ = self.cfg.block_len_by_period.get(self.period, 48)
        self.embargo_ = embargo_bars(self.cfg.embargo_bars, self.horizon, "tree_perm")
        self.purge_ = self.cfg.purge_bars if self.cfg.purge_bars is not None else self.horizon
        part = frame[frame[target].notna().to_numpy()].sort_values([*self.cfg.group_cols, "timestamp"])
        if len(part) > self.cfg.sample_cap:  # keep the latest contiguous span: permutations need whole series
            cut = part["timestamp"].sort_values().iloc[len(part) - self.cfg.sample_cap]
            part = part[(part["timestamp"] >= cut).to_numpy()]
        # purge_bars longer than the label horizon purges more: the folds' fit labels end that much earlier
        folds = purged_folds(part["timestamp"], self.cfg.folds, self.period, max(self.purge_, self.horizon),
                             self.embargo_)
        units = self._units(features, clusters)
        deltas: dict[tuple[str, str], list[float]] = {}
        gains = np.zeros(len(features))
        X_all = part[features].to_numpy(dtype=np.float64)
        y_all = part[target].to_numpy(dtype=np.float64)
        era = pd.to_datetime(part["timestamp"], utc=True).dt.year.astype(str).to_numpy()
        groups = part[self.cfg.group_cols].astype(str).agg("|".join, axis=1).to_numpy()
        for train, test in folds:
            model = fit_tree("lightgbm", X_all[train], y_all[train], classification, self.cfg.n_estimators,
                             self.seed)
            gains += gain_importance(model, len(features))
            X_test, y_test = X_all[test], y_all[test]
            slices = group_slices(groups[test])
            for e in ["all", *np.unique(era[test])]:
                rows = np.arange(len(test)) if e == "all" else np.flatnonzero(era[test] == e)
                if len(rows) < 100:
                    continue
                base = model_score(model, X_test[rows], y_test[rows], classification)
                for unit, cols in units.items():
                    for mode in self.cfg.modes:
                        for _ in range(self.cfg.repeats):
                            perm = time_permutation(len(test), slices, rng, self.block_len_, mode)
                            Xp = X_test.copy()
                            Xp[:, cols] = X_test[perm][:, cols]
                            score = model_score(model, Xp[rows], y_test[rows], classification)
                            deltas.setdefault((unit, e), []).append(base - score)
        self.importances_ = self._table(features, units, deltas, gains / max(len(folds), 1))
        return self

    def _units(self, features: list[str], clusters: pd.Series | None) -> dict[str, list[int]]:
        """Feature -> the column positions permuted together (its whole cluster when clustering is on)."""
        pos = {f: i for i, f in enumerate(features)}
        if clusters is None or not self.cfg.cluster_permutation:
            return {f: [i] for f, i in pos.items()}
        cl = clusters.reindex(features)
        return {f: [pos[g] for g in features if cl[g] == cl[f]] if pd.notna(cl[f]) else [pos[f]] for f in features}

    def _table(self, features: list[str], units: dict, deltas: dict, gains: np.ndarray) -> pd.DataFrame:
        rows = []
        for (unit, era), d in deltas.items():
            d = np.asarray(d)
            half = sstats.t.ppf(0.975, max(len(d) - 1, 1)) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan
            rows.append({"feature": unit, "era": era, "tree_importance": gains[features.index(unit)],
                         "perm_delta": d.mean(), "perm_std": d.std(ddof=1) if len(d) > 1 else np.nan,
                         "perm_ci95_low": d.mean() - half, "perm_ci95_high": d.mean() + half, "n": len(d),
                         "cluster_size": len(units[unit])})
        out = pd.DataFrame(rows)
        if out.empty:
            return out
        out["rank_tree"] = out.groupby("era")["tree_importance"].rank(ascending=False)
        out["rank_perm"] = out.groupby("era")["perm_delta"].rank(ascending=False)
        return out.assign(block_len=self.block_len_, embargo=self.embargo_, purge=self.purge_).sort_values(
            ["era", "rank_perm"], ignore_index=True)


if __name__ == "__main__":
    # The documented command ``python -m features.selection.tree_perm`` runs the stage-3 entry point. That entry
    # reads expert tables and configs, so it lives with the pipelines; feature code imports nothing above it.
    import runpy

    runpy.run_module("pipelines.run_tree_perm", run_name="__main__", alter_sys=True)
