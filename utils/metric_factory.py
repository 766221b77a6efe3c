"""Metrics by name: the registry behind monitors and evaluation reports, and the metric primitives.

Configs and reports name metrics (a leaf's ``training.monitor`` such as ``val_target_binarytrend_ap@1h``, the
columns of ``eval_report_*.csv``); :func:`get_metric` turns a name into its function, and an unknown name is
a :class:`~utils.errors.ConfigError` listing the valid ones.

* classification metrics take ``(y, p)`` with 0/1 labels and probabilities (or any score that ranks like
  them, for the rank metrics): ``ap``, ``roc_auc``, ``ece`` (15 equal-mass bins), ``ece_uniform``,
  ``brier``, ``nll``, ``accuracy``, ``base_rate``;
* regression metrics take ``(y, quantiles)`` with ``{level: predictions}`` (the median at 0.5): ``rmse``,
  ``mae`` (of the median), ``ic`` (the information coefficient: Spearman rank correlation of the median with
  the outcome, pooled over the rows given), ``pinball`` (mean over the levels), ``coverage`` (per level: the share
  of outcomes at or below it; a dict ``{cov_pXX: ...}``).

Each metric knows its direction (``higher_is_better``), which is how a monitor's early-stopping mode is
chosen. Only the metrics of :data:`MONITORABLE` can be monitors: they need no calibration (rank metrics of the
raw scores, errors of the median), so the module logs them after every validation, before the calibration is
fit on that same span. Where scikit-learn defines a metric (AP, ROC-AUC, Brier, pinball) the results agree with
it, and ``ic`` agrees with :func:`scipy.stats.spearmanr`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from utils.config import registered


def binary_nll(y: np.ndarray, p: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood (log loss) of probabilities ``p`` for 0/1 labels ``y``."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _bin_ids(p: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1))
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    # interior edges only, left side: the same binning as sklearn.calibration.calibration_curve
    return np.searchsorted(edges[1:-1], p, side="left")


def reliability_curve(y: np.ndarray, p: np.ndarray, n_bins: int = 15, strategy: str = "quantile") -> pd.DataFrame:
    """Per-bin ``count``, mean predicted probability ``p_mean`` and observed frequency ``y_rate``.

    Empty bins are dropped (as ``sklearn.calibration.calibration_curve`` does).
    """
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    ids = _bin_ids(p, n_bins, strategy)
    count = np.bincount(ids, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        p_mean = np.bincount(ids, weights=p, minlength=n_bins) / count
        y_rate = np.bincount(ids, weights=y, minlength=n_bins) / count
    frame = pd.DataFrame({"bin": np.arange(n_bins), "count": count, "p_mean": p_mean, "y_rate": y_rate})
    return frame[frame["count"] > 0].reset_index(drop=True)


def ece(y: np.ndarray, p: np.ndarray, n_bins: int = 15, strategy: str = "quantile") -> float:
    """Expected calibration error: sum over bins of ``count/n * |y_rate - p_mean|``.

    ``strategy="quantile"`` gives equal-mass bins, ``"uniform"`` equal-width bins on [0, 1].
    NaN for empty input.
    """
    if len(y) == 0:
        return float("nan")
    curve = reliability_curve(y, p, n_bins, strategy)
    return float(np.sum(curve["count"] * np.abs(curve["y_rate"] - curve["p_mean"])) / curve["count"].sum())


def brier_score(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared difference between probabilities and 0/1 outcomes."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    return float(np.mean((p - y) ** 2)) if len(y) else float("nan")


def pinball_loss(y: np.ndarray, q_pred: np.ndarray, alpha: float) -> float:
    """Mean pinball (quantile) loss of predictions ``q_pred`` of the ``alpha`` quantile."""
    err = np.asarray(y, dtype=np.float64) - np.asarray(q_pred, dtype=np.float64)
    return float(np.mean(np.maximum(alpha * err, (alpha - 1) * err))) if len(err) else float("nan")


def quantile_coverage(y: np.ndarray, q_pred: np.ndarray) -> float:
    """Share of outcomes at or below the predicted quantile (ideal: the quantile level)."""
    y = np.asarray(y, dtype=np.float64)
    return float(np.mean(y <= np.asarray(q_pred, dtype=np.float64))) if len(y) else float("nan")


def _two_classes(y: np.ndarray) -> bool:
    return len(np.unique(y)) > 1


def _ap(y, p, n_bins=15):
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, p)) if _two_classes(y) else float("nan")


def _roc_auc(y, p, n_bins=15):
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if _two_classes(y) else float("nan")


def _median(quantiles: dict[float, np.ndarray]) -> np.ndarray:
    return np.asarray(quantiles[0.5], dtype=np.float64)


def _ic(y, quantiles, n_bins=15):
    # ranks with ties averaged, then Pearson: scipy's Spearman, without its warnings on constant input
    x = pd.Series(_median(quantiles)).rank().to_numpy()
    y = pd.Series(np.asarray(y, dtype=np.float64)).rank().to_numpy()
    if len(y) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")  # no ranking to compare: a constant forecast has no IC, not an IC of 0
    return float(np.corrcoef(x, y)[0, 1])


def _pinball_mean(y, quantiles, n_bins=15):
    losses = [pinball_loss(y, q, level) for level, q in quantiles.items()]
    return float(np.mean(losses)) if losses else float("nan")


@dataclass(frozen=True)
class Metric:
    """A named metric: its kind, function and direction."""

    name: str
    kind: str  # "classification" or "regression"
    fn: Callable[..., float | dict[str, float]]
    higher_is_better: bool


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("ap", "classification", _ap, True),
    Metric("roc_auc", "classification", _roc_auc, True),
    Metric("ece", "classification", lambda y, p, n_bins=15: ece(y, p, n_bins, "quantile"), False),
    Metric("ece_uniform", "classification", lambda y, p, n_bins=15: ece(y, p, n_bins, "uniform"), False),
    Metric("brier", "classification", lambda y, p, n_bins=15: brier_score(y, p), False),
    Metric("nll", "classification", lambda y, p, n_bins=15: binary_nll(y, p), False),
    Metric("accuracy", "classification", lambda y, p, n_bins=15: float(np.mean((p >= 0.5) == (y > 0.5))), True),
    Metric("base_rate", "classification", lambda y, p, n_bins=15: float(np.mean(y)), True),
    Metric("rmse", "regression", lambda y, q, n_bins=15: float(np.sqrt(np.mean((_median(q) - y) ** 2))), False),
    Metric("mae", "regression", lambda y, q, n_bins=15: float(np.mean(np.abs(_median(q) - y))), False),
    Metric("ic", "regression", _ic, True),
    Metric("pinball", "regression", _pinball_mean, False),
    Metric("coverage", "regression", lambda y, q, n_bins=15: {
        f"cov_p{round(level * 100):02d}": quantile_coverage(y, v) for level, v in q.items()}, True),
)}
#: The columns of an evaluation report, per target kind.
REPORT = {"classification": ["ap", "roc_auc", "ece", "ece_uniform", "brier", "nll", "accuracy", "base_rate"],
          "regression": ["rmse", "mae", "ic", "coverage", "pinball"]}
#: Per target kind, the metrics a leaf may monitor (``val_<target>_<metric>@<period>``), all computed from the raw
#: outputs at every validation: rank metrics of the logits, errors of the median.
MONITORABLE = {"classification": ["ap", "roc_auc"], "regression": ["rmse", "mae", "ic", "pinball"]}


def get_metric(name: str, kind: str | None = None) -> Metric:
    """The metric called ``name`` (of ``kind`` when given); a ``ConfigError`` lists the valid names otherwise."""
    return registered(METRICS, name, kind, "metric")


def compute(names: list[str], y: np.ndarray, pred, n_bins: int = 15) -> dict[str, float]:
    """Every named metric of ``y`` against ``pred`` (probabilities, or ``{level: predictions}``), flattened."""
    out: dict[str, float] = {}
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # empty input: every metric is NaN, keys unchanged
        for name in names:
            value = get_metric(name).fn(y, pred, n_bins)
            out.update(value if isinstance(value, dict) else {name: value})
    return out


def classification_metrics(y: np.ndarray, p: np.ndarray, n_bins: int = 15) -> dict[str, float]:
    """The report's classification metrics (AP, ROC-AUC, ECE both ways, Brier, NLL, accuracy, base rate)."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    return {"n": int(len(y)), **compute(REPORT["classification"], y, p, n_bins)}


def regression_metrics(y: np.ndarray, quantiles: dict[float, np.ndarray]) -> dict[str, float]:
    """RMSE, MAE and IC of the median; coverage and pinball loss per quantile; mean pinball over quantiles."""
    y = np.asarray(y, dtype=np.float64)
    out: dict[str, float] = {"n": int(len(y)), **compute(REPORT["regression"], y, quantiles)}
    out.update({f"pinball_p{round(level * 100):02d}": pinball_loss(y, q, level) for level, q in quantiles.items()})
    return out
