"""Stage 2: embedded importances.

:class:`EmbeddedStage` (fit on training rows only) records, per feature:

* gain importance of LightGBM, XGBoost and CatBoost (never split counts);
* a Boruta-like test: each round adds *shadow* copies of every feature, rotated in time within each
  symbol by a random large offset (same persistence, no relation to the target), refits LightGBM and
  counts a hit when the feature's importance beats the best shadow's; hits over rounds are tested
  against Binomial(rounds, 1/2) and Benjamini-Hochberg corrected over features;
* a linear path: an L1 ``LogisticRegressionCV`` / ``ElasticNetCV`` picks the penalty on time-ordered folds,
  then the same model on time-block half-samples gives each feature's selection frequency (stability
  selection); ``ConvergenceWarning`` is silenced;
* optional mean |SHAP| of the LightGBM model; ``tft_vsn_importance`` from ``tft_gating.csv`` when given.

A feature is kept (``allowlist_``) when Boruta confirms it or its stability frequency reaches the threshold.
"""

from __future__ import annotations

import logging
import warnings
from inspect import signature

import numpy as np
import pandas as pd
from scipy import stats as sstats
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet, ElasticNetCV, LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import TimeSeriesSplit
from sklearn.preprocessing import StandardScaler

from features.selection.common import cap_rows, fit_tree, gain_importance, group_slices, time_permutation
from features.selection.config import EmbeddedSection
from features.selection.stats import benjamini_hochberg

logger = logging.getLogger(__name__)


class EmbeddedStage:
    """Stage 2 over a candidate feature list (usually stage 1's allowlist plus its cluster mates)."""

    def __init__(self, cfg: EmbeddedSection, block_len: int = 48, seed: int = 0) -> None:
        self.cfg, self.block_len, self.seed = cfg, block_len, seed

    def fit(self, frame: pd.DataFrame, features: list[str], target: str, classification: bool,
            tft_importance: pd.Series | None = None) -> EmbeddedStage:
        """``frame``: training rows sorted by (symbol, timestamp) within symbols."""
        rng = np.random.default_rng(self.seed)
        part = frame[frame[target].notna().to_numpy()]
        rows = cap_rows(len(part), self.cfg.sample_cap, rng)
        part = part.iloc[rows]
        X = part[features].to_numpy(dtype=np.float64)
        X = np.where(np.isfinite(X), X, np.nanmedian(X, axis=0))
        y = part[target].to_numpy(dtype=np.float64)
        scores = pd.DataFrame(index=pd.Index(features, name="feature"))
        for name in self.cfg.models:
            model = fit_tree(name, X, y, classification, self.cfg.n_estimators, self.seed)
            scores[f"{name}_gain"] = gain_importance(model, len(features))
            if name == "lightgbm" and self.cfg.shap:
                scores["shap_mean_abs"] = self._shap(model, X, rng)
        hits, p = self._boruta(X, y, part["symbol"].to_numpy(), classification, rng)
        scores["boruta_hits"], scores["boruta_p"] = hits, p
        scores["boruta_confirmed"] = benjamini_hochberg(p, self.cfg.boruta_q)
        if self.cfg.linear:
            scores["stability_freq"] = self._stability(X, y, part["timestamp"], classification, rng)
        else:
            scores["stability_freq"] = np.nan
        scores["tft_vsn_importance"] = tft_importance.reindex(features).to_numpy() if tft_importance is not None \
            else np.nan
        scores["kept"] = scores["boruta_confirmed"] | (scores["stability_freq"].fillna(0)
                                                       >= self.cfg.stability_threshold)
        self.scores_ = scores.assign(target=target).reset_index()
        self.allowlist_ = scores.index[scores["kept"]].tolist()
        return self

    def _boruta(self, X: np.ndarray, y: np.ndarray, symbols: np.ndarray, classification: bool,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        slices = group_slices(symbols)
        hits = np.zeros(X.shape[1])
        rounds = self.cfg.boruta_rounds
        for r in range(rounds):
            shadow = np.column_stack([X[time_permutation(len(X), slices, rng, self.block_len, "cyclic"), j]
                                      for j in range(X.shape[1])])
            model = fit_tree("lightgbm", np.hstack([X, shadow]), y, classification, self.cfg.n_estimators,
                             self.seed + r)
            imp = gain_importance(model, 2 * X.shape[1])
            hits += imp[: X.shape[1]] > imp[X.shape[1]:].max()
        # one-sided: more hits than a coin would give
        p = sstats.binom.sf(hits - 1, rounds, 0.5)
        return hits, p

    def _stability(self, X: np.ndarray, y: np.ndarray, ts: pd.Series, classification: bool,
                   rng: np.random.Generator) -> np.ndarray:
        Xs = StandardScaler().fit_transform(X)
        cv = TimeSeriesSplit(3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if classification:
                extra = {"use_legacy_attributes": False} if "use_legacy_attributes" in signature(
                    LogisticRegressionCV).parameters else {}  # scikit-learn >= 1.8 names the new attribute layout
                path = LogisticRegressionCV(Cs=6, cv=cv, l1_ratios=(1.0,), solver="saga",
                                            max_iter=self.cfg.linear_max_iter, scoring="neg_log_loss",
                                            **extra).fit(Xs, y)
                make = lambda: LogisticRegression(C=float(np.ravel(path.C_)[0]), l1_ratio=1.0, solver="saga",  # noqa: E731
                                                  max_iter=self.cfg.linear_max_iter)
            else:
                path = ElasticNetCV(l1_ratio=0.9, cv=cv, max_iter=self.cfg.linear_max_iter).fit(Xs, y)
                make = lambda: ElasticNet(alpha=path.alpha_, l1_ratio=0.9, max_iter=self.cfg.linear_max_iter)  # noqa: E731
            # time blocks: half of the weekly blocks per subsample, so persistence does not leak across halves
            block = pd.to_datetime(ts, utc=True).dt.tz_convert(None).dt.to_period("W").astype(str).to_numpy()
            ids = np.unique(block)
            freq = np.zeros(X.shape[1])
            for _ in range(self.cfg.stability_subsamples):
                pick = np.isin(block, rng.choice(ids, max(1, len(ids) // 2), replace=False))
                coef = np.ravel(make().fit(Xs[pick], y[pick]).coef_)
                freq += np.abs(coef) > 1e-8
        return freq / self.cfg.stability_subsamples

    def _shap(self, model, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import shap

        rows = cap_rows(len(X), 2000, rng)
        values = shap.TreeExplainer(model).shap_values(X[rows])
        values = values[1] if isinstance(values, list) else values
        return np.abs(values).mean(axis=0)


def read_tft_gating(paths: list) -> pd.Series | None:
    """Mean encoder variable-selection importance over ``tft_gating.csv`` files (None when there are none)."""
    frames = [pd.read_csv(p) for p in paths]
    if not frames:
        return None
    g = pd.concat(frames)
    g = g[g["kind"] == "encoder"]
    return g.groupby("variable")["importance"].mean()
