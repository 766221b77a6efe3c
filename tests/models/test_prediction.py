import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models.leaf_config import load_leaf
from models.outputs import PREDICTION_COLUMNS, PREDICTION_DTYPES
from models.prediction import checkpoint_data, load_expert, predict, resolve_checkpoint
from models.training import run
from models.window_dataset import WindowDataset
from tests.models.conftest import write_leaf
from utils.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_panel):
    """One tiny training run shared by this module's tests (working directory: its own tmp folder)."""
    root = tmp_path_factory.mktemp("predict")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        leaf = load_leaf(write_leaf(root, small_panel["base_csv"].with_suffix(".parquet")),
                         ["training.limit_val_batches=null"])
        yield leaf, run(leaf)


def test_training_writes_validation_predictions_with_the_contract(trained, small_panel):
    leaf, result = trained
    frame = pd.read_parquet(result.prediction.predictions)
    path = Path(result.prediction.predictions)
    assert path.parent == Path(result.log_dir) / "predictions"
    assert path.name.startswith("predictions_Test-TFT_1h_") and path.suffix == ".parquet"
    assert list(frame.columns) == PREDICTION_COLUMNS
    for col, dtype in PREDICTION_DTYPES.items():
        assert str(frame[col].dtype) == dtype, col
    assert (frame["split"] == "val").all() and frame["symbol"].nunique() > 1
    cls, reg = frame[frame["kind"] == "classification"], frame[frame["kind"] == "regression"]
    # defined values are finite; undefined ones NaN
    for col in ("score", "head_scale", "head_bias", "y_true"):
        assert frame[col].notna().all(), col
    for col in ("uncertainty", "p10", "p50", "p90", "antilog_return", "future_price"):
        assert reg[col].notna().all() and cls[col].isna().all(), col
    for col in ("schema_ver", "data_ver", "expert_ver", "train_window_id"):
        assert (frame[col] != "").all() and frame[col].nunique() == 1, col
    assert frame["schema_ver"].iloc[0] == "1" and len(frame["data_ver"].iloc[0]) == 12
    # formulas of the contract
    assert cls["score"].between(0, 1).all() and np.isfinite(cls[["head_scale", "head_bias"]]).all().all()
    np.testing.assert_allclose(reg["score"], reg["p50"])
    assert (reg["p10"] <= reg["p50"]).all() and (reg["p50"] <= reg["p90"]).all()  # ordered by construction
    np.testing.assert_allclose(reg["uncertainty"], np.maximum(reg["p90"] - reg["p10"], 0) / 2.5631031310892007,
                               rtol=1e-9)
    np.testing.assert_allclose(reg["antilog_return"], np.expm1(reg["p50"]))
    table = pd.read_parquet(small_panel["base_csv"].with_suffix(".parquet"), columns=["symbol", "period", "timestamp",
                                                                                     "close"])
    joined = reg.merge(table, on=["symbol", "period", "timestamp"], how="left", validate="many_to_one")
    np.testing.assert_allclose(joined["future_price"], joined["close"] * np.exp(joined["p50"]), rtol=1e-12)
    # a target's rows are unique per key
    assert not frame.duplicated(["symbol", "period", "time_idx", "target"]).any()
    report = pd.read_csv(result.prediction.eval_report)
    assert {"ALL"} < set(report["symbol"]) and {"ap", "ece", "brier", "rmse", "cov_p10", "pinball"} <= set(report)


def test_validation_end_calibrates_and_writes_artifacts(trained):
    leaf, result = trained
    log_dir = Path(result.log_dir)
    calib = pd.read_csv(log_dir / "val_calibration.csv")
    row = calib[calib["target"] == "target_binarytrend"].iloc[-1]
    assert row["method"] == "platt" and np.isfinite(row["cal_scale"]) and np.isfinite(row["cal_bias"])
    assert np.isfinite(row["ece"]) and np.isfinite(row["brier"]) and "calibration_warning" in calib
    reg = calib[calib["target"] == "target_logreturn_h4"].iloc[-1]
    assert np.isfinite(reg["cov_p10"]) and np.isfinite(reg["pinball"])
    assert list((log_dir / "reliability").glob("reliability_epoch000.png"))
    module, _ = load_expert(result.best_model_path)
    assert module.cal_scale[0].item() == pytest.approx(row["cal_scale"], rel=1e-5)
    assert module.cal_bias[0].item() == pytest.approx(row["cal_bias"], rel=1e-5, abs=1e-7)
    assert module.cal_scale[1].item() == 1.0 and module.cal_bias[1].item() == 0.0  # regression target


def test_checkpoint_alone_predicts_the_same_scores(trained):
    leaf, result = trained
    first = pd.read_parquet(result.prediction.predictions)
    # a separate process: nothing of the training process is reused
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "experts_cli.py"), "predict", "--expert",
                           "Test-TFT", "--leaf", "1h/base", "--ckpt", result.best_model_path, "--split", "val"],
                          capture_output=True, text=True, cwd=Path.cwd())
    assert proc.returncode == 0, proc.stderr[-2000:]
    path = next(line.split(": ", 1)[1].split(" (")[0] for line in proc.stdout.splitlines()
                if line.startswith("predictions:"))
    second = pd.read_parquet(path)
    assert Path(path) != Path(result.prediction.predictions)
    pd.testing.assert_frame_equal(first, second, check_exact=False, rtol=1e-5)


def test_predict_test_span_includes_unknown_outcomes(trained):
    leaf, result = trained
    module, ck_leaf = load_expert(result.best_model_path)
    data = checkpoint_data(module, ck_leaf)
    # 'all' is every bar with history; 'test' also keeps bars whose outcome is not known yet
    assert set(data.splits["predict_test"]) <= set(data.splits["predict_all"])
    assert set(data.splits["test"]) < set(data.splits["predict_test"])
    assert set(data.splits["val"]) < set(data.splits["predict_all"])
    frame = pd.read_parquet(predict(module, ck_leaf, "test", data=data).predictions)
    assert (frame["split"] == "test").all() and frame["score"].notna().all()
    assert frame["y_true"].isna().any()  # the latest bars' outcomes are not known yet
    val = pd.read_parquet(result.prediction.predictions)
    assert frame["timestamp"].min() > val["timestamp"].max()


def test_predict_step_contract_keys(trained):
    leaf, result = trained
    module, ck_leaf = load_expert(result.best_model_path)
    data = checkpoint_data(module, ck_leaf)
    batch = WindowDataset(data, data.splits["val"])[data.splits["val"][:5]]
    with torch.no_grad():
        out = module.predict_step(batch, 0)
    assert {"score", "uncertainty", "meta", "schema_ver", "data_ver", "expert_ver", "train_window_id",
            "antilog_return", "future_price"} <= set(out)
    assert {"symbol_idx", "period_idx", "time_idx", "head_scale", "head_bias"} <= set(out["meta"])
    assert out["score"].shape == (5, 2) and out["score"].device.type == "cpu"
    assert torch.isnan(out["uncertainty"][:, 0]).all() and torch.isfinite(out["uncertainty"][:, 1]).all()
    np.testing.assert_array_equal(out["meta"]["time_idx"].numpy(), data.time_idx[data.splits["val"][:5]])


def test_single_class_validation_keeps_logits_uncalibrated(trained):
    _, result = trained
    module, _ = load_expert(result.best_model_path)
    logits = np.linspace(-1, 1, 40)[:, None].repeat(2, 1)
    y = np.column_stack([np.ones(40), np.linspace(-1, 1, 40)])
    with pytest.warns(RuntimeWarning, match="calibration for 'target_binarytrend' undefined: .*single class"):
        cal = module.fit_calibration(logits, y)
    assert np.isnan(cal.scales_fit_[0]) and module.cal_scale[0].item() == 1.0 and module.cal_bias[0].item() == 0.0


def test_resolve_checkpoint_errors(leaf_path):
    leaf = load_leaf(leaf_path)
    with pytest.raises(ConfigError, match="checkpoint .*last.ckpt not found; train the leaf first"):
        resolve_checkpoint(leaf, "best")
    with pytest.raises(ConfigError, match="--split 'future': use one of"):
        predict(None, leaf, "future")


def test_table_and_span_errors(trained):
    _, result = trained
    module, ck_leaf = load_expert(result.best_model_path)
    table = pd.read_parquet(ck_leaf.model.data.path)
    ck_leaf.model.features.prefixes = ["rv_"]  # rules that now pick more columns than the model was trained on
    extra = sorted({c for c in table.columns if c.startswith("rv_")} - set(module.spec["features"]))
    assert extra
    with pytest.raises(DataError, match=rf"differ from the checkpoint's \(missing \[\], extra \['{extra[0]}'"):
        checkpoint_data(module, ck_leaf, table)
    ck_leaf.model.features.prefixes = []
    data = checkpoint_data(module, ck_leaf, table)
    data.splits["val"] = data.splits["val"][:0]
    with pytest.raises(DataError, match="the val span of .* has no window to predict"):
        predict(module, ck_leaf, "val", data=data)


def test_isotonic_calibration_travels_with_the_checkpoint(trained):
    _, result = trained
    module, _ = load_expert(result.best_model_path)
    module.cal_method = "isotonic"
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (600, 2))
    y = np.column_stack([(rng.random(600) < 1 / (1 + np.exp(-0.5 * logits[:, 0]))).astype(float), logits[:, 1]])
    module.fit_calibration(logits, y)
    p = module.calibrated(logits)[:, 0]
    order = np.argsort(logits[:, 0])
    assert (np.diff(p[order]) >= 0).all() and abs(p.mean() - y[:, 0].mean()) < 1e-6
    assert np.isnan(module.cal_scale[0].item()) and np.isnan(module.cal_bias[0].item())
    saved = {"state_dict": {k: v.clone() for k, v in module.state_dict().items()}}
    module.on_save_checkpoint(saved)
    fresh, _ = load_expert(result.best_model_path)
    fresh.on_load_checkpoint(saved)
    fresh.load_state_dict(saved["state_dict"])
    np.testing.assert_allclose(fresh.calibrated(logits)[:, 0], p)
