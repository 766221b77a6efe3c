"""Calibration and probabilistic-forecast metrics.

Everything here is pure numpy: arrays in, numbers or frames out. NaN labels are the caller's to drop.

* Calibrators of binary logits, one per column, sklearn-style ``fit`` / ``transform`` / ``predict_proba``,
  made by :func:`make_calibrator` from a method name:

  - :class:`PlattScaler` (``platt``, the default): ``p = sigmoid(scale * logit + bias)``, a slope and an
    intercept fit by NLL. The intercept makes the mean calibrated probability on the fit span equal the
    base rate, whatever the model's skill, so it cannot collapse to 0.5 on a 0.58 base rate;
  - :class:`TemperatureScaler` (``temperature``): ``p = sigmoid(logit / T)``, no intercept, so a biased
    or uninformative model saturates at the search bound and every probability tends to 0.5;
  - :class:`IsotonicCalibrator` (``isotonic``): a monotone step map of the logit (sklearn's
    ``IsotonicRegression``), no parametric form (no ``scale`` / ``bias`` in the contract).

  After ``fit`` each calibrator lists per column what a user must hear in ``warnings_``: a fit that reached
  a bound, a negative slope (the model ranks backwards on the fit span; Platt then predicts the base rate,
  since no calibration may reverse a ranking), or calibrated scores whose spread
  falls below ``SPREAD_FLOOR`` while the base rate is away from 0.5 (the scores carry no usable signal,
  or have collapsed) (:func:`collapse_warning`).
* :func:`sigma_from_quantiles`; the metrics themselves (ECE, reliability curve, Brier, NLL, pinball, coverage,
  and the report sets) are defined once in :mod:`utils.metric_factory`, by name, and re-exported here.

Where scikit-learn defines a metric (Brier, pinball, AP, ROC-AUC) the results agree with it; the
tests check that.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_expit
from scipy.stats import norm

from utils.metric_factory import (  # the metric primitives live at the bottom of the import graph
    binary_nll,
    brier_score,
    classification_metrics,
    ece,
    pinball_loss,
    quantile_coverage,
    regression_metrics,
    reliability_curve,
)

__all__ = [
    "IsotonicCalibrator", "PlattScaler", "TemperatureScaler", "binary_nll", "brier_score",
    "classification_metrics", "collapse_warning", "ece", "make_calibrator", "pinball_loss", "quantile_coverage",
    "regression_metrics", "reliability_curve", "sigma_from_quantiles",
]

logger = logging.getLogger(__name__)

#: Temperatures are searched in [exp(-LOG_T_BOUND), exp(LOG_T_BOUND)].
LOG_T_BOUND = 5.0
#: Calibrated probabilities with a standard deviation below this have (almost) no spread.
SPREAD_FLOOR = 0.005
#: A base rate further than this from 0.5 is "away from 0.5" for the collapse warning.
BASE_RATE_TOLERANCE = 0.02
#: Platt's smallest slope: probabilities then equal the base rate to ~1e-6, and ties follow the model's order.
RANK_KEEPING_SLOPE = 1e-6


def collapse_warning(y: np.ndarray, p: np.ndarray) -> str:
    """A warning text when calibrated ``p`` has almost no spread while the base rate of ``y`` is away from 0.5.

    Empty string otherwise. Such scores are (nearly) one constant: either the model carries no usable signal
    for this target, or a calibration without an intercept has collapsed them towards 0.5.
    """
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if len(y) == 0:
        return ""
    base, spread = float(np.mean(y)), float(np.std(p))
    if spread < SPREAD_FLOOR and abs(base - 0.5) > BASE_RATE_TOLERANCE:
        return (f"calibrated scores have almost no spread (std {spread:.4f} < {SPREAD_FLOOR}, mean {np.mean(p):.4f}) "
                f"while the base rate is {base:.4f}: the scores carry no usable signal")
    return ""


def _fit_columns(logits: np.ndarray, y: np.ndarray, names: list[str] | None):
    """Yield ``(k, name, logits_k, y_k)`` per column with finite pairs; single-class columns warn and are skipped."""
    logits2, y2 = _as_2d(logits), _as_2d(y)
    for k in range(logits2.shape[1]):
        ok = np.isfinite(y2[:, k]) & np.isfinite(logits2[:, k])
        lk, yk = logits2[ok, k].astype(np.float64), y2[ok, k].astype(np.float64)
        name = names[k] if names else str(k)
        if len(np.unique(yk)) < 2:
            warnings.warn(f"calibration for {name!r} undefined: its labels hold a single class "
                          f"({np.unique(yk).tolist()} over {len(yk)} rows); probabilities stay uncalibrated",
                          RuntimeWarning, stacklevel=3)
            continue
        yield k, name, lk, yk


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    # log(sigmoid(z)) and log(1 - sigmoid(z)) = log(sigmoid(-z)), both stable for large |z|
    return float(-np.mean(y * log_expit(z) + (1 - y) * log_expit(-z)))


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

    method = "temperature"

    def __init__(self, names: list[str] | None = None) -> None:
        self.names = names

    def fit(self, logits: np.ndarray, y: np.ndarray) -> TemperatureScaler:
        """Fit on ``logits`` and labels of shape ``[n]`` or ``[n, k]``; NaN labels are ignored per column."""
        k_cols = _as_2d(logits).shape[1]
        self.temperatures_ = np.full(k_cols, np.nan)
        self.warnings_ = [""] * k_cols
        for k, _name, lk, yk in _fit_columns(logits, y, self.names):
            res = minimize_scalar(lambda s, lk=lk, yk=yk: _nll(lk, yk, math.exp(s)),
                                  bounds=(-LOG_T_BOUND, LOG_T_BOUND), method="bounded",
                                  options={"xatol": 1e-5})
            self.temperatures_[k] = math.exp(res.x)
            notes = []
            if abs(res.x) >= LOG_T_BOUND - 1e-3:
                notes.append(f"temperature reached its bound (T = {math.exp(res.x):.4g})")
            notes.append(collapse_warning(yk, expit(lk / self.temperatures_[k])))
            self.warnings_[k] = "; ".join(n for n in notes if n)
        return self

    @property
    def scale_(self) -> np.ndarray:
        """Slope of the contract's ``sigmoid(scale * logit + bias)``: ``1 / T`` (1 where undefined)."""
        return 1.0 / np.where(np.isfinite(self.temperatures_), self.temperatures_, 1.0)

    @property
    def bias_(self) -> np.ndarray:
        """Intercept of the contract: always 0 for temperature scaling."""
        return np.zeros_like(self.temperatures_)

    def transform(self, logits: np.ndarray) -> np.ndarray:
        """Scaled logits ``logit / T`` (``T = 1`` where undefined)."""
        if not hasattr(self, "temperatures_"):
            raise RuntimeError("TemperatureScaler.transform called before fit")
        out = _as_2d(logits) * self.scale_
        return out.ravel() if np.ndim(logits) == 1 else out

    def predict_proba(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities."""
        return expit(self.transform(logits))


class PlattScaler:
    """Platt scaling of binary logits: ``p = sigmoid(scale * logit + bias)``, one slope and intercept per column.

    Fit by (essentially unpenalised) logistic regression of the labels on the logit (sklearn's
    ``LogisticRegression``). With an intercept, the mean calibrated probability on the fit rows equals
    their base rate. A calibration never reverses the model's ranking: a model that ranks backwards on the
    fit span (negative slope) predicts the base rate, with :data:`RANK_KEEPING_SLOPE` keeping its order as a
    tie-break so that ranking metrics still measure the model (``scales_fit_`` keeps the unconstrained
    slope; ``warnings_`` says so). A single-class column keeps ``scale = 1, bias = 0`` (NaN in
    ``scales_fit_``) with a warning.

    Parameters
    ----------
    names : list of str, optional
        Column names used in warnings.
    """

    method = "platt"

    def __init__(self, names: list[str] | None = None) -> None:
        self.names = names

    def fit(self, logits: np.ndarray, y: np.ndarray) -> PlattScaler:
        """Fit on ``logits`` and labels of shape ``[n]`` or ``[n, k]``; NaN labels are ignored per column."""
        from sklearn.linear_model import LogisticRegression

        k_cols = _as_2d(logits).shape[1]
        self.scale_, self.bias_ = np.ones(k_cols), np.zeros(k_cols)
        self.scales_fit_ = np.full(k_cols, np.nan)
        self.warnings_ = [""] * k_cols
        for k, _name, lk, yk in _fit_columns(logits, y, self.names):
            # C large: no shrinkage of the slope (the intercept is never penalised with lbfgs)
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(lk[:, None], yk)
            self.scales_fit_[k] = float(lr.coef_[0, 0])
            self.scale_[k], self.bias_[k] = self.scales_fit_[k], float(lr.intercept_[0])
            note = ""
            if self.scale_[k] < RANK_KEEPING_SLOPE:
                # a calibration never reverses the model's ranking: the NLL fit with slope >= 0 is slope 0 and
                # the base rate's logit (NLL is convex in the slope), i.e. the honest no-skill probability; a
                # vanishing slope keeps the model's order as a tie-break, so ranking metrics still measure it
                base = float(np.clip(yk.mean(), 1e-6, 1 - 1e-6))
                self.scale_[k], self.bias_[k] = RANK_KEEPING_SLOPE, float(np.log(base / (1 - base)))
                note = (f"negative slope ({self.scales_fit_[k]:.4f}): the model ranks backwards on the fit span; "
                        f"it predicts the base rate {base:.4f} (its order kept only as a tie-break)")
            notes = [note, collapse_warning(yk, expit(self.scale_[k] * lk + self.bias_[k]))]
            self.warnings_[k] = "; ".join(n for n in notes if n)
        return self

    def transform(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated logits ``scale * logit + bias``."""
        if not hasattr(self, "scale_"):
            raise RuntimeError("PlattScaler.transform called before fit")
        out = _as_2d(logits) * self.scale_ + self.bias_
        return out.ravel() if np.ndim(logits) == 1 else out

    def predict_proba(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities."""
        return expit(self.transform(logits))


class IsotonicCalibrator:
    """Isotonic calibration of binary logits (sklearn's ``IsotonicRegression``, clipped outside the fit range).

    The map is kept as interpolation knots per column (``knots_``: list of ``(x, y)`` arrays, ``None`` for
    an undefined column, which passes ``sigmoid(logit)`` through), so it is plain data in a checkpoint.
    ``scale_`` / ``bias_`` are NaN: the contract's parametric form does not apply.
    """

    method = "isotonic"

    def __init__(self, names: list[str] | None = None) -> None:
        self.names = names

    def fit(self, logits: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
        """Fit on ``logits`` and labels of shape ``[n]`` or ``[n, k]``; NaN labels are ignored per column."""
        from sklearn.isotonic import IsotonicRegression

        k_cols = _as_2d(logits).shape[1]
        self.knots_: list[tuple[np.ndarray, np.ndarray] | None] = [None] * k_cols
        self.warnings_ = [""] * k_cols
        for k, _name, lk, yk in _fit_columns(logits, y, self.names):
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(lk, yk)
            self.knots_[k] = (np.asarray(iso.X_thresholds_, dtype=np.float64),
                              np.asarray(iso.y_thresholds_, dtype=np.float64))
            self.warnings_[k] = collapse_warning(yk, self._map(k, lk))
        self.scale_ = np.full(k_cols, np.nan)
        self.bias_ = np.full(k_cols, np.nan)
        return self

    def _map(self, k: int, x: np.ndarray) -> np.ndarray:
        knots = self.knots_[k]
        return expit(x) if knots is None else np.interp(x, knots[0], knots[1])

    def predict_proba(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities."""
        if not hasattr(self, "knots_"):
            raise RuntimeError("IsotonicCalibrator.predict_proba called before fit")
        a = _as_2d(logits)
        out = np.column_stack([self._map(k, a[:, k]) for k in range(a.shape[1])])
        return out.ravel() if np.ndim(logits) == 1 else out


def make_calibrator(method: str, names: list[str] | None = None):
    """The calibrator for a method name (``platt``, ``temperature`` or ``isotonic``)."""
    classes = {"platt": PlattScaler, "temperature": TemperatureScaler, "isotonic": IsotonicCalibrator}
    if method not in classes:
        raise ValueError(f"unknown calibration method {method!r}; valid: {list(classes)}")
    return classes[method](names)


def _as_2d(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def sigma_from_quantiles(q_lo: np.ndarray, q_hi: np.ndarray, lo: float = 0.1, hi: float = 0.9) -> np.ndarray:
    """Standard deviation implied by two quantiles under a normal shape.

    ``sigma = (Q(hi) - Q(lo)) / (z_hi - z_lo)`` with ``z = Phi^-1``; for P10/P90,
    ``sigma = (P90 - P10) / 2.5631``. Crossed quantiles give a negative spread, clipped to 0.
    """
    z = norm.ppf(hi) - norm.ppf(lo)
    return np.maximum(np.asarray(q_hi, dtype=np.float64) - np.asarray(q_lo, dtype=np.float64), 0.0) / z
