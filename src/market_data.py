"""Ingestion of raw market data: Binance public-data dumps and generic OHLCV files.

Accepted inputs
---------------
* Binance kline CSVs (``open_time,open,high,low,close,volume,close_time,...``), with or
  without a header row, millisecond or microsecond timestamps, plain or as the published
  monthly/daily ``.zip`` files. Premium-index klines use the same layout.
* Binance ``fundingRate`` and ``metrics`` files.
* Generic OHLCV CSV or parquet: a ``timestamp``, ``date`` or ``datetime`` column plus
  ``open, high, low, close, volume`` (any case), one file per symbol (symbol taken from the
  file name) or with a ``symbol`` column.

Every problem in the input raises :class:`~utils.errors.DataError` naming the file, the line
and the column. Duplicated timestamps are dropped with a warning and a count; unsorted rows are
sorted and reported; gaps are reported and kept visible (prices are never forward-filled).
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from src.bars import EXTRA_BAR_COLUMNS, OHLCV, IngestReport, clean_bars, infer_period
from utils.errors import DataError
from utils.timeline import period_delta

logger = logging.getLogger(__name__)

KLINE_COLUMNS = [
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
    "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
]
TIME_ALIASES = ("timestamp", "date", "datetime", "time", "open_time")
_TABLE_SUFFIXES = (".csv", ".zip", ".parquet", ".pq")


# --------------------------------------------------------------------------- reading


def _read_member(raw: bytes, source: str, header: bool | None) -> tuple[pd.DataFrame, int]:
    """Parse CSV bytes; ``header=None`` detects a header row. Returns (frame, first data line)."""
    first = raw.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    if header is None:
        token = first.split(",")[0].strip().strip('"')
        header = not re.fullmatch(r"[-+]?\d+(\.\d*)?([eE][-+]?\d+)?", token or "x")
    if not raw.strip():
        raise DataError(f"{source}: the file is empty; re-export or remove it")
    try:
        frame = pd.read_csv(io.BytesIO(raw), header=0 if header else None, dtype=str,
                            keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{source}: cannot parse as CSV: {exc}") from None
    if frame.empty:
        raise DataError(f"{source}: no data rows (only a header: {first[:80]!r}); re-export or remove the file")
    return frame, (2 if header else 1)


def read_raw_table(path: str | Path, header: bool | None = None) -> list[tuple[pd.DataFrame, str, int]]:
    """Read a CSV, zipped CSV or parquet file into string-typed frames.

    Returns
    -------
    list of (frame, source, first_line)
        One entry per CSV member (a zip may hold several); ``first_line`` is the file line
        number of the frame's first row, so errors can point at the exact line.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            raise DataError(f"{path}: not a readable parquet file ({exc}); re-export it") from None
        if frame.empty:
            raise DataError(f"{path}: no data rows; re-export or remove the file")
        return [(frame, str(path), 1)]
    if suffix == ".zip":
        out = []
        try:
            with zipfile.ZipFile(path) as zf:
                for name in sorted(n for n in zf.namelist() if n.lower().endswith(".csv")):
                    frame, line = _read_member(zf.read(name), f"{path}::{name}", header)
                    out.append((frame, f"{path}::{name}", line))
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
            raise DataError(f"{path}: not a readable zip archive ({exc}); the download may be truncated: "
                            f"fetch it again") from None
        if not out:
            raise DataError(f"{path}: zip archive holds no .csv member")
        return out
    frame, line = _read_member(path.read_bytes(), str(path), header)
    return [(frame, str(path), line)]


def _numeric(frame: pd.DataFrame, col: str, source: str, first_line: int) -> pd.Series:
    """Column as float; any empty or non-numeric cell is a DataError naming line and value."""
    raw = frame[col]
    values = pd.to_numeric(raw, errors="coerce")
    infinite = np.isinf(values.to_numpy(dtype=np.float64))
    if infinite.any():
        pos = int(np.flatnonzero(infinite)[0])
        raise DataError(f"{source}: line {first_line + pos}, column '{col}': infinite value {raw.iloc[pos]!r}. "
                        f"Fix or remove that row; prices and volumes must be finite numbers.")
    bad = values.isna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        cell = raw.iloc[pos]
        empty = pd.isna(cell) or str(cell).strip() == ""
        what = "empty value" if empty else f"non-numeric value {cell!r}"
        raise DataError(f"{source}: line {first_line + pos}, column '{col}': {what}. "
                        f"Fix or remove that row; prices and volumes must be numbers.")
    return values.astype(np.float64)


#: Epoch magnitudes (of a 21st-century timestamp) above which a number is in ms, us and ns.
_EPOCH_UNITS = ((1e17, 1), (1e14, 1_000), (1e11, 1_000_000), (0.0, 1_000_000_000))
EARLIEST = pd.Timestamp("2000-01-01", tz="UTC")
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)


def _epoch_to_datetime(values: pd.Series) -> pd.DatetimeIndex:
    """Epoch numbers to UTC times, the unit (s, ms, us, ns) decided for each row by its magnitude.

    Per row, not per file: Binance switched its dumps from ms to us in 2025, and a file concatenated across
    the switch holds both (one unit for all would put half the rows in 1970 or far in the future).
    """
    if values.dtype.kind in "iu":
        v = values.to_numpy(dtype=np.int64)
        mag = np.abs(v).astype(np.float64)
    else:
        f = values.to_numpy(dtype=np.float64)
        mag = np.abs(f)
        v = None
    ns = np.zeros(len(values), dtype=np.int64)
    done = np.zeros(len(values), dtype=bool)
    for floor, factor in _EPOCH_UNITS:
        rows = (mag >= floor) & ~done
        if v is not None:
            ns[rows] = v[rows] * factor
        else:  # fractional epochs: float arithmetic, rounded to the ns
            ns[rows] = np.round(f[rows] * factor).astype(np.int64)
        done |= rows
    return pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True))


def _check_time_range(ts: pd.DatetimeIndex, raw: pd.Series, col: str, source: str, first_line: int) -> None:
    """Timestamps before 2000 or in the future are errors (a zero, a wrong unit, a wrong year)."""
    now = pd.Timestamp.now(tz="UTC")
    bad = (ts < EARLIEST) | (ts > now)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        when = "before 2000" if ts[pos] < EARLIEST else "in the future"
        raise DataError(f"{source}: line {first_line + pos}, column '{col}': timestamp {raw.iloc[pos]!r} reads as "
                        f"{ts[pos]}, {when}. Fix or remove that row (epoch numbers may be s, ms, us or ns; "
                        f"dates must be real bar times)")


def _localize(parsed: pd.Series, raw: pd.Series, col: str, source: str, first_line: int, tz: str) -> pd.Series:
    """Naive wall-clock times in zone ``tz`` -> UTC; DST by zoneinfo, repeated fall-back hours in row order."""
    try:
        return parsed.dt.tz_localize(tz, ambiguous="infer", nonexistent="raise").dt.tz_convert("UTC")
    except Exception as exc:  # pytz/zoneinfo errors (ambiguous, nonexistent) derive from ValueError or Exception
        local = pd.DatetimeIndex(parsed)
        bad = ~np.isin(local, local.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").tz_localize(None))
        pos = int(np.flatnonzero(bad)[0]) if bad.any() else 0
        raise DataError(f"{source}: line {first_line + pos}, column '{col}': local time {raw.iloc[pos]!r} does "
                        f"not exist or is ambiguous in {tz} (a DST change: {exc}). Give times with a UTC offset, "
                        f"or fix the rows around the change") from None


def _parse_time(frame: pd.DataFrame, col: str, source: str, first_line: int, tz: str = "UTC") -> pd.DatetimeIndex:
    """A time column -> UTC ``DatetimeIndex``.

    Numbers are epochs (unit per row by magnitude, always UTC). Strings with an offset (``Z``, ``+02:00``)
    are exact; naive strings are wall-clock times in ``tz`` (``--timezone``, default UTC). A file mixing
    both, an unparseable cell, and a time before 2000 or in the future are errors naming the line.
    """
    raw = frame[col]
    as_num = pd.to_numeric(raw, errors="coerce")
    if as_num.notna().all() and len(raw):
        out = _epoch_to_datetime(as_num).as_unit("ns")
        _check_time_range(out, raw, col, source, first_line)
        return out
    text = raw.astype(str).str.strip()
    checked = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
    if checked.isna().any():
        pos = int(np.flatnonzero(checked.isna().to_numpy())[0])
        raise DataError(f"{source}: line {first_line + pos}, column '{col}': cannot parse "
                        f"timestamp {raw.iloc[pos]!r}. Use ISO dates (2024-01-31 or 2024-01-31T13:00:00Z) "
                        f"or epoch seconds/ms/us.")
    aware = text.str.contains(_OFFSET).to_numpy()
    if aware.any() and not aware.all():
        pos = int(np.flatnonzero(aware != aware[0])[0])
        raise DataError(f"{source}: line {first_line + pos}, column '{col}': {raw.iloc[pos]!r} mixes times with and "
                        f"without a UTC offset in one column; give all rows in one form")
    parsed = checked if aware.all() else pd.to_datetime(text, errors="coerce", format="mixed")
    date_only = text.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    if not aware.all() and date_only:
        parsed = parsed.dt.tz_localize("UTC")  # a date names a trading day, not an instant in ``tz``
    elif not aware.all():
        parsed = _localize(parsed, raw, col, source, first_line, tz)
    out = pd.DatetimeIndex(parsed).as_unit("ns")
    _check_time_range(out, raw, col, source, first_line)
    return out


def _check_ohlc(bars: pd.DataFrame, source: str, first_line: int, positive_prices: bool = True) -> None:
    """Value checks on numeric OHLCV: positive prices (unless an index such as the premium), high >= low,
    non-negative volume."""
    checks = [
        *[(c, bars[c].to_numpy() <= 0, "non-positive price", "prices must be > 0")
          for c in ("open", "high", "low", "close") if positive_prices],
        ("high", bars["high"].to_numpy() < bars["low"].to_numpy(), "high below low",
         "correct the high/low values"),
        ("volume", bars["volume"].to_numpy() < 0, "negative volume", "volumes must be >= 0"),
    ]
    for col, mask, what, fix in checks:
        if mask.any():
            pos = int(np.flatnonzero(mask)[0])
            row = bars.iloc[pos]
            detail = f"high {row['high']} < low {row['low']}" if col == "high" and what == "high below low" \
                else f"{what} {row[col]}"
            raise DataError(f"{source}: line {first_line + pos}, column '{col}': {detail}; {fix}.")


def _require(frame: pd.DataFrame, columns: Iterable[str], source: str, hint: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; found {list(frame.columns)}. {hint}")


# --------------------------------------------------------------------------- klines


def _kline_frame(frame: pd.DataFrame, source: str, first_line: int, positive_prices: bool = True,
                 tz: str = "UTC") -> pd.DataFrame:
    if frame.columns.dtype.kind in "iu" or all(isinstance(c, int) for c in frame.columns):
        if frame.shape[1] < 6:
            raise DataError(f"{source}: a kline row needs at least 6 fields (open_time..volume), "
                            f"found {frame.shape[1]}")
        frame = frame.set_axis(KLINE_COLUMNS[: frame.shape[1]] + list(frame.columns[len(KLINE_COLUMNS):]),
                               axis=1)
    frame = frame.rename(columns=str.lower)
    _require(frame, ["open_time", *OHLCV], source, "Binance klines need open_time,open,high,low,close,volume.")
    out = pd.DataFrame({"timestamp": _parse_time(frame, "open_time", source, first_line, tz)})
    for col in OHLCV + [c for c in EXTRA_BAR_COLUMNS if c in frame.columns]:
        out[col] = _numeric(frame, col, source, first_line).to_numpy()
    _check_ohlc(out, source, first_line, positive_prices)
    return out


def load_klines(files: Iterable[str | Path], symbol: str, header: bool | None = None,
                positive_prices: bool = True, tz: str = "UTC") -> pd.DataFrame:
    """Load and validate Binance kline files for one symbol (any mix of csv/zip, ms/us).

    ``positive_prices=False`` is for index klines that can be negative (premium index).
    """
    parts = [
        _kline_frame(frame, source, line, positive_prices, tz)
        for path in sorted(map(Path, files))
        for frame, source, line in read_raw_table(path, header)
    ]
    if not parts:
        raise DataError(f"no kline files for {symbol}")
    return pd.concat(parts, ignore_index=True)


def load_generic_ohlcv(path: str | Path, tz: str = "UTC") -> dict[str, pd.DataFrame]:
    """Load a generic OHLCV CSV/parquet: one symbol per file, or several via a ``symbol`` column.

    ``tz`` is the zone of naive (offset-less) times in the file (``--timezone``).
    """
    path = Path(path)
    out: dict[str, list[pd.DataFrame]] = {}
    for frame, source, line in read_raw_table(path, header=True):
        frame = frame.rename(columns=lambda c: str(c).strip().lower())
        time_col = next((c for c in TIME_ALIASES if c in frame.columns), None)
        if time_col is None:
            raise DataError(f"{source}: missing a time column (one of {list(TIME_ALIASES)}); "
                            f"found {list(frame.columns)}")
        _require(frame, OHLCV, source, "Generic OHLCV files need open, high, low, close, volume (any case).")
        bars = pd.DataFrame({"timestamp": _parse_time(frame, time_col, source, line, tz)})
        for col in OHLCV + [c for c in EXTRA_BAR_COLUMNS if c in frame.columns]:
            bars[col] = _numeric(frame, col, source, line).to_numpy()
        _check_ohlc(bars, source, line)
        if "symbol" in frame.columns:
            for sym, part in bars.groupby(frame["symbol"].astype(str).to_numpy(), sort=True):
                out.setdefault(check_symbol(str(sym), f"{source}, column 'symbol'"), []).append(
                    part.reset_index(drop=True))
        else:
            out.setdefault(check_symbol(symbol_from_filename(path), str(path)), []).append(bars)
    return {sym: pd.concat(parts, ignore_index=True) for sym, parts in out.items()}


SYMBOL_PATTERN = re.compile(r"[A-Za-z0-9._-]+")


def check_symbol(name: str, source: str) -> str:
    """``name`` when it is a safe symbol (letters, digits, ``.``, ``_``, ``-``); it becomes part of file paths."""
    if not SYMBOL_PATTERN.fullmatch(name) or name in (".", ".."):
        raise DataError(f"{source}: symbol {name!r} is not a valid name: use letters, digits, '.', '_' and '-' "
                        f"only (e.g. BTCUSDT, BRK.B, EUR-USD); symbols become file names")
    return name


def symbol_from_filename(path: str | Path) -> str:
    """``AAPL.csv`` -> ``AAPL``; ``EURUSD_1h.csv`` / ``BTCUSDT-1h-2024-01.zip`` -> ``EURUSD`` / ``BTCUSDT``."""
    stem = Path(path).name.split(".")[0]
    return re.split(r"[-_](?:\d+[mhdw]|\d{4})\b", stem, maxsplit=1)[0].upper() or stem.upper()


# --------------------------------------------------------------------------- cleaning / resampling


@dataclass
class RawInventory:
    """Raw files found under a raw-data folder, grouped by symbol and kind."""

    root: Path
    klines: dict[str, list[Path]] = field(default_factory=dict)
    premium: dict[str, list[Path]] = field(default_factory=dict)
    funding: dict[str, list[Path]] = field(default_factory=dict)
    metrics: dict[str, list[Path]] = field(default_factory=dict)
    generic: list[Path] = field(default_factory=list)
    global_files: dict[str, Path] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """True when there is no price data at all."""
        return not self.klines and not self.generic

    def symbols(self) -> list[str]:
        """Symbols with Binance klines (generic files are only known after reading)."""
        return sorted(self.klines)


_KIND_DIRS = {"klines": "klines", "premiumindexklines": "premium", "fundingrate": "funding", "metrics": "metrics"}


def discover_raw(raw_dir: str | Path) -> RawInventory:
    """Find Binance dumps (by their folder names) and generic OHLCV files under ``raw_dir``.

    Binance files are recognised by a ``klines``/``premiumIndexKlines``/``fundingRate``/``metrics``
    folder in their path, with the symbol as the next folder. ``global/*.csv`` holds daily
    global series. Any other table file is a generic OHLCV file.
    """
    root = Path(raw_dir)
    inv = RawInventory(root=root)
    if not root.exists():
        return inv
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in _TABLE_SUFFIXES):
        parts = [p.lower() for p in path.relative_to(root).parts]
        kind_idx = next((i for i, p in enumerate(parts[:-1]) if p in _KIND_DIRS), None)
        if kind_idx is not None and kind_idx + 1 < len(parts) - 1:
            symbol = path.relative_to(root).parts[kind_idx + 1].upper()
            getattr(inv, _KIND_DIRS[parts[kind_idx]]).setdefault(symbol, []).append(path)
        elif parts[0] == "global":
            inv.global_files[path.stem] = path
        elif path.suffix.lower() != ".zip" and path.name not in ("oracle.parquet",):
            inv.generic.append(path)
    return inv


def iter_price_bars(inv: RawInventory, symbols: Iterable[str] | None = None, tz: str = "UTC",
                    spill: str | Path | None = None) -> Iterator[tuple[str, pd.DataFrame, IngestReport]]:
    """Validated, cleaned native-spacing bars, one symbol at a time (sorted), with what cleaning did.

    Binance klines are read when their symbol's turn comes, so memory holds one symbol. Generic files name
    their symbols only once read: each is read once, and with ``spill`` (a scratch folder) its per-symbol
    pieces are parked there as parquet until their symbol's turn, so memory holds one file at most.
    Each symbol's native spacing is detected (:func:`infer_period`); an unsupported one is an error naming
    the symbol's files.

    Raises
    ------
    DataError
        When a requested symbol is not found (listing the available ones), or on invalid files.
    """
    wanted = {s.upper() for s in symbols} if symbols else None
    sources: dict[str, list[str]] = {}
    for sym, files in inv.klines.items():
        check_symbol(sym, str(files[0].parent))
        if wanted is None or sym in wanted:
            sources[sym] = [str(f) for f in files]
    pieces: dict[str, list[pd.DataFrame | Path]] = {}
    found = set(inv.klines)
    for k, path in enumerate(inv.generic):
        for sym, bars in load_generic_ohlcv(path, tz).items():
            found.add(sym)
            if wanted is not None and sym not in wanted:
                continue
            if spill is not None:
                parked = Path(spill) / f"{sym}.{k}.parquet"
                parked.parent.mkdir(parents=True, exist_ok=True)
                bars.to_parquet(parked, index=False)
                bars = parked
            pieces.setdefault(sym, []).append(bars)
            sources.setdefault(sym, []).append(str(path))
    if wanted:
        unknown = sorted(wanted - set(sources))
        if unknown:
            raise DataError(f"symbol(s) {unknown} not found under {inv.root}; available: {sorted(found)}")
    for sym in sorted(sources):
        parts = [load_klines(inv.klines[sym], sym, tz=tz)] if sym in inv.klines and (
            wanted is None or sym in wanted) else []
        parts += [pd.read_parquet(p) if isinstance(p, Path) else p for p in pieces.pop(sym, [])]
        raw = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        where = sources[sym][0] if len(sources[sym]) == 1 else f"{sym} ({len(sources[sym])} files under {inv.root})"
        spacing = infer_period(raw["timestamp"], where)  # the most common step: duplicates do not move it
        bars, report = clean_bars(raw, sym, step=period_delta(spacing))
        report.spacing = spacing
        yield sym, bars, report


def ingest_price_bars(inv: RawInventory, symbols: Iterable[str] | None = None,
                      tz: str = "UTC") -> tuple[dict[str, pd.DataFrame], dict[str, IngestReport]]:
    """Every symbol's cleaned bars at once, and its report (see :func:`iter_price_bars`)."""
    out, reports = {}, {}
    for sym, bars, report in iter_price_bars(inv, symbols, tz):
        out[sym], reports[sym] = bars, report
    return out, reports


def load_price_bars(inv: RawInventory, symbols: Iterable[str] | None = None,
                    tz: str = "UTC") -> dict[str, pd.DataFrame]:
    """Validated, cleaned native-spacing bars per symbol (see :func:`ingest_price_bars`)."""
    return ingest_price_bars(inv, symbols, tz)[0]


# --------------------------------------------------------------------------- fundamentals


def _load_timed(files: Iterable[str | Path], time_col: str, values: dict[str, str], required: list[str],
                layout: str, step: pd.Timedelta | None = None) -> pd.DataFrame:
    """Read headed CSV/zip files with a time column and numeric value columns (renamed per ``values``)."""
    parts = []
    for path in sorted(map(Path, files)):
        for frame, source, line in read_raw_table(path, header=True):
            frame = frame.rename(columns=str.lower)
            _require(frame, [time_col, *required], source, f"Expected the Binance {layout} layout.")
            part = pd.DataFrame({"timestamp": _parse_time(frame, time_col, source, line)})
            for src, dst in values.items():
                if src in frame.columns:
                    part[dst] = _numeric(frame, src, source, line).to_numpy()
            parts.append(part)
    if not parts:
        raise DataError(f"no {layout} files given")
    out, _ = clean_bars(pd.concat(parts, ignore_index=True), layout, step=step)
    return out


def load_funding(files: Iterable[str | Path]) -> pd.DataFrame:
    """Binance ``fundingRate`` files -> ``timestamp`` (settlement), ``funding_rate``, ``funding_interval_hours``."""
    return _load_timed(files, "calc_time", {"last_funding_rate": "funding_rate",
                                            "funding_interval_hours": "funding_interval_hours"},
                       ["last_funding_rate"], "fundingRate", step=pd.Timedelta("8h"))


_METRIC_VALUES = [
    "sum_open_interest", "sum_open_interest_value", "count_toptrader_long_short_ratio",
    "sum_toptrader_long_short_ratio", "count_long_short_ratio", "sum_taker_long_short_vol_ratio",
]


def load_metrics(files: Iterable[str | Path]) -> pd.DataFrame:
    """Binance ``metrics`` files -> ``timestamp`` (snapshot time) and the numeric metric columns."""
    return _load_timed(files, "create_time", {c: c for c in _METRIC_VALUES}, ["sum_open_interest"], "metrics")


def load_daily_series(path: str | Path) -> pd.DataFrame:
    """A global daily table with a ``date`` column -> ``date`` (UTC midnight) plus numeric columns."""
    (frame, source, line), *_ = read_raw_table(path, header=True)
    frame = frame.rename(columns=str.lower)
    _require(frame, ["date"], source, "Global daily series need a 'date' column.")
    out = pd.DataFrame({"date": _parse_time(frame, "date", source, line)})
    for col in (c for c in frame.columns if c != "date"):
        out[col] = _numeric(frame, col, source, line).to_numpy()
    out, _ = clean_bars(out.rename(columns={"date": "timestamp"}), source, step=pd.Timedelta("1D"))
    return out.rename(columns={"timestamp": "date"})
