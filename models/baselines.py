"""Baseline experts: the models a researcher tries first, on exactly a leaf's rows, in the TFT's contract.

A baseline reads the same :class:`~models.window_dataset.WindowData` as the TFT (:func:`build_window_data`): the
same table rows, features (the decision bar's row of the scaled inputs; the scaler fit on the training span),
``TimeSplit`` spans, purge and embargo. It differs only in the model:

* ``logistic``: scikit-learn's ``LogisticRegression`` for classification targets (``C`` chosen by log-loss on the
  end of the training span), and for regression targets a ridge regression for P50 whose P10 / P90 add the
  residual quantiles measured on the end of the training span (a linear model has no quantile objective that
  scales to these row counts);
* ``lightgbm`` / ``xgboost`` / ``catboost`` (where installed): gradient-boosted trees, early-stopped on the end of
  the training span; regression targets get one quantile objective per level (P10 / P50 / P90).

The end of the training span (:data:`INNER_SHARE` of its time, purged by the label horizon and embargoed as
everywhere else, :class:`~utils.timeline.TimeSplit`) is the only data used to choose ``C`` or the number of
rounds; the model is then refit on the whole training span with that choice. Validation rows are never seen by
the fit: they calibrate the classification scores with the leaf's ``calibration.method`` (Platt by default),
exactly as the TFT's validation does.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metrics.calibration import make_calibrator, sigma_from_quantiles
from models.leaf_config import Leaf
from models.window_dataset import WindowData
from utils.errors import ConfigError, DataError
from utils.timeline import TimeSplit, embargo_bars, time_at_share

logger = logging.getLogger(__name__)

#: Model names of ``experts_cli.py baseline --model``; ``logistic`` needs only scikit-learn.
BASELINE_MODELS = ("logistic", "lightgbm", "xgboost", "catboost")
#: Share of the training span's time, at its end, that chooses C / the number of boosting rounds.
INNER_SHARE = 0.2
#: Regularization grid of the logistic and ridge models (inputs are standardized).
C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
MAX_ROUNDS = 2000
EARLY_STOP = 50


def available_models() -> list[str]:
    """The baseline models whose library is installed."""
    return ["logistic"] + [m for m in BASELINE_MODELS[1:] if importlib.util.find_spec(m) is not None]


def check_model(name: str) -> str:
    """``name`` if it is a known and installed baseline model, else a ConfigError listing them."""
    if name not in BASELINE_MODELS:
        raise ConfigError(f"--model {name!r}: not a baseline model; use one of {list(BASELINE_MODELS)}")
    if name not in available_models():
        raise ConfigError(f"--model {name!r}: its library is not installed (pip install {name}); installed: "
                          f"{available_models()}")
    return name


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def _gbdt_classifier(model: str, seed: int, rounds: int):
    if model == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(n_estimators=rounds, learning_rate=0.03, num_leaves=31, min_child_samples=200,
                              subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0,
                              random_state=seed, verbose=-1)
    if model == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(n_estimators=rounds, learning_rate=0.03, max_depth=5, min_child_weight=50,
                             subsample=0.8, colsample_bytree=0.8, tree_method="hist", random_state=seed)
    from catboost import CatBoostClassifier

    return CatBoostClassifier(iterations=rounds, learning_rate=0.05, depth=6, random_seed=seed, verbose=False,
                              allow_writing_files=False)


def _gbdt_quantile(model: str, q: float, seed: int, rounds: int):
    if model == "lightgbm":
        from lightgbm import LGBMRegressor

        return LGBMRegressor(objective="quantile", alpha=q, n_estimators=rounds, learning_rate=0.03, num_leaves=31,
                             min_child_samples=200, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                             random_state=seed, verbose=-1)
    if model == "xgboost":
        from xgboost import XGBRegressor

        return XGBRegressor(objective="reg:quantileerror", quantile_alpha=q, n_estimators=rounds, learning_rate=0.03,
                            max_depth=5, min_child_weight=50, subsample=0.8, tree_method="hist", random_state=seed)
    from catboost import CatBoostRegressor

    return CatBoostRegressor(loss_function=f"Quantile:alpha={q}", iterations=rounds, learning_rate=0.05, depth=6,
                             random_seed=seed, verbose=False, allow_writing_files=False)


def _stopped_rounds(est, model: str) -> int:
    """The early-stopped number of rounds of a fitted GBDT (at least 1)."""
    best = {"lightgbm": lambda: est.best_iteration_, "xgboost": lambda: est.best_iteration + 1,
            "catboost": lambda: est.get_best_iteration() + 1}[model]()
    return max(int(best or 1), 1)


def _fit_gbdt(make, model: str, X: np.ndarray, y: np.ndarray, stop: np.ndarray, eval_metric: str | None):
    """Early-stop on the ``stop`` rows (fit on the others), then refit on all rows with that many rounds."""
    est = make(MAX_ROUNDS)
    fit, held = ~stop, stop
    if model == "lightgbm":
        import inspect

        import lightgbm

        # LightGBM 4.7 renamed eval_set (a list of pairs) to eval_X / eval_y
        held_set = {"eval_X": X[held], "eval_y": y[held]} if "eval_X" in inspect.signature(est.fit).parameters \
            else {"eval_set": [(X[held], y[held])]}
        est.fit(X[fit], y[fit], **held_set, eval_metric=eval_metric,
                callbacks=[lightgbm.early_stopping(EARLY_STOP, verbose=False)])
    elif model == "xgboost":
        est.set_params(early_stopping_rounds=EARLY_STOP)
        est.fit(X[fit], y[fit], eval_set=[(X[held], y[held])], verbose=False)
    else:
        est.fit(X[fit], y[fit], eval_set=(X[held], y[held]), early_stopping_rounds=EARLY_STOP)
    rounds = _stopped_rounds(est, model)
    return make(rounds).fit(X, y), rounds


class BaselineClassifier:
    """A binary classifier of one target whose logit the calibration maps to a probability.

    Parameters
    ----------
    model : str
        One of :data:`BASELINE_MODELS`.
    seed : int
        Random seed of the trees' row and column sampling.

    ``fit(X, y, stop)`` chooses ``C`` (logistic) or the number of rounds (trees) on the rows where ``stop`` is
    True and refits on all rows; pass only rows of the training span.
    """

    def __init__(self, model: str = "logistic", seed: int = 0) -> None:
        self.model = model
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray, stop: np.ndarray) -> BaselineClassifier:
        """Fit on ``X, y`` (training rows only); ``stop`` marks the rows that choose the model's size."""
        y = np.asarray(y).astype(int)
        stop = np.asarray(stop, dtype=bool)
        if len(np.unique(y[~stop])) < 2 or len(np.unique(y[stop])) < 2:
            raise DataError("a baseline classifier needs both classes in the fit and the stopping rows of the "
                            "training span; this target holds one class there")
        if self.model == "logistic":
            from sklearn.linear_model import LogisticRegression
            from sklearn.metrics import log_loss

            def loss(c: float) -> float:
                est = LogisticRegression(C=c, max_iter=1000).fit(X[~stop], y[~stop])
                return log_loss(y[stop], est.predict_proba(X[stop])[:, 1], labels=[0, 1])

            self.size_ = min(C_GRID, key=loss)
            self.estimator_ = LogisticRegression(C=self.size_, max_iter=1000).fit(X, y)
        else:
            self.estimator_, self.size_ = _fit_gbdt(lambda n: _gbdt_classifier(self.model, self.seed, n),
                                                    self.model, X, y, stop, "binary_logloss")
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Uncalibrated logits."""
        if self.model == "logistic":
            return self.estimator_.decision_function(X)
        return _logit(self.estimator_.predict_proba(X)[:, 1])


class BaselineQuantileRegressor:
    """P10 / P50 / P90 (or the leaf's quantiles) of one regression target.

    Parameters
    ----------
    model : str
        One of :data:`BASELINE_MODELS` (``logistic`` means a linear model here: ridge P50 plus residual
        quantiles measured on the stopping rows).
    quantiles : tuple of float
        Increasing levels; the predictions are sorted per row, so they never cross.
    seed : int
        Random seed of the trees.
    """

    def __init__(self, model: str = "logistic", quantiles: tuple[float, ...] = (0.1, 0.5, 0.9), seed: int = 0) -> None:
        self.model = model
        self.quantiles = quantiles
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray, stop: np.ndarray) -> BaselineQuantileRegressor:
        """Fit on ``X, y`` (training rows only); ``stop`` marks the rows that choose the model's size."""
        y, stop = np.asarray(y, dtype=np.float64), np.asarray(stop, dtype=bool)
        if self.model == "logistic":
            from sklearn.linear_model import Ridge

            def mse(alpha: float) -> float:
                est = Ridge(alpha=alpha).fit(X[~stop], y[~stop])
                return float(np.mean((y[stop] - est.predict(X[stop])) ** 2))

            # ridge's alpha is 1 / C on these standardized inputs, scaled by the row count
            alphas = [len(y) / c for c in C_GRID]
            alpha = min(alphas, key=mse)
            held = Ridge(alpha=alpha).fit(X[~stop], y[~stop])
            resid = y[stop] - held.predict(X[stop])
            self.offsets_ = np.quantile(resid, self.quantiles) - np.quantile(resid, 0.5)
            self.estimators_ = [Ridge(alpha=alpha).fit(X, y)]
            self.size_ = alpha
        else:
            fitted = [_fit_gbdt(lambda n, q=q: _gbdt_quantile(self.model, q, self.seed, n), self.model, X, y, stop,
                                "quantile") for q in self.quantiles]
            self.estimators_ = [est for est, _ in fitted]
            self.size_ = [rounds for _, rounds in fitted]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Quantiles ``[n, Q]`` in the target's units, increasing along the last axis."""
        if self.model == "logistic":
            q = self.estimators_[0].predict(X)[:, None] + self.offsets_[None, :]
        else:
            q = np.stack([est.predict(X) for est in self.estimators_], axis=1)
        return np.sort(q, axis=1)


def inner_stop_rows(timestamps: np.ndarray, period: str, horizon: int, embargo: int,
                    share: float = INNER_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """Split training rows by time: (fit rows, stopping rows) as boolean masks, purged and embargoed.

    The last ``share`` of the training span's time chooses the model's size; the rows before it are purged so
    that no label reaches into it, and the first ``embargo`` bars after the boundary are left out.
    """
    ts = pd.DatetimeIndex(pd.to_datetime(np.asarray(timestamps, dtype=np.int64), utc=True))
    boundary = time_at_share(ts, 1.0 - share)
    masks = TimeSplit((None, boundary, None), period, horizon, embargo, ("fit", "stop")).masks(ts)
    if masks["fit"].sum() == 0 or masks["stop"].sum() == 0:
        raise DataError(f"the training span ({ts.min()} .. {ts.max()}) is too short to hold out its last "
                        f"{share:.0%} for early stopping; train on more data")
    return masks["fit"], masks["stop"]


@dataclass
class FittedTarget:
    """One target's fitted model, its calibration (classification) and what was chosen."""

    name: str
    kind: str
    model: BaselineClassifier | BaselineQuantileRegressor
    calibrator: object = None  # classification: the fitted calibrator of its logit
    warning: str = ""


class BaselineExpert:
    """Every target of a leaf fit with one baseline model on the leaf's training rows, calibrated on validation.

    Parameters
    ----------
    leaf : Leaf
        The leaf whose targets, quantiles, calibration method, split and embargo are used.
    model : str
        One of :data:`BASELINE_MODELS`.
    seed : int
        Random seed.
    """

    def __init__(self, leaf: Leaf, model: str = "logistic", seed: int = 0) -> None:
        self.leaf = leaf
        self.model = model
        self.seed = seed

    def fit(self, data: WindowData) -> BaselineExpert:
        """Fit on ``data.splits['train']`` (size chosen on its end), calibrate on ``data.splits['val']``."""
        check_model(self.model)
        train, val = data.splits["train"], data.splits["val"]
        if val.size == 0:
            raise DataError(f"{self.leaf.config_path}: no validation window: the baseline's calibration needs one")
        X = data.x.numpy()
        targets = self.leaf.targets.targets
        horizon = max(t.horizon for t in targets)
        bars = embargo_bars(self.leaf.model.split.embargo_bars, horizon, str(self.leaf.config_path))
        fit_rows, stop_rows = inner_stop_rows(data.timestamp[train], self.leaf.model.period, horizon, bars)
        keep = fit_rows | stop_rows
        Xt, stop = X[train][keep], stop_rows[keep]
        self.targets_ = []
        for k, t in enumerate(targets):
            y = data.y_raw[train, k][keep]
            if t.kind == "classification":
                est = BaselineClassifier(self.model, self.seed).fit(Xt, y, stop)
                cal = make_calibrator(self.leaf.model.calibration.method, [t.name])
                cal.fit(est.decision_function(X[val])[:, None], data.y_raw[val, k][:, None])
                fitted = FittedTarget(t.name, t.kind, est, cal, cal.warnings_[0])
                if cal.warnings_[0]:
                    logger.warning("%s %s calibration: %s", self.model, t.name, cal.warnings_[0])
            else:
                quantiles = tuple(self.leaf.model.model.quantiles)
                est = BaselineQuantileRegressor(self.model, quantiles, self.seed).fit(Xt, y, stop)
                fitted = FittedTarget(t.name, t.kind, est)
            logger.info("%s %s: fit on %d rows, size chosen on %d (%s)", self.model, t.name, int((~stop).sum()),
                        int(stop.sum()), est.size_)
            self.targets_.append(fitted)
        self.train_target_means_ = np.nanmean(data.y_raw[train], axis=0).tolist()
        self.features_ = list(data.features)
        return self

    def decode(self, data: WindowData, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Contract arrays ``[n, T]`` of ``rows`` (see :func:`models.outputs.long_frame`)."""
        X = data.x.numpy()[rows]
        n, quantiles = len(rows), list(self.leaf.model.model.quantiles)
        shape = (n, len(self.targets_))
        out = {k: np.full(shape, np.nan) for k in ("score", "uncertainty", "head_scale", "head_bias",
                                                     "antilog_return", "future_price")}
        out["quantiles"] = np.full((*shape, len(quantiles)), np.nan)
        for k, t in enumerate(self.targets_):
            if t.kind == "classification":
                logit = t.model.decision_function(X)
                out["score"][:, k] = t.calibrator.predict_proba(logit[:, None])[:, 0]
                # Platt's slope and intercept (1/T and 0 for temperature; NaN for isotonic, as in the contract)
                out["head_scale"][:, k], out["head_bias"][:, k] = t.calibrator.scale_[0], t.calibrator.bias_[0]
                continue
            q = t.model.predict(X)
            out["quantiles"][:, k], out["score"][:, k] = q, q[:, quantiles.index(0.5)]
            out["head_scale"][:, k], out["head_bias"][:, k] = 1.0, 0.0  # quantiles are in the target's units
            out["uncertainty"][:, k] = sigma_from_quantiles(q[:, 0], q[:, -1], quantiles[0], quantiles[-1])
            if "logreturn" in t.name:
                out["antilog_return"][:, k] = np.expm1(out["score"][:, k])
                out["future_price"][:, k] = data.close[rows] * np.exp(out["score"][:, k])
        static = data.static.numpy()[rows]
        out.update(y_true=data.y_raw[rows], symbol_idx=static[:, 0], period_idx=static[:, 1],
                   time_idx=np.asarray(data.time_idx)[rows], timestamp=np.asarray(data.timestamp)[rows])
        return out
