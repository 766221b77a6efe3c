import copy
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from src.fundamentals import GLOBAL_GROUPS, SYMBOL_GROUPS
from src.fuse_fundamentals import apply_intersect, apply_missing_threshold, fuse, load_inputs, main, run_with_config
from src.synthetic_market import write_market
from utils.errors import ConfigError, DataError

ALL_SYMBOL = {g: True for g in SYMBOL_GROUPS}
ALL_GLOBAL = {g: True for g in GLOBAL_GROUPS}


def _fuse(panel, out_dir, raw_dir=None, **kw):
    args = {"include_symbol": ALL_SYMBOL, "include_global": ALL_GLOBAL, **kw}
    return fuse(panel["base_csv"], out_dir / "full_merged_with_fundamentals.csv",
                raw_dir=raw_dir or panel["raw_dir"], **args)


def _decision(table):
    step = table["period"].map({"1h": "1h", "4h": "4h", "1d": "1D"}).map(pd.Timedelta)
    return table["timestamp"] + step


def _perturbed_market(market, cutoff):
    """Copy of ``market`` where every fundamental observation available after ``cutoff`` is scrambled."""
    m = copy.deepcopy(market)
    hour = pd.Timedelta("1h").value // 10**6
    cut_ms = cutoff.value // 10**6
    for sym in m.funding:
        f = m.funding[sym]
        f.loc[f["calc_time"] > cut_ms, "last_funding_rate"] *= -3.0
        p = m.premium[sym]
        late = p["open_time"] + hour > cut_ms
        p.loc[late, ["open", "high", "low", "close"]] += 0.01
        mt = m.metrics[sym]
        late = pd.to_datetime(mt["create_time"], utc=True) > cutoff
        num = mt.columns.drop(["create_time", "symbol"])
        mt.loc[late, num] = mt.loc[late, num] * 1.7
    for frame in (m.onchain, m.altcoin, m.dominance):
        late = pd.to_datetime(frame["date"], utc=True) + pd.Timedelta("24h") > cutoff
        cols = frame.columns.drop("date")
        frame[cols] = frame[cols].astype(float)
        frame.loc[late, cols] = frame.loc[late, cols] * 2.5 + 1.0
    return m


def test_point_in_time_every_fused_column(tmp_path, small_panel, small_market):
    """Values published after T never reach a row whose bar closes at or before T (all columns, all periods)."""
    cutoff = pd.Timestamp("2023-02-10 05:00", tz="UTC")
    write_market(_perturbed_market(small_market, cutoff), tmp_path / "raw2")
    a = _fuse(small_panel, tmp_path / "a")
    b = _fuse(small_panel, tmp_path / "b", raw_dir=tmp_path / "raw2")
    cols = a.fundamental_columns
    assert len(cols) > 40 and set(cols) == set(b.fundamental_columns)
    ta, tb = (r.table.set_index(["symbol", "period", "timestamp"]) for r in (a, b))
    tb = tb.reindex(ta.index)
    early = (_decision(a.table) <= cutoff).to_numpy()
    assert early.sum() > 1000 and (~early).sum() > 1000
    pd.testing.assert_frame_equal(ta.loc[early, cols], tb.loc[early, cols])
    late_changed = ~np.isclose(ta.loc[~early, cols].to_numpy(), tb.loc[~early, cols].to_numpy(), equal_nan=True)
    assert late_changed.any(axis=0).all()  # the scramble reached every column, so the check above is real


def test_publication_lag_matches_an_independent_asof_join(tmp_path, small_panel, small_market):
    res = _fuse(small_panel, tmp_path / "lag", include_symbol={"funding_rate": True}, include_global={},
                publication_lag_hours={"funding": 5}, max_staleness_hours={"funding": 12})
    t = res.table[res.table.symbol == "ETHUSDT"].assign(decision=lambda d: _decision(d)).sort_values("decision")
    f = small_market.funding["ETHUSDT"]
    avail = pd.to_datetime(f["calc_time"], unit="ms", utc=True).dt.as_unit("ns") + pd.Timedelta("5h")
    pub = pd.DataFrame({"avail": avail,
                        "rate": f["last_funding_rate"].to_numpy()}).sort_values("avail")
    ref = pd.merge_asof(t[["decision"]], pub, left_on="decision", right_on="avail",
                        tolerance=pd.Timedelta("12h"), direction="backward")
    np.testing.assert_allclose(t["funding_rate"].to_numpy(), ref["rate"].to_numpy(), equal_nan=True)
    assert (ref["avail"].dropna() <= ref.loc[ref["avail"].notna(), "decision"]).all()


def test_staleness_bound_turns_old_values_into_nan(tmp_path, small_panel):
    res = _fuse(small_panel, tmp_path / "st", include_symbol={"funding_rate": True}, include_global={},
                max_staleness_hours={"funding": 4})  # settlements are 8h apart: half the rows are stale
    dec = _decision(res.table)
    first = dec.where(res.table["funding_rate"].notna()).groupby(res.table["symbol"]).transform("min")
    t = res.table[dec >= first]  # from each symbol's first settlement on (one symbol lists late)
    one_h = t[t.period == "1h"]["funding_rate"].isna().mean()
    assert one_h == pytest.approx(3 / 8, abs=0.01)  # 5, 6 and 7 hours after a settlement are too old
    assert t[t.period != "1h"]["funding_rate"].notna().all()  # 4h/1d bars close on settlement hours
    assert res.summary["stale_values"].sum() > 0


def test_missing_threshold_hand_checked():
    table = pd.DataFrame({
        "symbol": ["A"] * 4 + ["B"] * 3, "period": "1h", "timestamp": pd.date_range("2024", periods=7, freq="h"),
        "f1": [1, np.nan, 1, 1, np.nan, 1, 1], "f2": [1, np.nan, 1, np.nan, 1, 1, 1], "f3": [1] * 7,
    })
    kept, stats, cols = apply_missing_threshold(table, ["f1", "f2", "f3"], 0.34)
    assert kept.index.tolist() == [0, 2, 3, 4, 5, 6]  # only row 1 misses 2/3 > 0.34
    assert stats == {("A", "1h"): {"missing_threshold_rows": 1, "missing_threshold_cols_count": 2}}
    kept, stats, cols = apply_missing_threshold(table, ["f1", "f2", "f3"], 0.0)
    assert kept.index.tolist() == [0, 2, 5, 6]
    assert stats[("A", "1h")]["missing_threshold_rows"] == 2 and stats[("B", "1h")]["missing_threshold_rows"] == 1
    assert cols.to_dict() == {"f1": 2, "f2": 2, "f3": 0}


def test_intersect_hand_checked():
    n = 10
    x = [np.nan] * 3 + [1.0, 1, np.nan, 1, 1, 1] + [np.nan]  # group A: complete rows 3..8, hole at 5
    table = pd.DataFrame({
        "symbol": ["A"] * n + ["B"] * 4, "period": "1d",
        "timestamp": [*pd.date_range("2024", periods=n, freq="D"), *pd.date_range("2024", periods=4, freq="D")],
        "x": x + [np.nan] * 4,  # entirely null in group B: ignored there, counted
        "y": [1.0] * n + [np.nan, 1.0, 1.0, np.nan],
        "z": np.nan,  # null everywhere: dropped and listed
    })
    kept, stats, dead = apply_intersect(table, ["x", "y", "z"])
    assert dead == ["z"] and "z" not in kept.columns
    assert kept.index.tolist() == [3, 4, 5, 6, 7, 8, 11, 12]  # interior hole kept; B trimmed to y's span
    assert stats[("A", "1d")] == {"intersect_trimmed_rows": 4, "intersect_all_null_cols_count": 1}
    assert stats[("B", "1d")] == {"intersect_trimmed_rows": 2, "intersect_all_null_cols_count": 2}


def test_custom_intersect_and_unknown_column(tmp_path, small_panel):
    res = _fuse(small_panel, tmp_path / "c", include_global={"premium": True}, include_symbol={},
                no_nan_policy={"enabled": True, "scope": "custom", "columns": ["premium_premium_index_z_7d"]})
    first_ok = res.table.groupby(["symbol", "period"])["premium_premium_index_z_7d"].apply(lambda s: s.notna().iloc[0])
    assert first_ok.all()
    assert (tmp_path / "c" / "intersect_columns.txt").read_text() == "premium_premium_index_z_7d\n"
    with pytest.raises(ConfigError, match=r"no_nan_policy\.columns': \['nope'\] are not columns"):
        _fuse(small_panel, tmp_path / "d", no_nan_policy={"enabled": True, "scope": "custom", "columns": ["nope"]})
    with pytest.raises(ConfigError, match=r"scope 'custom' needs the columns"):
        _fuse(small_panel, tmp_path / "e", no_nan_policy={"enabled": True, "scope": "custom"})


def test_unknown_source_key_lists_valid_keys(tmp_path, small_panel):
    with pytest.raises(ConfigError, match=r"include_symbol\.fundingrate' = True: unknown source; valid keys: "
                                          r"\['funding_rate', 'funding_oi'"):
        _fuse(small_panel, tmp_path / "x", include_symbol={"fundingrate": True})
    with pytest.raises(ConfigError, match=r"include_global\.onchain' = True: a 'fundamentals_only' dataset"):
        _fuse(small_panel, tmp_path / "x", dataset_type="fundamentals_only")


def test_missing_source_files_are_clear_errors(tmp_path, small_panel, small_market):
    m = copy.deepcopy(small_market)
    write_market(m, tmp_path / "raw")
    import shutil
    shutil.rmtree(tmp_path / "raw" / "futures" / "um" / "monthly" / "fundingRate" / "ETHUSDT")
    (tmp_path / "raw" / "global" / "onchain_daily.csv").unlink()
    # every missing source in one message, not one per run
    with pytest.raises(DataError, match=r"symbol\.funding_rate: no fundingRate files for ETHUSDT; .*"
                                        r"global\.onchain: no global/onchain_daily\.csv\. .*--missing-sources skip"):
        _fuse(small_panel, tmp_path / "o", raw_dir=tmp_path / "raw", include_global={"onchain": True})
    with pytest.raises(DataError, match=r"global\.onchain: no global/onchain_daily\.csv"):
        _fuse(small_panel, tmp_path / "o", raw_dir=tmp_path / "raw", include_symbol={},
              include_global={"onchain": True})
    with pytest.raises(DataError, match=r"base panel not found"):
        fuse(tmp_path / "none.csv", tmp_path / "o" / "f.csv")


def test_missing_sources_skip_leaves_them_out_and_records_it(tmp_path, small_panel, small_market, caplog):
    import shutil
    write_market(copy.deepcopy(small_market), tmp_path / "raw")
    shutil.rmtree(tmp_path / "raw" / "futures" / "um" / "monthly" / "fundingRate" / "ETHUSDT")
    shutil.rmtree(tmp_path / "raw" / "global")
    with caplog.at_level(logging.WARNING):
        res = _fuse(small_panel, tmp_path / "o", raw_dir=tmp_path / "raw", include_symbol={"funding_rate": True},
                    include_global={"onchain": True, "dominance": True}, missing_sources_mode="skip")
    warnings = [r for r in caplog.records if "left out source(s)" in r.getMessage()]
    assert len(warnings) == 1 and "global.onchain" in warnings[0].getMessage() \
        and "global.dominance" in warnings[0].getMessage() and "ETHUSDT" in warnings[0].getMessage()
    assert not any(c.startswith(("onchain_", "dominance_")) for c in res.fundamental_columns)
    # funding stays for the symbol that has it; ETHUSDT's rows have none
    eth = res.table["symbol"] == "ETHUSDT"
    assert res.table.loc[~eth, "funding_rate"].notna().any() and res.table.loc[eth, "funding_rate"].isna().all()
    summary = pd.read_csv(tmp_path / "o" / "dataset_group_summary.csv")
    eth_skipped = summary.loc[summary["symbol"] == "ETHUSDT", "skipped_sources"].iloc[0]
    assert "symbol.funding_rate" in eth_skipped and "global.onchain" in eth_skipped
    audit = pd.read_csv(tmp_path / "o" / "fuse_audit" / "time_audit.csv")
    assert (audit["status"] == "skipped: no raw files").sum() >= 3
    snap = yaml.safe_load((tmp_path / "o" / "config_snapshot.yaml").read_text())
    assert snap["missing_sources"] == "skip" and "global.onchain" in snap["skipped_sources"]


def test_markets_without_fundamentals_fuse_with_skip(tmp_path, small_panel):
    """Stocks and FX: a raw folder with prices only still gives every expert dataset with --missing-sources skip."""
    raw = tmp_path / "prices_only"
    raw.mkdir()
    cfg = _config(tmp_path, {**small_panel, "raw_dir": raw})
    assert main(["--config", str(cfg), "--experts", "Alpha-Dir-TFT"]) == 2
    assert main(["--config", str(cfg), "--experts", "Alpha-Dir-TFT", "--missing-sources", "skip"]) == 0
    table = pd.read_parquet(tmp_path / "expert_group" / "Alpha-Dir-TFT_base" / "full_merged_with_fundamentals.parquet")
    base = pd.read_parquet(small_panel["base_csv"].with_suffix(".parquet"))
    assert len(table) == len(base) and set(table.columns) <= set(base.columns)
    report = pd.read_csv(tmp_path / "reports" / "summary.csv")
    assert report["skipped_sources"].str.contains("symbol.funding_rate").all()


def test_raw_dir_follows_the_build(tmp_path, small_panel, caplog):
    """Without raw_dir, the fusion reads the raw folder recorded by the build; a different one is announced."""
    cfg = _config(tmp_path, {**small_panel, "raw_dir": None}, experts=("Risk-TFT",))
    data = yaml.safe_load(cfg.read_text())
    data.pop("raw_dir")
    cfg.write_text(yaml.safe_dump(data))
    assert main(["--config", str(cfg), "--experts", "Risk-TFT"]) == 0
    snap = yaml.safe_load((tmp_path / "expert_group" / "Risk-TFT_base" / "config_snapshot.yaml").read_text())
    assert Path(snap["raw_dir"]) == Path(small_panel["raw_dir"]).resolve()
    other = tmp_path / "other_raw"
    other.mkdir()
    with caplog.at_level(logging.WARNING):
        assert main(["--config", str(cfg), "--experts", "Risk-TFT", "--raw-dir", str(other),
                          "--missing-sources", "skip"]) == 0
    assert "differs from the raw folder of the build" in caplog.text


def _config(tmp_path, panel, experts=("Alpha-Dir-TFT", "Risk-TFT"), override=None):
    entries = {}
    for e in experts:
        entries[e] = {m: f"configs/experts/{e}/datasets/{m}.yaml" for m in ("base", "rich")}
    if override:
        entries[experts[0]]["post_convert"] = override
    cfg = {"base_csv": str(panel["base_csv"]), "raw_dir": str(panel["raw_dir"]),
           "output_root": str(tmp_path / "expert_group"), "report_csv": str(tmp_path / "reports" / "summary.csv"),
           "experts_map": entries}
    path = tmp_path / "fuse.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_with_config_outputs_and_summary_recount(tmp_path, small_panel):
    results = run_with_config(_config(tmp_path, small_panel, override={"csv": False, "pkl": False}))
    assert sorted(results) == ["Alpha-Dir-TFT_base", "Alpha-Dir-TFT_rich", "Risk-TFT_base", "Risk-TFT_rich"]
    expected = {"full_merged_slim.csv", "fundamental_columns.txt", "dataset_group_summary.csv",
                "missing_threshold_columns.txt", "intersect_columns.txt", "intersect_columns_all_null.txt",
                "fuse_audit", "config_snapshot.yaml", "full_merged_with_fundamentals.parquet"}
    for name, res in results.items():
        files = {p.name for p in res.out_dir.iterdir()}
        full = {"full_merged_with_fundamentals.csv", "full_merged_with_fundamentals.pkl"}
        assert expected <= files and (full.isdisjoint(files) if name.startswith("Alpha") else full <= files)
        assert {p.name for p in (res.out_dir / "fuse_audit").iterdir()} == {"coverage.csv", "column_stats.csv",
                                                                          "time_audit.csv"}
        table = pd.read_parquet(res.out_dir / "full_merged_with_fundamentals.parquet")
        summary = pd.read_csv(res.out_dir / "dataset_group_summary.csv")
        recount = table.groupby(["symbol", "period"])["timestamp"].agg(["size", "min", "max"]).reset_index()
        merged = summary.merge(recount, on=["symbol", "period"], how="left").fillna({"size": 0})
        assert (merged["rows"] == merged["size"]).all()
        ok = merged["rows"] > 0
        assert (pd.to_datetime(merged.loc[ok, "first_timestamp"]) == merged.loc[ok, "min"]).all()
        assert (pd.to_datetime(merged.loc[ok, "last_timestamp"]) == merged.loc[ok, "max"]).all()
        dropped = merged["rows_before"] - merged["rows"]
        assert (dropped == merged["missing_threshold_rows"] + merged["intersect_trimmed_rows"]).all()
        listed = (res.out_dir / "fundamental_columns.txt").read_text().split()
        assert listed == res.fundamental_columns and set(listed) <= set(table.columns)
        snap = yaml.safe_load((res.out_dir / "config_snapshot.yaml").read_text())
        assert snap["dataset"]["extra_field"] == name
    report = pd.read_csv(tmp_path / "reports" / "summary.csv")
    assert report.set_index("dataset")["rows"].to_dict() == {k: len(v.table) for k, v in results.items()}
    base, rich = results["Risk-TFT_base"], results["Risk-TFT_rich"]
    assert base.table["timestamp"].min() < rich.table["timestamp"].min()  # base keeps the longer history
    assert rich.table[[c for c in rich.fundamental_columns if c.startswith("onchain_")]].notna().mean().min() > 0.99


def test_failed_run_leaves_outputs_intact(tmp_path, small_panel, caplog):
    cfg = _config(tmp_path, small_panel, experts=("Risk-TFT",))
    assert main(["--config", str(cfg)]) == 0
    target = tmp_path / "expert_group" / "Risk-TFT_base" / "dataset_group_summary.csv"
    before = target.read_bytes()
    data = yaml.safe_load(cfg.read_text())
    data["publication_lag_hours"] = {"funding": 100000}  # nothing published in time: no row survives
    cfg.write_text(yaml.safe_dump(data))
    assert main(["--config", str(cfg)]) == 2
    assert "no rows left after the missing-ratio / intersect policies" in caplog.text
    assert target.read_bytes() == before
    assert not [p for p in (tmp_path / "expert_group").iterdir() if p.name.startswith(".")]


def test_cli_errors(tmp_path, small_panel, caplog):
    cfg = _config(tmp_path, small_panel)
    assert main(["--config", str(cfg), "--experts", "Nope-TFT"]) == 2
    assert "expert(s) ['Nope-TFT'] not in experts_map" in caplog.text
    bad = tmp_path / "bad.yaml"
    bad.write_text("experts_map: {X: {}}\n")
    with caplog.at_level(logging.ERROR):
        assert main(["--config", str(bad)]) == 2
    assert "give a 'base' and/or 'rich' dataset file" in caplog.text


def test_shipped_configs_load():
    from src.fuse_config import DatasetConfig, FuseConfig
    from utils.config import load_config

    cfg = load_config("pipelines/configs/fuse_fundamentals.yaml", FuseConfig)
    assert sorted(cfg.experts_map) == ["Alpha-Dir-TFT", "Derivatives-Micro-TFT", "Risk-TFT"]
    for name, entry in cfg.experts_map.items():
        base, rich = load_config(entry.base, DatasetConfig), load_config(entry.rich, DatasetConfig)
        assert (base.extra_field, rich.extra_field) == (f"{name}_base", f"{name}_rich")
        assert base.max_missing_ratio == 0.01 and not base.no_nan_policy.enabled
        assert rich.max_missing_ratio is None and rich.no_nan_policy.scope == "onchain"


def test_inputs_are_shared_and_cached(small_panel):
    inputs = load_inputs(small_panel["base_csv"], small_panel["raw_dir"])
    one = inputs.symbol_source("funding", "BTCUSDT", pd.Timedelta(0), "funding_rate")
    assert inputs.symbol_source("funding", "BTCUSDT", pd.Timedelta(0), "funding_rate") is one


def test_bad_base_panel_and_periods(tmp_path, small_panel):
    from src.fusion import read_base_panel

    base = pd.read_parquet(small_panel["base_csv"].with_suffix(".parquet"))
    base.drop(columns=["close"]).to_parquet(tmp_path / "a.parquet")
    with pytest.raises(DataError, match=r"a\.csv: base panel lacks column\(s\) \['close'\]"):
        read_base_panel(tmp_path / "a.csv")
    pd.concat([base, base.iloc[:2]]).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(DataError, match=r"2 duplicated \(symbol, period, timestamp\) rows, first BTCUSDT 1h"):
        read_base_panel(tmp_path / "b.csv")
    with pytest.raises(ConfigError, match=r"key 'periods' = \['1h', '2h'\]: \['2h'\] not in the base panel"):
        _fuse(small_panel, tmp_path / "p", periods=["1h", "2h"])


def test_more_config_and_source_errors(tmp_path, small_panel, small_market):
    import shutil

    from src.fuse_config import DatasetConfig, FuseConfig
    from utils.config import from_mapping

    with pytest.raises(ConfigError, match=r"no_nan_policy scope 'onchain' needs include_global\.onchain: true"):
        _fuse(small_panel, tmp_path / "a", include_global={}, no_nan_policy={"enabled": True, "scope": "onchain"})
    with pytest.raises(ConfigError, match=r"key 'extra_field' = '': name the dataset"):
        from_mapping(DatasetConfig, {"dataset_type": "combined", "extra_field": " "})
    with pytest.raises(ConfigError, match=r"key 'global_files\.whales': unknown global source"):
        from_mapping(FuseConfig, {"global_files": {"whales": "x"}})
    write_market(small_market, tmp_path / "raw")
    shutil.rmtree(tmp_path / "raw" / "futures" / "um" / "monthly" / "premiumIndexKlines")
    with pytest.raises(DataError, match=r"dataset b: source\(s\) without raw files under .*raw: "
                                        r"global\.premium: no premiumIndexKlines files"):
        _fuse(small_panel, tmp_path / "b", raw_dir=tmp_path / "raw", include_symbol={},
              include_global={"premium": True})


def test_output_validation_messages(tmp_path):
    from types import SimpleNamespace

    from src.fusion_stream import DatasetFusion, check_series

    ts = pd.date_range("2024", periods=3, freq="h", tz="UTC")
    good = pd.DataFrame({"symbol": "A", "period": "1h", "timestamp": ts, "f": [1.0, 2.0, 3.0]})
    check_series(good, "X", ["f"])  # passes
    with pytest.raises(DataError, match=r"dataset X: no rows left"):
        DatasetFusion(None, None, tmp_path, SimpleNamespace(extra_field="X"), {}).finish()
    with pytest.raises(DataError, match=r"dataset X: duplicated \(symbol, period, timestamp\) rows"):
        check_series(pd.concat([good, good.iloc[:1]]), "X", ["f"])
    with pytest.raises(DataError, match=r"timestamps are not strictly increasing"):
        check_series(good.iloc[[0, 2, 1]], "X", ["f"])
    with pytest.raises(DataError, match=r"infinite values in fused columns"):
        check_series(good.assign(f=[1.0, np.inf, 2.0]), "X", ["f"])


def test_keyword_form_validates_like_the_yaml(small_panel, tmp_path):
    """``fuse(...)`` turns its keywords into the typed FusionJob: bad values name the key."""
    with pytest.raises(ConfigError, match=r"fuse\(\) arguments: key 'dataset\.max_missing_ratio' = 2\.0"):
        _fuse(small_panel, tmp_path / "k", max_missing_ratio=2.0)
    with pytest.raises(ConfigError, match=r"fuse\(\) arguments: key 'missing_sources' = 'maybe'"):
        _fuse(small_panel, tmp_path / "k", missing_sources_mode="maybe")
    with pytest.raises(ConfigError, match=r"key 'publication_lag_hours\.funding'"):
        _fuse(small_panel, tmp_path / "k", publication_lag_hours={"funding": -1.0})
    assert not (tmp_path / "k").exists()


def test_each_raw_source_is_parsed_once_per_run_and_datasets_are_partitioned(tmp_path, small_panel, monkeypatch):
    """Every dataset is fused symbol by symbol from one parse of each source; the output is a partitioned
    dataset (the single files are its exports) that a reader can project."""
    import src.fusion as fusion
    from utils.partitioned import read_partitioned

    calls = {}

    def counting(real):
        def wrapped(files, *args, **kwargs):
            key = (real.__name__, tuple(sorted(map(str, files))))
            calls[key] = calls.get(key, 0) + 1
            return real(files, *args, **kwargs)
        return wrapped

    for name in ("load_funding", "load_metrics", "load_klines"):
        monkeypatch.setattr(fusion, name, counting(getattr(fusion, name)))
    results = run_with_config(_config(tmp_path, small_panel, override={"csv": False, "pkl": False,
                                                                        "parquet": False}))
    assert calls and max(calls.values()) == 1, calls  # four datasets, one parse per file set
    res = results["Alpha-Dir-TFT_rich"]
    assert not (res.out_dir / "full_merged_with_fundamentals.parquet").exists()  # post_convert false
    assert (res.out_dir / "full_merged_with_fundamentals.csv").exists() is False
    part = read_partitioned(res.dataset, periods=["4h"], columns=["timestamp", *res.fundamental_columns[:3]])
    assert set(part["period"]) == {"4h"} and part.shape[1] == 6
    assert part[res.fundamental_columns[0]].dtype == np.float32  # fused features are float32 like the rest
    other = results["Risk-TFT_rich"]  # post_convert null: every export, small dataset
    assert {"full_merged_with_fundamentals.csv", "full_merged_with_fundamentals.pkl",
            "full_merged_with_fundamentals.parquet"} <= {p.name for p in other.out_dir.iterdir()}
    pd.testing.assert_frame_equal(pd.read_parquet(other.out_dir / "full_merged_with_fundamentals.parquet"),
                                  other.table)


def test_an_intersect_column_null_everywhere_is_dropped_and_the_dataset_fused_again(tmp_path, small_panel, caplog):
    """Whether an intersect column is null in every series is known only at the end of a series-by-series
    fusion: the dataset is then fused again without it, as the whole-table policy would have done."""
    # funding published 10 years late: its columns are null in every series
    res = _fuse(small_panel, tmp_path / "x", include_symbol={"funding_rate": True, "premium": True},
                include_global={}, publication_lag_hours={"funding": 87600},
                no_nan_policy={"enabled": True, "scope": "custom",
                               "columns": ["funding_rate", "premium_index_z_7d"]})
    assert (tmp_path / "x" / "intersect_columns_all_null.txt").read_text().split() == ["funding_rate"]
    assert "null in every series; dropped, and the dataset fused again" in caplog.text
    assert "funding_rate" not in res.table.columns and "funding_rate" not in res.fundamental_columns
    assert res.table.groupby(["symbol", "period"])["premium_index_z_7d"].apply(lambda s: s.notna().iloc[0]).all()


def test_export_flag_replaces_post_convert(tmp_path, small_panel, caplog):
    assert main(["--config", str(_config(tmp_path, small_panel, experts=("Risk-TFT",))), "--export", "none"]) == 0
    out = tmp_path / "expert_group" / "Risk-TFT_base"
    names = {p.name for p in out.iterdir()}
    assert "full_merged_with_fundamentals" in names and not any(n.startswith("full_merged_with_fundamentals.")
                                                                  for n in names)
    assert main(["--config", str(_config(tmp_path, small_panel)), "--export", "csv,xls"]) == 2
    assert "--export 'csv,xls': unknown export(s) ['xls']" in caplog.text
