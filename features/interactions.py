"""Pairwise interactions of the decision bar's inputs worth a model's attention, chosen on the training span only.

A deep net on noisy returns learns a product of two weak inputs slowly, and a penalized fit of every product
(``model.interaction_l2``) spreads its weight over thousands of them (``bench/RESULTS.md``). :class:`PairScreen`
asks each product ``tanh(x_i * x_j)`` one question on the training rows: does it explain what the inputs' linear
model leaves over? It is the score test of adding that one column to the linear model (logistic for a
classification target, least squares for a regression one), with

* the product **projected off the inputs** (and a constant), so a product that is a disguised main effect scores
  nothing;
* a **Newey-West t-statistic over time**: the per-row scores are summed per timestamp (the cross-section's common
  moves stay together) and their long-run variance covers ``lag_mult`` label horizons (overlapping labels and
  persistent inputs make the per-bar scores autocorrelated);
* a **Bonferroni bound** over every pair and target: on a market with no interaction, the chance that any pair is
  kept is at most ``alpha`` (null panels: none kept, ``tests/features/test_interactions.py``).

The kept pairs, ranked by their largest ``|t|`` over the targets and capped at ``max_pairs``, are the ones the
TFT's skip carries (``model.interaction_pairs``). The test is a screen, not a forecast: it sees only the rows it is
fit on, so the validation and test spans stay out of the choice.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.linear_model import LogisticRegression

from features.selection.stats import newey_west_tstats

logger = logging.getLogger(__name__)

#: inputs are clipped here before their product, so one outlying input cannot saturate every product it enters
#: (the TFT's skip applies the same map)
CLIP = 5.0


def pair_products(X: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``tanh(clip(x_i) * clip(x_j))`` for each pair ``(left[k], right[k])``: ``[n, len(left)]``."""
    Xc = np.clip(np.asarray(X, dtype=np.float64), -CLIP, CLIP)
    return np.tanh(Xc[:, left] * Xc[:, right])


def sample_rows(n: int, max_rows: int, seed: int) -> np.ndarray:
    """Sorted row indices: all ``n`` rows, or a seeded random ``max_rows`` of them (the screen's row cap; callers
    holding a large array index it with these before copying it)."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))


def _residual(Q: np.ndarray, X: np.ndarray, y: np.ndarray, kind: str) -> np.ndarray:
    """What the inputs' linear model leaves of ``y``: ``y - P(up)`` (logistic) or the least-squares residual."""
    if kind == "classification":
        # a weak penalty: the score test's null model is the maximum-likelihood fit, kept finite on separable data
        model = LogisticRegression(C=1.0, max_iter=1000).fit(X, y)
        return y - model.predict_proba(X)[:, 1]
    return y - Q @ (Q.T @ y)


class PairScreen:
    """Screen the pairwise products of the inputs against each target (sklearn-style ``fit`` / ``transform``).

    Parameters
    ----------
    max_pairs : int
        At most this many pairs are kept (the strongest by ``|t|``).
    alpha : float
        Family-wise error rate of the Bonferroni bound over all pairs and targets.
    lag_mult : float
        Newey-West lag, in label horizons (at least 2 timestamps).
    max_rows : int
        The fit uses at most this many rows (a seeded random subset, logged): the screen's cost grows with rows
        times pairs, and a few hundred thousand rows resolve a t of 5.
    seed : int
        Seed of that subset.

    Attributes
    ----------
    pairs_ : list of (int, int)
        The kept pairs (column indices, ``i < j``), strongest first.
    tstats_ : ndarray
        Their t-statistics (the largest in absolute value over the targets, with its sign).
    targets_ : list of str
        For each kept pair, the target where that t was found.
    critical_ : float
        The ``|t|`` a pair had to exceed.
    n_tested_ : int
        Pairs tested (per target).
    scores_ : ndarray
        Every pair's t (the largest in absolute value over the targets), in ``numpy.triu_indices`` order.
    """

    def __init__(self, max_pairs: int, alpha: float = 0.05, lag_mult: float = 2.0, max_rows: int = 200_000,
                 seed: int = 0) -> None:
        self.max_pairs = max_pairs
        self.alpha = alpha
        self.lag_mult = lag_mult
        self.max_rows = max_rows
        self.seed = seed

    def _tstats(self, X: np.ndarray, y: np.ndarray, ts: np.ndarray, kind: str, horizon: int) -> np.ndarray:
        """t of every pair's score against one target's residual, ``[n_pairs]``."""
        Q, _ = np.linalg.qr(np.hstack([np.ones((len(X), 1)), X]))
        r = _residual(Q, X, y, kind)
        codes, stamps = pd.factorize(ts, sort=True)
        lag = max(2, int(np.ceil(self.lag_mult * horizon)))
        left, right = np.triu_indices(X.shape[1], 1)
        out = np.empty(len(left))
        chunk = max(1, 20_000_000 // max(1, len(X)))  # ~160 MB of products at a time
        for s in range(0, len(left), chunk):
            P = pair_products(X, left[s:s + chunk], right[s:s + chunk])
            P -= Q @ (Q.T @ P)  # off the inputs and the constant: a disguised main effect scores nothing
            per_stamp = np.zeros((len(stamps), P.shape[1]))
            np.add.at(per_stamp, codes, P * r[:, None])
            out[s:s + chunk] = newey_west_tstats(per_stamp, lag)
        return np.nan_to_num(out)

    def fit(self, X: np.ndarray, Y: np.ndarray, timestamps: np.ndarray, kinds: list[str], horizons: list[int],
            target_names: list[str] | None = None) -> PairScreen:
        """Screen on these rows. ``X`` ``[n, F]`` scaled inputs; ``Y`` ``[n, T]`` targets (NaN: no label)."""
        Y = np.asarray(Y, dtype=np.float64).reshape(len(X), -1)
        names = target_names or [f"target {k}" for k in range(Y.shape[1])]
        n_pairs = X.shape[1] * (X.shape[1] - 1) // 2
        self.n_tested_ = n_pairs
        self.critical_ = float(stats.norm.isf(self.alpha / (2.0 * max(1, n_pairs) * max(1, Y.shape[1]))))
        self.pairs_, self.tstats_, self.targets_, self.scores_ = [], np.zeros(0), [], np.zeros(n_pairs)
        if n_pairs == 0 or self.max_pairs <= 0:
            return self
        rows = sample_rows(len(X), self.max_rows, self.seed)
        if len(rows) < len(X):
            logger.info("interaction screen on %d of %d training rows (max_rows)", len(rows), len(X))
        X, Y, ts = np.asarray(X[rows], dtype=np.float64), Y[rows], np.asarray(timestamps)[rows]
        t, finite = np.zeros((Y.shape[1], n_pairs)), np.isfinite(X).all(axis=1)
        for k in range(Y.shape[1]):
            ok = np.isfinite(Y[:, k]) & finite
            if ok.sum() > X.shape[1] + 10 and np.unique(Y[ok, k]).size > 1:
                t[k] = self._tstats(X[ok], Y[ok, k], ts[ok], kinds[k], horizons[k])
        best_target = np.abs(t).argmax(axis=0)
        best = self.scores_ = t[best_target, np.arange(n_pairs)]
        order = np.argsort(-np.abs(best), kind="stable")
        kept = order[np.abs(best[order]) > self.critical_][: self.max_pairs]
        left, right = np.triu_indices(X.shape[1], 1)
        self.pairs_ = [(int(left[k]), int(right[k])) for k in kept]
        self.tstats_ = best[kept]
        self.targets_ = [names[best_target[k]] for k in kept]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """The kept pairs' products ``[n, len(pairs_)]``."""
        idx = np.asarray(self.pairs_, dtype=np.int64).reshape(-1, 2)
        return pair_products(X, idx[:, 0], idx[:, 1])

    def table(self, features: list[str]) -> pd.DataFrame:
        """The kept pairs by name: ``left, right, tstat, target`` (strongest first)."""
        return pd.DataFrame({"left": [features[i] for i, _ in self.pairs_],
                             "right": [features[j] for _, j in self.pairs_],
                             "tstat": np.asarray(self.tstats_, dtype=np.float64), "target": list(self.targets_)})
