"""Stage 1 on null markets shaped like real prices: no leak suspect, no discovery, and the right drops."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from features.selection.aggregate import evidence_table
from features.selection.config import FilterParams
from features.selection.filter_stage import FilterStage, TargetInfo
from features.selection.stats import time_series_ic
from utils.timeline import feature_columns

DIRECTION = [TargetInfo("target_logreturn", "regression", 1, "ic"),
             TargetInfo("target_binarytrend", "classification", 1, "ic"),
             TargetInfo("target_binarytrend_h4", "classification", 4, "ic")]
VOL = TargetInfo("target_vol", "regression", 1, "ic")


def _features(panel):
    return feature_columns(panel)


NULL_SHAPES = [(3000, 1, "1h", "24/7", 0), (1500, 3, "1h", "24/7", 1), (1200, 10, "1h", "24/7", 2),
               (1500, 1, "1d", "session", 0), (1000, 3, "1d", "session", 1), (800, 10, "1d", "session", 2)]


def test_null_markets_no_leak_suspect_and_nominal_false_discoveries(null_ohlcv_panel):
    """Six null markets (1-10 symbols, hourly 24/7 and daily session calendars), three direction targets each.

    Every discovery is false here. BH bounds the expected false-discovery proportion, which on a null is the
    chance of *any* discovery per (panel, target): about 0.05, so at most 2 of these 18 may have one (a
    correlated block of features can then enter together). A biased statistic fails all of this by far (the
    per-day IC gave t = -11 to -34 on random walks).
    """
    any_discovery, raw_shares = 0, []
    for n_bars, n_symbols, period, calendar, seed in NULL_SHAPES:
        panel = null_ohlcv_panel(n_bars, n_symbols, period, calendar, seed)
        st = FilterStage(FilterParams(windows=2), period).fit(panel, _features(panel), [*DIRECTION, VOL])
        for t in DIRECTION:
            assert st.leak_suspects_[t.name] == [], (period, n_symbols, t.name)
            rows = st.stats_[st.stats_["target"] == t.name]
            raw_shares.append(float((rows["p"] < 0.05).mean()))
            any_discovery += bool(rows["significant"].any())
        # volatility clusters, so honest volatility features predict realized volatility strongly: not leaks
        s = st.stats_[st.stats_["target"] == VOL.name]
        assert st.leak_suspects_[VOL.name] == [] and s["ic"].abs().max() > 0.15
        assert not st.stats_["leak_suspect"].isna().any()
    assert any_discovery <= 2, any_discovery
    # the share of features with p < 0.05 is clustered (correlated features move together): its mean over 18
    # panels scatters widely around 0.05; a biased statistic puts most features there
    assert np.mean(raw_shares) < 0.15 and max(raw_shares) < 0.35, raw_shares


def test_peeking_features_are_flagged_and_honest_ones_are_not(null_ohlcv_panel):
    panel = null_ohlcv_panel(3000, 3, "1h", "24/7", 5)
    by_symbol = panel.groupby("symbol")
    panel["peek_dist_sma_20"] = by_symbol["dist_sma_20"].shift(-1)  # computed from the next bar's close
    panel["peek_ret_24"] = by_symbol["ret_24"].shift(-1)
    feats = _features(panel)
    st = FilterStage(FilterParams(windows=2), "1h").fit(panel, feats, DIRECTION[:2])
    for t in DIRECTION[:2]:
        assert set(st.leak_suspects_[t.name]) == {"peek_dist_sma_20", "peek_ret_24"}, st.leak_suspects_
        assert not {"peek_dist_sma_20", "peek_ret_24"} & set(st.allowlist_[t.name])
    s = st.stats_[st.stats_["target"] == "target_logreturn"].set_index("feature")
    assert "collapses when lagged" in s.loc["peek_ret_24", "leak_reason"]
    assert s.loc["peek_ret_24", "retention"] < 0.25 and s.loc["peek_ret_24", "rho1"] > 0.9
    assert s.loc["dist_sma_20", "leak_reason"] == "" and not s.loc["dist_sma_20", "leak_suspect"]


def test_dropped_columns_have_reasons_and_are_never_leak_suspects(null_ohlcv_panel):
    panel = null_ohlcv_panel(1500, 3, "1h", "24/7", 0)
    panel["all_nan"] = np.nan
    panel["flat"] = 1.0
    panel["sparse"] = np.where(np.arange(len(panel)) % 3 == 0, 1.0, np.nan) * np.arange(len(panel))
    # a user column that wanders like a price level: caught by the unit-root test, not by its name
    panel["my_index"] = panel.groupby("symbol")["ret_1"].cumsum().fillna(0.0)
    st = FilterStage(FilterParams(windows=2), "1h").fit(panel, _features(panel), DIRECTION[:1])
    reason = st.stats_.drop_duplicates("feature").set_index("feature")["drop_reason"]
    assert reason["all_nan"] == "all_nan" and reason["flat"] == "constant" and reason["sparse"] == "low_coverage"
    assert reason["close"] == "level: level name" and reason["obv"] == "level: level name"
    assert reason["my_index"].startswith("level: unit root (ADF t=")
    assert reason["rsi_14"] == "" and reason["ret_1"] == ""
    dropped = st.stats_[st.stats_["drop_reason"] != ""]
    assert not dropped["leak_suspect"].any() and not dropped["feature"].isin(st.allowlist_["target_logreturn"]).any()
    # aggregation never reads a missing verdict as "suspect"
    fs = st.stats_.assign(modality="base", period="1h")
    fs["leak_suspect"] = fs["leak_suspect"].astype(object)
    fs.loc[fs["drop_reason"] != "", "leak_suspect"] = np.nan  # as a CSV round trip leaves them
    ev = evidence_table(fs, None, None, None)
    assert not ev.loc[ev["feature"] == "all_nan", "leak_suspect"].any()
    allowed = FilterStage(FilterParams(windows=2, allow_levels=True), "1h").fit(panel, ["close", "my_index"],
                                                                               DIRECTION[:1])
    assert allowed.drop_reasons_ == {}


def test_time_series_ic_of_one_symbol_is_spearman(null_ohlcv_panel):
    panel = null_ohlcv_panel(1500, 1, "1h", "24/7", 3).dropna(subset=["rsi_14", "target_logreturn"])
    res = time_series_ic(panel[["rsi_14", "ret_4"]], panel["target_logreturn"], panel["symbol"].to_numpy(),
                         panel["timestamp"].to_numpy(), 2)
    for col in ("rsi_14", "ret_4"):
        rho = stats.spearmanr(panel[col], panel["target_logreturn"]).statistic
        assert res.loc[col, "ic"] == pytest.approx(rho, abs=1e-9)
    assert (res["n_symbols"] == 1).all() and (res["symbol_sign_rate"] == 1).all()


def test_cross_sectional_ic_only_with_enough_symbols(null_ohlcv_panel):
    narrow = null_ohlcv_panel(1200, 3, "1h", "24/7", 2)
    st = FilterStage(FilterParams(windows=2), "1h").fit(narrow, ["rsi_14", "ret_4"], DIRECTION[:1])
    assert set(st.ic_mi_["method"]) == {"ts"} and st.stats_["ic_cs"].isna().all()
    wide = null_ohlcv_panel(1200, 10, "1h", "24/7", 2)
    st = FilterStage(FilterParams(windows=2), "1h").fit(wide, ["rsi_14", "ret_4"], DIRECTION[:1])
    assert set(st.ic_mi_["method"]) == {"ts", "cs"} and st.stats_["ic_cs"].notna().all()
    assert isinstance(st.ic_mi_, pd.DataFrame) and {"window_start", "window_end"} <= set(st.ic_mi_)
