"""Reading a leaf's table: only its period, symbols and usable columns.

``read_table(path, leaf)`` gives the projected table as one frame; :class:`LeafTable` holds a leaf's rows in
training order and, for a partitioned dataset, keeps only the narrow columns (ids, close, targets) in memory and
reads the inputs partition by partition straight into one float32 array, so a universe's wide table is never held.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.leaf_config import Leaf
from models.scalers import BLOCK_ROWS
from src.bars import OHLCV
from utils.errors import DataError
from utils.io import read_frame
from utils.memory import release_freed_memory
from utils.partitioned import (
    is_partitioned,
    panel_columns,
    partition_path,
    partitions,
    read_partition,
    read_partitioned,
    unified_schema,
)
from utils.timeline import ID_COLUMNS, feature_columns, is_target


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


def leaf_rows(leaf: Leaf, table: pd.DataFrame | LeafTable) -> pd.DataFrame:
    """The rows of ``table`` the leaf trains on: its period (and symbols), sorted by symbol and time."""
    if isinstance(table, LeafTable):
        return table.frame
    m = leaf.model
    if m.data.symbols:
        table = table[table["symbol"].isin(m.data.symbols)]
    rows = table[table["period"] == m.period] if not (table["period"] == m.period).all() else table
    if not _sorted_by_symbol_time(rows):
        rows = rows.sort_values(["symbol", "timestamp"])
    rows = rows if isinstance(rows.index, pd.RangeIndex) and rows.index.start == 0 else rows.reset_index(drop=True)
    if rows.empty:
        raise DataError(f"{leaf.config_path}: no {m.period} rows in {m.data.path}")
    return rows


def _sorted_by_symbol_time(frame: pd.DataFrame) -> bool:
    """Whether rows are already ordered by symbol, then time (a projected read is): no sorted copy needed."""
    sym = frame["symbol"].to_numpy()
    if len(sym) < 2:
        return True
    same = sym[1:] == sym[:-1]
    ts = pd.DatetimeIndex(frame["timestamp"]).asi8
    return bool((sym[1:] >= sym[:-1]).all() and (np.diff(ts)[same] > 0).all())


class LeafTable:
    """A leaf's rows in training order (symbol, then time).

    ``frame`` holds every row: with all the table's columns when the table is in memory (:meth:`of`), or only the
    narrow ones (ids, ``close``, the targets) when it is read from a partitioned dataset (:meth:`read`); then
    :meth:`inputs` reads the chosen input columns partition by partition into one float32 array and
    :meth:`fit_frame` reads the few series a statistic is fit on.

    Parameters
    ----------
    frame : DataFrame
        The leaf's rows, sorted by symbol and time, with a ``RangeIndex``.
    source : Path, optional
        The partitioned dataset the other columns are read from.
    parts : list of (period, symbol, rows, order), optional
        The dataset's partitions in ``frame`` order; ``order`` sorts a partition's rows by time (None if sorted).
    types : dict, optional
        Arrow type of every column the leaf can read from ``source``.
    """

    def __init__(self, frame: pd.DataFrame, source: Path | None = None,
                 parts: list[tuple[str, str, int, np.ndarray | None]] | None = None,
                 types: dict[str, pa.DataType] | None = None) -> None:
        self.frame, self._source, self._parts, self._types = frame, source, parts or [], types or {}

    @classmethod
    def of(cls, leaf: Leaf, table: pd.DataFrame) -> LeafTable:
        """The leaf's rows of a table in memory."""
        return cls(leaf_rows(leaf, table))

    @classmethod
    def read(cls, leaf: Leaf) -> LeafTable:
        """The leaf's rows from its ``data.path``: narrow, when that is a partitioned dataset."""
        src = data_source(leaf.model.data.path)
        return _open_partitioned(leaf, src) if is_partitioned(src) else cls.of(leaf, read_table(src, leaf))

    def numeric(self, exclude: list[str] | set[str]) -> list[str]:
        """Candidate inputs (numeric, not an id, not a target, not in ``exclude``), in table order."""
        if self._source is None:
            return feature_columns(self.frame, exclude=exclude)
        skip = set(ID_COLUMNS) | set(exclude)
        return [c for c, t in self._types.items() if c not in skip and not is_target(c)
                and (pa.types.is_integer(t) or pa.types.is_floating(t))]

    def fit_frame(self, columns: list[str], rows: np.ndarray, symbols: list[str] | None = None) -> pd.DataFrame:
        """``symbol`` (when known) and ``columns`` at ``rows`` (positions in ``frame``), of ``symbols`` only."""
        keys = ["symbol"] if "symbol" in self.frame else []
        if symbols is not None and keys:
            rows = rows[np.isin(self.frame["symbol"].to_numpy()[rows], list(symbols))]
        if self._source is None:
            return self.frame.iloc[rows, [self.frame.columns.get_loc(c) for c in keys + list(columns)]]
        pieces, start = [], 0
        for period, symbol, n, order in self._parts:
            local = rows[(rows >= start) & (rows < start + n)] - start
            start += n
            if local.size:
                part = read_partition(self._source, period, symbol, list(columns))
                part = part.iloc[order] if order is not None else part
                pieces.append(part.iloc[local][keys + list(columns)])
        if not pieces:
            return pd.DataFrame(columns=keys + list(columns))
        return pd.concat(pieces, ignore_index=True)

    def inputs(self, columns: list[str], extra: int = 0) -> np.ndarray:
        """The ``[rows, columns + extra]`` float32 array of ``columns`` (a new array, the caller's own; the last
        ``extra`` columns are left for the caller to fill, so that derived inputs need no second copy)."""
        out = np.empty((len(self.frame), len(columns) + extra), dtype=np.float32)
        if self._source is None:
            for start in range(0, len(out), BLOCK_ROWS):  # block by block: no full-size temporary
                out[start:start + BLOCK_ROWS, :len(columns)] = (
                    self.frame.iloc[start:start + BLOCK_ROWS][columns].to_numpy(np.float32))
            return out
        start = 0
        for period, symbol, n, order in self._parts:
            _fill(out[start:start + n, :len(columns)], partition_path(self._source, period, symbol), columns, order)
            start += n
        return out


def _fill(block: np.ndarray, path: Path, columns: list[str], order: np.ndarray | None) -> None:
    """Write ``columns`` of one partition file into ``block`` (NaN for a column the file lacks)."""
    present = set(pq.read_schema(path).names)
    table = pq.read_table(path, columns=[c for c in columns if c in present])
    for j, c in enumerate(columns):
        if c not in present:
            block[:, j] = np.nan
            continue
        values = table.column(c).to_numpy()
        block[:, j] = values if order is None else values[order]


def _open_partitioned(leaf: Leaf, src: Path) -> LeafTable:
    """The narrow frame of a leaf from a partitioned dataset, partition by partition in symbol order."""
    m = leaf.model
    names = leaf_columns(leaf, panel_columns(src))
    targets = {t.name for t in leaf.targets.targets}
    narrow = [c for c in names if (c in ID_COLUMNS or c == "close" or c in targets) and c not in ("symbol", "period")]
    chosen = sorted(partitions(src, [m.period], m.data.symbols), key=lambda p: p[1])
    if not chosen:
        raise DataError(f"{leaf.config_path}: no {m.period} rows in {m.data.path}")
    frames, parts = [], []
    for period, symbol in chosen:
        frame = read_partition(src, period, symbol, narrow).drop(columns=["symbol", "period"])
        ts = pd.DatetimeIndex(frame["timestamp"]).asi8
        order = None if (np.diff(ts) > 0).all() else np.argsort(ts, kind="stable")
        frames.append(frame if order is None else frame.iloc[order])
        parts.append((period, symbol, len(frame), order))
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    # symbol and period as categoricals: codes, not one string per row (a universe has millions of rows)
    codes = np.repeat(np.arange(len(chosen)), [p[2] for p in parts])
    frame.insert(0, "period", pd.Categorical.from_codes(np.zeros(len(frame), dtype=np.int8), categories=[m.period]))
    frame.insert(0, "symbol", pd.Categorical.from_codes(codes, categories=[p[1] for p in chosen]))
    schema = unified_schema(src)
    types = {c: schema.field(c).type for c in names if c not in ("symbol", "period")}
    del frames
    release_freed_memory()  # the per-partition frames: small blocks glibc would keep
    return LeafTable(frame, src, parts, types)


def as_leaf_table(leaf: Leaf, table: pd.DataFrame | LeafTable | None) -> LeafTable:
    """``table`` as the leaf's :class:`LeafTable` (read from ``data.path`` when None)."""
    if table is None:
        return LeafTable.read(leaf)
    return table if isinstance(table, LeafTable) else LeafTable.of(leaf, table)
