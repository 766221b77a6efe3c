"""Stage 1: coverage, variance, correlation clusters, VIF, IC / MI with Newey-West + BH significance.

:class:`FilterStage` follows sklearn's fit/transform: ``fit`` sees only the training part of the panel
(the caller holds the outer span back); ``transform`` keeps the allowlisted columns.

Significance. For every target the Spearman IC is computed per date (pooled over symbols and bars)
and its mean is tested with a Newey-West t-statistic whose lag is at least ``nw_lag_mult`` (>= 2) label
horizons, then Benjamini-Hochberg controls the false-discovery rate over features. Classification
targets also get mutual information (seeded, on a row sample) as an effect size; their significance
uses the same rank-IC test, since MI has no cheap null distribution. A feature whose |IC| reaches
``leak_ic`` is flagged as a leak suspect (no honest feature predicts returns that well) and is never
allowlisted. Within each correlation cluster only the member with the largest |t| survives.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

from features.selection.config import FilterParams
from features.selection.stats import benjamini_hochberg, correlation_clusters, time_ic, vif_from_corr
from src.market_data import period_delta

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TargetInfo:
    """A target's kind, horizon (bars) and test (``ic`` or ``mi``)."""

    name: str
    kind: str
    horizon: int
    test: str


def date_key(ts: pd.Series, period: str) -> pd.Series:
    """The 'date' of the per-date IC: the UTC day for intraday bars, the ISO week for daily bars."""
    t = pd.to_datetime(ts, utc=True)
    if period_delta(period) < pd.Timedelta(days=1):
        return t.dt.floor("D")
    return t.dt.tz_convert(None).dt.to_period("W").dt.start_time


def nw_lag(period: str, horizon: int, mult: float) -> int:
    """Newey-West lag in dates covering ``mult`` label horizons (at least 2)."""
    date_len = pd.Timedelta(days=1) if period_delta(period) < pd.Timedelta(days=1) else pd.Timedelta(days=7)
    return max(2, math.ceil(mult * horizon * period_delta(period) / date_len))


class FilterStage:
    """Stage 1 filter.

    Parameters
    ----------
    params : FilterParams
    period : str
    seed : int
        Seed of the mutual-information estimator and row sampling.
    """

    def __init__(self, params: FilterParams, period: str, seed: int = 0) -> None:
        self.params, self.period, self.seed = params, period, seed
        self.stats_: pd.DataFrame | None = None
        self.ic_mi_: pd.DataFrame | None = None
        self.allowlist_: dict[str, list[str]] = {}
        self.clusters_: pd.Series | None = None
        self.leak_suspects_: dict[str, list[str]] = {}

    def fit(self, frame: pd.DataFrame, features: list[str], targets: list[TargetInfo]) -> FilterStage:
        """Compute every statistic on ``frame`` (training rows only, time-sorted)."""
        p = self.params
        x = frame[features].astype(np.float64)
        coverage = x.notna().mean()
        std = x.std()
        usable = [f for f in features if coverage[f] >= p.min_coverage and std[f] > p.min_std]
        rng = np.random.default_rng(self.seed)
        sample = np.sort(rng.choice(len(frame), min(len(frame), 50_000), replace=False))
        ranks = x.iloc[sample][usable].rank(pct=True)
        corr = ranks.fillna(0.5).corr()
        vif = pd.Series(vif_from_corr(corr.to_numpy()), index=usable) if usable else pd.Series(dtype=float)
        self.clusters_ = correlation_clusters(corr, p.corr_threshold) if usable else pd.Series(dtype=int)
        stats = pd.DataFrame({"coverage": coverage, "std": std, "usable": x.columns.isin(usable)})
        stats["vif"] = vif.reindex(stats.index)
        stats["vif_high"] = stats["vif"] > p.vif_max
        stats["cluster"] = self.clusters_.reindex(stats.index)
        stats.index.name = "feature"
        ic_rows, pair_rows = [], []
        for t in targets:
            windows = self._windows(frame, usable, t)
            ic_rows.append(windows)
            pair_rows.append(self._pair(frame, usable, t, windows))
        self.ic_mi_ = pd.concat(ic_rows, ignore_index=True) if ic_rows else pd.DataFrame()
        pairs = pd.concat(pair_rows, ignore_index=True) if pair_rows else pd.DataFrame()
        self.stats_ = stats.reset_index().merge(pairs, on="feature", how="left") if len(pairs) else stats.reset_index()
        return self

    def _windows(self, frame: pd.DataFrame, usable: list[str], t: TargetInfo) -> pd.DataFrame:
        """IC (and MI) per rolling training window, with its bounds."""
        p = self.params
        ts = pd.to_datetime(frame["timestamp"], utc=True)
        edges = pd.date_range(ts.min(), ts.max(), periods=p.windows + 1)
        rows = []
        for i in range(p.windows):
            m = (ts >= edges[i]) & ((ts < edges[i + 1]) if i < p.windows - 1 else (ts <= edges[i + 1]))
            part = frame[m.to_numpy()]
            ok = part[t.name].notna()
            part = part[ok.to_numpy()]
            if len(part) < 50:
                continue
            ic = time_ic(part[usable], part[t.name], date_key(part["timestamp"], self.period),
                         nw_lag(self.period, t.horizon, p.nw_lag_mult))
            ic["mi"] = self._mi(part, usable, t) if t.test == "mi" else np.nan
            ic = ic.assign(target=t.name, window=i, window_start=edges[i], window_end=edges[i + 1])
            rows.append(ic.rename_axis("feature").reset_index())
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()

    def _mi(self, part: pd.DataFrame, usable: list[str], t: TargetInfo) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        rows = np.sort(rng.choice(len(part), min(len(part), self.params.mi_sample), replace=False))
        X = part[usable].iloc[rows]
        X = X.fillna(X.median()).to_numpy()
        y = part[t.name].iloc[rows].to_numpy()
        fn = mutual_info_classif if t.kind == "classification" else mutual_info_regression
        return fn(X, y, random_state=self.seed)

    def _pair(self, frame: pd.DataFrame, usable: list[str], t: TargetInfo, windows: pd.DataFrame) -> pd.DataFrame:
        """Full-span test per feature for one target; allowlist and leak suspects."""
        p = self.params
        part = frame[frame[t.name].notna().to_numpy()]
        ic = time_ic(part[usable], part[t.name], date_key(part["timestamp"], self.period),
                     nw_lag(self.period, t.horizon, p.nw_lag_mult))
        out = ic.rename_axis("feature").reset_index()
        out["target"] = t.name
        out["leak_suspect"] = out["ic"].abs() >= p.leak_ic
        out["significant"] = benjamini_hochberg(out["p"].to_numpy(), p.fdr_q) & ~out["leak_suspect"]
        if p.windows > 1 and len(windows):
            sign = np.sign(out.set_index("feature")["ic"])
            agree = windows.assign(s=np.sign(windows["ic"]).to_numpy() == sign.reindex(windows["feature"]).to_numpy())
            rate = agree.groupby("feature")["s"].mean()
            out["window_sign_rate"] = out["feature"].map(rate)
            out["significant"] &= out["window_sign_rate"].fillna(0) >= p.min_window_sign_rate
        else:
            out["window_sign_rate"] = np.nan
        out["cluster"] = out["feature"].map(self.clusters_)
        sig = out[out["significant"]]
        best = sig.loc[sig.groupby("cluster")["t_nw"].apply(lambda s: s.abs().idxmax())] if len(sig) else sig
        out["representative"] = out.index.isin(best.index)
        self.allowlist_[t.name] = out.loc[out["representative"]].sort_values("t_nw", key=np.abs, ascending=False)[
            "feature"].tolist()
        self.leak_suspects_[t.name] = out.loc[out["leak_suspect"], "feature"].tolist()
        return out.drop(columns=["cluster"])

    def transform(self, frame: pd.DataFrame, target: str) -> pd.DataFrame:
        """The allowlisted columns of ``frame`` for ``target``."""
        return frame[self.allowlist_[target]]
