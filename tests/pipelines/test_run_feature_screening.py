import json
import logging

import numpy as np
import pandas as pd
import pytest
import yaml

from features.selection.config import load_screening_config, resolve_experts
from pipelines import run_feature_screening as rfs
from pipelines import run_tree_perm
from utils.errors import ConfigError, DataError

QUICK = {
    "filter": {"params": {"windows": 2, "mi_sample": 2000}},
    "embedded": {"models": ["lightgbm"], "boruta_rounds": 6, "stability_subsamples": 3, "n_estimators": 40,
                 "sample_cap": 6000},
    "tree_perm": {"repeats": 1, "folds": 2, "n_estimators": 40, "sample_cap": 6000, "modes": ["cyclic"]},
    "wrapper": {"folds": 2, "n_estimators": 30, "sample_cap": 6000},
    "aggregation": {"min_appear_rate": 0.5},
    "splits": {"outer": {"mode": "days", "days": 20}},
}


def _setup(tmp_path, panel, targets=None, **over):
    tmp_path.mkdir(parents=True, exist_ok=True)
    table = tmp_path / "synth.parquet"
    panel.to_parquet(table)
    leaf = tmp_path / "configs" / "Synth-TFT" / "1h" / "base"
    leaf.mkdir(parents=True, exist_ok=True)
    (leaf / "targets.yaml").write_text(yaml.safe_dump({"targets": targets or [
        {"name": "target_logreturn", "kind": "regression", "horizon": 1},
        {"name": "target_binarytrend", "kind": "classification", "horizon": 1}]}))
    raw = {"experts": {"Synth-TFT": {"pkl_path": str(table)}}, "periods": ["1h"],
           "output_root": str(tmp_path / "reports"), "expert_config_root": str(tmp_path / "configs"), **QUICK, **over}
    path = tmp_path / "fs.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_end_to_end_outputs_and_resume(tmp_path, screening_panel, caplog):
    cfg_path = _setup(tmp_path, screening_panel)
    assert rfs.main(["--config", str(cfg_path), "--experts", "synth_tft"]) == 0
    out = tmp_path / "reports" / "Synth-TFT"
    for rel in ("base/stage1_filter/allowlist.txt", "base/stage1_filter/filter_stats.csv",
                "base/stage1_filter/ic_mi.csv",
                "base/stage2_embedded/raw_scores.csv", "base/stage2_embedded/summary.csv",
                "base/stage2_embedded/allowlist_embedded.txt", "base/tree_perm/summary.csv",
                "base/tree_perm/1h/target_logreturn_importances.csv", "base/stage4_wrapper/selected.csv",
                "aggregated_core.csv", "selected_features.txt", "plus_features.txt", "optimized_features.txt",
                "summary.json", "forward_eval.csv"):
        assert (out / rel).is_file(), rel
    summary = json.loads((out / "summary.json").read_text())
    core = summary["core"]
    assert {c.split("_")[1] for c in core if c.startswith(("inf_", "copy_"))} == {"0", "1", "2"}
    assert not [c for c in core if c.startswith("noise_")]
    assert summary["leak_suspects"] == ["leak_centered"] and "leak_centered" not in core
    copy = tmp_path / "configs" / "Synth-TFT" / "selected_features.txt"
    assert copy.read_text().split() == core
    exported = tmp_path / "selected_features.txt"  # configs/selected_features.txt beside configs/experts
    assert exported.read_text() == (out / "selected_features.txt").read_text()
    fwd = pd.read_csv(out / "forward_eval.csv")
    assert set(fwd["feature_set"]) == {"core", "full", "no_skill"}
    ns = fwd[fwd["feature_set"] == "no_skill"]
    assert (ns["score"].where(ns["metric"] == "roc_auc", 0.5) == 0.5).all() and np.isfinite(ns["loss"]).all()
    ref = ns.set_index("target")["loss"]
    for _, row in fwd[fwd["feature_set"] != "no_skill"].iterrows():
        assert row["beats_no_skill"] == (row["loss"] < ref[row["target"]])
    assert set(fwd["loss_name"]) == {"brier", "rmse"}
    marker = (out / "base" / "stage1_filter" / "_done.json").read_text()
    caplog.clear()
    assert rfs.main(["--config", str(cfg_path)]) == 0  # second run: every stage reused
    assert (out / "base" / "stage1_filter" / "_done.json").read_text() == marker
    assert caplog.text.count("reusing") == 4
    assert rfs.main(["--config", str(cfg_path), "--force"]) == 0
    assert (out / "base" / "stage1_filter" / "_done.json").read_text() != marker


def test_outer_span_never_reaches_stages(tmp_path, screening_panel):
    """Scrambling the outer span (features and targets) leaves every stage 1-4 statistic unchanged."""
    cfg_a = load_screening_config(_setup(tmp_path / "a", screening_panel))
    rfs.run_expert(cfg_a, "Synth-TFT")
    scrambled = screening_panel.copy()
    start = scrambled["timestamp"].max() - pd.Timedelta(days=20)
    late = scrambled["timestamp"] >= start
    cols = [c for c in scrambled.columns if c.startswith(("inf_", "copy_", "noise_", "leak_", "target_"))]
    scrambled.loc[late, cols] = scrambled.loc[late, cols].to_numpy()[::-1]
    cfg_b = load_screening_config(_setup(tmp_path / "b", scrambled))
    rfs.run_expert(cfg_b, "Synth-TFT")
    for rel in ("stage1_filter/filter_stats.csv", "stage2_embedded/raw_scores.csv", "tree_perm/summary.csv",
                "stage4_wrapper/selected.csv"):
        a = pd.read_csv(tmp_path / "a" / "reports" / "Synth-TFT" / "base" / rel)
        b = pd.read_csv(tmp_path / "b" / "reports" / "Synth-TFT" / "base" / rel)
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)


def test_null_panel_core_nearly_empty(tmp_path, null_screening_panel):
    cfg = load_screening_config(_setup(tmp_path, null_screening_panel, tree_perm={"enabled": False}))
    assert len(rfs.run_expert(cfg, "Synth-TFT")["core"]) <= 2


def test_target_union_and_test_split(tmp_path, screening_panel):
    path = _setup(tmp_path, screening_panel)
    four = tmp_path / "configs" / "Synth-TFT" / "4h" / "base"
    four.mkdir(parents=True)
    (four / "targets.yaml").write_text(yaml.safe_dump({"targets": [
        {"name": "target_logreturn", "kind": "regression", "horizon": 1},
        {"name": "target_vol_h4", "kind": "regression", "horizon": 4}]}))
    cfg = load_screening_config(path)
    cfg.periods = ["1h", "4h"]
    targets = {t.name: t for t in rfs.expert_targets(cfg, "Synth-TFT")}
    assert list(targets) == ["target_logreturn", "target_binarytrend", "target_vol_h4"]  # union, deduplicated
    assert targets["target_logreturn"].test == "ic" and targets["target_binarytrend"].test == "mi"
    cfg.filter.params.mi_targets = ["target_logreturn"]
    targets = {t.name: t for t in rfs.expert_targets(cfg, "Synth-TFT")}
    assert targets["target_logreturn"].test == "mi" and targets["target_binarytrend"].test == "ic"


def test_expert_spellings_and_config_errors(tmp_path, screening_panel):
    cfg = load_screening_config(_setup(tmp_path, screening_panel))
    assert resolve_experts(cfg, ["synth_tft", "Synth-TFT", "synth"]) == ["Synth-TFT"]
    with pytest.raises(ConfigError, match="expert 'alpha_dir' is not configured"):
        resolve_experts(cfg, ["alpha_dir"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("experts: {X: {pkl_path: a.pkl}}\nperiods: [7h]\n")
    with pytest.raises(ConfigError, match=r"key 'periods' = \['7h'\]"):
        load_screening_config(bad)
    bad.write_text("experts: {X: {pkl_path: a.pkl}}\nwrapper: {method: lasso}\n")
    with pytest.raises(ConfigError, match="lasso"):
        load_screening_config(bad)
    bad.write_text("experts: {X: {pkl_path: a.pkl, pkl_pth: b}}\n")
    with pytest.raises(ConfigError, match="pkl_pth"):
        load_screening_config(bad)
    cfg.experts["Synth-TFT"].pkl_path = str(tmp_path / "missing.pkl")
    with pytest.raises(DataError, match="missing.pkl not found"):
        rfs.run_expert(cfg, "Synth-TFT")
    assert rfs.main(["--config", str(tmp_path / "bad.yaml")]) == 2


def test_tree_perm_runs_alone(tmp_path, screening_panel):
    cfg_path = _setup(tmp_path, screening_panel)
    assert run_tree_perm.main(["--config", str(cfg_path), "--periods", "1h", "--time-perm", "--block-len", "24",
                           "--group-cols", "symbol", "--perm-repeats", "1", "--targets", "target_logreturn"]) == 0
    folder = tmp_path / "reports" / "Synth-TFT" / "base" / "tree_perm"
    imp = pd.read_csv(folder / "1h" / "target_logreturn_importances.csv")
    assert (imp["block_len"] == 24).all() and set(imp["era"]) >= {"all"}
    allrows = imp[imp["era"] == "all"].set_index("feature")
    assert allrows["cluster_size"].max() >= 2  # near-copies permuted together
    assert len(allrows) == len([c for c in screening_panel.columns if c.startswith(("inf_", "copy_", "noise_",
                                                                                    "leak_"))])


def test_table_errors_name_the_file(tmp_path, screening_panel):
    cfg = load_screening_config(_setup(tmp_path, screening_panel))
    table = str(cfg.experts["Synth-TFT"].pkl_path)
    targets = rfs.expert_targets(cfg, "Synth-TFT")
    with pytest.raises(DataError, match=r"synth\.parquet \(base\): no 4h rows"):
        rfs.period_data(screening_panel, "base", "4h", targets, cfg, table)
    with pytest.raises(DataError, match=r"\(base\): target column\(s\) \['target_logreturn'\] missing"):
        rfs.period_data(screening_panel.drop(columns=["target_logreturn"]), "base", "1h", targets, cfg, table)
    cfg.splits.outer.days = 100000
    with pytest.raises(DataError, match=r"\(base\): only 0 1h training rows before the outer span"):
        rfs.period_data(screening_panel, "base", "1h", targets, cfg, table)
    cfg.periods = ["4h"]
    with pytest.raises(ConfigError, match=r"4h/base/targets\.yaml not found: the screening reads"):
        rfs.expert_targets(cfg, "Synth-TFT")
    bad = tmp_path / "none.yaml"
    bad.write_text("experts: {}\n")
    with pytest.raises(ConfigError, match="key 'experts' = {}: list at least one expert"):
        load_screening_config(bad)


def test_export_names_the_expert_or_takes_the_last(tmp_path, screening_panel):
    """Two experts in one run: configs/selected_features.txt holds aggregation.export_expert's core list."""
    cfg_path = _setup(tmp_path, screening_panel)
    raw = yaml.safe_load(cfg_path.read_text())
    other_table = tmp_path / "other.parquet"
    screening_panel.drop(columns=["inf_0", "copy_0"]).to_parquet(other_table)  # a different core list
    raw["experts"]["Other-TFT"] = {"pkl_path": str(other_table)}
    leaf = tmp_path / "configs" / "Other-TFT" / "1h" / "base"
    leaf.mkdir(parents=True)
    (leaf / "targets.yaml").write_text(yaml.safe_dump({"targets": [
        {"name": "target_binarytrend", "kind": "classification", "horizon": 1}]}))
    raw["selected_features_export"] = str(tmp_path / "out" / "selected_features.txt")
    raw["aggregation"]["export_expert"] = "synth"
    cfg_path.write_text(yaml.safe_dump(raw))
    assert rfs.main(["--config", str(cfg_path), "--experts", "synth_tft,other"]) == 0
    synth = (tmp_path / "reports" / "Synth-TFT" / "selected_features.txt").read_text()
    other = (tmp_path / "reports" / "Other-TFT" / "selected_features.txt").read_text()
    assert synth != other and (tmp_path / "out" / "selected_features.txt").read_text() == synth
    del raw["aggregation"]["export_expert"]
    cfg_path.write_text(yaml.safe_dump(raw))
    assert rfs.main(["--config", str(cfg_path), "--experts", "synth_tft,other"]) == 0
    assert (tmp_path / "out" / "selected_features.txt").read_text() == other  # the last expert of the run
    raw["aggregation"]["export_expert"] = "nobody"
    cfg_path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="expert 'nobody' is not configured"):
        load_screening_config(cfg_path)


def test_stage3_cli_skips_levels(tmp_path, screening_panel):
    stage3_main = run_tree_perm.main
    panel = screening_panel.copy()
    panel["close"] = 100 * np.exp(panel.groupby("symbol")["target_logreturn"].cumsum())  # a price level
    cfg_path = _setup(tmp_path, panel)
    assert stage3_main(["--config", str(cfg_path), "--periods", "1h", "--targets", "target_logreturn",
                        "--perm-repeats", "1"]) == 0
    summary = pd.read_csv(tmp_path / "reports" / "Synth-TFT" / "base" / "tree_perm" / "summary.csv")
    assert "close" not in set(summary["feature"]) and "inf_0" in set(summary["feature"])


def _four_hour(panel):
    """The same panel relabelled as 4h bars (timestamps spread 4x, so spacing and period agree)."""
    start = panel["timestamp"].min()
    return panel.assign(period="4h", timestamp=start + (panel["timestamp"] - start) * 4)


def test_periods_default_to_the_table_and_cli_overrides(tmp_path, screening_panel):
    panel = pd.concat([screening_panel, _four_hour(screening_panel)], ignore_index=True)
    cfg_path = _setup(tmp_path, panel)
    leaf4 = tmp_path / "configs" / "Synth-TFT" / "4h" / "base"
    leaf4.mkdir(parents=True)
    (leaf4 / "targets.yaml").write_text((tmp_path / "configs" / "Synth-TFT" / "1h" / "base" / "targets.yaml")
                                        .read_text())
    raw = yaml.safe_load(cfg_path.read_text())
    raw.pop("periods")  # no periods in the YAML: every period of the table
    raw["splits"]["outer"]["days"] = 60
    cfg_path.write_text(yaml.safe_dump(raw))
    assert rfs.main(["--config", str(cfg_path), "--force"]) == 0
    summary = json.loads((tmp_path / "reports" / "Synth-TFT" / "summary.json").read_text())
    assert summary["periods"] == ["1h", "4h"]
    assert rfs.main(["--config", str(cfg_path), "--periods", "4h", "--force"]) == 0
    summary = json.loads((tmp_path / "reports" / "Synth-TFT" / "summary.json").read_text())
    assert summary["periods"] == ["4h"]
    stats = pd.read_csv(tmp_path / "reports" / "Synth-TFT" / "base" / "stage1_filter" / "filter_stats.csv")
    assert set(stats["period"]) == {"4h"}


def test_period_errors(tmp_path, screening_panel, caplog):
    cfg_path = _setup(tmp_path, screening_panel, periods=[])
    with pytest.raises(ConfigError, match=r"key 'periods' = \[\]: list at least one period, or null"):
        load_screening_config(cfg_path)
    cfg_path = _setup(tmp_path, screening_panel)
    assert rfs.main(["--config", str(cfg_path), "--periods", "7x"]) == 2
    assert "unknown period(s) ['7x']" in caplog.text


def test_config_periods_absent_from_the_table_fall_back_to_the_table(tmp_path, screening_panel, caplog):
    """The quick config names 1h; a daily-only table (stocks) is screened on its own period, with a warning."""
    daily = screening_panel.assign(period="4h")
    cfg_path = _setup(tmp_path, daily)  # the YAML says periods: [1h]
    leaf4 = tmp_path / "configs" / "Synth-TFT" / "4h" / "base"
    leaf4.mkdir(parents=True)
    (leaf4 / "targets.yaml").write_text((tmp_path / "configs" / "Synth-TFT" / "1h" / "base" / "targets.yaml")
                                        .read_text())
    raw = yaml.safe_load(cfg_path.read_text())
    raw["splits"]["outer"]["days"] = 60
    cfg_path.write_text(yaml.safe_dump(raw))
    with caplog.at_level(logging.WARNING):
        assert rfs.main(["--config", str(cfg_path), "--force"]) == 0
    assert "period(s) ['1h'] not in" in caplog.text and "screening ['4h']" in caplog.text
    summary = json.loads((tmp_path / "reports" / "Synth-TFT" / "summary.json").read_text())
    assert summary["periods"] == ["4h"]


def test_stage3_flags_are_validated_like_the_config(tmp_path, screening_panel, caplog):
    cfg_path = _setup(tmp_path, screening_panel)
    assert run_tree_perm.main(["--config", str(cfg_path), "--periods", "1h", "--perm-repeats", "-1"]) == 2
    assert "key 'tree_perm.repeats' = -1" in caplog.text
    assert run_tree_perm.main(["--config", str(cfg_path), "--periods", "7x"]) == 2
    assert "unknown period(s) ['7x']" in caplog.text


def test_documented_stage3_command_still_runs():
    """``python -m features.selection.tree_perm`` (the README's command) forwards to the pipeline entry."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "features.selection.tree_perm", "--help"], capture_output=True,
                         text=True, check=True)
    assert "--time-perm" in out.stdout and "--block-len" in out.stdout


def test_stage_weights_file_is_typed(tmp_path):
    from features.selection.config import StageWeights
    from utils.config import load_config

    path = tmp_path / "w.yaml"
    path.write_text("weights: {filter: 2.0, tree_perm: 0.5}\n")
    assert load_config(path, StageWeights).weights == {"filter": 2.0, "tree_perm": 0.5}
    path.write_text("weights: {filtr: 2.0}\n")
    with pytest.raises(ConfigError, match=r"w\.yaml: key 'weights' = \{'filtr': 2\.0\}: stages are"):
        load_config(path, StageWeights)


def test_expert_table_falls_back_to_the_partitioned_dataset(small_panel, tmp_path):
    from pipelines.run_feature_screening import read_table, table_periods

    (tmp_path / "t").symlink_to(small_panel["base_csv"].with_suffix(""), target_is_directory=True)
    assert table_periods(tmp_path / "t.pkl") == ["1h", "4h", "1d"]
    part = read_table(tmp_path / "t.pkl", ["1d"])
    assert set(part["period"]) == {"1d"} and part["symbol"].nunique() == 3
    assert table_periods(small_panel["base_csv"].with_suffix(".parquet")) is None  # a single file: read it
