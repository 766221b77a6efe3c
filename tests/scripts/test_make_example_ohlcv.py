"""Smoke test of ``scripts/make_example_ohlcv.py`` (the README's stocks and FX path)."""

import logging

import pandas as pd

from scripts.make_example_ohlcv import main
from src.build_config import BuildConfig
from src.build_full_merged import build


def test_stock_files_are_plain_daily_csvs_and_build(tmp_path, caplog):
    out = tmp_path / "stocks"
    assert main(["--out", str(out), "--symbols", "3", "--years", "1.2"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["ACME.csv", "BOLT.csv", "CRUX.csv"]
    frame = pd.read_csv(out / "ACME.csv")
    assert list(frame.columns) == ["Date", "Open", "High", "Low", "Close", "Volume"]
    assert pd.to_datetime(frame["Date"]).dt.dayofweek.max() <= 4
    with caplog.at_level(logging.ERROR):
        assert main(["--out", str(out)]) == 2  # never writes into a folder holding files
    assert "is not empty" in caplog.text
    merged = build(BuildConfig(raw_dir=str(out), periods=["1d"], data_root=str(tmp_path / "d"))).read()
    assert sorted(merged["symbol"].unique()) == ["ACME", "BOLT", "CRUX"] and not merged["gap_before"].any()


def test_fx_files_follow_the_fx_calendar(tmp_path, caplog):
    out = tmp_path / "fx"
    assert main(["--out", str(out), "--kind", "fx", "--symbols", "1", "--years", "0.2"]) == 0
    with caplog.at_level(logging.INFO):
        merged = build(BuildConfig(raw_dir=str(out), periods=["1h", "1d"], data_root=str(tmp_path / "d"),
                                   min_bars=20)).read()
    assert "market: fx" in caplog.text
    daily = merged[merged.period == "1d"]
    assert (daily["timestamp"].dt.tz_convert("America/New_York").dt.hour == 17).all()
