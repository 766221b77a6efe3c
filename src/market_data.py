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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from utils.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

OHLCV = ["open", "high", "low", "close", "volume"]
KLINE_COLUMNS = [
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
    "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
]
# Optional kline columns carried into the panel when present.
EXTRA_BAR_COLUMNS = ["quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume"]
TIME_ALIASES = ("timestamp", "date", "datetime", "time", "open_time")
PERIODS = {"1m": "1min", "5m": "5min", "15m": "15min", "30m": "30min", "1h": "1h", "2h": "2h",
           "4h": "4h", "6h": "6h", "12h": "12h", "1d": "1D"}
_TABLE_SUFFIXES = (".csv", ".zip", ".parquet", ".pq")


def check_periods(key: str, value: str | list[str]) -> None:
    """Raise a ``ConfigError`` naming ``key`` when a config's period label (or list of them) is unknown."""
    bad = [p for p in ([value] if isinstance(value, str) else value) if p not in PERIODS]
    if bad:
        raise ConfigError(f"key {key!r} = {value!r}: unknown period(s) {bad}; valid periods: {list(PERIODS)}")


def period_delta(period: str) -> pd.Timedelta:
    """Length of a period label such as ``'1h'``, ``'4h'`` or ``'1d'``."""
    if period not in PERIODS:
        raise DataError(f"unknown period {period!r}; valid periods: {list(PERIODS)}")
    return pd.Timedelta(PERIODS[period])


def infer_period(timestamps: pd.Series | pd.DatetimeIndex) -> str:
    """Period label closest to the median spacing of ``timestamps`` (needs >= 2 rows)."""
    ts = pd.DatetimeIndex(timestamps).sort_values()
    if len(ts) < 2:
        raise DataError("cannot infer the bar period from fewer than 2 rows")
    step = pd.Series(ts[1:] - ts[:-1]).median()
    # Daily stock data has a median step of one day even with weekends: nearest label wins.
    best = min(PERIODS, key=lambda p: abs(np.log(pd.Timedelta(PERIODS[p]) / step)))
    return best


@dataclass
class IngestReport:
    """What cleaning did to one symbol's bars (logged, and kept for audits)."""

    source: str
    rows: int = 0
    duplicates_dropped: int = 0
    unsorted_rows: int = 0
    gaps: int = 0
    missing_bars: int = 0


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


def _epoch_to_datetime(values: pd.Series) -> pd.DatetimeIndex:
    """Epoch numbers in s, ms or us (detected by magnitude, as Binance switched to us in 2025)."""
    v = values.to_numpy(dtype=np.float64)
    mag = np.nanmedian(np.abs(v)) if v.size else 0
    unit = "us" if mag > 1e14 else "ms" if mag > 1e11 else "s"
    return pd.to_datetime(v.astype(np.int64), unit=unit, utc=True)


def _parse_time(frame: pd.DataFrame, col: str, source: str, first_line: int) -> pd.DatetimeIndex:
    raw = frame[col]
    as_num = pd.to_numeric(raw, errors="coerce")
    if as_num.notna().all() and len(raw):
        return pd.DatetimeIndex(_epoch_to_datetime(as_num)).as_unit("ns")
    parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
    if parsed.isna().any():
        pos = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise DataError(f"{source}: line {first_line + pos}, column '{col}': cannot parse "
                        f"timestamp {raw.iloc[pos]!r}. Use ISO dates (2024-01-31 or 2024-01-31T13:00:00Z) "
                        f"or epoch seconds/ms/us.")
    return pd.DatetimeIndex(parsed).as_unit("ns")


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


def _kline_frame(frame: pd.DataFrame, source: str, first_line: int, positive_prices: bool = True) -> pd.DataFrame:
    if frame.columns.dtype.kind in "iu" or all(isinstance(c, int) for c in frame.columns):
        if frame.shape[1] < 6:
            raise DataError(f"{source}: a kline row needs at least 6 fields (open_time..volume), "
                            f"found {frame.shape[1]}")
        frame = frame.set_axis(KLINE_COLUMNS[: frame.shape[1]] + list(frame.columns[len(KLINE_COLUMNS):]),
                               axis=1)
    frame = frame.rename(columns=str.lower)
    _require(frame, ["open_time", *OHLCV], source, "Binance klines need open_time,open,high,low,close,volume.")
    out = pd.DataFrame({"timestamp": _parse_time(frame, "open_time", source, first_line)})
    for col in OHLCV + [c for c in EXTRA_BAR_COLUMNS if c in frame.columns]:
        out[col] = _numeric(frame, col, source, first_line).to_numpy()
    _check_ohlc(out, source, first_line, positive_prices)
    return out


def load_klines(files: Iterable[str | Path], symbol: str, header: bool | None = None,
                positive_prices: bool = True) -> pd.DataFrame:
    """Load and validate Binance kline files for one symbol (any mix of csv/zip, ms/us).

    ``positive_prices=False`` is for index klines that can be negative (premium index).
    """
    parts = [
        _kline_frame(frame, source, line, positive_prices)
        for path in sorted(map(Path, files))
        for frame, source, line in read_raw_table(path, header)
    ]
    if not parts:
        raise DataError(f"no kline files for {symbol}")
    return pd.concat(parts, ignore_index=True)


def load_generic_ohlcv(path: str | Path) -> dict[str, pd.DataFrame]:
    """Load a generic OHLCV CSV/parquet: one symbol per file, or several via a ``symbol`` column."""
    path = Path(path)
    out: dict[str, list[pd.DataFrame]] = {}
    for frame, source, line in read_raw_table(path, header=True):
        frame = frame.rename(columns=lambda c: str(c).strip().lower())
        time_col = next((c for c in TIME_ALIASES if c in frame.columns), None)
        if time_col is None:
            raise DataError(f"{source}: missing a time column (one of {list(TIME_ALIASES)}); "
                            f"found {list(frame.columns)}")
        _require(frame, OHLCV, source, "Generic OHLCV files need open, high, low, close, volume (any case).")
        bars = pd.DataFrame({"timestamp": _parse_time(frame, time_col, source, line)})
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


def clean_bars(bars: pd.DataFrame, source: str, step: pd.Timedelta | None = None) -> tuple[pd.DataFrame, IngestReport]:
    """Sort, de-duplicate and report gaps for one symbol's bars (no filling).

    Parameters
    ----------
    bars : DataFrame
        Validated bars with a ``timestamp`` column.
    source : str
        Name used in log messages and the report.
    step : Timedelta, optional
        Expected bar spacing; gaps are spacings larger than this. Inferred if omitted.
    """
    report = IngestReport(source=source, rows=len(bars))
    ts = bars["timestamp"]
    unsorted = int((ts.diff() < pd.Timedelta(0)).sum())
    if unsorted:
        report.unsorted_rows = unsorted
        logger.warning("%s: %d row(s) out of time order; sorted by timestamp", source, unsorted)
        bars = bars.sort_values("timestamp", kind="stable")
    dup = bars["timestamp"].duplicated(keep="last")
    if dup.any():
        report.duplicates_dropped = int(dup.sum())
        logger.warning("%s: %d duplicated timestamp(s) dropped (kept the last occurrence)",
                       source, report.duplicates_dropped)
        bars = bars.loc[~dup]
    bars = bars.reset_index(drop=True)
    if len(bars) > 1:
        step = step or period_delta(infer_period(bars["timestamp"]))
        diffs = bars["timestamp"].diff().iloc[1:]
        gaps = diffs > step
        report.gaps = int(gaps.sum())
        report.missing_bars = int((diffs[gaps] / step).round().sum() - report.gaps)
    report.rows = len(bars)
    return bars, report


def resample_ohlcv(bars: pd.DataFrame, period: str, expected_count: int | None = None) -> pd.DataFrame:
    """Aggregate bars into UTC-aligned ``period`` bars (open first, high max, low min, close last, sums).

    Bins are labelled by their open time. A bin with fewer sub-bars than ``expected_count``
    (default: the most common count) at either edge of the series is partial and dropped;
    bins inside the series keep whatever sub-bars exist, so a gap never becomes a made-up bar.
    """
    if bars.empty:
        return bars.copy()
    delta = period_delta(period)
    key = bars["timestamp"].dt.floor(delta)
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    agg.update({c: "sum" for c in EXTRA_BAR_COLUMNS if c in bars.columns})
    grouped = bars.groupby(key.to_numpy(), sort=True)
    out = grouped.agg(agg)
    counts = grouped.size().to_numpy()
    expected = expected_count or int(pd.Series(counts).mode().max())
    keep = np.ones(len(out), dtype=bool)
    if counts[-1] < expected:
        keep[-1] = False
    if counts[0] < expected:
        keep[0] = False
    out = out.loc[keep]
    out.index = pd.DatetimeIndex(out.index).tz_convert("UTC") if out.index.tz is not None else \
        pd.DatetimeIndex(out.index).tz_localize("UTC")
    return out.rename_axis("timestamp").reset_index()


# --------------------------------------------------------------------------- discovery


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


def load_price_bars(inv: RawInventory, symbols: Iterable[str] | None = None) -> dict[str, pd.DataFrame]:
    """Validated, cleaned base-period bars per symbol from everything in ``inv``."""
    raw: dict[str, pd.DataFrame] = {check_symbol(sym, str(files[0].parent)): load_klines(files, sym)
                                    for sym, files in inv.klines.items()}
    for path in inv.generic:
        for sym, bars in load_generic_ohlcv(path).items():
            raw[sym] = pd.concat([raw[sym], bars], ignore_index=True) if sym in raw else bars
    wanted = set(s.upper() for s in symbols) if symbols else None
    if wanted:
        unknown = sorted(wanted - set(raw))
        if unknown:
            raise DataError(f"symbol(s) {unknown} not found under {inv.root}; available: {sorted(raw)}")
    out = {}
    for sym in sorted(raw):
        if wanted and sym not in wanted:
            continue
        bars, report = clean_bars(raw[sym], sym)
        if report.gaps:
            logger.info("%s: %d gap(s), %d missing bar(s) kept as gaps (no filling)",
                        sym, report.gaps, report.missing_bars)
        out[sym] = bars
    return out


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
