"""Stage 1: coverage, variance, stationarity, correlation clusters, VIF, IC / MI with Newey-West + BH significance.

:class:`FilterStage` follows sklearn's fit/transform: ``fit`` sees only the training part of the panel
(the caller holds the outer span back); ``transform`` keeps the allowlisted columns.

**Dropped before any test** (``drop_reason`` in ``filter_stats.csv``, never leak suspects): ``all_nan``
columns, ``constant`` columns (standard deviation <= ``min_std``), ``low_coverage`` columns (finite share
< ``min_coverage``) and, unless ``allow_levels``, non-stationary ``level`` columns (raw prices, cumulative
volumes, open-interest and index levels: the rule of :mod:`features.stationarity`).

**Significance.** For every target the IC is a *time-series* Spearman correlation per symbol over its
training rows, combined across symbols (:func:`~features.selection.stats.time_series_ic`), so it is right
for a panel of one symbol or hundreds. Its Newey-West t-statistic uses a lag of at least ``nw_lag_mult``
(>= 2) label horizons in bars; Benjamini-Hochberg then controls the false-discovery rate over features at
``fdr_q``. When at least ``min_cross_section`` symbols share a timestamp, the *cross-sectional* IC
(Spearman across symbols per timestamp) is reported too (``ic_cs``, ``t_cs``; ``method`` ``cs`` rows of
``ic_mi.csv``); it does not decide significance. Classification targets also get mutual information
(seeded, on a row sample) as an effect size; their significance uses the same rank-IC test. A significant
feature must keep the sign of its IC in at least ``min_window_sign_rate`` of the rolling windows; within
each correlation cluster only the member with the largest |t| survives.

**Leak suspects** (never allowlisted; ``leak_reason`` says which rule fired). Both rules require
``|t_nw| >= leak_min_t`` (default 5, far beyond any FDR threshold, so noise cannot trigger them):

* *collapse*: a feature that peeks at the label loses its IC when it is lagged by one more bar, while an
  honest persistent feature keeps it in proportion to its persistence. With ``rho1`` the feature's lag-1
  rank autocorrelation and ``ic_lag1`` the IC of the feature one bar older, the retention
  ``ic_lag1 / (ic * rho1)`` is about 1 for an honest feature (and above 1 for a noisy proxy of a
  persistent state) and about 0 for a peeking one. The rule fires when ``|ic| >= leak_collapse_ic``
  (0.1), ``rho1 >= leak_min_persistence`` (0.5; a feature without persistence carries no such evidence)
  and the retention is below ``leak_max_retention`` (0.25).
* *magnitude*: ``|ic|`` beyond what an honest feature reaches: ``leak_ic`` (0.3) for a target that its own
  latest known label does not predict (returns, directions: ``|target_self_ic| < leak_self_ic``, 0.1),
  ``leak_ic_self_predictable`` (0.9) for a target that it does (realized volatility, drawdown), where
  honest features legitimately reach 0.5-0.8. ``target_self_ic`` is the IC of the label ``horizon`` bars
  older, which is fully known at the decision time.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

from features.selection.config import FilterParams
from features.selection.stats import (
    benjamini_hochberg,
    correlation_clusters,
    cross_sectional_ic,
    ic_from_ranks,
    lagged_within,
    rank_autocorr,
    standardized_ranks,
    time_series_ic,
    vif_from_corr,
)
from features.stationarity import level_columns

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TargetInfo:
    """A target's kind, horizon (bars) and test (``ic`` or ``mi``)."""

    name: str
    kind: str
    horizon: int
    test: str


def nw_lag(horizon: int, mult: float) -> int:
    """Newey-West lag in bars covering ``mult`` label horizons (at least 2)."""
    return max(2, math.ceil(mult * horizon))


def drop_reasons(frame: pd.DataFrame, features: list[str], params: FilterParams) -> dict[str, str]:
    """Why each unusable feature is dropped before testing: all_nan, constant, low_coverage or level."""
    x = frame[features]
    coverage = x.notna().mean()
    std = x.std()
    out: dict[str, str] = {}
    for f in features:
        if coverage[f] == 0:
            out[f] = "all_nan"
        elif not std[f] > params.min_std:
            out[f] = "constant"
        elif coverage[f] < params.min_coverage:
            out[f] = "low_coverage"
    if not params.allow_levels:
        rest = [f for f in features if f not in out]
        out.update({f: f"level: {why}" for f, why in level_columns(frame, rest).items()})
    return out


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

    def fit(self, frame: pd.DataFrame, features: list[str], targets: list[TargetInfo]) -> FilterStage:
        """Compute every statistic on ``frame`` (training rows only, time-sorted)."""
        p = self.params
        self.allowlist_: dict[str, list[str]] = {}
        self.leak_suspects_: dict[str, list[str]] = {}
        x = frame[features].astype(np.float64)
        reasons = drop_reasons(x.assign(symbol=self._symbols(frame)), features, p)
        usable = [f for f in features if f not in reasons]
        if reasons:
            logger.info("%s: %d of %d features dropped before testing (%s)", self.period, len(reasons),
                        len(features), pd.Series(reasons).str.split(":").str[0].value_counts().to_dict())
        rng = np.random.default_rng(self.seed)
        sample = np.sort(rng.choice(len(frame), min(len(frame), 50_000), replace=False))
        ranks = x.iloc[sample][usable].rank(pct=True)
        corr = ranks.fillna(0.5).corr()
        vif = pd.Series(vif_from_corr(corr.to_numpy()), index=usable) if usable else pd.Series(dtype=float)
        self.clusters_ = correlation_clusters(corr, p.corr_threshold) if usable else pd.Series(dtype=int)
        symbols = self._symbols(frame)
        stats = pd.DataFrame({"coverage": x.notna().mean(), "std": x.std(), "usable": x.columns.isin(usable),
                              "drop_reason": pd.Series(reasons, dtype=object).reindex(x.columns).fillna("")})
        stats["rho1"] = rank_autocorr(x[usable], symbols).reindex(stats.index) if usable else np.nan
        stats["vif"] = vif.reindex(stats.index)
        stats["vif_high"] = stats["vif"] > p.vif_max
        stats["cluster"] = self.clusters_.reindex(stats.index)
        stats.index.name = "feature"
        self.drop_reasons_ = reasons
        pair_rows, self.ic_mi_ = [], pd.DataFrame()
        if usable:
            xu = x[usable]
            self.ic_mi_ = self._windows(frame, xu, targets)
            # the one-bar-older features are taken on every row, before any target's NaN rows are dropped
            ranks = (standardized_ranks(xu, symbols), standardized_ranks(lagged_within(xu, symbols, 1), symbols))
            pair_rows = [self._pair(frame, xu, ranks, stats["rho1"], t, self.ic_mi_) for t in targets]
        pairs = pd.concat(pair_rows, ignore_index=True) if pair_rows else pd.DataFrame()
        self.stats_ = stats.reset_index().merge(pairs, on="feature", how="left") if len(pairs) else stats.reset_index()
        if "leak_suspect" in self.stats_:
            self.stats_["leak_suspect"] = self.stats_["leak_suspect"].fillna(False).astype(bool)
        for t in targets:
            self.allowlist_.setdefault(t.name, [])
            self.leak_suspects_.setdefault(t.name, [])
        return self

    @staticmethod
    def _symbols(frame: pd.DataFrame) -> np.ndarray:
        return frame["symbol"].to_numpy() if "symbol" in frame else np.zeros(len(frame), dtype=int)

    def _ic(self, frame: pd.DataFrame, zx: pd.DataFrame, t: TargetInfo, x: pd.DataFrame) -> pd.DataFrame:
        """Time-series IC (``ts``) and, with enough symbols per timestamp, cross-sectional IC (``cs``).

        ``zx``: the features' standardized ranks over ``frame``'s rows (shared by every target); rows where
        the target is NaN are skipped.
        """
        lag = nw_lag(t.horizon, self.params.nw_lag_mult)
        ok = frame[t.name].notna().to_numpy()
        sub = frame[ok]
        symbols, stamps = self._symbols(sub), sub["timestamp"].to_numpy()
        zy = standardized_ranks(sub[[t.name]], symbols)[t.name]
        ts = ic_from_ranks(zx[ok], zy, symbols, stamps, lag).assign(method="ts")
        cs = cross_sectional_ic(x[ok], sub[t.name], stamps, lag, self.params.min_cross_section)
        if cs["n_obs"].max() > 0:
            return pd.concat([ts, cs.assign(method="cs")])
        return ts

    def _windows(self, frame: pd.DataFrame, x: pd.DataFrame, targets: list[TargetInfo]) -> pd.DataFrame:
        """IC per rolling training window, target and method (and MI for ``mi`` targets), with the bounds."""
        p = self.params
        ts = pd.to_datetime(frame["timestamp"], utc=True)
        edges = pd.date_range(ts.min(), ts.max(), periods=p.windows + 1)
        rows = []
        for i in range(p.windows):
            m = ((ts >= edges[i]) & ((ts < edges[i + 1]) if i < p.windows - 1 else (ts <= edges[i + 1]))).to_numpy()
            zx = standardized_ranks(x[m], self._symbols(frame[m]))
            for t in targets:
                ok = m & frame[t.name].notna().to_numpy()
                if ok.sum() < 50:
                    continue
                ic = self._ic(frame[m], zx, t, x[m])
                mi = self._mi(x[ok], frame.loc[ok, t.name], t) if t.test == "mi" else np.full(x.shape[1], np.nan)
                ic["mi"] = np.concatenate([mi, np.full(len(ic) - len(mi), np.nan)])  # ts rows first, then cs
                ic = ic.assign(target=t.name, window=i, window_start=edges[i], window_end=edges[i + 1])
                rows.append(ic.rename_axis("feature").reset_index())
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()

    def _mi(self, x: pd.DataFrame, y: pd.Series, t: TargetInfo) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        rows = np.sort(rng.choice(len(x), min(len(x), self.params.mi_sample), replace=False))
        X = x.iloc[rows]
        X = X.fillna(X.median()).to_numpy()
        fn = mutual_info_classif if t.kind == "classification" else mutual_info_regression
        return fn(X, y.iloc[rows].to_numpy(), random_state=self.seed)

    def _target_self_ic(self, frame: pd.DataFrame, t: TargetInfo) -> float:
        """IC of the label ``horizon`` bars older (known at decision time) with the label: its own predictability."""
        older = lagged_within(frame[[t.name]], self._symbols(frame), t.horizon)
        mask = frame[t.name].notna().to_numpy()
        res = time_series_ic(older[mask], frame.loc[mask, t.name], self._symbols(frame)[mask],
                             frame["timestamp"].to_numpy()[mask], nw_lag(t.horizon, self.params.nw_lag_mult))
        return float(res["ic"].iloc[0])

    def _pair(self, frame: pd.DataFrame, x: pd.DataFrame, ranks: tuple[pd.DataFrame, pd.DataFrame],
              rho1: pd.Series, t: TargetInfo, windows: pd.DataFrame) -> pd.DataFrame:
        """Full-span test per feature for one target; allowlist and leak suspects.

        ``ranks``: standardized ranks of the features and of the features one bar older, over every row.
        """
        p = self.params
        full = self._ic(frame, ranks[0], t, x)
        ts = full[full["method"] == "ts"]
        out = ts.drop(columns="method").rename_axis("feature").reset_index()
        cs = full[full["method"] == "cs"]
        out["ic_cs"] = out["feature"].map(cs["ic"]) if len(cs) else np.nan
        out["t_cs"] = out["feature"].map(cs["t_nw"]) if len(cs) else np.nan
        out["target"] = t.name
        ok = frame[t.name].notna().to_numpy()
        sub = frame[ok]
        zy = standardized_ranks(sub[[t.name]], self._symbols(sub))[t.name]
        lag_ic = ic_from_ranks(ranks[1][ok], zy, self._symbols(sub), sub["timestamp"].to_numpy(),
                               nw_lag(t.horizon, p.nw_lag_mult))["ic"]
        out["ic_lag1"] = out["feature"].map(lag_ic)
        self_ic = self._target_self_ic(frame, t)
        out["target_self_ic"] = self_ic
        out = self._leak_rules(out, rho1, self_ic)
        out["significant"] = benjamini_hochberg(out["p"].to_numpy(), p.fdr_q) & ~out["leak_suspect"]
        if p.windows > 1 and len(windows):
            win = windows[(windows["method"] == "ts") & (windows["target"] == t.name)]
            sign = np.sign(out.set_index("feature")["ic"])
            agree = win.assign(s=np.sign(win["ic"]).to_numpy() == sign.reindex(win["feature"]).to_numpy())
            out["window_sign_rate"] = out["feature"].map(agree.groupby("feature")["s"].mean())
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
        if self.leak_suspects_[t.name]:
            leaks = out[out["leak_suspect"]]
            logger.warning("%s %s: leak suspects %s", self.period, t.name,
                           dict(zip(leaks["feature"], leaks["leak_reason"], strict=True)))
        return out.drop(columns=["cluster"])

    def _leak_rules(self, out: pd.DataFrame, rho1: pd.Series, self_ic: float) -> pd.DataFrame:
        """``retention``, ``leak_suspect`` and ``leak_reason`` columns (rules in the module docstring)."""
        p = self.params
        ic, t = out["ic"].abs(), out["t_nw"].abs()
        r1 = out["feature"].map(rho1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["retention"] = out["ic_lag1"] / (out["ic"] * r1)
        strong = t >= p.leak_min_t
        ceiling = p.leak_ic if not abs(self_ic) >= p.leak_self_ic else p.leak_ic_self_predictable
        magnitude = strong & (ic >= ceiling)
        collapse = (strong & (ic >= p.leak_collapse_ic) & (r1 >= p.leak_min_persistence)
                    & (out["retention"] < p.leak_max_retention))
        out["leak_suspect"] = (magnitude | collapse).fillna(False).astype(bool)
        reason = np.where(magnitude, f"|ic| >= {ceiling}", "")
        reason = np.where(collapse, np.where(magnitude, reason + "; ", "") + "ic collapses when lagged one bar",
                          reason)
        out["leak_reason"] = reason
        return out

    def transform(self, frame: pd.DataFrame, target: str) -> pd.DataFrame:
        """The allowlisted columns of ``frame`` for ``target``."""
        return frame[self.allowlist_[target]]
