"""A hive-partitioned parquet dataset of a long panel: ``<root>/period=<p>/symbol=<s>/part-0.parquet``.

The build writes its merged panel this way (one file per period and symbol, written one at a time), so no
stage has to hold the whole universe: readers take the periods, symbols and columns they need
(:func:`read_partitioned`) or walk the partitions one by one (:func:`iter_partitions`). The ``symbol`` and
``period`` columns live in the folder names, not in the files; readers put them back as plain strings, first.

``<root>/_dataset.json`` lists the partitions in panel order (periods as built, symbols sorted) and the
column order of the whole panel; files starting with ``_`` or ``.`` are ignored by parquet readers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from utils.errors import DataError
from utils.io import atomic_path, write_json

META = "_dataset.json"
PART = "part-0.parquet"
KEYS = ("symbol", "period")


def partition_path(root: str | os.PathLike[str], period: str, symbol: str) -> Path:
    """The file of one (period, symbol) partition."""
    return Path(root) / f"period={period}" / f"symbol={symbol}" / PART


def write_partition(frame: pd.DataFrame, root: str | os.PathLike[str], period: str, symbol: str,
                    float32: Iterable[str] = ()) -> pa.Table:
    """Write one partition atomically and return the table written.

    ``symbol`` / ``period`` columns are dropped (they are the path); the ``float32`` columns are stored as
    float32 (cast by Arrow, one pass). zstd without dictionary encoding: on float columns, whose values are
    nearly all distinct, the dictionary attempt triples the write time and enlarges the file.
    """
    table = pa.Table.from_pandas(frame.drop(columns=[c for c in KEYS if c in frame.columns]), preserve_index=False)
    cast = set(float32)
    if cast:
        table = table.cast(pa.schema([pa.field(f.name, pa.float32()) if f.name in cast else f for f in table.schema]))
    return write_table_partition(table, root, period, symbol)


def write_table_partition(table: pa.Table, root: str | os.PathLike[str], period: str, symbol: str) -> pa.Table:
    """Write an Arrow table (no ``symbol`` / ``period`` columns) as one partition, atomically."""
    path = partition_path(root, period, symbol)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=False)
    return table


def write_meta(root: str | os.PathLike[str], partitions: list[tuple[str, str]], columns: list[str],
               rows: int) -> Path:
    """Record the panel's partition order, column order and row count (``_dataset.json``)."""
    return write_json({"partitions": [list(p) for p in partitions], "columns": columns, "rows": int(rows)},
                      Path(root) / META)


def read_meta(root: str | os.PathLike[str]) -> dict:
    """The dataset's ``_dataset.json``.

    Raises
    ------
    DataError
        When ``root`` is not a partitioned dataset written by the build.
    """
    path = Path(root) / META
    if not path.is_file():
        raise DataError(f"{root}: not a partitioned panel (no {META}); rebuild it with src/build_full_merged.py")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({exc}); rebuild the panel with src/build_full_merged.py") from None


def is_partitioned(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` holds a partitioned panel."""
    return (Path(root) / META).is_file()


def _chosen(meta: dict, periods: Iterable[str] | None, symbols: Iterable[str] | None) -> list[tuple[str, str]]:
    parts = [tuple(p) for p in meta["partitions"]]
    if periods is not None:
        wanted = list(periods)
        parts = sorted((p for p in parts if p[0] in wanted), key=lambda p: wanted.index(p[0]))
    if symbols is not None:
        keep = set(symbols)
        parts = [p for p in parts if p[1] in keep]
    return parts


def _projection(meta: dict, columns: Iterable[str] | None) -> list[str]:
    names = [c for c in meta["columns"] if c not in KEYS]
    if columns is None:
        return names
    wanted = [c for c in columns if c not in KEYS]
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise DataError(f"column(s) {unknown} are not in the panel ({len(names)} columns); check the names")
    return wanted


def partitions(root: str | os.PathLike[str], periods: Iterable[str] | None = None,
               symbols: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """The ``(period, symbol)`` partitions chosen (see :func:`iter_partitions`), in panel order."""
    return _chosen(read_meta(root), periods, symbols)


def read_partition(root: str | os.PathLike[str], period: str, symbol: str, columns: list[str]) -> pd.DataFrame:
    """One partition's ``columns`` (NaN for a column it lacks), with ``symbol, period`` first."""
    return _read_one(Path(root), period, symbol, columns)


def _read_one(root: Path, period: str, symbol: str, columns: list[str]) -> pd.DataFrame:
    path = partition_path(root, period, symbol)
    present = set(pq.read_schema(path).names)
    frame = pq.read_table(path, columns=[c for c in columns if c in present]).to_pandas()
    missing = [c for c in columns if c not in present]
    if missing:  # a symbol without a source column (e.g. no taker volume): NaN, as a concatenated panel has
        frame = frame.assign(**{c: np.float32(np.nan) for c in missing})
    frame.insert(0, "period", period)
    frame.insert(0, "symbol", symbol)
    return frame[["symbol", "period", *columns]]


def iter_partitions(root: str | os.PathLike[str], periods: Iterable[str] | None = None,
                    symbols: Iterable[str] | None = None,
                    columns: Iterable[str] | None = None) -> Iterator[pd.DataFrame]:
    """Yield the chosen partitions one at a time, in panel order, with ``symbol, period`` first.

    Parameters
    ----------
    root : path-like
        The dataset folder.
    periods, symbols : iterable of str, optional
        Only these (default all); periods keep the order given.
    columns : iterable of str, optional
        Only these columns (besides ``symbol, period``); only they are read from disk.
    """
    meta = read_meta(root)
    cols = _projection(meta, columns)
    for period, symbol in _chosen(meta, periods, symbols):
        yield _read_one(Path(root), period, symbol, cols)


def read_partitioned(root: str | os.PathLike[str], periods: Iterable[str] | None = None,
                     symbols: Iterable[str] | None = None, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """The chosen part of a partitioned panel as one frame (see :func:`iter_partitions`)."""
    parts = list(iter_partitions(root, periods, symbols, columns))
    if not parts:
        raise DataError(f"{root}: no partition for periods {periods} and symbols {symbols}")
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def panel_columns(root: str | os.PathLike[str]) -> list[str]:
    """Every column of the panel, in order (``symbol, period`` first)."""
    return list(read_meta(root)["columns"])


def unified_schema(root: str | os.PathLike[str]) -> pa.Schema:
    """One arrow schema for every partition (``symbol, period`` as strings first, then the panel's columns).

    A column some partitions lack (a source one symbol has no data for) takes its type from the others.
    """
    meta = read_meta(root)
    types: dict[str, pa.DataType] = {}
    for period, symbol in _chosen(meta, None, None):
        for fld in pq.read_schema(partition_path(root, period, symbol)):
            types.setdefault(fld.name, fld.type)
    names = _projection(meta, None)
    return pa.schema([pa.field("symbol", pa.string()), pa.field("period", pa.string()),
                      *(pa.field(c, types.get(c, pa.float32())) for c in names)])


def iter_tables(root: str | os.PathLike[str], schema: pa.Schema | None = None) -> Iterator[pa.Table]:
    """Every partition as an arrow table of one schema (:func:`unified_schema`), in panel order.

    For writers that stream the whole panel into one file (the CSV / parquet exports).
    """
    schema = schema or unified_schema(root)
    for period, symbol in _chosen(read_meta(root), None, None):
        table = pq.read_table(partition_path(root, period, symbol))
        n = table.num_rows
        cols = []
        for fld in schema:
            if fld.name == "symbol":
                cols.append(pa.array([symbol] * n, pa.string()))
            elif fld.name == "period":
                cols.append(pa.array([period] * n, pa.string()))
            elif fld.name in table.column_names:
                cols.append(table.column(fld.name).cast(fld.type))
            else:
                cols.append(pa.nulls(n, fld.type))
        yield pa.Table.from_arrays(cols, schema=schema)


def dataset_fingerprint(root: str | os.PathLike[str], length: int = 12) -> str:
    """First ``length`` hex digits of a SHA-256 over the partition list and every partition's parquet footer.

    The footers hold each column chunk's size and min / max statistics, so a rewritten partition changes it;
    reading them is cheap (no data pages), whatever the size of the panel.
    """
    import hashlib

    meta = read_meta(root)
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for period, symbol in _chosen(meta, None, None):
        digest.update(pq.read_metadata(partition_path(root, period, symbol)).to_dict().__repr__().encode())
    return digest.hexdigest()[:length]
