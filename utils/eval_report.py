"""Per symbol x period evaluation tables of an expert's predictions.

:func:`eval_report` turns the long prediction frame (the ``predictions_*.parquet`` contract: one row
per symbol, period, time_idx and target) into one row per (symbol, period, target) plus an ``ALL``
row per (period, target):

* classification targets: AP, ROC-AUC, ECE (15 equal-mass bins, and equal-width), Brier, NLL,
  accuracy, base rate;
* regression targets: RMSE, MAE and IC (Spearman rank correlation with the outcome) of P50, P10/P50/P90
  coverage and pinball losses;
* ``n``: rows with a known outcome;
* **no skill** beside every row: ``no_skill`` (the constant a skill-less forecaster would issue: the fit
  span's base rate, or its mean for regression, when the caller knows it, else the evaluated rows' own,
  which is a stricter reference), ``brier_no_skill`` / ``nll_no_skill`` and the Brier skill score
  ``brier_skill = 1 - brier / brier_no_skill`` (classification), ``rmse_no_skill`` and
  ``rmse_skill = 1 - rmse / rmse_no_skill`` (regression). A skill score at or below 0 means the model does
  no better than that constant.

:func:`write_eval_report` writes ``eval_report_<expert>_<period>_<timestamp>.csv`` atomically and,
given a TensorBoard writer, logs the ``ALL`` rows as scalars and the table as text.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from utils.io import write_csv
from utils.metric_factory import binary_nll, brier_score, classification_metrics, regression_metrics

logger = logging.getLogger(__name__)

CLASS_COLUMNS = ["ap", "roc_auc", "ece", "ece_uniform", "brier", "nll", "accuracy", "base_rate", "no_skill",
                 "brier_no_skill", "nll_no_skill", "brier_skill"]
REG_COLUMNS = ["rmse", "mae", "ic", "cov_p10", "cov_p50", "cov_p90", "pinball", "pinball_p10", "pinball_p50",
               "pinball_p90", "rmse_no_skill", "rmse_skill"]
KEY_COLUMNS = ["symbol", "period", "target", "kind", "n"]


def _metrics(group: pd.DataFrame, kind: str, n_bins: int, no_skill: float | None) -> dict[str, float]:
    g = group[np.isfinite(group["y_true"].to_numpy(dtype=np.float64))]
    if g.empty:
        return {"n": 0}
    y = g["y_true"].to_numpy(dtype=np.float64)
    ref = float(np.mean(y)) if no_skill is None or not np.isfinite(no_skill) else float(no_skill)
    const = np.full(len(y), ref)
    if kind == "classification":
        out = classification_metrics(y, g["score"].to_numpy(), n_bins)
        out.update(no_skill=ref, brier_no_skill=brier_score(y, const), nll_no_skill=binary_nll(y, const))
        out["brier_skill"] = 1.0 - out["brier"] / out["brier_no_skill"] if out["brier_no_skill"] > 0 else np.nan
        return out
    qs = {lvl: g[col].to_numpy() for lvl, col in ((0.1, "p10"), (0.5, "p50"), (0.9, "p90"))
          if col in g and np.isfinite(g[col].to_numpy(dtype=np.float64)).all()}
    qs.setdefault(0.5, g["score"].to_numpy())
    out = regression_metrics(y, dict(sorted(qs.items())))
    out.update(no_skill=ref, rmse_no_skill=float(np.sqrt(np.mean((y - ref) ** 2))))
    out["rmse_skill"] = 1.0 - out["rmse"] / out["rmse_no_skill"] if out["rmse_no_skill"] > 0 else np.nan
    return out


def eval_report(predictions: pd.DataFrame, n_bins: int = 15, no_skill: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per (symbol, period, target) and an ``ALL`` symbol row per (period, target).

    Parameters
    ----------
    predictions : DataFrame
        Long prediction frame with ``symbol, period, target, kind, score, y_true`` and, for
        regression targets, ``p10, p50, p90``. Rows with unknown ``y_true`` are not scored.
    n_bins : int
        Bins of the calibration error.
    no_skill : dict, optional
        Per target, the no-skill constant (the fit span's base rate or mean); missing targets use the
        evaluated rows' own.
    """
    rows = []
    for (period, target), part in predictions.groupby(["period", "target"], sort=True, observed=True):
        kind = str(part["kind"].iloc[0])
        groups = [(str(s), g) for s, g in part.groupby("symbol", sort=True, observed=True)] + [("ALL", part)]
        for symbol, g in groups:
            rows.append({"symbol": symbol, "period": period, "target": target, "kind": kind,
                         **_metrics(g, kind, n_bins, (no_skill or {}).get(str(target)))})
    frame = pd.DataFrame(rows)
    cols = KEY_COLUMNS + [c for c in CLASS_COLUMNS + REG_COLUMNS if c in frame.columns]
    return frame.reindex(columns=cols)


def write_eval_report(report: pd.DataFrame, folder: str | Path, expert: str, period: str, stamp: str,
                      writer=None, step: int = 0, tag: str = "eval") -> Path:
    """Write ``eval_report_<expert>_<period>_<stamp>.csv`` into ``folder``; optionally log to TensorBoard.

    Parameters
    ----------
    writer : torch.utils.tensorboard.SummaryWriter, optional
        Receives ``<tag>/<target>/<metric>`` scalars for the ``ALL`` rows and the table as text.
    """
    path = write_csv(report, Path(folder) / f"eval_report_{expert}_{period}_{stamp}.csv")
    if writer is not None:
        for _, row in report[report["symbol"] == "ALL"].iterrows():
            for col in CLASS_COLUMNS + REG_COLUMNS:
                value = row.get(col)
                if value is not None and np.isfinite(value):
                    writer.add_scalar(f"{tag}/{row['target']}/{col}", float(value), step)
        writer.add_text(f"{tag}/report", format_table(report).replace("\n", "  \n"), step)
    logger.info("eval report: %s", path)
    return path


def format_table(report: pd.DataFrame, symbols: str | None = None) -> str:
    """Compact text table (``symbols='ALL'`` keeps only the aggregate rows)."""
    view = report if symbols is None else report[report["symbol"] == symbols]
    show = [c for c in ["symbol", "target", "n", "ap", "roc_auc", "ece", "brier", "rmse", "ic", "cov_p10",
                        "cov_p90", "pinball"] if c in view.columns]
    return view[show].to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-")
