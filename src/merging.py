"""``merged_main``: one long panel from the per-period targeted+indicated files."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from src.generate_targets_auto import TARGETED_DIR
from utils.errors import DataError
from utils.io import read_csv_fast, write_csv, write_parquet, write_pickle

logger = logging.getLogger(__name__)

MERGED_CSV = Path("data/merged/full_merged.csv")
MERGED_PKL = Path("data/pkl_merged/full_merged.pkl")
ID_COLUMNS = ["symbol", "period", "timestamp", "time_idx", "gap_before"]


def _read_period_file(path: Path) -> pd.DataFrame:
    frame = read_csv_fast(path)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def discover_symbols(source_dir: str | Path, period: str) -> list[str]:
    """Symbols with a ``<SYMBOL>_<period>.csv`` file in ``source_dir/<period>``."""
    folder = Path(source_dir) / period
    suffix = f"_{period}.csv"
    return sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}"))


def order_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Ids first, then every other column in its existing order, targets last."""
    ids = [c for c in ID_COLUMNS if c in frame.columns]
    targets = [c for c in frame.columns if c.startswith("target_")]
    rest = [c for c in frame.columns if c not in ids and c not in targets]
    return frame[ids + rest + targets]


def merged_main(periods: Iterable[str], source_dir: str | Path = TARGETED_DIR,
                merged_csv: str | Path = MERGED_CSV, merged_pkl: str | Path = MERGED_PKL) -> pd.DataFrame:
    """Merge every symbol's file of every period into one long panel and write it.

    Writes ``merged_csv``, ``merged_pkl`` and a parquet twin next to the CSV (atomically).

    Returns
    -------
    DataFrame
        The merged panel sorted by period (as given), symbol and timestamp.
    """
    parts = []
    for tf in periods:
        symbols = discover_symbols(source_dir, tf)
        if not symbols:
            raise DataError(f"no {tf} files in {Path(source_dir) / tf}; run the targets step for {tf} first")
        logger.info("%s: merging %d symbols (%s)", tf, len(symbols), ", ".join(symbols))
        parts.extend(_read_period_file(Path(source_dir) / tf / f"{s}_{tf}.csv") for s in symbols)
    merged = order_columns(pd.concat(parts, ignore_index=True))
    write_csv(merged, merged_csv)
    write_parquet(merged, Path(merged_csv).with_suffix(".parquet"))
    write_pickle(merged, merged_pkl)
    logger.info("merged panel: %d rows x %d columns -> %s (+ .parquet, %s)",
                len(merged), merged.shape[1], merged_csv, merged_pkl)
    return merged
