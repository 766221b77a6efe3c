"""Baseline experts: the TFT's rows and contract, fits that never see validation, OOF through the stack."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.baselines import BaselineClassifier, BaselineExpert, check_model, inner_stop_rows
from models.leaf_config import load_leaf
from models.outputs import PREDICTION_COLUMNS
from models.window_dataset import build_window_data, leaf_rows, read_table, resolve_split
from pipelines.build_oof_for_z import build
from scripts import experts_cli
from tests.models.conftest import folder_held
from utils.audit_no_leakage import audit
from utils.errors import ConfigError, DataError
from utils.timeline import label_end

WF = ["walk_forward.n_windows=2", "walk_forward.val_days=5", "walk_forward.oof_days=7"]


def _data(leaf_path):
    leaf = load_leaf(leaf_path)
    table = read_table(leaf.model.data.path)
    leaf = resolve_split(leaf, leaf_rows(leaf, table)["timestamp"])
    return leaf, build_window_data(leaf, table)


@pytest.mark.parametrize("model", ["logistic", "lightgbm"])
def test_baseline_command_writes_the_contract_on_the_tfts_rows(leaf_path, model):
    args = ["baseline", "--expert", "Test-TFT", "--leaf", "1h/base", "--model", model, "--split", "val",
            "--split", "test"]
    assert experts_cli.main(args) == 0
    folder = Path("lightning_logs/experts/Test-TFT/1h/base") / model / "version_0"
    files = sorted((folder / "predictions").glob(f"predictions_Test-TFT.{model}_1h_*.parquet"))
    assert len(files) == 2 and len(list(folder.glob(f"eval_report_Test-TFT.{model}_1h_*.csv"))) == 2
    frames = [pd.read_parquet(f) for f in files]
    val = next(f for f in frames if (f["split"] == "val").all())
    assert list(val.columns) == PREDICTION_COLUMNS
    _, data = _data(leaf_path)
    rows = data.splits["val"]
    symbols = np.asarray(data.categories["symbol"])[data.static.numpy()[rows, 0]]
    expected = set(zip(symbols, np.asarray(data.time_idx)[rows], strict=True))
    cls = val[val["target"] == "target_binarytrend"]
    assert set(zip(cls["symbol"], cls["time_idx"], strict=True)) == expected
    assert np.isfinite(cls["score"]).all() and cls["score"].between(0, 1).all()
    # Platt's intercept: on its fit span the mean probability is the base rate
    assert abs(cls["score"].mean() - cls["y_true"].mean()) < 0.01
    reg = val[val["target"] == "target_logreturn_h4"]
    assert (reg["p10"] <= reg["p50"]).all() and (reg["p50"] <= reg["p90"]).all()
    assert np.allclose(reg["score"], reg["p50"]) and (reg["uncertainty"] > 0).all()
    ckpt = Path("checkpoints/experts/Test-TFT/1h/base") / model
    assert (ckpt / "baseline.pkl").is_file() and (ckpt / "config_snapshot.yaml").is_file()
    assert not (ckpt.parent / "tft" / "config_snapshot.yaml").exists()  # the TFT's folder is left alone


@pytest.mark.parametrize("model", ["logistic", "lightgbm"])
def test_the_fit_never_sees_validation_labels(leaf_path, model):
    """Changing every validation label changes the calibration, never the fitted model."""
    leaf, data = _data(leaf_path)
    val = data.splits["val"]
    first = BaselineExpert(leaf, model, seed=3).fit(data)
    flipped = data.y_raw.copy()
    flipped[val, 0] = 1.0 - flipped[val, 0]
    data.y_raw = flipped
    second = BaselineExpert(leaf, model, seed=3).fit(data)
    X = data.x.numpy()[val]
    a, b = first.targets_[0], second.targets_[0]
    assert np.array_equal(a.model.decision_function(X), b.model.decision_function(X))
    assert np.allclose(first.targets_[1].model.predict(X), second.targets_[1].model.predict(X))
    assert a.calibrator.scale_[0] != b.calibrator.scale_[0]


def test_stopping_rows_are_purged_and_embargoed():
    ts = pd.date_range("2024-01-01", periods=1000, freq="h", tz="UTC").as_unit("ns")
    fit, stop = inner_stop_rows(ts.asi8, "1h", horizon=4, embargo=6, share=0.25)
    boundary = ts[stop].min() - pd.Timedelta(hours=6)
    assert label_end(ts[fit], "1h", 4).max() <= boundary
    assert fit.sum() > 700 and stop.sum() > 200 and not (fit & stop).any()
    with pytest.raises(DataError, match="too short to hold out its last 25%"):
        inner_stop_rows(ts[:3].asi8, "1h", horizon=4, embargo=6, share=0.25)


def test_bad_model_names_and_single_class_targets():
    with pytest.raises(ConfigError, match="--model 'svm': not a baseline model"):
        check_model("svm")
    X = np.random.default_rng(0).normal(size=(100, 3))
    with pytest.raises(DataError, match="needs both classes"):
        BaselineClassifier("logistic").fit(X, np.ones(100), np.arange(100) >= 80)


def test_oof_of_baselines_stacks_beside_each_other(leaf_path, small_panel):
    for model in ("logistic", "lightgbm"):
        assert experts_cli.main(["oof", "--expert", "Test-TFT", "--leaf", "1h/base", "--model", model,
                                 *[f"--set={s}" for s in WF]]) == 0
    root = Path("lightning_logs")
    z, coverage = build(root, small_panel["base_csv"].with_suffix(".parquet"))
    assert set(coverage["expert"]) == {"Test-TFT.logistic", "Test-TFT.lightgbm"}
    assert {"Test-TFT.logistic__target_binarytrend__score", "Test-TFT.lightgbm__target_binarytrend__score"} <= set(z)
    ids = z["Test-TFT.lightgbm__train_window_id"].dropna().str[:4]
    assert set(ids) == {"wf00", "wf01"}
    # leak_correlation is left out: on this 2-month panel the stack's own regime_vol_level fails it too
    checks = {c.name: c for c in audit(z)}
    for name in ("duplicates", "time_order", "late_prediction"):
        assert checks[name].passed, checks[name]


def test_missing_library_no_validation_and_empty_spans_are_named(leaf_path, monkeypatch):
    import models.baselines as baselines
    from models.baseline_runs import write_split

    monkeypatch.setattr(baselines, "available_models", lambda: ["logistic"])
    with pytest.raises(ConfigError, match="--model 'xgboost': its library is not installed"):
        check_model("xgboost")
    leaf, data = _data(leaf_path)
    fitted = BaselineExpert(leaf, "logistic").fit(data)
    with pytest.raises(ConfigError, match="--split 'train': use one of"):
        write_split(fitted, data, "train", Path("out"))
    data.splits = {**data.splits, "val": data.splits["val"][:0]}
    with pytest.raises(DataError, match="no validation window: the baseline's calibration needs one"):
        BaselineExpert(leaf, "logistic").fit(data)
    with pytest.raises(DataError, match="the val span of .* has no window to predict"):
        write_split(fitted, data, "val", Path("out"))


def test_baseline_no_wait_stops_when_another_run_holds_the_folder(leaf_path, caplog):
    with folder_held(load_leaf(leaf_path).model_ckpt_dir("logistic")):
        assert experts_cli.main(["baseline", "--expert", "Test-TFT", "--leaf", "1h/base", "--model", "logistic",
                                 "--no-wait"]) == 2
    assert "is being written by another logistic baseline run of this leaf" in caplog.text
    assert not Path("lightning_logs/experts/Test-TFT/1h/base/logistic").exists()
