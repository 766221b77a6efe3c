import io
import logging
import zipfile

import numpy as np
import pandas as pd
import pytest

from src.bars import clean_bars, infer_period, resample_ohlcv
from src.market_data import (
    discover_raw,
    load_daily_series,
    load_funding,
    load_generic_ohlcv,
    load_klines,
    load_metrics,
    symbol_from_filename,
)
from tests.conftest import kline_csv_text, make_bars
from utils.errors import DataError

COLS = ["timestamp", "open", "high", "low", "close", "volume"]


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("unit", ["ms", "us"])
def test_klines_with_or_without_header_and_ms_or_us(tmp_path, header, unit):
    bars = make_bars(48)
    path = tmp_path / "BTCUSDT-1h-2024-01.csv"
    path.write_text(kline_csv_text(bars, header=header, unit=unit))
    got = load_klines([path], "BTCUSDT")
    pd.testing.assert_series_equal(got["timestamp"], bars["timestamp"].dt.as_unit("ns"), check_names=False)
    np.testing.assert_allclose(got["close"], bars["close"], rtol=1e-12)
    assert list(got.columns[:6]) == COLS


def test_klines_from_published_zip(tmp_path):
    bars = make_bars(30)
    path = tmp_path / "ETHUSDT-1h-2024-01.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ETHUSDT-1h-2024-01.csv", kline_csv_text(bars, header=False))
    got = load_klines([path], "ETHUSDT")
    assert len(got) == 30 and got["volume"].iloc[3] == pytest.approx(bars["volume"].iloc[3])


def _write(tmp_path, frame, name="AAA.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_generic_ohlcv_any_case_and_date_column(tmp_path):
    bars = make_bars(40, freq="1D")[COLS].rename(columns={"timestamp": "Date", "close": "CLOSE"})
    bars["Date"] = bars["Date"].dt.strftime("%Y-%m-%d")
    got = load_generic_ohlcv(_write(tmp_path, bars, "aapl.csv"))
    assert list(got) == ["AAPL"]
    assert got["AAPL"]["timestamp"].iloc[1] == pd.Timestamp("2024-01-02", tz="UTC")


def test_generic_ohlcv_symbol_column_and_parquet(tmp_path):
    a, b = make_bars(10, seed=1)[COLS], make_bars(12, seed=2)[COLS]
    frame = pd.concat([a.assign(symbol="X"), b.assign(symbol="Y")])
    path = tmp_path / "panel.parquet"
    frame.to_parquet(path)
    got = load_generic_ohlcv(path)
    assert {k: len(v) for k, v in got.items()} == {"X": 10, "Y": 12}


def _bad_frame(changes):
    frame = make_bars(5)[COLS].astype({"open": object, "close": object, "timestamp": object})
    for (row, col), value in changes.items():
        frame.loc[row, col] = value
    return frame


@pytest.mark.parametrize(("change", "pattern"), [
    ({(2, "close"): "abc"}, r"AAA\.csv: line 4, column 'close': non-numeric value 'abc'"),
    ({(3, "open"): ""}, r"AAA\.csv: line 5, column 'open': empty value"),
    ({(1, "high"): 1.0}, r"line 3, column 'high': high 1\.0 < low"),
    ({(0, "close"): -5.0}, r"line 2, column 'close': non-positive price -5\.0"),
    ({(4, "volume"): -1.0}, r"line 6, column 'volume': negative volume -1\.0"),
    ({(2, "timestamp"): "not a date"}, r"line 4, column 'timestamp': cannot parse timestamp 'not a date'"),
    ({(2, "close"): "inf"}, r"AAA\.csv: line 4, column 'close': infinite value 'inf'"),
    ({(3, "volume"): -np.inf}, r"AAA\.csv: line 5, column 'volume': infinite value '-inf'"),
])
def test_bad_values_name_file_line_and_column(tmp_path, change, pattern):
    frame = _bad_frame(change)
    with pytest.raises(DataError, match=pattern):
        load_generic_ohlcv(_write(tmp_path, frame))


def test_missing_columns(tmp_path):
    frame = make_bars(5)[COLS].drop(columns=["volume"])
    with pytest.raises(DataError, match=r"AAA\.csv: missing column\(s\) \['volume'\]"):
        load_generic_ohlcv(_write(tmp_path, frame))
    with pytest.raises(DataError, match=r"missing a time column"):
        load_generic_ohlcv(_write(tmp_path, make_bars(5)[COLS[1:]], "B.csv"))


def test_kline_too_few_fields(tmp_path):
    path = tmp_path / "X-1h.csv"
    path.write_text("1704067200000,1,2,0.5\n")
    with pytest.raises(DataError, match=r"needs at least 6 fields"):
        load_klines([path], "X")


def test_duplicates_dropped_with_warning_and_count(caplog):
    bars = make_bars(10)
    dup = pd.concat([bars, bars.iloc[[2, 5]]], ignore_index=True)
    with caplog.at_level(logging.WARNING):
        out, report = clean_bars(dup, "SYM")
    assert report.duplicates_dropped == 2 and len(out) == 10
    assert "2 duplicated timestamp(s) dropped" in caplog.text


def test_unsorted_rows_sorted_and_reported(caplog):
    bars = make_bars(10)
    shuffled = bars.iloc[[0, 1, 5, 2, 3, 4, 6, 7, 8, 9]]
    with caplog.at_level(logging.WARNING):
        out, report = clean_bars(shuffled, "SYM")
    assert out["timestamp"].is_monotonic_increasing and report.unsorted_rows == 1
    assert "out of time order" in caplog.text


def test_gaps_reported_not_filled():
    bars = make_bars(20).drop(index=[5, 6, 12]).reset_index(drop=True)
    out, report = clean_bars(bars, "SYM")
    assert len(out) == 17 and report.gaps == 2 and report.missing_bars == 3


def test_resample_4h_and_1d_utc_aligned_partial_last_dropped():
    bars = make_bars(24 * 3 + 5, start="2024-01-01 00:00")  # 3 full days + 5 hours
    four, dropped = resample_ohlcv(bars, "4h")
    assert len(four) == 18 + 1 and dropped == 1  # the last bin holds 1 of 4 hours: partial, dropped
    first = bars.iloc[:4]
    row = four.iloc[0]
    assert row["timestamp"] == pd.Timestamp("2024-01-01", tz="UTC")
    assert (row["open"], row["close"]) == (first["open"].iloc[0], first["close"].iloc[-1])
    assert row["high"] == first["high"].max() and row["low"] == first["low"].min()
    assert row["volume"] == pytest.approx(first["volume"].sum())
    day, dropped = resample_ohlcv(bars, "1d")
    assert list(day["timestamp"].dt.day) == [1, 2, 3] and dropped == 1


def test_resample_drops_partial_bins_anywhere_and_keeps_near_complete_ones():
    # starts at 03:00 (first bin: 1 of 4 hours); hour 21 missing (3 of 4: kept); hours 28-30 missing
    # (the 04:00 bin of day 2 keeps 1 of 4: dropped, as at the edge of a gap)
    bars = make_bars(60, start="2024-01-01 03:00").drop(index=[18, 26, 27, 28]).reset_index(drop=True)
    four, dropped = resample_ohlcv(bars, "4h")
    assert four["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 04:00", tz="UTC")
    assert pd.Timestamp("2024-01-01 20:00", tz="UTC") in set(four["timestamp"])
    assert pd.Timestamp("2024-01-02 04:00", tz="UTC") not in set(four["timestamp"])
    assert dropped == 2  # the first bin and the gap-edge bin (the tail, 12:00-14:00 of day 3, holds 3 of 4)


def test_infer_period_and_symbol_names():
    assert infer_period(make_bars(50)["timestamp"]) == "1h"
    assert infer_period(make_bars(300, freq="1D", weekdays_only=True)["timestamp"]) == "1d"
    assert symbol_from_filename("BTCUSDT-1h-2024-01.zip") == "BTCUSDT"
    assert symbol_from_filename("eurusd_1h.csv") == "EURUSD"
    assert symbol_from_filename("AAPL.csv") == "AAPL"


def test_discover_and_fundamental_loaders(small_raw_dir, small_market):
    inv = discover_raw(small_raw_dir)
    assert inv.symbols() == sorted(small_market.klines)
    assert set(inv.funding) == set(inv.metrics) == set(inv.premium) == set(inv.klines)
    assert not inv.generic and {"onchain_daily", "altcoin_index_daily", "btc_dominance_daily"} <= set(inv.global_files)
    sym = inv.symbols()[0]
    funding = load_funding(inv.funding[sym])
    assert (funding["timestamp"].dt.hour % 8 == 0).all() and funding["funding_rate"].abs().max() < 0.0075
    metrics = load_metrics(inv.metrics[sym])
    assert len(metrics) == len(small_market.metrics[sym]) and "sum_open_interest" in metrics
    onchain = load_daily_series(inv.global_files["onchain_daily"])
    assert onchain["date"].iloc[0] == pd.Timestamp("2023-01-11", tz="UTC")


def test_funding_file_with_wrong_layout(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("time,rate\n1,2\n")
    with pytest.raises(DataError, match=r"f\.csv: missing column\(s\) \['calc_time', 'last_funding_rate'\]"):
        load_funding([path])


def test_zip_without_csv(tmp_path):
    path = tmp_path / "X-1h-2024-01.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "nothing")
    with pytest.raises(DataError, match=r"zip archive holds no \.csv member"):
        load_klines([path], "X")


def test_binary_garbage_is_a_data_error(tmp_path):
    path = tmp_path / "G.csv"
    path.write_bytes(io.BytesIO(b"timestamp,open\n\"unterminated\n").getvalue())
    with pytest.raises(DataError):
        load_generic_ohlcv(path)


def test_period_helpers_errors():
    from utils.timeline import period_delta

    with pytest.raises(DataError, match=r"unknown period '7x'; valid periods"):
        period_delta("7x")
    with pytest.raises(DataError, match=r"cannot infer the bar spacing from fewer than 2 distinct timestamps"):
        infer_period(make_bars(1)["timestamp"])
    with pytest.raises(DataError, match=r"no kline files for XYZ"):
        load_klines([], "XYZ")


def _klines_zip(tmp_path, name="BTCUSDT-1h-2024-01.zip"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name.replace(".zip", ".csv"), kline_csv_text(make_bars(200)))
    return path


@pytest.mark.parametrize(("content", "pattern"), [
    (b"", r"E\.csv: the file is empty"),
    (b"   \n\n", r"E\.csv: the file is empty"),
    (b"timestamp,open,high,low,close,volume\n", r"E\.csv: no data rows \(only a header: 'timestamp,open,"),
])
def test_empty_and_header_only_files_name_the_file(tmp_path, content, pattern):
    path = tmp_path / "E.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=pattern):
        load_generic_ohlcv(path)


def test_truncated_and_fake_zips_name_the_file(tmp_path):
    good = _klines_zip(tmp_path).read_bytes()
    truncated = tmp_path / "T-1h-2024-01.zip"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"T-1h-2024-01\.zip: not a readable zip archive .*fetch it again"):
        load_klines([truncated], "T")
    fake = tmp_path / "F-1h-2024-01.zip"
    fake.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(DataError, match=r"F-1h-2024-01\.zip: not a readable zip archive"):
        load_klines([fake], "F")
    bad_parquet = tmp_path / "P.parquet"
    bad_parquet.write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"P\.parquet: not a readable parquet file"):
        load_generic_ohlcv(bad_parquet)


@pytest.mark.parametrize("symbol", ["../../../escape", "BTC/USDT", "A B", ".."])
def test_symbol_names_that_would_become_paths_are_refused(tmp_path, symbol):
    frame = make_bars(30)[COLS].assign(symbol=symbol)
    path = tmp_path / "panel.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"panel\.csv, column 'symbol': symbol .* is not a valid name: use letters"):
        load_generic_ohlcv(path)


def test_valid_symbol_names_pass(tmp_path):
    frame = pd.concat([make_bars(30)[COLS].assign(symbol=s) for s in ("BRK.B", "EUR-USD", "btc_usdt")])
    path = tmp_path / "panel.csv"
    frame.to_csv(path, index=False)
    assert sorted(load_generic_ohlcv(path)) == ["BRK.B", "EUR-USD", "btc_usdt"]
