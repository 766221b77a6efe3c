"""Reading a leaf's table: only its period, symbols and usable columns (``read_table(path, leaf)``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from models.leaf_config import Leaf
from src.bars import OHLCV
from utils.io import read_frame
from utils.partitioned import is_partitioned, panel_columns, read_partitioned
from utils.timeline import ID_COLUMNS


def data_source(path: str | Path) -> Path:
    """Where a leaf's ``data.path`` is: the file itself, or the partitioned dataset it names.

    ``.../full_merged_with_fundamentals.parquet`` resolves to the partitioned ``.../full_merged_with_fundamentals/``
    when that is present and the single file is not (a fusion above the export limit writes only the dataset).
    """
    path = Path(path)
    if is_partitioned(path):
        return path
    if not path.is_file() and is_partitioned(path.with_suffix("")):
        return path.with_suffix("")
    return path


def read_table(path: str | Path, leaf: Leaf | None = None) -> pd.DataFrame:
    """A leaf's table (partitioned dataset, parquet, pkl or csv).

    With ``leaf``, a partitioned dataset or a parquet file is read through a projection: only the leaf's period
    (and symbols) and the columns it can use (ids, prices, its targets, the candidates its feature rules name),
    so a wide, multi-period table is never held whole.
    """
    src = data_source(path)
    if leaf is not None and (is_partitioned(src) or (src.suffix == ".parquet" and src.is_file())):
        m = leaf.model
        if is_partitioned(src):
            return read_partitioned(src, periods=[m.period], symbols=m.data.symbols,
                                    columns=leaf_columns(leaf, panel_columns(src)))
        filters = [("period", "==", m.period)] + ([("symbol", "in", list(m.data.symbols))] if m.data.symbols else [])
        return pd.read_parquet(src, columns=leaf_columns(leaf, pq.read_schema(src).names), filters=filters)
    if is_partitioned(src):
        return read_partitioned(src)
    return read_frame(src, "leaf data file not found: {path}; run the fusion (python -m src.fuse_fundamentals) first")


def leaf_columns(leaf: Leaf, names: list[str]) -> list[str]:
    """The columns of a table with columns ``names`` that ``leaf`` can read: ids, prices, its targets and every
    column its feature rules (include, selected-features file, prefixes) could select, in table order."""
    fs = leaf.model.features
    wanted = set(fs.include) | {t.name for t in leaf.targets.targets} | set(ID_COLUMNS) | set(OHLCV)
    if fs.selected_features_file and Path(fs.selected_features_file).is_file():
        lines = Path(fs.selected_features_file).read_text().splitlines()
        wanted |= {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}
    prefixes = tuple(fs.prefixes)
    if not fs.include and not fs.selected_features_file and not prefixes:
        return list(names)  # select_features reports the missing rules
    return [c for c in names if c in wanted or (prefixes and c.startswith(prefixes))]
