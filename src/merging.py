"""The merged panel's single-file forms: ``export_panel`` (from the partitioned panel a build writes) and
``merged_main`` (from per-period targeted+indicated CSV files)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from src.generate_targets_auto import TARGETED_DIR
from utils.errors import DataError
from utils.io import read_csv_fast, write_csv, write_parquet, write_pickle
from utils.partitioned import iter_tables, unified_schema
from utils.timeline import ID_COLUMNS, target_columns

logger = logging.getLogger(__name__)

MERGED_CSV = Path("data/merged/full_merged.csv")
MERGED_PKL = Path("data/pkl_merged/full_merged.pkl")
#: Written beside the merged CSV by each build.
MANIFEST = "build_manifest.json"
INGEST_REPORT = "ingest_report.csv"
BAD_TICKS = "bad_ticks.csv"


def read_manifest(merged_csv: str | Path) -> dict | None:
    """The build manifest beside ``merged_csv`` (raw folder, symbols, periods, market), or None."""
    path = Path(merged_csv).parent / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable build manifest ({exc}); rebuild with src/build_full_merged.py") from None


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
    targets = target_columns(frame)
    rest = [c for c in frame.columns if c not in ids and c not in targets]
    return frame[ids + rest + targets]


def merged_main(periods: Iterable[str], source_dir: str | Path = TARGETED_DIR,
                merged_csv: str | Path = MERGED_CSV, merged_pkl: str | Path = MERGED_PKL,
                symbols: Iterable[str] | None = None, parquet_path: str | Path | None = None) -> pd.DataFrame:
    """Merge the symbols' files of every period into one long panel and write it.

    Writes ``merged_csv``, ``merged_pkl`` and a parquet twin (``parquet_path``, default next to the CSV),
    each atomically. ``symbols`` limits the merge to those symbols (a build passes its own); by default
    every file in the folder is merged.

    Returns
    -------
    DataFrame
        The merged panel sorted by period (as given), symbol and timestamp.
    """
    parts = []
    for tf in periods:
        found = discover_symbols(source_dir, tf)
        chosen = [s for s in found if symbols is None or s in set(symbols)]
        if not chosen:
            raise DataError(f"no {tf} files in {Path(source_dir) / tf}; run the targets step for {tf} first")
        logger.info("%s: merging %d symbols (%s)", tf, len(chosen), ", ".join(chosen))
        parts.extend(_read_period_file(Path(source_dir) / tf / f"{s}_{tf}.csv") for s in chosen)
    merged = order_columns(pd.concat(parts, ignore_index=True))
    write_csv(merged, merged_csv)
    write_parquet(merged, parquet_path or Path(merged_csv).with_suffix(".parquet"))
    write_pickle(merged, merged_pkl)
    logger.debug("merged panel: %d rows x %d columns -> %s (+ .parquet, %s)",
                len(merged), merged.shape[1], merged_csv, merged_pkl)
    return merged


def export_panel(dataset: str | Path, dests: dict[str, Path], exports: Iterable[str],
                 slim_columns: list[str] | None = None) -> None:
    """Write the partitioned panel ``dataset`` as the single-file exports named in ``exports``.

    ``dests`` maps ``csv`` / ``parquet`` / ``pkl`` (and ``slim``: a CSV of ``slim_columns`` only) to their
    (staged) files. CSV and parquet files are streamed one partition at a time; the pickle needs the whole
    panel in memory (exports are on by default only for panels up to ``AUTO_EXPORT_MAX_ROWS`` rows).
    """
    exports = [e for e in exports if e in dests]
    if not exports:
        return
    schema = unified_schema(dataset).remove_metadata()
    writers = {}
    if "csv" in exports:
        writers["csv"] = pacsv.CSVWriter(str(dests["csv"]), schema)
    if "slim" in exports:
        slim_schema = pa.schema([schema.field(c) for c in (slim_columns or schema.names)])
        writers["slim"] = pacsv.CSVWriter(str(dests["slim"]), slim_schema)
    if "parquet" in exports:
        writers["parquet"] = pq.ParquetWriter(str(dests["parquet"]), schema, compression="zstd", use_dictionary=False)
    tables = []
    try:
        for table in iter_tables(dataset, schema):
            for name, writer in writers.items():
                writer.write_table(table.select(slim_columns or schema.names) if name == "slim" else table)
            if "pkl" in exports:
                tables.append(table)
    finally:
        for writer in writers.values():
            writer.close()
    if tables:
        write_pickle(pa.concat_tables(tables).to_pandas(), dests["pkl"])
    logger.debug("exported %s: %s", dataset, ", ".join(str(dests[e]) for e in exports))
