"""Calibration and probabilistic-forecast metrics.

Everything here is pure numpy: arrays in, numbers or frames out. NaN labels are the caller's to drop.

* :class:`TemperatureScaler` - one temperature per target, fit by NLL on validation logits
  (sklearn-style ``fit`` / ``transform`` / ``predict_proba``).
* :func:`ece` - expected calibration error with equal-width (``"uniform"``) or equal-mass
  (``"quantile"``) bins; :func:`reliability_curve` gives the per-bin data behind it.
* :func:`brier_score`, :func:`pinball_loss`, :func:`quantile_coverage`, :func:`sigma_from_quantiles`.

Where scikit-learn defines a metric (Brier, pinball, AP, ROC-AUC) the results agree with it; the
tests check that.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_expit
from scipy.stats import norm

logger = logging.getLogger(__name__)

#: Temperatures are searched in [exp(-LOG_T_BOUND), exp(LOG_T_BOUND)].
LOG_T_BOUND = 5.0


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    # log(sigmoid(z)) and log(1 - sigmoid(z)) = log(sigmoid(-z)), both stable for large |z|
    return float(-np.mean(y * log_expit(z) + (1 - y) * log_expit(-z)))


def binary_nll(y: np.ndarray, p: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood (log loss) of probabilities ``p`` for 0/1 labels ``y``."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


class TemperatureScaler:
    """Temperature scaling of binary logits: ``p = sigmoid(logit / T)``, one ``T`` per column.

    ``fit`` minimises the negative log-likelihood over ``log T`` (bounded search). A column whose
    labels hold a single class has no defined temperature: ``temperatures_`` is NaN there, a warning
    is issued, and ``transform`` leaves that column's logits unscaled (``T = 1``).

    Parameters
    ----------
    names : list of str, optional
        Column names used in warnings.
    """

    def __init__(self, names: list[str] | None = None) -> None:
        self.names = names
        self.temperatures_: np.ndarray | None = None

    def fit(self, logits: np.ndarray, y: np.ndarray) -> TemperatureScaler:
        """Fit on ``logits`` and labels of shape ``[n]`` or ``[n, k]``; NaN labels are ignored per column."""
        logits2, y2 = _as_2d(logits), _as_2d(y)
        temps = np.full(logits2.shape[1], np.nan)
        for k in range(logits2.shape[1]):
            ok = np.isfinite(y2[:, k]) & np.isfinite(logits2[:, k])
            lk, yk = logits2[ok, k].astype(np.float64), y2[ok, k].astype(np.float64)
            name = self.names[k] if self.names else str(k)
            if len(np.unique(yk)) < 2:
                warnings.warn(f"temperature for {name!r} undefined: its labels hold a single class "
                              f"({np.unique(yk).tolist()} over {len(yk)} rows); probabilities stay uncalibrated",
                              RuntimeWarning, stacklevel=2)
                continue
            res = minimize_scalar(lambda s, lk=lk, yk=yk: _nll(lk, yk, math.exp(s)),
                                  bounds=(-LOG_T_BOUND, LOG_T_BOUND), method="bounded",
                                  options={"xatol": 1e-5})
            temps[k] = math.exp(res.x)
        self.temperatures_ = temps
        return self

    def transform(self, logits: np.ndarray) -> np.ndarray:
        """Scaled logits ``logit / T`` (``T = 1`` where undefined)."""
        if self.temperatures_ is None:
            raise RuntimeError("TemperatureScaler.transform called before fit")
        t = np.where(np.isfinite(self.temperatures_), self.temperatures_, 1.0)
        out = _as_2d(logits) / t
        return out.ravel() if np.ndim(logits) == 1 else out

    def predict_proba(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities."""
        return expit(self.transform(logits))


def _as_2d(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


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


def sigma_from_quantiles(q_lo: np.ndarray, q_hi: np.ndarray, lo: float = 0.1, hi: float = 0.9) -> np.ndarray:
    """Standard deviation implied by two quantiles under a normal shape.

    ``sigma = (Q(hi) - Q(lo)) / (z_hi - z_lo)`` with ``z = Phi^-1``; for P10/P90,
    ``sigma = (P90 - P10) / 2.5631``. Crossed quantiles give a negative spread, clipped to 0.
    """
    z = norm.ppf(hi) - norm.ppf(lo)
    return np.maximum(np.asarray(q_hi, dtype=np.float64) - np.asarray(q_lo, dtype=np.float64), 0.0) / z


def classification_metrics(y: np.ndarray, p: np.ndarray, n_bins: int = 15) -> dict[str, float]:
    """AP, ROC-AUC, ECE (equal-mass and equal-width), Brier, NLL and accuracy; NaN where undefined."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    two = len(np.unique(y)) > 1
    return {
        "n": int(len(y)),
        "ap": float(average_precision_score(y, p)) if two else float("nan"),
        "roc_auc": float(roc_auc_score(y, p)) if two else float("nan"),
        "ece": ece(y, p, n_bins, "quantile"),
        "ece_uniform": ece(y, p, n_bins, "uniform"),
        "brier": brier_score(y, p),
        "nll": binary_nll(y, p) if len(y) else float("nan"),
        "accuracy": float(np.mean((p >= 0.5) == (y > 0.5))) if len(y) else float("nan"),
        "base_rate": float(np.mean(y)) if len(y) else float("nan"),
    }


def regression_metrics(y: np.ndarray, quantiles: dict[float, np.ndarray]) -> dict[str, float]:
    """RMSE and MAE of the median; coverage and pinball loss per quantile; mean pinball over quantiles."""
    y = np.asarray(y, dtype=np.float64)
    med = np.asarray(quantiles[0.5], dtype=np.float64)
    out: dict[str, float] = {
        "n": int(len(y)),
        "rmse": float(np.sqrt(np.mean((med - y) ** 2))) if len(y) else float("nan"),
        "mae": float(np.mean(np.abs(med - y))) if len(y) else float("nan"),
    }
    losses = []
    for level, q in quantiles.items():
        tag = f"p{round(level * 100):02d}"
        out[f"cov_{tag}"] = quantile_coverage(y, q)
        out[f"pinball_{tag}"] = pinball_loss(y, q, level)
        losses.append(out[f"pinball_{tag}"])
    out["pinball"] = float(np.mean(losses)) if losses else float("nan")
    return out
