"""Z-Combiner: the stacking layer over the experts' out-of-fold predictions.

The project's own walk-forward loop (scikit-learn's ``StackingClassifier`` cannot take time-ordered
splits). On one period and target of ``datasets/z_train.parquet``:

1. rows with the target and every selected input known, in time order; inputs are the columns whose
   names start with one of ``feature_prefixes`` (classification expert scores enter as logits);
2. **time-ordered purged split**: the fit span holds rows whose label interval ``[t, t + h]`` ends before
   the hold-out start; the hold-out span starts an embargo (>= the horizon) later;
3. inside the fit span, ``n_folds`` walk-forward folds (each purged the same way) give out-of-fold
   scores on which the output **calibration** (``platt`` by default, or ``temperature`` / ``isotonic``;
   classification only) is fit; the final model is then fit on the whole fit span. An input column that
   is constant on the fit span is refused (a ``DataError`` naming it): it carries nothing, and usually
   means an expert's calibration collapsed;
4. baselines: the **equal-weight** average of the experts' scores for the target, the **single best
   expert** (chosen on the fit span by PR-AUC, or RMSE for regression) and **no skill** (the fit span's
   base rate as a constant probability, or its mean for regression);
5. hold-out comparison: PR-AUC, ROC-AUC, ECE (15 equal-mass bins) and Brier, or RMSE, with the hold-out
   base rate; a moving-block bootstrap of the headline difference (PR-AUC, or RMSE) gives a 90% interval.
   The Z-Combiner only *claims* to beat a baseline when the whole interval is above zero **and** its
   hold-out Brier (RMSE) is better than no skill's; when no model beats no skill on Brier (RMSE), the
   report says so in words.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from metrics.bootstrap import paired_block_bootstrap
from metrics.calibration import RANK_KEEPING_SLOPE, brier_score, ece, make_calibrator
from models.outputs import PREDICTION_COLUMNS, PREDICTION_DTYPES, utc_stamp
from utils.config import bounded, load_config
from utils.errors import ConfigError, DataError
from utils.eval_report import eval_report
from utils.io import write_csv, write_json, write_parquet
from utils.timeline import (
    TimeSplit,
    check_periods,
    embargo_bars,
    expanding_splits,
    horizon_of,
    time_at_share,
)

logger = logging.getLogger(__name__)

NON_INPUT_SUFFIXES = ("__pred_time", "__train_window_id")


@dataclass
class ZSplit:
    """Hold-out share of the timeline, inner folds, embargo (null: the target horizon)."""

    holdout_fraction: float = bounded(0.3, gt=0.0, lt=1.0)
    n_folds: int = bounded(4, ge=2, le=50)
    embargo_bars: int | None = bounded(None, ge=0)


@dataclass
class ZConfig:
    """``experts/Z-Combiner/model_config.yaml``."""

    data_path: str = "datasets/z_train.parquet"
    period: str = "1h"
    target: str = "target_binarytrend"
    mode: Literal["classification", "regression"] = "classification"
    model: Literal["logistic", "mlp", "ridge", "mlp_regressor"] = "logistic"
    feature_prefixes: list[str] = field(default_factory=lambda: ["Alpha-Dir-TFT__target_binarytrend",
                                                                 "Derivatives-Micro-TFT__target_binarytrend",
                                                                 "regime_"])
    calibration: Literal["platt", "temperature", "isotonic", "none"] = "platt"
    C: float = bounded(1.0, gt=0.0)
    alpha: float = bounded(1.0, ge=0.0)
    hidden_layer_sizes: list[int] = bounded([16], ge=1)
    max_iter: int = bounded(500, ge=10)
    split: ZSplit = field(default_factory=ZSplit)
    bootstrap_samples: int = bounded(300, ge=20)
    bootstrap_block_bars: int = bounded(48, ge=1)
    output_dir: str = "lightning_logs/experts/Z-Combiner"
    seed: int = 0

    def check(self) -> None:
        """Model must match the mode; the period must be known."""
        allowed = {"classification": ("logistic", "mlp"), "regression": ("ridge", "mlp_regressor")}[self.mode]
        if self.model not in allowed:
            raise ConfigError(f"key 'model' = {self.model!r}: mode {self.mode!r} takes one of {list(allowed)}")
        check_periods("period", self.period)
        if not self.feature_prefixes:
            raise ConfigError("key 'feature_prefixes' = []: list at least one column prefix")


def load_z_config(path: str | Path, overrides: dict | None = None) -> ZConfig:
    """Load and validate the Z-Combiner YAML."""
    return load_config(path, ZConfig, overrides)


@dataclass
class ZData:
    """Rows of one period / target, in time order, with inputs and expert scores."""

    frame: pd.DataFrame
    inputs: list[str]
    expert_scores: list[str]
    y: np.ndarray
    X: np.ndarray


def _is_probability(z: pd.DataFrame, col: str) -> bool:
    # a regression score has an __uncertainty companion; a classification score has none
    return col.endswith("__score") and col.replace("__score", "__uncertainty") not in z.columns


def prepare(z: pd.DataFrame, cfg: ZConfig) -> ZData:
    """Select rows, inputs and expert score columns (classification scores as logits)."""
    if cfg.target not in z.columns:
        raise ConfigError(f"key 'target' = {cfg.target!r}: not a column of {cfg.data_path}")
    rows = z[z["period"] == cfg.period]
    inputs = [c for c in rows.columns if c.startswith(tuple(cfg.feature_prefixes))
              and not c.endswith(NON_INPUT_SUFFIXES) and pd.api.types.is_numeric_dtype(rows[c])]
    inputs = [c for c in inputs if rows[c].notna().any()]
    experts = [c for c in inputs if c.endswith(f"__{cfg.target}__score")]
    if not inputs:
        raise ConfigError(f"key 'feature_prefixes' = {cfg.feature_prefixes}: select no column of {cfg.data_path}")
    if not experts:
        raise DataError(f"{cfg.data_path}: no expert score column for {cfg.target} (<expert>__{cfg.target}__score) "
                        f"among the selected inputs; the baselines need at least one")
    rows = rows.dropna(subset=[cfg.target, *inputs]).sort_values(["timestamp", "symbol"], ignore_index=True)
    if len(rows) < 200:
        raise DataError(f"{cfg.data_path}: only {len(rows)} {cfg.period} rows have {cfg.target} and every input; "
                        f"need >= 200 (check the experts' OOF coverage)")
    X = np.array(rows[inputs].to_numpy(dtype=np.float64))  # a writable copy (pandas may hand out a read-only view)
    for j, col in enumerate(inputs):
        if _is_probability(rows, col):
            X[:, j] = logit(np.clip(X[:, j], 1e-6, 1 - 1e-6))
    return ZData(rows, inputs, experts, rows[cfg.target].to_numpy(dtype=np.float64), X)


def holdout_split(ts: pd.Series, cfg: ZConfig) -> TimeSplit:
    """Fit span before the hold-out share of the timeline, hold-out after the embargo (the shared rule)."""
    h = horizon_of(cfg.target)
    start = time_at_share(ts, 1 - cfg.split.holdout_fraction)
    return TimeSplit.two_way(start, cfg.period, h, embargo_bars(cfg.split.embargo_bars, h, "Z-Combiner split"))


def _estimator(cfg: ZConfig):
    if cfg.model == "logistic":
        est = LogisticRegression(C=cfg.C, max_iter=2000)
    elif cfg.model == "mlp":
        est = MLPClassifier(tuple(cfg.hidden_layer_sizes), alpha=cfg.alpha * 1e-3, max_iter=cfg.max_iter,
                            early_stopping=True, random_state=cfg.seed)
    elif cfg.model == "ridge":
        est = Ridge(alpha=cfg.alpha)
    else:
        est = MLPRegressor(tuple(cfg.hidden_layer_sizes), alpha=cfg.alpha * 1e-3, max_iter=cfg.max_iter,
                           early_stopping=True, random_state=cfg.seed)
    return make_pipeline(StandardScaler(), est)  # the scaler is fit on the fit rows only, inside the pipeline


def _raw_output(model, X: np.ndarray, mode: str) -> np.ndarray:
    if mode == "regression":
        return model.predict(X)
    return logit(np.clip(model.predict_proba(X)[:, 1], 1e-9, 1 - 1e-9))


class ZCombiner:
    """sklearn-style stacker: ``fit(X, y, timestamps)`` then ``predict`` (probability or value).

    ``fit`` runs the inner purged walk-forward folds to fit the output calibration on out-of-fold outputs,
    then fits the final model on all rows given. Every ``fit`` starts from scratch.
    """

    def __init__(self, cfg: ZConfig) -> None:
        self.cfg = cfg

    def fit(self, X: np.ndarray, y: np.ndarray, ts: pd.Series) -> ZCombiner:
        """Fit on rows of the fit span only (``ts``: their decision timestamps)."""
        cfg = self.cfg
        h = horizon_of(cfg.target)
        emb = embargo_bars(cfg.split.embargo_bars, h, "Z-Combiner split")
        self.calibrator_ = None
        self.inner_folds_: list[tuple[int, int]] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if cfg.mode == "classification" and cfg.calibration != "none":
                oof_logit, oof_y = [], []
                for fold in expanding_splits(ts, cfg.split.n_folds, cfg.period, h, emb):
                    tr, ev = fold.indices(ts).values()
                    if len(tr) < 50 or len(ev) == 0 or len(np.unique(y[tr])) < 2:
                        continue
                    m = _estimator(cfg).fit(X[tr], y[tr])
                    oof_logit.append(_raw_output(m, X[ev], cfg.mode))
                    oof_y.append(y[ev])
                    self.inner_folds_.append((len(tr), len(ev)))
                if oof_logit:
                    self.calibrator_ = make_calibrator(cfg.calibration, ["z"]).fit(np.concatenate(oof_logit),
                                                                                   np.concatenate(oof_y))
                    if self.calibrator_.warnings_[0]:
                        logger.warning("Z-Combiner calibration (%s): %s", cfg.calibration,
                                       self.calibrator_.warnings_[0])
            self.model_ = _estimator(cfg).fit(X, y)
        return self

    @property
    def head(self) -> tuple[float, float]:
        """(scale, bias) of the contract's ``sigmoid(scale * logit + bias)`` (NaN, NaN for isotonic)."""
        if self.calibrator_ is None:
            return 1.0, 0.0
        return float(self.calibrator_.scale_[0]), float(self.calibrator_.bias_[0])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probability (classification) or value (regression)."""
        raw = _raw_output(self.model_, X, self.cfg.mode)
        if self.cfg.mode == "regression":
            return raw
        return expit(raw) if self.calibrator_ is None else self.calibrator_.predict_proba(raw)


def _score(y: np.ndarray, s: np.ndarray, mode: str) -> dict[str, float]:
    if mode == "regression":
        return {"rmse": float(np.sqrt(np.mean((s - y) ** 2)))}
    two = len(np.unique(y)) > 1
    return {"pr_auc": float(average_precision_score(y, s)) if two else float("nan"),
            "roc_auc": float(roc_auc_score(y, s)) if two else float("nan"),
            "ece": ece(y, s, 15, "quantile"), "brier": brier_score(y, s)}


def _loss_name(mode: str) -> str:
    """The proper score that decides "better than no skill": Brier (classification) or RMSE."""
    return "brier" if mode == "classification" else "rmse"


def _headline(mode: str) -> tuple[str, int]:
    """Main metric and its sign (+1: higher is better)."""
    return ("pr_auc", 1) if mode == "classification" else ("rmse", -1)


def block_bootstrap_diff(y: np.ndarray, a: np.ndarray, b: np.ndarray, ts: pd.Series, mode: str, samples: int,
                         block_bars: int, period: str, seed: int,
                         min_block_bars: int = 2) -> tuple[float, float, float]:
    """Block bootstrap over time of the headline metric of ``a`` minus ``b`` (sign: better is positive); (diff, lo5,
    hi95) from :func:`metrics.bootstrap.paired_block_bootstrap`, ``min_block_bars`` being twice the label horizon
    (overlapping labels are dependent)."""
    name, sign = _headline(mode)
    return paired_block_bootstrap(lambda yy, s: _score(yy, s, mode)[name], y, a, b, ts, period, samples, block_bars,
                                  seed, min_block_bars, sign)


@dataclass
class ZResult:
    """Outcome of :func:`train_z`."""

    metrics: dict
    metrics_path: Path
    predictions_path: Path
    report_path: Path
    table: pd.DataFrame


def _baselines(data: ZData, fit: np.ndarray, mode: str) -> tuple[np.ndarray, str, np.ndarray]:
    """(equal-weight scores, name of the best single expert on the fit span, no-skill constant), all rows."""
    scores = data.frame[data.expert_scores].to_numpy(dtype=np.float64)
    metric, sign = _headline(mode)
    best = max(data.expert_scores, key=lambda c: sign * _score(data.y[fit], data.frame[c].to_numpy()[fit],
                                                                  mode)[metric])
    # no skill: the fit span's base rate (or mean) for every row, known before the hold-out starts
    return scores.mean(axis=1), best, np.full(len(data.y), float(np.mean(data.y[fit])))


def _check_inputs_vary(data: ZData, fit: np.ndarray, cfg: ZConfig) -> None:
    """Refuse input columns that are constant on the fit span (nothing to learn; often a collapsed calibration)."""
    x = data.X[fit]
    const = [c for j, c in enumerate(data.inputs) if not np.nanstd(x[:, j]) > 0]
    if const:
        raise DataError(f"{cfg.data_path}: input column(s) {const} are constant on the fit span "
                        f"({len(fit)} {cfg.period} rows): they carry no information (an expert whose calibrated "
                        f"scores collapsed?); drop them from feature_prefixes or fix the expert")


def verdict(table: pd.DataFrame, mode: str, base_rate_only: tuple[str, ...] = ()) -> str:
    """One sentence on the hold-out: which models beat no skill on Brier (RMSE), or that none does.

    ``base_rate_only`` names models whose probabilities are the base rate (a collapsed calibration): a hair
    of Brier below no skill from the tie-break order is not skill.
    """
    loss = _loss_name(mode)
    ref = float(table.loc[table["model"] == "no_skill", loss].iloc[0])
    better = table[(table["model"] != "no_skill") & (table[loss] < ref)
                   & ~table["model"].isin(base_rate_only)]["model"].tolist()
    if not better:
        return (f"no model beats no skill on the hold-out: every {loss} is at or above no skill's {ref:.4f}; "
                f"the experts carry no usable signal for this target here")
    return f"better than no skill ({loss} {ref:.4f}) on the hold-out: {', '.join(better)}"


def _prediction_frame(data: ZData, rows: np.ndarray, score: np.ndarray, cfg: ZConfig, split: str, model: str,
                      head: tuple[float, float]) -> pd.DataFrame:
    f = data.frame.iloc[rows]
    out = pd.DataFrame({
        "symbol": f["symbol"].to_numpy(), "period": f["period"].to_numpy(), "time_idx": f["time_idx"].to_numpy(),
        "timestamp": pd.to_datetime(f["timestamp"], utc=True).dt.as_unit("ns").to_numpy(), "target": cfg.target,
        "kind": cfg.mode, "split": split, "score": score, "uncertainty": np.nan, "p10": np.nan,
        "p50": score if cfg.mode == "regression" else np.nan, "p90": np.nan,
        "head_scale": head[0], "head_bias": head[1], "y_true": data.y[rows], "schema_ver": "1",
        "data_ver": "", "expert_ver": model, "train_window_id": "", "antilog_return": np.nan, "future_price": np.nan,
    })
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True)
    return out.astype({k: v for k, v in PREDICTION_DTYPES.items() if v != "datetime64[ns, UTC]"})[PREDICTION_COLUMNS]


def train_z(cfg: ZConfig, z: pd.DataFrame | None = None) -> ZResult:
    """Fit on the earlier span, compare with the baselines on the later one, write the outputs."""
    if z is None:
        if not Path(cfg.data_path).is_file():
            raise DataError(f"key 'data_path' = {cfg.data_path!r}: file not found; build it with "
                            f"pipelines/build_oof_for_z.py")
        z = pd.read_parquet(cfg.data_path)
    data = prepare(z, cfg)
    ts = pd.to_datetime(data.frame["timestamp"], utc=True)
    split = holdout_split(ts, cfg)
    fit, hold = split.indices(ts).values()
    if len(fit) < 200 or len(hold) < 50:
        raise DataError(f"{cfg.data_path}: {len(fit)} fit rows and {len(hold)} hold-out rows after the purge; "
                        f"need >= 200 and >= 50 (lower split.holdout_fraction or produce more OOF predictions)")
    _check_inputs_vary(data, fit, cfg)
    zc = ZCombiner(cfg).fit(data.X[fit], data.y[fit], ts.iloc[fit])
    z_score = zc.predict(data.X)
    ew, best, no_skill = _baselines(data, fit, cfg.mode)
    candidates = {"z_combiner": z_score, "equal_weight": ew, "best_expert": data.frame[best].to_numpy(),
                  "no_skill": no_skill}
    yh = data.y[hold]
    table = pd.DataFrame([{"model": name, **_score(yh, s[hold], cfg.mode)} for name, s in candidates.items()])
    loss = _loss_name(cfg.mode)
    z_beats_no_skill = bool(table.loc[table["model"] == "z_combiner", loss].iloc[0]
                            < table.loc[table["model"] == "no_skill", loss].iloc[0])
    # A stack whose calibration found a negative slope on its own out-of-fold fit rows predicts the base rate:
    # its probabilities are no skill, and the order it keeps as a tie-break is no claim that can "beat" anything.
    slope = getattr(zc.calibrator_, "scales_fit_", np.array([np.inf]))[0] if zc.calibrator_ else np.inf
    base_rate_only = bool(np.isfinite(slope) and slope < RANK_KEEPING_SLOPE)
    if base_rate_only:
        z_beats_no_skill = False
    comparisons = {}
    for base in ("equal_weight", "best_expert", "no_skill"):
        diff, lo, hi = block_bootstrap_diff(yh, z_score[hold], candidates[base][hold], ts.iloc[hold], cfg.mode,
                                            cfg.bootstrap_samples, cfg.bootstrap_block_bars, cfg.period, cfg.seed,
                                            min_block_bars=2 * horizon_of(cfg.target))
        comparisons[base] = {"diff": diff, "ci90_low": lo, "ci90_high": hi, "interval_above_zero": bool(lo > 0),
                             "beats": bool(lo > 0) and z_beats_no_skill, "base_rate_only": base_rate_only}
    metrics = {
        "config": dataclasses.asdict(cfg), "inputs": data.inputs, "expert_scores": data.expert_scores,
        "best_expert": best, "calibration": {"method": cfg.calibration if zc.calibrator_ else "none",
                                             "scale": zc.head[0], "bias": zc.head[1],
                                             "warning": zc.calibrator_.warnings_[0] if zc.calibrator_ else ""},
        "inner_folds": zc.inner_folds_, "fit_rows": int(len(fit)), "holdout_rows": int(len(hold)),
        "fit_span": [str(ts.iloc[fit].min()), str(ts.iloc[fit].max())],
        "holdout_span": [str(ts.iloc[hold].min()), str(ts.iloc[hold].max())],
        "holdout_base_rate" if cfg.mode == "classification" else "holdout_mean": float(np.mean(yh)),
        "no_skill_value": float(no_skill[0]), "z_beats_no_skill": z_beats_no_skill,
        "holdout": table.to_dict(orient="records"), "comparisons": comparisons,
        "verdict": verdict(table, cfg.mode, ("z_combiner",) if base_rate_only else ()),
    }
    return _write_outputs(cfg, data, fit, hold, candidates, zc, metrics, table)


def _write_outputs(cfg: ZConfig, data: ZData, fit: np.ndarray, hold: np.ndarray, candidates: dict, zc: ZCombiner,
                   metrics: dict, table: pd.DataFrame) -> ZResult:
    out_dir, stamp = Path(cfg.output_dir), utc_stamp()
    head = zc.head if cfg.mode == "classification" else (1.0, 0.0)
    preds = pd.concat([_prediction_frame(data, fit, candidates["z_combiner"][fit], cfg, "fit", "z", head),
                       _prediction_frame(data, hold, candidates["z_combiner"][hold], cfg, "holdout", "z", head)],
                      ignore_index=True)
    pred_path = write_parquet(preds, out_dir / "predictions" / f"predictions_Z-Combiner_{cfg.period}_{stamp}.parquet")
    reports = []
    for name, s in candidates.items():
        frame = _prediction_frame(data, hold, s[hold], cfg, "holdout", name, (1.0, 0.0))
        if cfg.mode == "regression":
            frame["p10"], frame["p90"] = np.nan, np.nan
        reports.append(eval_report(frame, no_skill={cfg.target: float(candidates["no_skill"][0])}).assign(model=name))
    report_path = write_csv(pd.concat(reports, ignore_index=True),
                            out_dir / f"eval_report_Z-Combiner_{cfg.period}_{stamp}.csv")
    metrics_path = write_json(metrics, out_dir / f"metrics_{stamp}.json")
    return ZResult(metrics, metrics_path, pred_path, report_path, table)


def format_comparison(result: ZResult) -> str:
    """Hold-out comparison table, the bootstrap verdicts and the no-skill verdict."""
    m = result.metrics
    lines = [result.table.to_string(index=False, float_format=lambda v: f"{v:.4f}")]
    if "holdout_base_rate" in m:
        lines.append(f"hold-out base rate {m['holdout_base_rate']:.4f}; no skill = fit-span base rate "
                     f"{m['no_skill_value']:.4f}")
    for base, c in m["comparisons"].items():
        if c["beats"]:
            verdict_ = "beats"
        elif c.get("base_rate_only"):
            verdict_ = "does not beat (the stack ranks backwards on its fit span, so it predicts the base rate)"
        elif c["interval_above_zero"]:
            verdict_ = "does not beat (interval above 0, but not better than no skill on the hold-out loss)"
        elif c["ci90_high"] < 0:
            verdict_ = "worse (interval below 0)"
        elif np.isnan(c["ci90_low"]):
            verdict_ = "no verdict (hold-out too short for the bootstrap)"
        else:
            verdict_ = "does not beat (interval includes 0)"
        lines.append(f"z_combiner vs {base}: diff {c['diff']:+.4f}, 90% block-bootstrap interval "
                     f"[{c['ci90_low']:+.4f}, {c['ci90_high']:+.4f}] -> {verdict_}")
    lines.append(f"best expert (chosen on the fit span): {m['best_expert']}")
    lines.append(m["verdict"])
    return "\n".join(lines)
