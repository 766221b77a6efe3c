import json

import numpy as np
import pandas as pd
import pytest

from models.z_combiner import ZConfig, ZSplit, holdout_split, load_z_config, train_z
from tests.conftest import make_z_table
from utils.errors import ConfigError, DataError


def _cfg(tmp_path, **over):
    base = {"feature_prefixes": ["E1__", "E2__"], "output_dir": str(tmp_path / "z"), "bootstrap_samples": 100}
    return ZConfig(**{**base, **over})


def test_beats_both_baselines_with_complementary_experts(tmp_path):
    result = train_z(_cfg(tmp_path), make_z_table(n_bars=4000))
    c = result.metrics["comparisons"]
    assert c["equal_weight"]["beats"] and c["best_expert"]["beats"], c
    table = result.table.set_index("model")
    assert table.loc["z_combiner", "pr_auc"] > table.loc["equal_weight", "pr_auc"]
    assert table.loc["z_combiner", "ece"] < 0.045  # calibrated output (noise floor of ~2.4k rows: ~0.015)
    # outputs: metrics json, contract parquet, eval report per model
    saved = json.loads(result.metrics_path.read_text())
    assert saved["best_expert"] == "E2__target_binarytrend__score" and saved["holdout_rows"] > 0  # the stronger signal
    preds = pd.read_parquet(result.predictions_path)
    assert set(preds["split"]) == {"fit", "holdout"} and preds["score"].between(0, 1).all()
    report = pd.read_csv(result.report_path)
    assert set(report["model"]) == {"z_combiner", "equal_weight", "best_expert", "no_skill"}
    # the no-skill reference: the fit span's base rate as a constant, beside ROC-AUC and the hold-out base rate
    assert {"pr_auc", "roc_auc", "brier", "ece"} <= set(table.columns)
    assert table.loc["no_skill", "roc_auc"] == pytest.approx(0.5)
    assert table.loc["z_combiner", "brier"] < table.loc["no_skill", "brier"]
    assert 0 < saved["holdout_base_rate"] < 1 and saved["z_beats_no_skill"]
    assert "better than no skill" in saved["verdict"] and "z_combiner" in saved["verdict"]


def test_never_beats_when_worse_than_no_skill(tmp_path):
    """Experts that were right on the fit span and are anti-informative on the hold-out: whatever the
    PR-AUC interval says, a model with a worse hold-out Brier than no skill never "beats" anything."""
    z = make_z_table(n_bars=3000)
    late = z["timestamp"] >= z["timestamp"].quantile(0.68)
    for col in ("E1__target_binarytrend__score", "E2__target_binarytrend__score"):
        z.loc[late, col] = 1.0 - z.loc[late, col]
    result = train_z(_cfg(tmp_path), z)
    table = result.table.set_index("model")
    assert table.loc["z_combiner", "brier"] > table.loc["no_skill", "brier"]
    assert table.loc["z_combiner", "roc_auc"] < 0.5
    assert not any(c["beats"] for c in result.metrics["comparisons"].values())
    assert result.metrics["verdict"].startswith("no model beats no skill on the hold-out")
    from models.z_combiner import format_comparison

    text = format_comparison(result)
    assert "no model beats no skill" in text and "-> beats" not in text


def test_constant_input_is_refused(tmp_path):
    z = make_z_table(n_bars=1000)
    z["E1__target_binarytrend__score"] = 0.5  # an expert whose calibrated scores collapsed
    with pytest.raises(DataError, match=r"input column\(s\) \['E1__target_binarytrend__score'\] are constant on the "
                                        r"fit span"):
        train_z(_cfg(tmp_path), z)


def test_identical_experts_no_claim_to_beat_equal_weight(tmp_path):
    result = train_z(_cfg(tmp_path), make_z_table(n_bars=3000, identical=True))
    assert not result.metrics["comparisons"]["equal_weight"]["beats"]


@pytest.mark.parametrize("model", ["mlp"])
def test_mlp_mode_runs(tmp_path, model):
    result = train_z(_cfg(tmp_path, model=model, max_iter=50), make_z_table(n_bars=1500))
    assert np.isfinite(result.table["pr_auc"]).all()


def test_regression_mode(tmp_path):
    z = make_z_table(n_bars=1500)
    z["E1__target_logreturn__score"] = z["target_logreturn"] * 0.3 + np.random.default_rng(1).normal(0, 0.01, len(z))
    z["E1__target_logreturn__uncertainty"] = 0.01
    result = train_z(_cfg(tmp_path, mode="regression", model="ridge", target="target_logreturn",
                          feature_prefixes=["E1__target_logreturn"]), z)
    assert set(result.table.columns) == {"model", "rmse"}


def test_holdout_uses_the_shared_split_rule(tmp_path):
    """The hold-out split is the timeline's TimeSplit: fit labels are known before the hold-out starts, which
    begins an embargo (>= the horizon) after the boundary."""
    ts = pd.Series(pd.date_range("2024-01-01", periods=2000, freq="h", tz="UTC")).sample(frac=1, random_state=1)
    cfg = _cfg(tmp_path, target="target_binarytrend_h4", split=ZSplit(holdout_fraction=0.3, embargo_bars=2))
    split = holdout_split(ts, cfg)
    fit, hold = split.indices(ts).values()
    boundary = split.edges[1]
    assert split.embargo == 4  # never shorter than the 4-bar horizon
    assert (ts.iloc[fit] + pd.Timedelta(hours=5) <= boundary).all()
    assert ts.iloc[hold].min() == boundary + pd.Timedelta(hours=4)


def test_config_errors(tmp_path):
    path = tmp_path / "z.yaml"
    path.write_text("mode: regression\nmodel: logistic\n")
    with pytest.raises(ConfigError, match="key 'model' = 'logistic': mode 'regression' takes one of"):
        load_z_config(path)
    path.write_text("period: 7x\n")
    with pytest.raises(ConfigError, match=r"key 'period' = '7x': unknown period\(s\)"):
        load_z_config(path)
    path.write_text("moddel: mlp\n")
    with pytest.raises(ConfigError, match="moddel"):
        load_z_config(path)
    with pytest.raises(ConfigError, match="key 'target' = 'target_nope'"):
        train_z(_cfg(tmp_path, target="target_nope"), make_z_table(n_bars=300))
    with pytest.raises(DataError, match="no expert score column for target_binarytrend"):
        train_z(_cfg(tmp_path, feature_prefixes=["regime_"]), make_z_table(n_bars=300))
    path.write_text("feature_prefixes: []\n")
    with pytest.raises(ConfigError, match="key 'feature_prefixes' = \\[\\]: list at least one column prefix"):
        load_z_config(path)
    with pytest.raises(DataError, match=r"only 100 1h rows have target_binarytrend and every input; need >= 200"):
        train_z(_cfg(tmp_path), make_z_table(n_bars=50))
    with pytest.raises(DataError, match=r"fit rows and \d+ hold-out rows after the purge; need >= 200 and >= 50"):
        train_z(_cfg(tmp_path, split=ZSplit(holdout_fraction=0.05)), make_z_table(n_bars=150))
    with pytest.raises(DataError, match="file not found; build it with pipelines/build_oof_for_z.py"):
        train_z(_cfg(tmp_path, data_path=str(tmp_path / "missing.parquet")))


def test_a_stack_that_ranks_backwards_on_its_fit_span_never_beats(tmp_path):
    """Experts whose sign flips inside the fit span: the inner folds, trained before the flip, rank backwards
    after it, so the calibration finds a negative slope and the stack predicts the base rate; however its
    tie-break order does on the hold-out, it claims nothing."""
    z = make_z_table(n_bars=3000)
    ts = z["timestamp"]
    flipped = (ts >= ts.quantile(0.2)) & (ts < ts.quantile(0.68))
    for col in ("E1__target_binarytrend__score", "E2__target_binarytrend__score"):
        z.loc[flipped, col] = 1.0 - z.loc[flipped, col]
    result = train_z(_cfg(tmp_path, feature_prefixes=["E1__"]), z)
    c = result.metrics["comparisons"]
    assert c["no_skill"]["base_rate_only"] and not any(v["beats"] for v in c.values())
    assert "z_combiner" not in result.metrics["verdict"]
    from models.z_combiner import format_comparison

    assert "ranks backwards on its fit span" in format_comparison(result)


def test_bootstrap_blocks_shortened_to_twenty_and_no_verdict_when_too_short():
    from models.z_combiner import block_bootstrap_diff

    rng = np.random.default_rng(0)
    ts = pd.Series(pd.date_range("2024-01-01", periods=150, freq="D", tz="UTC").repeat(6))
    y = rng.integers(0, 2, len(ts)).astype(float)
    a, b = rng.random(len(ts)), np.full(len(ts), 0.5)
    _, lo, hi = block_bootstrap_diff(y, a, b, ts, "classification", 200, 48, "1d", 0)
    # 150 days: blocks of 7 days (21 blocks), not 3 blocks of 48: the interval is wide around a null score
    assert lo < 0 < hi and hi - lo > 0.04
    _, lo, hi = block_bootstrap_diff(y, a, b, ts, "classification", 200, 48, "1d", 0, min_block_bars=48)
    assert np.isnan(lo) and np.isnan(hi)
