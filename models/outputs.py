"""The experts' prediction contract: long frames, the parquet writer, validation artefacts.

``predictions_{expert}_{period}_{timestamp}.parquet`` has one row per (symbol, period, time_idx,
target) with the columns of :data:`PREDICTION_COLUMNS` (dtypes in :data:`PREDICTION_DTYPES`).
Values that a target kind does not define are NaN (``uncertainty`` and quantiles of a
classification target; ``antilog_return`` / ``future_price`` of a non-log-return target;
``y_true`` of a bar whose outcome is not known yet; ``head_scale`` / ``head_bias`` of a classification
target calibrated with ``isotonic``, whose map has no affine form); everything else is always finite.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from metrics.calibration import reliability_curve
from utils.io import atomic_path, read_csv_fast, write_csv, write_parquet

logger = logging.getLogger(__name__)

PREDICTION_DTYPES: dict[str, str] = {
    "symbol": "str", "period": "str", "time_idx": "int64", "timestamp": "datetime64[ns, UTC]", "target": "str",
    "kind": "str", "split": "str", "score": "float64", "uncertainty": "float64", "p10": "float64", "p50": "float64",
    "p90": "float64", "head_scale": "float64", "head_bias": "float64", "y_true": "float64", "schema_ver": "str",
    "data_ver": "str", "expert_ver": "str", "train_window_id": "str", "antilog_return": "float64",
    "future_price": "float64",
}
PREDICTION_COLUMNS = list(PREDICTION_DTYPES)
VERSION_FIELDS = ("schema_ver", "data_ver", "expert_ver", "train_window_id")


def utc_stamp() -> str:
    """File-name timestamp, UTC, to the microsecond (two runs in one second do not collide)."""
    return pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%S%fZ")


def long_frame(decoded: dict[str, np.ndarray], target_names: list[str], kinds: list[str], quantiles: list[float],
               categories: dict[str, list[str]], versions: dict[str, str], split: str) -> pd.DataFrame:
    """Turn decoded ``[n, T]`` arrays into the long prediction frame (one row per sample and target)."""
    n, t = decoded["score"].shape
    sym = np.asarray(categories["symbol"], dtype=object)[decoded["symbol_idx"]]
    per = np.asarray(categories["period"], dtype=object)[decoded["period_idx"]]
    frame = pd.DataFrame({
        "symbol": np.repeat(sym, t), "period": np.repeat(per, t),
        "time_idx": np.repeat(decoded["time_idx"].astype(np.int64), t),
        "timestamp": pd.to_datetime(np.repeat(decoded["timestamp"].astype(np.int64), t), utc=True).as_unit("ns"),
        "target": np.tile(np.asarray(target_names, dtype=object), n),
        "kind": np.tile(np.asarray(kinds, dtype=object), n), "split": split,
        "score": decoded["score"].ravel(), "uncertainty": decoded["uncertainty"].ravel(),
    })
    for level, col in ((0.1, "p10"), (0.5, "p50"), (0.9, "p90")):
        frame[col] = decoded["quantiles"][:, :, quantiles.index(level)].ravel() if level in quantiles else np.nan
    for col in ("head_scale", "head_bias", "y_true"):
        frame[col] = decoded[col].ravel()
    for col in VERSION_FIELDS:
        frame[col] = str(versions.get(col, ""))
    frame["antilog_return"] = decoded["antilog_return"].ravel()
    frame["future_price"] = decoded["future_price"].ravel()
    frame = frame.astype({k: v for k, v in PREDICTION_DTYPES.items() if v != "datetime64[ns, UTC]"})
    return frame[PREDICTION_COLUMNS].sort_values(["symbol", "period", "time_idx", "target"], ignore_index=True)


def write_predictions(frame: pd.DataFrame, folder: str | Path, expert: str, period: str, stamp: str) -> Path:
    """Atomically write ``predictions_{expert}_{period}_{stamp}.parquet`` into ``folder``."""
    path = write_parquet(frame, Path(folder) / f"predictions_{expert}_{period}_{stamp}.parquet")
    logger.info("predictions: %s (%d rows)", path, len(frame))
    return path


def append_calibration_csv(rows: pd.DataFrame, path: str | Path) -> Path:
    """Append one validation epoch's calibration rows to ``val_calibration.csv`` (atomic rewrite)."""
    path = Path(path)
    if path.is_file():
        rows = pd.concat([read_csv_fast(path), rows], ignore_index=True)
    return write_csv(rows, path)


def reliability_figure(frame: pd.DataFrame, n_bins: int = 15, title: str = ""):
    """Matplotlib figure: one reliability diagram (equal-mass bins) per classification target."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cls = frame[(frame["kind"] == "classification") & np.isfinite(frame["y_true"])]
    targets = list(dict.fromkeys(cls["target"]))
    fig, axes = plt.subplots(1, max(len(targets), 1), figsize=(4.2 * max(len(targets), 1), 4), squeeze=False)
    for ax, target in zip(axes[0], targets, strict=False):
        part = cls[cls["target"] == target]
        curve = reliability_curve(part["y_true"].to_numpy(), part["score"].to_numpy(), n_bins, "quantile")
        lo = float(min(curve["p_mean"].min(), curve["y_rate"].min()))
        hi = float(max(curve["p_mean"].max(), curve["y_rate"].max()))
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--", label="ideal")
        ax.plot(curve["p_mean"], curve["y_rate"], marker="o", label="model")
        ax.set_xlabel("mean predicted probability")
        ax.set_ylabel("observed frequency")
        ax.set_title(target, fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | Path) -> Path:
    """Write a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path
