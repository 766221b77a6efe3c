"""Ingestion that never lies: one fixture file per bad input, calendars, timestamps, generations.

Each folder under ``tests/fixtures/bad_inputs`` is a raw folder holding one bad file; the build must stop
with a ``DataError`` naming the file (and line/column where there is one), exit 2 from the command line,
and leave the previous generation of outputs untouched.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from src.bars import resample_ohlcv
from src.build_config import BuildConfig
from src.build_full_merged import build, main
from src.market_calendar import FX_DAY_START, FX_TIMEZONE, MarketSession, calendar_missing, detect_session
from src.market_data import load_klines
from tests.conftest import make_bars

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bad_inputs"
OHLCV = ["timestamp", "open", "high", "low", "close", "volume"]


def _cfg(tmp_path: Path, raw: Path, **kw) -> BuildConfig:
    return BuildConfig(raw_dir=str(raw), data_root=str(tmp_path / "data"), min_bars=20, **kw)


def _config_file(tmp_path: Path, raw: Path, **kw) -> Path:
    path = tmp_path / "build.yaml"
    path.write_text(yaml.safe_dump({"raw_dir": str(raw), "data_root": str(tmp_path / "data"), "min_bars": 20, **kw}))
    return path


def _merged(tmp_path: Path) -> pd.DataFrame:
    return pd.read_parquet(tmp_path / "data" / "merged" / "full_merged.parquet")


def _report(tmp_path: Path) -> pd.DataFrame:
    return pd.read_csv(tmp_path / "data" / "merged" / "ingest_report.csv")


def _write_ohlcv(folder: Path, name: str, bars: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    bars[OHLCV].to_csv(path, index=False)
    return path


def fx_hourly(start: str = "2024-02-05", weeks: int = 8, seed: int = 0) -> pd.DataFrame:
    """Hourly FX bars on the real calendar: Sunday 17:00 to Friday 17:00 New York, DST included."""
    local = pd.date_range(pd.Timestamp(start) - pd.Timedelta(hours=7), periods=weeks * 7 * 24, freq="1h")
    clock = local - FX_DAY_START
    local = local[clock.dayofweek < 5]
    ts = pd.DatetimeIndex(local).tz_localize(FX_TIMEZONE, ambiguous="NaT", nonexistent="NaT").dropna()
    bars = make_bars(len(ts), seed=seed)
    return bars.assign(timestamp=ts.tz_convert("UTC"))


# --------------------------------------------------------------------------- one fixture per bad input

BAD_INPUTS = [
    ("empty_file", [], r"raw/AAA\.csv: the file is empty"),
    ("header_only", [], r"raw/AAA\.csv: no data rows \(only a header"),
    ("inf_value", [], r"raw/AAA\.csv: line 5, column 'close': infinite value 'inf'"),
    ("high_below_low", [], r"raw/AAA\.csv: line 4, column 'high': high 98\.0 < low 99\.0"),
    ("unparseable_time", [], r"raw/AAA\.csv: line 6, column 'timestamp': cannot parse"),
    ("mixed_offsets", [], r"raw/AAA\.csv: line 3, column 'timestamp': .* mixes times with and without"),
    ("future_time", [], r"raw/AAA\.csv: line 7, column 'timestamp': .* in the future"),
    ("timestamp_zero", [], r"BTCUSDT-1h-2024-01\.csv: line 3, column 'open_time': timestamp '0' reads as "
                           r"1970-01-01 .* before 2000"),
    ("monthly_bars", [], r"raw/BTC\.csv: unsupported bar spacing 31 days"),
    ("weekly_bars", [], r"raw/SPY\.csv: unsupported bar spacing 7 days"),
    ("truncated_zip", [], r"BTCUSDT-1h-2024-01\.zip: not a readable zip archive .*fetch it again"),
    ("garbage_zip", [], r"BTCUSDT-1h-2024-01\.zip: not a readable zip archive"),
    ("path_symbol", [], r"prices\.csv, column 'symbol': symbol '\.\./\.\./\.\./escape' is not a valid name"),
    ("slash_symbol", [], r"prices\.csv, column 'symbol': symbol 'BTC/USDT' is not a valid name"),
    ("missing_column", [], r"raw/AAA\.csv: missing column\(s\) \['volume'\]"),
    ("dst_gap_local_time", ["--timezone", "America/New_York"],
     r"EURUSD\.csv: line 4, column 'timestamp': local time '2024-03-10 02:00:00' does not exist or is ambiguous "
     r"in America/New_York"),
]


@pytest.mark.parametrize(("case", "args", "pattern"), BAD_INPUTS, ids=[c for c, _, _ in BAD_INPUTS])
def test_bad_input_is_a_data_error_naming_the_file_and_keeps_outputs(tmp_path, caplog, case, args, pattern):
    good = tmp_path / "good"
    _write_ohlcv(good, "OK", make_bars(300, seed=1))
    cfg = _config_file(tmp_path, good)
    assert main(["--config", str(cfg), "--periods", "1h"]) == 0
    before = {p: p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file()}
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURES / case, raw)
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        code = main(["--config", str(cfg), "--raw-dir", str(raw), "--periods", "1h", *args])
    assert code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    import re
    assert re.search(pattern, errors[0]), errors[0]
    after = {p: p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file()}
    assert after == before  # the previous generation is whole
    assert sorted(p.name for p in raw.rglob("*")) == sorted(p.name for p in (FIXTURES / case).rglob("*"))


# --------------------------------------------------------------------------- timestamps


def test_epoch_units_are_decided_per_row(tmp_path):
    bars = make_bars(6)
    ms = bars["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
    units = [ms[0], ms[1] * 1000, ms[2], ms[3] * 1000, ms[4] * 1_000_000, ms[5] // 1000]  # ms, us, ns, s mixed
    lines = [f"{u},1,2,0.5,1.5,10,0,15,5,5,7.5,0" for u in units]
    path = tmp_path / "k.csv"
    path.write_text("\n".join(lines) + "\n")
    got = load_klines([path], "X")
    pd.testing.assert_series_equal(got["timestamp"], bars["timestamp"].dt.as_unit("ns"), check_names=False)


def test_naive_local_times_with_timezone_across_dst(tmp_path):
    """Hourly bars written in New York wall time across the March DST change are one contiguous UTC series."""
    utc = pd.date_range("2024-03-09 00:00", periods=72, freq="1h", tz="UTC")
    local = utc.tz_convert("America/New_York").tz_localize(None)
    bars = make_bars(72).assign(timestamp=local.strftime("%Y-%m-%d %H:%M:%S"))
    _write_ohlcv(tmp_path / "raw", "SPY", bars)
    build(_cfg(tmp_path, tmp_path / "raw", periods=["1h"], timezone="America/New_York", calendar="24/7"))
    merged = _merged(tmp_path)
    assert (merged["timestamp"].to_numpy() == utc.to_numpy()).all() and not merged["gap_before"].any()
    # read as UTC (the default), the skipped local hour looks like a missing bar: why --timezone exists
    build(_cfg(tmp_path, tmp_path / "raw", periods=["1h"], calendar="24/7"))
    assert _merged(tmp_path)["gap_before"].sum() == 1


def test_unknown_timezone_is_a_config_error(tmp_path, caplog):
    _write_ohlcv(tmp_path / "raw", "AAA", make_bars(50))
    with caplog.at_level(logging.ERROR):
        assert main(["--config", str(_config_file(tmp_path, tmp_path / "raw")), "--timezone", "Mars/Olympus"]) == 2
    assert "key 'timezone' = 'Mars/Olympus': unknown time zone" in caplog.text


# --------------------------------------------------------------------------- calendars


def test_fx_daily_bars_are_whole_trading_days(tmp_path):
    """Hourly FX to 1d: every bar is one 17:00 New York trading day (24 hours), none a Sunday stub."""
    bars = fx_hourly(weeks=10)
    session = detect_session(bars["timestamp"], pd.Timedelta("1h"))
    assert session.kind == "fx"
    day, dropped = resample_ohlcv(bars, "1d", session)
    assert len(day) == 50 and dropped == 0  # 10 weeks of 5 trading days, the first opening Sunday 17:00
    local = day["timestamp"].dt.tz_convert(FX_TIMEZONE)
    assert (local.dt.hour == 17).all() and set(local.dt.dayofweek) <= {6, 0, 1, 2, 3}  # opens Sun..Thu 17:00
    counts = bars.groupby(np.searchsorted(day["timestamp"].to_numpy(), bars["timestamp"].to_numpy(), "right")).size()
    assert counts.iloc[1:].min() >= 12  # no daily bar from less than half a trading day
    four, _ = resample_ohlcv(bars, "4h", session)
    assert (four["timestamp"].dt.tz_convert(FX_TIMEZONE).dt.hour % 4 == 1).all()  # 17, 21, 1, 5, 9, 13 New York
    # a Friday daily target is Friday's whole session
    friday = day[day["timestamp"].dt.tz_convert(FX_TIMEZONE).dt.dayofweek == 3].iloc[0]
    inside = bars[(bars["timestamp"] >= friday["timestamp"])
                  & (bars["timestamp"] < friday["timestamp"] + pd.Timedelta("24h"))]
    assert len(inside) == 24 and friday["close"] == inside["close"].iloc[-1]


def test_fx_build_weekends_are_not_missing_and_partial_bins_are_counted(tmp_path):
    bars = fx_hourly(weeks=12).iloc[15:]  # starts 08:00 New York: the first 4h (1 h) and 1d (9 h) bins are partial
    bars = bars.drop(index=bars.index[300:302])  # two missing hours on a weekday
    _write_ohlcv(tmp_path / "raw", "EURUSD", bars)
    build(_cfg(tmp_path, tmp_path / "raw"))
    report = _report(tmp_path).set_index("period")
    assert report.loc["1h", "missing_bars"] == 2 and report.loc["1h", "gaps"] == 1
    assert report.loc["1d", "partial_bins_dropped"] >= 1 and report.loc["4h", "partial_bins_dropped"] >= 1
    merged = _merged(tmp_path)
    assert not merged.loc[merged.period == "1d", "gap_before"].any()
    manifest = json.loads((tmp_path / "data" / "merged" / "build_manifest.json").read_text())
    assert manifest["market"].startswith("fx") and manifest["symbols"] == ["EURUSD"]


def test_equity_hourly_session_bins(tmp_path):
    """US equities 9:30-16:00 New York: daily bars are sessions, 4h bins start at the open."""
    days = pd.bdate_range("2024-01-02", periods=60)
    local = [d + pd.Timedelta(hours=9, minutes=30) + pd.Timedelta(hours=h) for d in days for h in range(7)]
    ts = pd.DatetimeIndex(local).tz_localize("America/New_York").tz_convert("UTC")
    bars = make_bars(len(ts)).assign(timestamp=ts)
    session = detect_session(bars["timestamp"], pd.Timedelta("1h"))
    assert session.kind == "equity" and session.day_start == pd.Timedelta(hours=9, minutes=30)
    day, dropped = resample_ohlcv(bars, "1d", session)
    assert len(day) == 60 and dropped == 0
    four, dropped4 = resample_ohlcv(bars, "4h", session)
    assert len(four) == 120 and dropped4 == 0  # 9:30-13:30 (4 bars) and 13:30-16:00 (3 of 3)
    assert calendar_missing(day["timestamp"], pd.Timedelta("1D"), session,
                            pd.DatetimeIndex(day["timestamp"])) == 0


def test_calendar_missing_counts_weekends_only_for_24_7():
    ts = pd.Series(pd.date_range("2024-01-01", periods=24 * 14, freq="1h", tz="UTC"))
    weekdays = ts[ts.dt.dayofweek < 5]
    assert calendar_missing(weekdays, pd.Timedelta("1h"), MarketSession()) > 0
    fx = MarketSession(kind="fx", timezone=FX_TIMEZONE, day_start=FX_DAY_START)
    assert calendar_missing(fx_hourly(weeks=3)["timestamp"], pd.Timedelta("1h"), fx) == 0


# --------------------------------------------------------------------------- values


def test_spike_is_reported_short_symbol_skipped(tmp_path, caplog):
    spiky = make_bars(400, seed=3)
    spiky.loc[200, ["close", "high"]] = spiky.loc[200, "close"] * 1000
    _write_ohlcv(tmp_path / "raw", "SPIKY", spiky)
    _write_ohlcv(tmp_path / "raw", "TINY", make_bars(10, seed=4))
    _write_ohlcv(tmp_path / "raw", "FINE", make_bars(400, seed=5))
    with caplog.at_level(logging.WARNING):
        build(_cfg(tmp_path, tmp_path / "raw", periods=["1h"]))
    merged = _merged(tmp_path)
    assert sorted(merged["symbol"].unique()) == ["FINE", "SPIKY"]  # the spike is kept, TINY skipped
    report = _report(tmp_path).set_index("symbol")
    assert report.loc["SPIKY", "bad_ticks"] >= 1 and report.loc["FINE", "bad_ticks"] == 0
    assert report.loc["TINY", "status"].startswith("skipped: 10 bars < 20")
    ticks = pd.read_csv(tmp_path / "data" / "merged" / "bad_ticks.csv")
    assert (ticks["symbol"] == "SPIKY").all() and pd.Timestamp(ticks["timestamp"].iloc[0]) == spiky["timestamp"][200]
    assert "SPIKY: 1 suspected bad tick" in caplog.text or "SPIKY: 2 suspected bad tick" in caplog.text
    assert "TINY: 10 1h bar(s), fewer than the longest indicator window" in caplog.text


def test_generic_ohlcv_has_no_taker_columns_and_daily_no_hour(tmp_path):
    _write_ohlcv(tmp_path / "raw", "AAA", make_bars(24 * 60))
    build(_cfg(tmp_path, tmp_path / "raw", periods=["1h", "1d"]))
    merged = _merged(tmp_path)
    assert not [c for c in merged.columns if c.startswith(("taker_buy_ratio", "avg_trade_size"))]
    daily = merged[merged.period == "1d"].dropna(axis=1, how="all")
    assert "hour_sin" not in daily.columns and merged.loc[merged.period == "1h", "hour_sin"].notna().all()


# --------------------------------------------------------------------------- gaps


def test_long_gap_starts_a_new_segment(tmp_path):
    bars = make_bars(24 * 120, seed=2)
    bars = bars[(bars["timestamp"] < "2024-02-01") | (bars["timestamp"] >= "2024-04-01")].copy()
    jump = bars["timestamp"] >= "2024-04-01"
    bars.loc[jump, ["open", "high", "low", "close"]] *= 1.7  # the price moved while the data was missing
    _write_ohlcv(tmp_path / "raw", "AAA", bars)
    build(_cfg(tmp_path, tmp_path / "raw", periods=["1h"]))
    merged = _merged(tmp_path)
    first = merged.index[merged["timestamp"] == pd.Timestamp("2024-04-01", tz="UTC")][0]
    row = merged.loc[first]
    assert bool(row["gap_before"]) and np.isnan(row["ret_1"]) and np.isnan(row["rsi_14"])
    later = merged.loc[first + 24]
    assert np.isfinite(later["rsi_14"]) and abs(later["ret_24"]) < 0.3  # no 53% "return" across the hole
    report = _report(tmp_path)
    assert report["segments"].iloc[0] == 2


# --------------------------------------------------------------------------- generations


def test_stock_build_after_crypto_build_has_stock_symbols_only(tmp_path):
    crypto, stocks = tmp_path / "crypto", tmp_path / "stocks"
    for sym in ("BTCUSDT", "ETHUSDT"):
        _write_ohlcv(crypto, sym, make_bars(24 * 20, seed=len(sym)))
    assert main(["--config", str(_config_file(tmp_path, crypto)), "--periods", "1h"]) == 0
    for i, sym in enumerate(("AAPL", "MSFT")):
        _write_ohlcv(stocks, sym, make_bars(300, seed=i, freq="1D", weekdays_only=True))
    assert main(["--config", str(_config_file(tmp_path, stocks)), "--periods", "1d"]) == 0
    assert sorted(_merged(tmp_path)["symbol"].unique()) == ["AAPL", "MSFT"]
    targeted = tmp_path / "data" / "crypto_targeted_and_indicated"
    assert sorted(p.name for p in targeted.rglob("*.csv")) == ["AAPL_1d.csv", "MSFT_1d.csv"]
    manifest = json.loads((tmp_path / "data" / "merged" / "build_manifest.json").read_text())
    assert Path(manifest["raw_dir"]) == stocks.resolve()


@pytest.mark.parametrize("seed", range(3))
def test_random_symbol_subsets_leave_no_other_symbol_in_any_output(tmp_path, seed):
    rng = np.random.default_rng(seed)
    names = ["AAA", "BBB", "CCC", "DDD", "EEE"]
    raw = tmp_path / "raw"
    for i, sym in enumerate(names):
        _write_ohlcv(raw, sym, make_bars(24 * 12, seed=i))
    cfg = _config_file(tmp_path, raw)
    assert main(["--config", str(cfg), "--periods", "1h,4h"]) == 0
    subset = sorted(rng.choice(names, size=int(rng.integers(1, 4)), replace=False).tolist())
    assert main(["--config", str(cfg), "--periods", "1h,4h", "--symbols", ",".join(subset)]) == 0
    data = tmp_path / "data"
    others = set(names) - set(subset)
    for path in data.rglob("*"):
        if path.is_file():
            assert not any(o in path.name for o in others), path
            if path.suffix in (".csv", ".json"):
                text = path.read_text()
                assert not any(o in text for o in others), path
    assert sorted(pd.read_pickle(data / "pkl_merged" / "full_merged.pkl")["symbol"].unique()) == subset


def test_killed_build_leaves_previous_generation_and_is_cleaned_up(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    _write_ohlcv(raw, "AAA", make_bars(300))
    assert main(["--config", str(_config_file(tmp_path, raw)), "--periods", "1h"]) == 0
    merged_csv = tmp_path / "data" / "merged" / "full_merged.csv"
    before = merged_csv.read_bytes()
    _write_ohlcv(raw, "BBB", make_bars(300, seed=1))

    import src.build_full_merged as bfm

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the build dies after the partitions were staged

    monkeypatch.setattr(bfm, "export_panel", killed)
    with pytest.raises(KeyboardInterrupt):
        main(["--config", str(_config_file(tmp_path, raw)), "--periods", "1h"])
    assert merged_csv.read_bytes() == before
    # leftovers of a run killed harder (no cleanup at all): a staged folder of a dead process and a temp file
    dead = tmp_path / "data" / "crypto_targeted_and_indicated.staging-build-999999999"
    dead.mkdir()
    tmp = tmp_path / "data" / "merged" / ".full_merged.csv.abc.tmp"
    tmp.write_text("half")
    old = 10_000
    os.utime(tmp, (tmp.stat().st_atime - old, tmp.stat().st_mtime - old))
    monkeypatch.undo()
    assert main(["--config", str(_config_file(tmp_path, raw)), "--periods", "1h"]) == 0
    assert not dead.exists() and not tmp.exists()
    assert sorted(_merged(tmp_path)["symbol"].unique()) == ["AAA", "BBB"]


def test_out_data_root_and_later_stages(tmp_path, small_market):
    """``--out`` puts a build under its own root; the fusion follows with ``--data-root``."""
    from src.fuse_fundamentals import main as fuse_main
    from src.synthetic_market import write_market

    write_market(small_market, tmp_path / "raw")
    root = tmp_path / "fx_root"
    assert main(["--raw-dir", str(tmp_path / "raw"), "--out", str(root), "--periods", "4h",
                 "--config", str(_config_file(tmp_path, tmp_path / "raw"))]) == 0
    assert (root / "merged" / "full_merged.parquet").is_file()
    fuse_cfg = tmp_path / "fuse.yaml"
    fuse_cfg.write_text(yaml.safe_dump({
        "report_csv": str(tmp_path / "summary.csv"),
        "experts_map": {"Risk-TFT": {"base": "configs/experts/Risk-TFT/datasets/base.yaml"}}}))
    assert fuse_main(["--config", str(fuse_cfg), "--data-root", str(root)]) == 0
    assert (root / "merged" / "expert_group" / "Risk-TFT_base" / "full_merged_with_fundamentals.parquet").is_file()
