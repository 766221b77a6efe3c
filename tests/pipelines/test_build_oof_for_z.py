import numpy as np
import pandas as pd
import pytest

from features.regime_core import REGIME_COLUMNS
from models.outputs import PREDICTION_COLUMNS
from pipelines import build_oof_for_z
from pipelines.build_oof_for_z import build
from utils.audit_no_leakage import audit
from utils.errors import DataError


def _predictions(panel, expert, stamp, split="oof", score_shift=0.0, **versions):
    rows = panel[(panel["period"] == "1h")].iloc[-300:]
    frames = []
    for target, kind in (("target_binarytrend", "classification"), ("target_logreturn", "regression")):
        f = rows[["symbol", "period", "time_idx", "timestamp"]].copy()
        f["target"], f["kind"], f["split"] = target, kind, split
        f["score"] = (0.5 if kind == "classification" else 0.0) + score_shift
        f["uncertainty"] = np.nan if kind == "classification" else 0.01
        for col in ("p10", "p50", "p90", "antilog_return", "future_price"):
            f[col] = np.nan
        f["head_scale"], f["head_bias"], f["y_true"] = 1.0, 0.0, rows[target].to_numpy()
        f["schema_ver"] = versions.get("schema_ver", "1")
        f["data_ver"] = versions.get("data_ver", "abc")
        f["expert_ver"] = versions.get("expert_ver", "0.1")
        f["train_window_id"] = versions.get("train_window_id", "wf00")
        frames.append(f)
    return pd.concat(frames)[PREDICTION_COLUMNS], f"predictions_{expert}_1h_{stamp}.parquet"


@pytest.fixture
def setup(tmp_path, small_panel):
    panel = pd.read_parquet(small_panel["base_csv"].with_suffix(".parquet"))
    root = tmp_path / "logs"

    def write(expert, stamp, sub="a", **kw):
        frame, name = _predictions(panel, expert, stamp, **kw)
        (root / expert / sub).mkdir(parents=True, exist_ok=True)
        frame.to_parquet(root / expert / sub / name)

    return root, small_panel["base_csv"].with_suffix(".parquet"), write


def test_pivot_targets_regime_and_coverage(setup):
    root, data, write = setup
    write("Alpha-Dir-TFT", "20260101T000000000000Z")
    write("Risk-TFT", "20260101T000000000000Z")
    write("Risk-TFT", "20250101T000000000000Z", sub="b", split="val")  # not out of fold: ignored
    z, coverage = build(root, data)
    assert len(z) == 300 and not z.duplicated(["symbol", "period", "time_idx"]).any()
    for col in ("Alpha-Dir-TFT__target_binarytrend__score", "Alpha-Dir-TFT__target_logreturn__score",
                "Alpha-Dir-TFT__target_logreturn__uncertainty", "Risk-TFT__pred_time", "target_binarytrend",
                "regime_vol_level", "regime_momentum"):
        assert col in z.columns, col
    assert "Alpha-Dir-TFT__target_binarytrend__uncertainty" not in z.columns  # undefined for classification
    assert "regime_funding_slope" not in z.columns  # the panel has no funding: dropped, not all-NaN
    assert set(REGIME_COLUMNS) & set(z.columns)
    assert (z["Risk-TFT__pred_time"] == z["timestamp"] + pd.Timedelta(hours=1)).all()
    assert coverage.set_index("expert")["coverage"].to_dict() == {"Alpha-Dir-TFT": 1.0, "Risk-TFT": 1.0}
    checks = {c.name: c for c in audit(z)}
    assert checks["duplicates"].passed and checks["late_prediction"].passed and checks["time_order"].passed


def test_newest_run_wins_duplicates(setup):
    root, data, write = setup
    write("Alpha-Dir-TFT", "20250101T000000000000Z", sub="old", score_shift=0.1)
    write("Alpha-Dir-TFT", "20260101T000000000000Z", sub="new", score_shift=0.2)
    z, _ = build(root, data)
    assert np.allclose(z["Alpha-Dir-TFT__target_binarytrend__score"], 0.7)


def test_version_mismatch_names_files_and_values(setup):
    root, data, write = setup
    write("Alpha-Dir-TFT", "20250101T000000000000Z", sub="old", data_ver="aaa")
    write("Alpha-Dir-TFT", "20260101T000000000000Z", sub="new", data_ver="bbb")
    with pytest.raises(DataError, match=r"version mismatch in Alpha-Dir-TFT 1h: 'data_ver' differs .*new.*'bbb'.*"
                                        r"old.*'aaa'"):
        build(root, data)
    write("Risk-TFT", "20260101T000000000000Z", schema_ver="2")
    with pytest.raises(DataError, match="version mismatch in all predictions: 'schema_ver'"):
        build(root, data)


def test_errors_and_cli(setup, tmp_path):
    root, data, write = setup
    with pytest.raises(DataError, match="no predictions_\\*.parquet under"):
        build(root, data)
    write("Alpha-Dir-TFT", "20260101T000000000000Z", split="val")
    with pytest.raises(DataError, match=r"no prediction rows of split\(s\) \['oof'\]"):
        build(root, data)
    out = tmp_path / "z" / "z_train.parquet"
    assert build_oof_for_z.main(["--predictions-root", str(root), "--data-path", str(data), "--output", str(out),
                                 "--splits", "val"]) == 0
    assert out.is_file() and (tmp_path / "z" / "z_train_coverage.csv").is_file()
    assert build_oof_for_z.main(["--predictions-root", str(root), "--data-path", str(tmp_path / "nope.pkl"),
                                 "--output", str(out)]) == 2


def test_bad_file_name_and_duplicates_inside_a_file(setup):
    root, data, write = setup
    write("Alpha-Dir-TFT", "20260101T000000000000Z")
    path = next(root.rglob("predictions_*.parquet"))
    frame = pd.read_parquet(path)
    pd.concat([frame, frame.iloc[:1]]).to_parquet(path)
    with pytest.raises(DataError, match=r"rows inside one file"):
        build(root, data)
    path.rename(path.with_name("predictions_Alpha-Dir-TFT.parquet"))
    with pytest.raises(DataError, match=r"predictions_Alpha-Dir-TFT\.parquet: not a predictions_<expert>_<period>"):
        build(root, data)


def test_predictions_of_another_dataset_are_ignored(setup, caplog):
    """Predictions of other symbols (an earlier crypto run beside a stock run) never enter this panel's table."""
    root, data, write = setup
    write("Alpha-Dir-TFT", "20260101T000000000000Z")
    frame, name = _predictions(pd.read_parquet(data), "Risk-TFT", "20260101T000000000000Z")
    (root / "Risk-TFT" / "x").mkdir(parents=True)
    frame.assign(symbol="AAPL").to_parquet(root / "Risk-TFT" / "x" / name)
    import logging
    with caplog.at_level(logging.WARNING):
        z, coverage = build(root, data)
    assert "AAPL" not in set(z["symbol"]) and len(z) == 300 and not any("Risk-TFT" in c for c in z.columns)
    assert "(symbol, period) pair(s) not in" in caplog.text and "AAPL 1h" in caplog.text
    import shutil
    shutil.rmtree(root / "Alpha-Dir-TFT")
    with pytest.raises(DataError, match=r"no prediction under .* is for a symbol and period of"):
        build(root, data)


def test_panel_falls_back_to_the_partitioned_dataset_through_a_projection(small_panel, tmp_path):
    """A build above the export limit writes no full_merged.pkl: the default --data-path reads the dataset."""
    from pipelines.build_oof_for_z import read_panel

    (tmp_path / "merged").mkdir()
    (tmp_path / "merged" / "full_merged").symlink_to(small_panel["base_csv"].with_suffix(""), target_is_directory=True)
    panel = read_panel(tmp_path / "pkl_merged" / "full_merged.pkl", ["4h"])
    assert set(panel["period"]) == {"4h"} and {"close", "volume", "target_binarytrend", "time_idx"} <= set(panel)
    assert "rsi_14" not in panel.columns  # only what the stacking table needs
