"""Smoke and end-to-end tests of ``src/build_full_merged.py``."""

import json
import logging

import numpy as np
import pandas as pd
import pytest
import yaml

from src.build_config import AUTO_EXPORT_MAX_ROWS, EXPORTS, BuildConfig
from src.build_full_merged import main
from src.indicating import indicator_columns
from tests.conftest import make_bars
from utils.partitioned import read_partitioned


def _config(tmp_path, **extra):
    cfg = {
        "raw_dir": str(tmp_path / "raw"),
        "targeted_dir": str(tmp_path / "targeted"),
        "merged_csv": str(tmp_path / "merged" / "full_merged.csv"),
        "merged_pkl": str(tmp_path / "pkl" / "full_merged.pkl"),
        "synthetic": {"symbols": 2, "days": 45, "seed": 5},
        "min_bars": 20,  # small test markets: 45 daily bars
        **extra,
    }
    path = tmp_path / "build.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _merged(tmp_path):
    return pd.read_parquet(tmp_path / "merged" / "full_merged.parquet")


def test_smoke_generates_synthetic_market_and_builds_panel(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        assert main(["--config", str(_config(tmp_path)), "--synthetic"]) == 0
    assert "generating the embedded synthetic market" in caplog.text
    merged = _merged(tmp_path)
    assert list(merged.columns[:5]) == ["symbol", "period", "timestamp", "time_idx", "gap_before"]
    assert set(merged["period"]) == {"1h", "4h", "1d"} and merged["symbol"].nunique() == 2
    assert len(indicator_columns(merged)) >= 150
    assert {"target_binarytrend", "target_logreturn_h24", "target_drawdown_h4"} <= set(merged.columns)
    pkl = pd.read_pickle(tmp_path / "pkl" / "full_merged.pkl")
    pd.testing.assert_frame_equal(pkl, merged)
    csv = pd.read_csv(tmp_path / "merged" / "full_merged.csv", usecols=["symbol", "time_idx", "close"])
    np.testing.assert_allclose(csv["close"], merged["close"])
    assert sorted(p.name for p in (tmp_path / "targeted" / "4h").iterdir()) == ["BTCUSDT_4h.csv", "ETHUSDT_4h.csv"]
    one_h = merged[merged.period == "1h"]
    jumps = one_h.groupby("symbol")["time_idx"].diff()
    assert one_h["gap_before"].sum() == jumps.gt(1).sum()
    truth = json.loads((tmp_path / "raw" / "ground_truth.json").read_text())
    assert (jumps - 1).sum() == sum(truth["missing_bars"].values())  # every dropped bar stays visible


def test_build_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert main(["--config", str(_config(a)), "--periods", "4h", "--synthetic"]) == 0
    assert main(["--config", str(_config(b)), "--periods", "4h", "--synthetic"]) == 0
    pd.testing.assert_frame_equal(_merged(a), _merged(b))


def _write_stock_csvs(folder, freq, n, holiday=None):
    folder.mkdir(parents=True)
    for i, name in enumerate(["AAPL", "MSFT", "SPY"]):
        bars = make_bars(n, seed=i, freq=freq, weekdays_only=True)
        if holiday is not None:
            bars = bars[bars["timestamp"].dt.normalize() != holiday]
        frame = bars[["timestamp", "open", "high", "low", "close", "volume"]]
        frame = frame.rename(columns=str.capitalize).rename(columns={"Timestamp": "Date"})
        frame.to_csv(folder / f"{name}.csv", index=False)


def test_daily_stock_csvs_weekends_and_holidays_are_not_gaps(tmp_path, caplog):
    holiday = pd.Timestamp("2024-01-15", tz="UTC")  # a Monday closed for every symbol
    _write_stock_csvs(tmp_path / "raw", "1D", 200, holiday)
    with caplog.at_level(logging.INFO):
        assert main(["--config", str(_config(tmp_path)), "--horizons", "1,5"]) == 0
    assert "market: equity" in caplog.text
    assert "1h: not built for 3 symbol(s) whose bars are coarser" in caplog.text  # 1h/4h cannot come from daily data
    merged = _merged(tmp_path)
    assert set(merged["period"]) == {"1d"} and sorted(merged["symbol"].unique()) == ["AAPL", "MSFT", "SPY"]
    assert not merged["gap_before"].any()
    assert (merged.groupby("symbol")["time_idx"].diff().dropna() == 1).all()
    friday = merged[(merged.symbol == "AAPL") & (merged.timestamp == pd.Timestamp("2024-01-12", tz="UTC"))]
    assert friday["target_logreturn"].notna().all()  # Friday -> (holiday Monday) -> Tuesday is one bar


def test_hourly_fx_csvs_resample_without_weekend_gaps(tmp_path):
    _write_stock_csvs(tmp_path / "raw", "1h", 24 * 30)
    assert main(["--config", str(_config(tmp_path)), "--periods", "1h,4h,1d"]) == 0
    merged = _merged(tmp_path)
    assert set(merged["period"]) == {"1h", "4h", "1d"}
    assert not merged["gap_before"].any()
    monday = merged[(merged.period == "1h") & (merged.timestamp == pd.Timestamp("2024-01-08 00:00", tz="UTC"))]
    friday_last = merged[(merged.period == "1h") & (merged.timestamp == pd.Timestamp("2024-01-05 23:00", tz="UTC"))]
    assert (monday["time_idx"].to_numpy() - friday_last["time_idx"].to_numpy() == 1).all()


def test_bad_data_fails_clearly_and_keeps_previous_outputs(tmp_path, caplog):
    cfg = _config(tmp_path)
    assert main(["--config", str(cfg), "--periods", "1d", "--synthetic"]) == 0
    merged_csv = tmp_path / "merged" / "full_merged.csv"
    before = merged_csv.read_bytes()
    bad = make_bars(10)[["timestamp", "open", "high", "low", "close", "volume"]]
    bad.loc[3, "high"] = 0.5 * bad.loc[3, "low"]
    bad.to_csv(tmp_path / "raw" / "BROKEN.csv", index=False)
    assert main(["--config", str(cfg), "--periods", "1d"]) == 2
    assert "BROKEN.csv: line 5, column 'high'" in caplog.text
    assert merged_csv.read_bytes() == before


@pytest.mark.parametrize(("args", "pattern"), [
    (["--periods", "1h,7x"], r"unknown period\(s\) \['7x'\]"),
    (["--symbols", "NOPE", "--synthetic"], r"symbol\(s\) \['NOPE'\] not found"),
    (["--horizons", "1,a"], r"--horizons '1,a': give integers"),
])
def test_bad_arguments_exit_2_with_message(tmp_path, caplog, args, pattern):
    assert main(["--config", str(_config(tmp_path)), *args]) == 2
    assert caplog.records and pytest.importorskip("re").search(pattern, caplog.text)


def test_unknown_config_key(tmp_path, caplog):
    path = tmp_path / "c.yaml"
    path.write_text("periodz: [1h]\n")
    assert main(["--config", str(path)]) == 2
    assert "unknown key 'periodz'" in caplog.text


def test_no_requested_period_can_be_built(tmp_path, caplog):
    _write_stock_csvs(tmp_path / "raw", "1D", 60)
    assert main(["--config", str(_config(tmp_path)), "--periods", "1h,4h"]) == 2
    assert "none of the periods ['1h', '4h'] can be built from the data" in caplog.text


def _listing(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_no_silent_synthetic_fallback(tmp_path, caplog):
    """A mistyped, empty or unrecognised raw folder is an error; nothing is generated or written into it."""
    cfg = _config(tmp_path)
    assert main(["--config", str(cfg)]) == 2  # the raw folder does not exist
    assert f"raw folder {tmp_path / 'raw'} does not exist" in caplog.text and "--synthetic" in caplog.text
    assert not (tmp_path / "raw").exists() and not (tmp_path / "merged").exists()
    (tmp_path / "raw").mkdir()
    caplog.clear()
    assert main(["--config", str(cfg)]) == 2  # empty
    assert "no recognised price file under" in caplog.text and "found: nothing" in caplog.text
    (tmp_path / "raw" / "odd.zip").write_bytes(b"PK\x03\x04 not a dump")
    before = _listing(tmp_path / "raw")
    caplog.clear()
    assert main(["--config", str(cfg)]) == 2  # only an unrecognised zip
    assert "found: ['odd.zip']" in caplog.text and "accepted layouts: Binance public dumps" in caplog.text
    assert main(["--config", str(cfg), "--synthetic"]) == 2  # other data: --synthetic never writes into it
    assert "already holds files that are not the embedded synthetic market" in caplog.text
    assert _listing(tmp_path / "raw") == before and not (tmp_path / "merged").exists()


def test_synthetic_is_reused_and_real_data_keeps_the_previous_panel(tmp_path):
    cfg = _config(tmp_path)
    assert main(["--config", str(cfg), "--synthetic", "--periods", "1d"]) == 0
    raw_before = _listing(tmp_path / "raw")
    assert main(["--config", str(cfg), "--synthetic", "--periods", "1d"]) == 0  # reused, not regenerated
    assert _listing(tmp_path / "raw") == raw_before
    merged = tmp_path / "merged" / "full_merged.parquet"
    stamp = merged.stat().st_mtime_ns
    assert main(["--config", str(cfg), "--raw-dir", str(tmp_path / "typo"), "--periods", "1d"]) == 2
    assert merged.stat().st_mtime_ns == stamp  # a failed build leaves the earlier panel alone


def test_panel_is_a_partitioned_float32_dataset_and_the_exports_match_it(tmp_path):
    assert main(["--config", str(_config(tmp_path)), "--periods", "1h,1d", "--synthetic"]) == 0
    root = tmp_path / "merged" / "full_merged"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["period=1d", "period=1h"]
    assert sorted(p.name for p in (root / "period=1h").iterdir()) == ["symbol=BTCUSDT", "symbol=ETHUSDT"]
    panel = read_partitioned(root)
    assert list(panel["period"].unique()) == ["1h", "1d"]  # periods in build order, then symbols, then time
    assert panel.groupby(["period", "symbol"], sort=False)["timestamp"].is_monotonic_increasing.all()
    floats = [c for c in indicator_columns(panel) if panel[c].dtype.kind == "f"]
    assert len(floats) >= 150 and all(panel[c].dtype == np.float32 for c in floats)
    assert panel["close"].dtype == np.float64 and panel["target_logreturn"].dtype == np.float64
    pd.testing.assert_frame_equal(_merged(tmp_path), panel)  # the single-file parquet export
    pd.testing.assert_frame_equal(pd.read_pickle(tmp_path / "pkl" / "full_merged.pkl"), panel)
    csv = pd.read_csv(tmp_path / "merged" / "full_merged.csv", usecols=["rsi_14", "close"])
    np.testing.assert_allclose(csv["rsi_14"], panel["rsi_14"], rtol=1e-6)
    one = pd.read_csv(tmp_path / "targeted" / "1d" / "ETHUSDT_1d.csv", usecols=["time_idx"])
    np.testing.assert_array_equal(one["time_idx"], panel.query("period == '1d' and symbol == 'ETHUSDT'")["time_idx"])
    manifest = json.loads((tmp_path / "merged" / "build_manifest.json").read_text())
    assert manifest["exports"] == ["csv", "pkl", "parquet"] and manifest["dataset"].endswith("full_merged")


def test_export_none_writes_only_the_dataset_and_drops_stale_exports(tmp_path, caplog):
    from src.fusion import read_base_panel

    cfg = _config(tmp_path)
    assert main(["--config", str(cfg), "--periods", "4h", "--synthetic"]) == 0
    exports = [tmp_path / "merged" / "full_merged.csv", tmp_path / "merged" / "full_merged.parquet",
               tmp_path / "pkl" / "full_merged.pkl", tmp_path / "targeted"]
    assert all(p.exists() for p in exports)
    assert main(["--config", str(cfg), "--periods", "1d", "--synthetic", "--export", "none"]) == 0
    assert not any(p.exists() for p in exports)  # a 4h export beside a 1d panel would disagree with it
    base = read_base_panel(tmp_path / "merged" / "full_merged.csv")  # the fusion reads the partitioned panel
    assert set(base["period"]) == {"1d"} and base["symbol"].nunique() == 2


def test_exports_turn_off_above_the_row_limit_with_a_message(tmp_path, caplog, monkeypatch):
    import src.build_config as bc
    import src.build_full_merged as bfm

    monkeypatch.setattr(bc, "AUTO_EXPORT_MAX_ROWS", 10)
    monkeypatch.setattr(bfm, "AUTO_EXPORT_MAX_ROWS", 10)
    with caplog.at_level(logging.INFO):
        assert main(["--config", str(_config(tmp_path)), "--periods", "1d", "--synthetic"]) == 0
    assert "single-file exports" in caplog.text and "are off above 10 rows" in caplog.text
    assert not (tmp_path / "merged" / "full_merged.csv").exists()
    assert (tmp_path / "merged" / "full_merged" / "_dataset.json").is_file()
    assert main(["--config", str(_config(tmp_path)), "--periods", "1d", "--synthetic", "--export", "pkl"]) == 0
    assert (tmp_path / "pkl" / "full_merged.pkl").is_file() and not (tmp_path / "merged" / "full_merged.csv").exists()


def test_unknown_export_is_a_config_error(tmp_path, caplog):
    assert main(["--config", str(_config(tmp_path)), "--export", "csv,xls"]) == 2
    assert "key 'export' = ['csv', 'xls']: unknown export(s) ['xls']" in caplog.text
    assert BuildConfig(export=[]).exports(5) == [] and BuildConfig().exports(AUTO_EXPORT_MAX_ROWS) == list(EXPORTS)


def test_equity_bars_are_numbered_on_the_union_of_every_symbols_trading_days(tmp_path):
    """Built one symbol at a time, a day one symbol lacks while others trade is still a gap for it."""
    _write_stock_csvs(tmp_path / "raw", "1D", 120)
    aapl = pd.read_csv(tmp_path / "raw" / "AAPL.csv")
    aapl[aapl["Date"].str.startswith("2024-02-07") == False].to_csv(tmp_path / "raw" / "AAPL.csv", index=False)  # noqa: E712
    assert main(["--config", str(_config(tmp_path))]) == 0
    merged = _merged(tmp_path)
    after = merged[merged.timestamp == pd.Timestamp("2024-02-08", tz="UTC")].set_index("symbol")
    assert bool(after.loc["AAPL", "gap_before"]) and not after.loc[["MSFT", "SPY"], "gap_before"].any()
    assert (after["time_idx"] == after.loc["MSFT", "time_idx"]).all()  # one calendar for every symbol


def test_merged_main_rebuilds_the_panel_from_the_per_symbol_exports(small_panel, tmp_path):
    """``merged_main`` (the seed toolkit's merge step) still merges the per-symbol CSV exports into the panel."""
    from src.merging import merged_main

    root = small_panel["base_csv"].parent.parent
    merged = merged_main(["1h", "4h", "1d"], root / "targeted", tmp_path / "m.csv", tmp_path / "m.pkl")
    panel = read_partitioned(small_panel["base_csv"].with_suffix(""))
    assert list(merged.columns) == list(panel.columns) and len(merged) == len(panel)
    np.testing.assert_allclose(merged["rsi_14"], panel["rsi_14"], rtol=1e-6)
    assert (tmp_path / "m.parquet").is_file() and (tmp_path / "m.pkl").is_file()
