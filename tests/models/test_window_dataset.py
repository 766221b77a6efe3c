import numpy as np
import pandas as pd
import pytest
import torch

from models.calendar import calendar_features, usable_known
from models.leaf_config import load_leaf
from models.window_dataset import (
    FeatureScaler,
    WindowBatchSampler,
    WindowDataset,
    build_window_data,
    segment_start,
)
from utils.errors import ConfigError, DataError


@pytest.fixture
def leaf(leaf_path):
    return load_leaf(leaf_path)


@pytest.fixture
def table(leaf):
    return pd.read_parquet(leaf.model.data.path)


def test_no_window_crosses_a_group_or_a_gap(leaf, table):
    data = build_window_data(leaf)
    t = table[table.period == "1h"].sort_values(["symbol", "timestamp"]).reset_index(drop=True)
    assert t["gap_before"].sum() > 0  # the fixture has missing bars
    L = leaf.model.window.encoder_length
    for split, ends in data.splits.items():
        starts = ends - L + 1
        sym = t["symbol"].to_numpy()
        assert (sym[starts] == sym[ends]).all(), split
        span_tidx = data.time_idx[ends] - data.time_idx[starts]
        assert (span_tidx == L - 1).all(), split  # contiguous bars only
        gaps = np.cumsum(t["gap_before"].to_numpy())
        assert (gaps[ends] - gaps[starts] == 0).all(), split


def test_segment_start():
    t = pd.DataFrame({"symbol": list("AAAAABB"), "period": "1h", "time_idx": [1, 2, 3, 5, 6, 1, 2],
                      "gap_before": [False, False, False, True, False, False, False]})
    assert segment_start(t).tolist() == [0, 0, 0, 3, 3, 5, 5]


def test_splits_are_ordered_with_embargo(leaf):
    data = build_window_data(leaf)
    ts = data.timestamp
    h = pd.Timedelta("4h").value  # longest target horizon
    assert ts[data.splits["train"]].max() + h < ts[data.splits["val"]].min()
    assert ts[data.splits["val"]].max() + h < ts[data.splits["test"]].min()


def test_embargo_is_at_least_the_longest_horizon(leaf_path, caplog):
    short = build_window_data(load_leaf(leaf_path, ["split.embargo_bars=1"]))
    default = build_window_data(load_leaf(leaf_path))
    assert "embargo_bars 1 is shorter than the label horizon 4" in caplog.text
    np.testing.assert_array_equal(short.splits["val"], default.splits["val"])
    longer = build_window_data(load_leaf(leaf_path, ["split.embargo_bars=10"]))
    assert longer.timestamp[longer.splits["val"]].min() > default.timestamp[default.splits["val"]].min()


def test_scalers_fit_on_train_span_only(leaf, table):
    base = build_window_data(leaf, table.copy())
    changed = table.copy()
    late = changed["timestamp"] > pd.Timestamp(base.timestamp[base.splits["val"]].min(), tz="UTC")
    changed.loc[late, "rsi_14"] = changed.loc[late, "rsi_14"] * 10 + 500
    changed.loc[late, "target_logreturn_h4"] = changed.loc[late, "target_logreturn_h4"] * 100
    other = build_window_data(leaf, changed)
    np.testing.assert_array_equal(base.feature_scaler.mean_, other.feature_scaler.mean_)
    np.testing.assert_array_equal(base.target_scaler.scale_, other.target_scaler.scale_)
    tr = base.splits["train"]
    assert torch.equal(base.x[tr], other.x[tr])


def test_known_future_covariates_are_the_calendar_of_future_bars(leaf):
    data = build_window_data(leaf)
    end = int(data.splits["val"][5])
    batch = WindowDataset(data, data.splits["val"])[[end]]
    future = data.timestamp[end] + pd.Timedelta("1h").value * np.arange(1, 5)
    hours = pd.DatetimeIndex(future, tz="UTC").hour.to_numpy()
    np.testing.assert_allclose(batch["decoder_known"][0, :, 0].numpy(), np.sin(2 * np.pi * hours / 24), atol=1e-6)
    assert batch["encoder_cont"].shape == (1, 12, 7)
    assert torch.equal(batch["encoder_cont"][0, -1], data.x[end])  # the window ends at the decision row


def test_calendar_rejects_unknown_names():
    from utils.errors import DataError

    with pytest.raises(DataError, match="unknown known-future covariate 'minute_sin'"):
        calendar_features(np.array([0]), ["minute_sin"])


def test_scaler_roundtrip_and_nan():
    x = np.array([[1.0, np.nan], [3.0, 2.0], [5.0, 4.0]])
    sc = FeatureScaler().fit(x)
    out = sc.transform(x)
    assert out[0, 1] == 0.0 and out.dtype == np.float32
    np.testing.assert_allclose(FeatureScaler.from_state(sc.state_dict()).inverse_transform(out[1:]), x[1:], rtol=1e-6)


def test_sampler_shards_disjointly_with_equal_lengths(monkeypatch):
    ends = np.arange(103)
    shards = []
    for rank in range(2):
        s = WindowBatchSampler(ends, 10, shuffle=True, seed=1, shard=True)
        monkeypatch.setattr(s, "_rank_world", lambda r=rank: (r, 2))
        s.set_epoch(3)
        shards.append(np.concatenate(list(s)))
    assert len(shards[0]) == len(shards[1]) == 52
    assert len(set(shards[0]) | set(shards[1])) == 103  # everything covered (one row repeated as padding)
    s = WindowBatchSampler(ends, 10, shuffle=True, seed=1)
    s.set_epoch(0)
    first = np.concatenate(list(s))
    s.set_epoch(1)
    assert not np.array_equal(first, np.concatenate(list(s)))  # reshuffled per epoch


def test_prefix_selected_levels_are_left_out_unless_listed(leaf, table):
    from models.window_dataset import select_features

    leaf.model.features.include = ["ret_1", "close"]  # a level listed explicitly stays
    leaf.model.features.prefixes = ["obv", "rsi_", "dc_"]
    t = table[table.period == "1h"].sort_values(["symbol", "timestamp"]).reset_index(drop=True)
    t["drift_index"] = t.groupby("symbol")["ret_1"].cumsum().fillna(0.0)  # a wandering, unnamed level
    leaf.model.features.prefixes.append("drift_")
    chosen, excluded = select_features(t, leaf, np.arange(len(t) // 2))
    assert "close" in chosen and "ret_1" in chosen and "rsi_14" in chosen and "dc_pos_20" in chosen
    assert {"obv", "dc_upper_20", "dc_lower_55"} <= set(excluded) and not set(excluded) & set(chosen)
    assert excluded["obv"] == "level name" and excluded["drift_index"].startswith("unit root")
    # a stored verdict replaces the test (checkpoints): nothing is recomputed, nothing drifts
    again, same = select_features(t, leaf, levels=excluded)
    assert again == chosen and same == excluded
    kept, none = select_features(t, leaf, levels={})
    assert none == {} and "obv" in kept and "drift_index" in kept


def test_checkpoint_spec_carries_the_level_verdict(leaf, table):
    leaf.model.features.prefixes = ["obv"]
    data = build_window_data(leaf, table)
    assert "obv" not in data.features and data.excluded_levels == {"obv": "level name"}


def test_calendar_covariates_need_two_cycles_of_training_data(leaf, table):
    names = ["hour_sin", "weekday_cos", "month_sin", "month_cos"]
    assert usable_known(names, pd.Timedelta(days=60)) == ["hour_sin", "weekday_cos"]  # months only encode the date
    assert usable_known(names, pd.Timedelta(days=800)) == names
    with pytest.raises(DataError, match=r"features.known_future = \['month_sin'\]: the training span .* covers none"):
        usable_known(["month_sin"], pd.Timedelta(days=30))
    leaf.model.features.known_future = names
    data = build_window_data(leaf, table)  # the small market spans 60 days
    assert data.known_names == ["hour_sin", "weekday_cos"] and data.known.shape[-1] == 2


def test_group_normalization_standardizes_each_symbols_training_rows(leaf_path, table):
    leaf = load_leaf(leaf_path, ["features.normalize=group"])
    data = build_window_data(leaf)
    t = table[table.period == "1h"].sort_values(["symbol", "timestamp"]).reset_index(drop=True)
    train = data.time_split.masks(pd.DatetimeIndex(t["timestamp"]))["train"]
    x = data.x.numpy()
    for sym in t["symbol"].unique():
        rows = train & (t["symbol"] == sym).to_numpy()
        # rv_24 (column 2) differs in level between symbols; each symbol's own training rows are centred on 0
        assert abs(x[rows, 2].mean()) < 0.05 and abs(x[rows, 2].std() - 1) < 0.1
    state = data.feature_scaler.state_dict()
    assert state["kind"] == "group" and set(state["groups"]) == set(t["symbol"].unique())
    again = build_window_data(leaf, scalers={"features": state, "targets": data.target_scaler.state_dict()},
                              features=data.features, levels=data.excluded_levels, known_names=data.known_names,
                              categories=data.categories)
    assert torch.equal(again.x, data.x)  # a checkpoint's per-symbol scaler gives the same inputs


def test_group_scaler_falls_back_to_the_global_statistics():
    from models.scalers import GroupFeatureScaler, scaler_from_state

    x = np.r_[np.random.default_rng(0).normal(5, 2, (300, 1)), np.random.default_rng(1).normal(0, 1, (10, 1))]
    groups = np.array(["A"] * 300 + ["B"] * 10)
    sc = GroupFeatureScaler(min_rows=100).fit(x, groups)
    assert set(sc.groups_) == {"A"}  # B has too few rows for its own statistics
    out = scaler_from_state(sc.state_dict()).transform(x, groups)
    np.testing.assert_allclose(out[300:], sc.global_.transform(x[300:]))
    with pytest.raises(RuntimeError, match="before fit"):
        GroupFeatureScaler().transform(x, groups)


def test_group_scaler_row_stats_and_fixed_columns():
    from models.scalers import GroupFeatureScaler

    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(0, 3, 310), rng.integers(0, 2, 310)]
    groups = np.array(["A"] * 150 + ["B"] * 150 + ["C"] * 10)
    sc = GroupFeatureScaler(min_rows=100).fit(x, groups)
    sc.fix_columns(np.array([False, True]))
    mean, scale = sc.row_stats(groups)
    np.testing.assert_allclose(mean[0, 0], x[:150, 0].mean())
    np.testing.assert_allclose(scale[160, 0], x[150:300, 0].std())
    np.testing.assert_allclose(mean[305], sc.global_.mean_)  # C: too few rows, the global statistics
    assert (mean[:, 1] == 0).all() and (scale[:, 1] == 1).all()  # labels stay 0 / 1 in every group


def test_group_target_normalization_scales_each_symbols_returns_and_decodes_back(leaf_path):
    from models.tft_module import MyTFTModule
    from models.training import make_spec

    leaf = load_leaf(leaf_path, ["features.normalize_targets=group"])
    data = build_window_data(leaf)
    assert data.target_scaler.state_dict()["kind"] == "group"
    train, sym = data.splits["train"], data.static[:, 0].numpy()
    y = data.y.numpy()
    for s in np.unique(sym[train]):
        rows = train[sym[train] == s]
        assert abs(y[rows, 1].mean()) < 1e-4 and abs(y[rows, 1].std() - 1) < 1e-3  # each symbol's own returns
    np.testing.assert_array_equal(y[train, 0], data.y_raw[train, 0])  # the class label is untouched
    # the module puts a scaled output back in each row's symbol's units
    module = MyTFTModule(make_spec(leaf, data))
    rows = data.splits["val"]
    fields = {"pred": np.repeat(y[rows][:, :, None], 3, axis=2), "target": y[rows], "static": data.static[rows].numpy(),
              "time_idx": data.time_idx[rows], "timestamp": data.timestamp[rows], "close": data.close[rows]}
    out = module.decode(fields)
    np.testing.assert_allclose(out["y_true"], data.y_raw[rows], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out["quantiles"][:, 1, 1], data.y_raw[rows, 1], rtol=1e-5, atol=1e-7)
    assert np.unique(out["head_scale"][:, 1]).size == np.unique(sym[rows]).size  # one scale per symbol


def test_building_windows_leaves_the_table_unchanged(leaf, table):
    """The inputs are scaled in place in the window builder's own float32 copy, never in the caller's table."""
    before = table.copy()
    data = build_window_data(leaf, table)
    pd.testing.assert_frame_equal(table, before)
    assert data.x.dtype == torch.float32 and float(data.x.abs().max()) <= 10.0


def test_the_level_test_runs_per_symbol_not_on_the_symbols_end_to_end(leaf, table):
    """A column that is stationary within each symbol but sits at another level per symbol is not a level: the
    concatenated symbols would look like a series that wanders off."""
    from models.window_dataset import select_features

    leaf.model.features.include, leaf.model.features.prefixes = ["ret_1"], ["spread_"]
    t = table[table.period == "1h"].sort_values(["symbol", "timestamp"]).reset_index(drop=True)
    offset = t["symbol"].map({s: 50.0 * i for i, s in enumerate(sorted(t["symbol"].unique()))})
    t["spread_noise"] = offset + np.random.default_rng(0).normal(size=len(t))
    chosen, excluded = select_features(t, leaf, np.arange(len(t)))
    assert t["symbol"].nunique() > 1 and "spread_noise" in chosen and excluded == {}


def test_scalers_fit_block_by_block_equal_one_pass_statistics():
    from models.scalers import BLOCK_ROWS, FeatureScaler, GroupFeatureScaler

    rng = np.random.default_rng(3)
    x = (rng.normal(size=(BLOCK_ROWS * 2 + 17, 3)) * [1.0, 5.0, 1e-3] + [0.0, 100.0, 7.0]).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:, 0] = np.nan  # an empty column: mean 0, scale 1
    sc = FeatureScaler().fit(x)
    np.testing.assert_allclose(sc.mean_[1:], np.nanmean(x[:, 1:], axis=0, dtype=np.float64), rtol=1e-12)
    np.testing.assert_allclose(sc.scale_[1:], np.nanstd(x[:, 1:], axis=0, dtype=np.float64), rtol=1e-10)
    assert sc.mean_[0] == 0.0 and sc.scale_[0] == 1.0
    parts = FeatureScaler().fit(x[:1000]).partial_fit(x[1000:])
    np.testing.assert_allclose(parts.mean_, sc.mean_, rtol=1e-12)
    np.testing.assert_allclose(parts.scale_, sc.scale_, rtol=1e-10)
    groups = np.where(np.arange(len(x)) % 3 == 0, "a", "b")
    one = GroupFeatureScaler(min_rows=100).fit(x, groups)
    two = GroupFeatureScaler(min_rows=100).fit(x[:50], groups[:50]).partial_fit(x[50:], groups[50:])
    assert sorted(two.groups_) == ["a", "b"]  # the first part alone was below min_rows
    for g in ("a", "b"):
        np.testing.assert_allclose(two.groups_[g].scale_, one.groups_[g].scale_, rtol=1e-10)
        np.testing.assert_allclose(one.groups_[g].mean_[1:], np.nanmean(x[groups == g, 1:], axis=0), rtol=1e-5)


def test_market_inputs_are_the_mean_of_each_bars_scaled_inputs_over_symbols(leaf_path, table):
    leaf = load_leaf(leaf_path, ["features.market=[ret_1,rv_24]"])
    data = build_window_data(leaf)
    plain = build_window_data(load_leaf(leaf_path))
    own = len(plain.features)
    assert data.features == plain.features + ["market_ret_1", "market_rv_24"]
    assert torch.equal(data.x[:, :own], plain.x)  # the leaf's own inputs are unchanged
    x = pd.DataFrame(plain.x.numpy()[:, [plain.features.index("ret_1"), plain.features.index("rv_24")]])
    want = x.groupby(data.timestamp).transform("mean").to_numpy()
    np.testing.assert_allclose(data.x[:, own:].numpy(), want, rtol=1e-5, atol=1e-6)
    assert len(set(data.categories["symbol"])) > 1 and not np.allclose(want, x.to_numpy())
    # a checkpoint's own feature list (market names included) rebuilds the same inputs
    again = build_window_data(leaf, scalers={"features": data.feature_scaler.state_dict(),
                                             "targets": data.target_scaler.state_dict()},
                              features=data.features, levels=data.excluded_levels, known_names=data.known_names,
                              categories=data.categories)
    assert torch.equal(again.x, data.x)


def test_market_inputs_must_be_selected_inputs(leaf_path, table):
    with pytest.raises(ConfigError, match=r"key 'features.market' = \['cci_14'\]: not among the leaf's selected"):
        build_window_data(load_leaf(leaf_path, ["features.market=[ret_1,cci_14]"]))
    with pytest.raises(ConfigError, match=r"key 'features.market' = \['ret_1', 'ret_1'\]: a column is named twice"):
        build_window_data(load_leaf(leaf_path, ["features.market=[ret_1,ret_1]"]))
    renamed = table.assign(market_ret_1=table["ret_1"])
    with pytest.raises(ConfigError, match=r"\['market_ret_1'\] are already columns of"):
        build_window_data(load_leaf(leaf_path, ["features.market=[ret_1]", "features.include=[ret_1,market_ret_1]"]),
                          renamed)
