import numpy as np
import pytest

from features.selection.config import EmbeddedSection, FilterParams, TreePermSection, WrapperSection
from features.selection.embedded_stage import EmbeddedStage
from features.selection.filter_stage import FilterStage, TargetInfo
from features.selection.tree_perm import TreePermStage
from features.selection.wrapper import WrapperStage

REG = TargetInfo("target_logreturn", "regression", 1, "ic")
CLS = TargetInfo("target_binarytrend", "classification", 1, "mi")


def _features(panel):
    return [c for c in panel.columns if c.startswith(("inf_", "copy_", "noise_", "leak_"))]


@pytest.fixture(scope="module")
def sorted_panel(screening_panel):
    return screening_panel.sort_values(["timestamp", "symbol"], ignore_index=True)


@pytest.fixture(scope="module")
def stage1(sorted_panel):
    return FilterStage(FilterParams(windows=2, mi_sample=3000), "1h").fit(sorted_panel, _features(sorted_panel),
                                                                         [REG, CLS])


def test_stage1_keeps_one_per_informative_cluster_and_flags_the_leak(stage1):
    for target in (REG.name, CLS.name):
        allow = stage1.allowlist_[target]
        found = {f.split("_")[1] for f in allow if f.startswith(("inf_", "copy_"))}
        assert found == {"0", "1", "2"}, allow  # one representative (driver or its copy) per driver
        assert not [f for f in allow if f.startswith("noise_")]
        assert stage1.leak_suspects_[target] == ["leak_centered"] and "leak_centered" not in allow
    stats = stage1.stats_
    assert {"coverage", "vif", "cluster", "ic", "t_nw", "p", "significant", "window_sign_rate", "drop_reason", "rho1",
            "ic_lag1", "retention", "leak_reason", "target_self_ic", "symbol_sign_rate"} <= set(stats)
    assert stats.loc[stats["feature"] == "inf_0", "cluster"].iloc[0] == stats.loc[stats["feature"] == "copy_0",
                                                                                    "cluster"].iloc[0]
    icmi = stage1.ic_mi_
    assert {"window_start", "window_end", "mi"} <= set(icmi) and icmi["window"].nunique() == 2
    assert icmi.loc[icmi["target"] == CLS.name, "mi"].notna().all()  # classification target: MI computed


def test_stage1_null_panel_allows_nothing(null_screening_panel):
    panel = null_screening_panel.sort_values(["timestamp", "symbol"], ignore_index=True)
    st = FilterStage(FilterParams(windows=2, mi_sample=2000), "1h").fit(panel, _features(panel), [REG])
    assert len(st.allowlist_[REG.name]) <= 1


def test_stage2_boruta_and_stability(sorted_panel):
    feats = ["inf_0", "inf_1", "inf_2", "noise_0", "noise_1", "noise_2"]
    cfg = EmbeddedSection(models=["lightgbm", "xgboost", "catboost"], boruta_rounds=8, stability_subsamples=4,
                          n_estimators=60, sample_cap=9000, shap=True)
    st = EmbeddedStage(cfg, block_len=48).fit(sorted_panel.sort_values(["symbol", "timestamp"]), feats, REG.name,
                                              False)
    s = st.scores_.set_index("feature")
    assert s.loc[["inf_0", "inf_1", "inf_2"], "boruta_hits"].min() > s.loc[["noise_0", "noise_1", "noise_2"],
                                                                           "boruta_hits"].max()
    assert s.loc[["inf_0", "inf_1", "inf_2"], "boruta_confirmed"].sum() >= 1
    assert not s.loc[["noise_0", "noise_1", "noise_2"], "boruta_confirmed"].any()
    assert {"lightgbm_gain", "xgboost_gain", "catboost_gain", "stability_freq", "shap_mean_abs"} <= set(s.columns)
    assert s.loc["inf_0", "shap_mean_abs"] > s.loc["noise_0", "shap_mean_abs"]
    assert s.loc["inf_0", "lightgbm_gain"] > s.loc["noise_0", "lightgbm_gain"]


def test_stage3_permutation_ci_separates_signal_from_noise(sorted_panel, stage1):
    feats = ["inf_0", "inf_1", "noise_0", "noise_1"]
    cfg = TreePermSection(repeats=2, folds=2, n_estimators=60, sample_cap=9000)
    st = TreePermStage(cfg, "1h", 1).fit(sorted_panel, feats, REG.name, False, stage1.clusters_)
    imp = st.importances_
    allrows = imp[imp["era"] == "all"].set_index("feature")
    assert (allrows.loc[["inf_0", "inf_1"], "perm_ci95_low"] > 0).all()
    assert (allrows.loc[["noise_0", "noise_1"], "perm_ci95_low"] <= 0).all()
    assert {"perm_std", "perm_ci95_high", "rank_tree", "rank_perm", "block_len", "embargo", "purge"} <= set(imp)
    assert set(imp["era"]) >= {"all", "2021"}


@pytest.mark.parametrize("method", ["rfe", "ga"])
def test_stage4_wrapper(sorted_panel, method):
    feats = ["inf_0", "inf_1", "inf_2", "noise_0", "noise_1", "noise_2"]
    cfg = WrapperSection(method=method, folds=2, n_estimators=40, sample_cap=6000)
    cfg.ga.pop, cfg.ga.gen, cfg.ga.seeds, cfg.ga.sample_cap = 6, 3, [0, 1], 6000
    st = WrapperStage(cfg, "1h", 1).fit(sorted_panel, feats, REG.name, False)
    assert st.selected_ and set(st.selected_) <= set(feats)
    if method == "rfe":
        assert st.path_["chosen"].sum() == 1 and st.path_["n_features"].max() == 6
    else:
        assert np.isclose(st.gene_frequency_["frequency"].between(0, 1), True).all()
        assert st.gene_frequency_.set_index("feature").loc[["inf_0", "inf_1"], "frequency"].mean() > 0.5
