"""Stage 4: wrapper search (RFE or a genetic algorithm) scored on purged time folds.

Every candidate subset is scored by one function, :func:`cv_score`: a LightGBM / CatBoost / XGBoost
approximator fit on each expanding fold's training rows and scored on its later, purged and embargoed
test block, so a subset is never evaluated on the rows it was fit on.

* ``rfe``: drop the least important ``step`` share of the features (mean gain over folds), re-score, repeat
  down to ``min_features``; choose the smallest subset whose score is within one standard error of the best.
* ``ga``: binary genes, tournament selection, uniform crossover (``cx``), bit-flip mutation (``mut``),
  ``pop`` x ``gen``, run once per seed; ``gene_frequency_`` is each feature's share in the final populations
  and features present in at least half of them are selected.

**No-skill gate.** Both searches always end with some subset, even on pure noise. The chosen subset
confirms its features only when its out-of-fold score, less one standard error, is above no skill (ROC-AUC
0.5, Spearman 0); otherwise ``selected_`` is empty and ``beats_no_skill_`` is False.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from features.selection.common import fit_tree, gain_importance, model_score, purged_folds
from features.selection.config import WrapperSection

logger = logging.getLogger(__name__)


def cv_score(X: np.ndarray, y: np.ndarray, folds: list, cols: list[int], model: str, classification: bool,
             n_estimators: int, seed: int) -> tuple[float, float, np.ndarray]:
    """(mean score, standard error, mean gain per column) of ``cols`` over ``folds``."""
    scores, gains = [], np.zeros(len(cols))
    for train, test in folds:
        m = fit_tree(model, X[np.ix_(train, cols)], y[train], classification, n_estimators, seed)
        scores.append(model_score(m, X[np.ix_(test, cols)], y[test], classification))
        gains += gain_importance(m, len(cols))
    s = np.asarray(scores, dtype=np.float64)
    se = s.std(ddof=1) / np.sqrt(len(s)) if len(s) > 1 else 0.0
    return float(np.nanmean(s)), float(se), gains / max(len(folds), 1)


class WrapperStage:
    """Stage 4 for one period and target."""

    def __init__(self, cfg: WrapperSection, period: str, horizon: int, seed: int = 0) -> None:
        self.cfg, self.period, self.horizon, self.seed = cfg, period, horizon, seed

    def fit(self, frame: pd.DataFrame, features: list[str], target: str, classification: bool) -> WrapperStage:
        """Search over ``features`` using the training rows in ``frame``."""
        # every learned attribute is reset: a refit never keeps the previous search's path or verdict
        self.path_: pd.DataFrame | None = None
        self.gene_frequency_: pd.DataFrame | None = None
        self.selected_: list[str] = []
        self.beats_no_skill_: bool = False
        self.score_: tuple[float, float] = (float("nan"), float("nan"))
        part = frame[frame[target].notna().to_numpy()].sort_values("timestamp")
        cap = self.cfg.ga.sample_cap if self.cfg.method == "ga" else self.cfg.sample_cap
        if len(part) > cap:
            part = part.iloc[len(part) - cap:]  # the latest contiguous span keeps the folds' time order
        X = part[features].to_numpy(dtype=np.float64)
        y = part[target].to_numpy(dtype=np.float64)
        folds = purged_folds(part["timestamp"], self.cfg.folds, self.period, self.horizon, self.horizon)
        if not features or not folds:
            self.selected_ = list(features)
            return self
        if self.cfg.method == "rfe":
            self._rfe(X, y, folds, features, classification)
        else:
            self._ga(X, y, folds, features, classification)
        score, se = self.score_
        no_skill = 0.5 if classification else 0.0
        self.beats_no_skill_ = bool(np.isfinite(score) and score - se > no_skill)
        if not self.beats_no_skill_:
            logger.info("%s %s: the chosen subset scores %.4f +- %.4f out of fold, not above no skill (%.1f); "
                        "nothing confirmed", self.period, target, score, se, no_skill)
            self.selected_ = []
        return self

    def _rfe(self, X, y, folds, features, classification) -> None:
        cols = list(range(len(features)))
        rows = []
        while True:
            score, se, gain = cv_score(X, y, folds, cols, self.cfg.model, classification, self.cfg.n_estimators,
                                       self.seed)
            rows.append({"n_features": len(cols), "score": score, "se": se,
                         "features": ",".join(features[c] for c in cols)})
            if len(cols) <= self.cfg.min_features:
                break
            drop = max(1, int(round(len(cols) * self.cfg.step)))
            drop = min(drop, len(cols) - self.cfg.min_features)
            keep = np.argsort(gain)[drop:]
            cols = [cols[i] for i in sorted(keep)]
        path = pd.DataFrame(rows)
        best = path.loc[path["score"].idxmax()]
        ok = path[path["score"] >= best["score"] - best["se"]]
        chosen = ok.loc[ok["n_features"].idxmin()]
        self.path_ = path.assign(chosen=path.index == chosen.name)
        self.selected_ = chosen["features"].split(",")
        self.score_ = (float(chosen["score"]), float(chosen["se"]))

    def _ga(self, X, y, folds, features, classification) -> None:
        g = self.cfg.ga
        n = len(features)
        final = []
        cache: dict[bytes, float] = {}

        def fitness(genes: np.ndarray) -> float:
            key = genes.tobytes()
            if key not in cache:
                cols = list(np.flatnonzero(genes))
                cache[key] = -np.inf if not cols else cv_score(X, y, folds, cols, self.cfg.model, classification,
                                                               self.cfg.n_estimators, self.seed)[0]
            return cache[key]

        for seed in g.seeds:
            rng = np.random.default_rng(seed)
            pop = rng.random((g.pop, n)) < 0.5
            for _ in range(g.gen):
                fit = np.array([fitness(ind) for ind in pop])
                # tournament of two, uniform crossover, bit-flip mutation; the best individual is kept
                a, b = rng.integers(0, g.pop, (2, g.pop))
                parents = pop[np.where(fit[a] >= fit[b], a, b)]
                mates = parents[rng.permutation(g.pop)]
                cross = (rng.random((g.pop, 1)) < g.cx) & (rng.random((g.pop, n)) < 0.5)
                children = np.where(cross, mates, parents) ^ (rng.random((g.pop, n)) < g.mut)
                children[0] = pop[int(np.argmax(fit))]
                pop = children
            final.append(pop)
        freq = np.vstack(final).mean(axis=0)
        self.gene_frequency_ = pd.DataFrame({"feature": features, "frequency": freq}).sort_values(
            "frequency", ascending=False, ignore_index=True)
        self.selected_ = [f for f, v in zip(features, freq, strict=True) if v >= 0.5]
        cols = [features.index(f) for f in self.selected_]
        self.score_ = (cv_score(X, y, folds, cols, self.cfg.model, classification, self.cfg.n_estimators,
                                self.seed)[:2] if cols else (float("nan"), float("nan")))
